// The signed-in user's past analyses with the trend of their anomaly scores.

import { ApiError, getJson, request } from "./api.js";
import { $, formatDate, h, show } from "./dom.js";

const PAGE = 20;
const SVG = "http://www.w3.org/2000/svg";
const DIRECTION = {
  improving: "Improving: the latest score is lower than the one before.",
  worsening: "Worsening: the latest score is higher than the one before.",
  stable: "Stable: the last two scores are about the same.",
  insufficient_data: "Two scored analyses are needed for a trend.",
};
let loaded = 0;
let handlers = { open: () => {} };

export function setUpHistory(onOpen) {
  handlers = { open: onOpen };
  $("history-more").addEventListener("click", () => loadHistory(false));
}

export async function loadHistory(fresh = true) {
  const status = $("history-status");
  if (fresh) {
    loaded = 0;
    $("history-list").replaceChildren();
  }
  status.textContent = "Loading…";
  try {
    const page = await getJson(`/api/v1/users/me/sessions?limit=${PAGE}&offset=${loaded}`);
    loaded += page.items.length;
    $("history-list").append(...page.items.map(historyItem));
    status.textContent = page.total
      ? `${page.total} ${page.total === 1 ? "analysis" : "analyses"}, newest first.`
      : "No analyses yet.";
    show($("history-more"), loaded < page.total);
    if (fresh) drawTrend(page.trend);
  } catch (err) {
    status.textContent = err instanceof ApiError ? err.friendly : "The history could not be loaded.";
  }
}

function historyItem(item) {
  const risk = item.risk_level || "—";
  const finished = ["complete", "partial", "failed"].includes(item.status);
  const title = `${formatDate(item.created_at)}${item.patient_ref ? ` · ${item.patient_ref}` : ""}`;
  const row = h("li", { class: "history-item", dataset: { session: item.session_id } },
    h("div", { class: "history-main" },
      h("span", { class: `risk-chip risk-${risk.toLowerCase()}` }, risk),
      h("span", { class: "history-title" }, title),
      h("span", { class: "muted small" },
        item.anomaly_score !== null && item.anomaly_score !== undefined
          ? `score ${item.anomaly_score.toFixed(1)}` : item.status)),
    h("div", { class: "history-actions" },
      h("button", {
        type: "button", class: "secondary small", disabled: !finished,
        "aria-label": `Open the analysis of ${title}`,
        onclick: () => handlers.open(item.session_id),
      }, "Open"),
      h("button", {
        type: "button", class: "danger small", disabled: !finished && item.status !== "cancelled",
        "aria-label": `Delete the analysis of ${title}`,
        onclick: () => remove(item, row),
      }, "Delete")));
  return row;
}

async function remove(item, row) {
  const dialog = $("confirm-dialog");
  dialog.returnValue = "";
  dialog.showModal();
  const answer = await new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true }));
  if (answer !== "confirm") return;
  try {
    await request(`/api/v1/analyze/result/${encodeURIComponent(item.session_id)}`, { method: "DELETE" });
    row.remove();
    await loadHistory(true);
    $("history-status").textContent = "Deleted. " + $("history-status").textContent;
  } catch (err) {
    $("history-status").textContent = err instanceof ApiError ? err.friendly : "The analysis could not be deleted.";
  }
}

/** A small line chart of the last scores (0-100), oldest to newest. */
function drawTrend(trend) {
  const figure = $("trend-figure");
  const points = trend?.points || [];
  $("trend-caption").textContent = DIRECTION[trend?.direction] || "";
  if (!points.length) {
    show(figure, false);
    return;
  }
  const width = 560;
  const height = 180;
  const pad = { left: 34, right: 12, top: 12, bottom: 26 };
  const x = (i) => pad.left + (points.length === 1 ? 0.5 : i / (points.length - 1)) * (width - pad.left - pad.right);
  const y = (v) => pad.top + (1 - v / 100) * (height - pad.top - pad.bottom);
  const el = (tag, attrs) => {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    return node;
  };
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "trend-svg", role: "img" });
  const summary = points.map((p) => `${formatDate(p.created_at)}: ${p.anomaly_score.toFixed(1)}${p.risk_level ? ` (${p.risk_level})` : ""}`).join("; ");
  const title = el("title", {});
  title.textContent = `Anomaly score over the last ${points.length} scored analyses. ${summary}`;
  svg.append(title);
  for (const tick of [0, 25, 50, 75, 100]) {
    svg.append(el("line", { x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick), class: "grid" }));
    const label = el("text", { x: pad.left - 6, y: y(tick) + 4, class: "axis", "text-anchor": "end" });
    label.textContent = String(tick);
    svg.append(label);
  }
  svg.append(el("polyline", { points: points.map((p, i) => `${x(i)},${y(p.anomaly_score)}`).join(" "), class: "line" }));
  points.forEach((p, i) => {
    svg.append(el("circle", { cx: x(i), cy: y(p.anomaly_score), r: 4.5, class: `dot risk-${(p.risk_level || "none").toLowerCase()}` }));
  });
  const dates = points.length > 1 ? [0, points.length - 1] : [0];
  for (const i of dates) {
    const label = el("text", { x: x(i), y: height - 6, class: "axis", "text-anchor": i === 0 && points.length > 1 ? "start" : "end" });
    label.textContent = new Date(points[i].created_at).toLocaleDateString(undefined, { day: "numeric", month: "short" });
    svg.append(label);
  }
  $("trend-chart").replaceChildren(svg);
  show(figure);
}

// The result of one analysis, as the API's AnalysisResult (schema 2) describes it.

import { request } from "./api.js";
import { $, fillPairs, h, percent, show } from "./dom.js";
import { drawPanels } from "./overlay.js";

const RISK_TEXT = {
  HIGH: "At or above the decision threshold: review promptly.",
  MEDIUM: "Below the threshold, in the band where validation sensitivity reaches 95 %.",
  LOW: "Below the band where validation sensitivity reaches 95 %.",
};
const STAGE_NAMES = {
  preprocess_ms: "Input checks",
  vision_ms: "Image model",
  nlp_ms: "Symptoms text",
  fusion_ms: "Image–text fusion",
  report_ms: "Summary",
  total_ms: "Total",
};

let panelsUrl = null;

/** Show `result` (the heatmap is fetched from its own URL). */
export async function renderResult(result) {
  show($("result-area"));
  renderWarnings(result);
  renderScores(result);
  renderAgreement(result);
  renderEntities(result.nlp);
  renderDifferential(result.nlp);
  renderReport(result);
  renderTimings(result.timings);
  renderProvenance(result);
  await renderImage(result);
}

export function clearResult() {
  show($("result-area"), false);
  if (panelsUrl) URL.revokeObjectURL(panelsUrl);
  panelsUrl = null;
}

function renderWarnings(result) {
  const box = $("result-warnings");
  const items = [...(result.warnings || [])];
  if (result.overall_status === "FAILED" && !items.length) items.push("The analysis failed.");
  const notXray = result.stages?.vision === "withheld";
  box.replaceChildren(
    h("h3", {}, notXray ? "This does not look like a chest X-ray" : "Read first"),
    h("ul", {}, items.map((text) => h("li", {}, text))),
  );
  box.classList.toggle("severe", notXray || result.overall_status === "FAILED");
  show(box, items.length > 0);
}

function renderScores(result) {
  const vision = result.vision;
  const fusion = result.fusion;
  const risk = fusion?.final_risk || vision?.risk_level || null;
  const riskEl = $("result-risk");
  riskEl.textContent = risk || "Not scored";
  riskEl.className = `risk risk-${(risk || "none").toLowerCase()}`;
  $("risk-source").textContent = risk
    ? `${RISK_TEXT[risk] || ""}${fusion && vision && fusion.final_risk !== vision.risk_level
      ? ` Image alone: ${vision.risk_level}; the symptoms moved it.` : ""}`
    : "No triage band: see the warnings above.";
  if (vision) {
    $("result-score").textContent = `${vision.anomaly_score.toFixed(1)} / 100`;
    $("threshold-text").textContent = `Threshold ${vision.threshold.toFixed(1)}: HIGH at or above it.`;
    $("confidence-text").textContent = percent(vision.model_confidence);
    $("confidence-meter").value = vision.model_confidence;
  } else {
    $("result-score").textContent = "—";
    $("threshold-text").textContent = "The image was not scored.";
    $("confidence-text").textContent = "—";
    $("confidence-meter").value = 0;
  }
}

async function renderImage(result) {
  const vision = result.vision;
  const figure = $("xray-figure");
  const missing = $("no-image-score");
  if (panelsUrl) URL.revokeObjectURL(panelsUrl);
  panelsUrl = null;
  if (!vision || !vision.heatmap_url) {
    show(figure, false);
    missing.textContent = "No heatmap: the image was not scored.";
    show(missing);
    return;
  }
  show(missing, false);
  show(figure);
  const response = await request(vision.heatmap_url, { headers: { Accept: "image/*" } });
  const blob = await response.blob();
  panelsUrl = URL.createObjectURL(blob);
  const size = await drawPanels(blob, $("xray-base"), $("xray-heat"));
  $("xray").style.aspectRatio = `${size.width} / ${size.height}`;
  renderRegions(vision.top_regions || [], result.image || size);
  applyOverlaySettings();
}

function renderRegions(regions, image) {
  const layer = $("result-regions");
  const list = $("region-list");
  layer.replaceChildren();
  list.replaceChildren();
  regions.forEach((region, index) => {
    const box = h("div", { class: "region-box", "aria-hidden": "true" }, h("span", {}, String(index + 1)));
    box.style.left = `${(100 * region.x) / image.width}%`;
    box.style.top = `${(100 * region.y) / image.height}%`;
    box.style.width = `${(100 * region.width) / image.width}%`;
    box.style.height = `${(100 * region.height) / image.height}%`;
    layer.append(box);
    const where = describeRegion(region, image);
    list.append(h("li", {}, `Region ${index + 1}: ${where}, strength ${percent(region.confidence)}`));
  });
  if (!regions.length) list.append(h("li", {}, "No region stands out."));
}

function describeRegion(region, image) {
  const cx = (region.x + region.width / 2) / image.width;
  const cy = (region.y + region.height / 2) / image.height;
  // Image left is the patient's right on a PA film; say image sides to avoid guessing the view.
  const side = cx < 0.4 ? "image left" : cx > 0.6 ? "image right" : "centre";
  const zone = cy < 0.4 ? "upper" : cy > 0.65 ? "lower" : "middle";
  return `${zone} ${side}`;
}

export function applyOverlaySettings() {
  const on = $("heat-toggle").checked;
  const opacity = Number($("heat-opacity").value) / 100;
  $("xray-heat").style.opacity = on ? String(opacity) : "0";
  $("heat-opacity").disabled = !on;
  $("heat-opacity").setAttribute("aria-valuetext", `${Math.round(opacity * 100)} %`);
  show($("result-regions"), $("boxes-toggle").checked);
}

export function savePanels(sessionId) {
  if (!panelsUrl) return;
  const link = h("a", { href: panelsUrl, download: `medsight-heatmap-${sessionId}.jpg`, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
}

function renderAgreement(result) {
  const fusion = result.fusion;
  const flag = $("disagreement");
  show($("agreement-section"), Boolean(fusion));
  if (!fusion) return;
  flag.textContent = fusion.disagreement
    ? "Image and symptoms point in opposite directions: review both."
    : "";
  show(flag, fusion.disagreement);
  fillPairs($("agreement"), [
    ["Agreement", `${percent(fusion.image_text_similarity)} (${fusion.alignment})`],
    ["Combined score", fusion.final_score !== null && fusion.final_score !== undefined
      ? `${fusion.final_score.toFixed(1)} / 100` : null],
    ["How", fusion.explanation || null],
  ]);
}

function renderEntities(nlp) {
  const container = $("entities");
  show($("entities-section"), Boolean(nlp));
  if (!nlp) return;
  const groups = [["diseases", "Conditions"], ["symptoms", "Symptoms"], ["medications", "Medications"], ["anatomy", "Anatomy"]];
  const blocks = groups
    .filter(([key]) => (nlp.entities?.[key] || []).length)
    .map(([key, title]) => h("div", { class: "entity-group" },
      h("h4", {}, title),
      h("ul", { class: "chips" }, nlp.entities[key].map(entityChip))));
  container.replaceChildren(...(blocks.length ? blocks : [h("p", { class: "muted" }, "Nothing recognised in the text.")]));
}

function entityChip(entity) {
  const tags = [];
  if (entity.negated) tags.push("negated");
  if (entity.uncertain) tags.push("uncertain");
  if (entity.historical) tags.push("history");
  if (entity.family) tags.push("family");
  const word = entity.negated ? h("s", {}, entity.text) : h("span", {}, entity.text);
  return h("li", { class: `chip${entity.negated ? " negated" : ""}`, title: entity.concept || null },
    word, tags.map((tag) => h("span", { class: "tag" }, tag)));
}

function renderDifferential(nlp) {
  const list = $("differential");
  show($("differential-section"), Boolean(nlp));
  if (!nlp) return;
  const items = nlp.differential || [];
  list.replaceChildren(...items.slice(0, 6).map((item) => {
    const bar = h("span", { class: "bar" }, h("span", { class: "bar-fill" }));
    bar.firstChild.style.width = `${Math.round(item.confidence * 100)}%`;
    return h("li", {},
      h("span", { class: "diff-name" }, item.disease),
      bar,
      h("span", { class: "diff-value" }, percent(item.confidence)));
  }));
  if (!items.length) list.append(h("li", { class: "muted" }, "No condition ranked."));
}

function renderReport(result) {
  const paragraphs = (result.report_text || "").split(/\n{2,}/).filter(Boolean);
  $("report-text").replaceChildren(...paragraphs.map((text) => h("p", {}, text)));
}

function renderTimings(timings) {
  fillPairs($("timings"), Object.entries(STAGE_NAMES)
    .filter(([key]) => timings && timings[key] !== undefined)
    .map(([key, name]) => [name, `${Math.round(timings[key])} ms`]));
}

function renderProvenance(result) {
  const p = result.provenance || {};
  const models = Object.entries(p.models || {}).map(([role, m]) =>
    [`Model (${role})`, `${m.name} ${m.version}${m.sha256 ? ` · ${m.sha256.slice(0, 12)}` : ""}`]);
  fillPairs($("provenance"), [
    ["Session", result.session_id],
    ["Status", result.overall_status],
    ["Completed", result.completed_at],
    ["Image", result.image ? `${result.image.format.toUpperCase()} ${result.image.width}×${result.image.height}` : null],
    ["Image SHA-256", p.image_sha256 ? p.image_sha256.slice(0, 16) + "…" : null],
    ...models,
    ["Threshold", p.threshold !== null && p.threshold !== undefined ? p.threshold.toFixed(2) : null],
    ["Calibration", p.calibration ? JSON.stringify(p.calibration) : null],
    ["Code", p.code_version],
    ["Stages", Object.entries(result.stages || {}).map(([k, v]) => `${k}: ${v}`).join(", ")],
  ]);
}

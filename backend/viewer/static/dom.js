// Building DOM from nodes, never from markup: text from the API is always set as text, never parsed.

/** h("p", {class: "x", dataset: {id: 1}}, "text", child) → element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const $ = (id) => document.getElementById(id);

export function show(el, visible = true) {
  el.hidden = !visible;
}

/** A <dl> filled from [term, value] pairs (values may be nodes). */
export function fillPairs(dl, pairs) {
  dl.replaceChildren(
    ...pairs.filter(([, v]) => v !== null && v !== undefined && v !== "")
      .flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]),
  );
}

export function percent(value, digits = 0) {
  return `${(value * 100).toFixed(digits)} %`;
}

export function formatDate(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** The page's settings, from its <meta name="medsight:..."> tags. */
export function config(name, fallback) {
  return document.querySelector(`meta[name="medsight:${name}"]`)?.content ?? fallback;
}

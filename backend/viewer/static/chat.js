// Questions about the shown result: POST /api/v1/chat streams sources, tokens and the tier.

import { ApiError, getJson, readEvents, request } from "./api.js";
import { $, h, show } from "./dom.js";

const TIERS = { gemini: "Gemini", local: "local model", template: "templates" };
let current = { sessionId: null, conversationId: null };
let busy = false;

export function setUpChat() {
  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    ask();
  });
  $("chat-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      ask();
    }
  });
}

/** Point the chat at an analysis; `earlier`: show what was asked about it before. */
export async function openChat(sessionId, earlier = true) {
  current = { sessionId, conversationId: sessionId };
  $("chat-log").replaceChildren();
  chatError("");
  if (!earlier) return; // a new analysis has no conversation yet (and the read would be a 404)
  try {
    const turns = await getJson(`/api/v1/chat/${encodeURIComponent(sessionId)}/messages`);
    for (const turn of turns) {
      const bubble = message(turn.role, turn.content);
      if (turn.role === "assistant") finishAnswer(bubble, turn.sources || [], turn.tier);
    }
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) chatError(err.friendly || String(err));
  }
}

function chatError(text) {
  $("chat-error").textContent = text;
  show($("chat-error"), Boolean(text));
}

function message(role, text) {
  const body = h("div", { class: "bubble-text" }, text);
  const bubble = h("div", { class: `bubble ${role}` },
    h("span", { class: "visually-hidden" }, role === "user" ? "You asked: " : "Answer: "),
    body);
  $("chat-log").append(bubble);
  scrollLog();
  return bubble;
}

function scrollLog() {
  const log = $("chat-log");
  log.scrollTop = log.scrollHeight;
}

function finishAnswer(bubble, sources, tier) {
  bubble.dataset.testid = "chat-answer";
  if (sources.length) {
    bubble.append(h("div", { class: "sources" },
      h("p", { class: "sources-title" }, "Sources"),
      h("ol", { "data-testid": "chat-sources" }, sources.map(sourceItem))));
  }
  if (tier) bubble.append(h("p", { class: "tier" }, `Answered by ${TIERS[tier] || tier}`));
  scrollLog();
}

function sourceItem(source) {
  const pubmed = source.pmid ? `https://pubmed.ncbi.nlm.nih.gov/${encodeURIComponent(source.pmid)}/` : null;
  const url = safeUrl(source.url || pubmed);
  const label = source.title || source.citation || (source.pmid ? `PMID ${source.pmid}` : "Source");
  const origin = source.pmid ? `PMID ${source.pmid}` : source.source;
  return h("li", {},
    url ? h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, label) : label,
    origin && origin !== label ? h("span", { class: "source-origin" }, ` · ${origin}`) : null);
}

function safeUrl(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
}

async function ask() {
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text || busy || !current.sessionId) return;
  busy = true;
  $("chat-send").disabled = true;
  chatError("");
  message("user", text);
  input.value = "";
  const bubble = message("assistant", "");
  bubble.classList.add("streaming");
  bubble.setAttribute("aria-busy", "true");
  const body = bubble.querySelector(".bubble-text");
  let sources = [];
  let tier = null;
  let failed = null;
  try {
    const response = await request("/api/v1/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({
        message: text,
        session_id: current.sessionId,
        conversation_id: current.conversationId,
      }),
    });
    await readEvents(response, (name, data) => {
      if (name === "meta") current.conversationId = data.conversation_id;
      else if (name === "sources") sources = data.sources || [];
      else if (name === "token") {
        body.textContent += data.text;
        scrollLog();
      }
      else if (name === "done") tier = data.tier;
      else if (name === "error") failed = data.message;
    });
  } catch (err) {
    failed = err instanceof ApiError ? err.friendly : "The answer could not be completed.";
  }
  bubble.classList.remove("streaming");
  bubble.removeAttribute("aria-busy");
  if (failed) {
    if (!body.textContent) bubble.remove();
    chatError(failed);
  } else {
    finishAnswer(bubble, sources, tier);
  }
  busy = false;
  $("chat-send").disabled = false;
}

// The viewer: which view shows, and how a submitted analysis becomes a shown result.
// Routes (in the address bar's #): #/ new analysis, #/analysis/<session id>, #/history.

import { ApiError, download, getJson, session, whenSignedOut } from "./api.js";
import { follow, resetProgress, setUpForm, showStageOutcomes } from "./analysis.js";
import { anonymousAllowed, currentUser, finishGoogleSignIn, setUpSignIn, signInError, signOut } from "./auth.js";
import { openChat, setUpChat } from "./chat.js";
import { $, show } from "./dom.js";
import { loadHistory, setUpHistory } from "./history.js";
import { applyOverlaySettings, clearResult, renderResult, savePanels } from "./result.js";

let shownSession = null;
let following = false; // an upload's progress is on screen

function notice(text) {
  $("notice").textContent = text;
  show($("notice"), Boolean(text));
}

function showView(name) {
  show($("signin-view"), name === "signin");
  show($("analysis-view"), name === "analysis");
  show($("history-view"), name === "history");
  show($("account-nav"), name !== "signin");
  $("nav-analysis").toggleAttribute("aria-current", name === "analysis");
  $("nav-history").toggleAttribute("aria-current", name === "history");
  if (name === "analysis") $("nav-analysis").setAttribute("aria-current", "page");
  if (name === "history") $("nav-history").setAttribute("aria-current", "page");
}

function showSignIn(message = "") {
  showView("signin");
  signInError(message);
  $("signin-intro").textContent = anonymousAllowed()
    ? "Sign in to keep a history of your analyses, or continue without an account."
    : "Sign in to analyse chest X-rays. This server requires an account.";
}

async function enterWorkspace() {
  const anonymous = session.mode === "anonymous";
  if (anonymous) {
    $("who").textContent = "Not signed in";
    $("sign-out").textContent = "Sign in";
  } else {
    try {
      const user = await currentUser();
      $("who").textContent = user.full_name || user.email;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return; // whenSignedOut shows sign-in
      $("who").textContent = "";
    }
    $("sign-out").textContent = "Sign out";
  }
  show($("nav-history"), !anonymous);
  await route();
}

async function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  if (hash === "history" && session.mode === "account") {
    showView("history");
    await loadHistory(true);
    return;
  }
  showView("analysis");
  const match = /^analysis\/([A-Za-z0-9._-]{1,64})$/.exec(hash);
  show($("new-analysis"), !match);
  if (match && match[1] !== shownSession) {
    show($("progress"), false);
    await openResult(match[1], true);
  } else if (!match && !following) {
    shownSession = null;
    clearResult();
    show($("progress"), false);
  }
}

/** Show a finished analysis; `earlier`: also the questions asked about it before. */
async function openResult(sessionId, earlier) {
  notice("");
  try {
    const result = await getJson(`/api/v1/analyze/result/${encodeURIComponent(sessionId)}?heatmap=url`);
    shownSession = sessionId;
    await renderResult(result);
    showStageOutcomes(result);
    await openChat(sessionId, earlier);
    $("result-title").focus();
  } catch (err) {
    clearResult();
    notice(err instanceof ApiError ? `This analysis cannot be shown: ${err.friendly}` : String(err));
  }
}

async function onAccepted(accepted) {
  clearResult();
  shownSession = null;
  resetProgress();
  $("progress").scrollIntoView({ block: "nearest" });
  following = true;
  let final;
  try {
    final = await follow(accepted.task_id);
  } finally {
    following = false;
  }
  if (final.result_url) {
    history.pushState(null, "", `#/analysis/${accepted.session_id}`);
    show($("new-analysis"), false);
    await openResult(accepted.session_id, false);
  }
}

async function saveReport(kind) {
  if (!shownSession) return;
  const status = $("download-status");
  const [path, name] = kind === "pdf"
    ? [`/api/v1/report/${shownSession}`, `medsight-report-${shownSession}.pdf`]
    : [`/api/v1/report/${shownSession}/fhir`, `medsight-fhir-${shownSession}.json`];
  status.textContent = "Preparing…";
  try {
    await download(path, name);
    status.textContent = `Saved ${name}.`;
  } catch (err) {
    status.textContent = err instanceof ApiError ? `Download failed: ${err.friendly}` : "Download failed.";
  }
}

function wire() {
  setUpSignIn(async () => {
    notice("");
    await enterWorkspace();
  });
  setUpForm(onAccepted);
  setUpChat();
  setUpHistory((sessionId) => {
    location.hash = `#/analysis/${sessionId}`;
  });
  $("nav-analysis").addEventListener("click", () => {
    location.hash = "#/";
  });
  $("nav-history").addEventListener("click", () => {
    location.hash = "#/history";
  });
  $("sign-out").addEventListener("click", async () => {
    await signOut();
    shownSession = null;
    clearResult();
    history.replaceState(null, "", location.pathname);
    showSignIn();
  });
  for (const id of ["heat-toggle", "boxes-toggle", "heat-opacity"]) {
    $(id).addEventListener("input", applyOverlaySettings);
  }
  $("panels-open").addEventListener("click", () => savePanels(shownSession));
  $("report-pdf").addEventListener("click", () => saveReport("pdf"));
  $("report-fhir").addEventListener("click", () => saveReport("fhir"));
  window.addEventListener("hashchange", () => {
    if (session.mode) route();
  });
  whenSignedOut((err) => {
    session.clear();
    showSignIn(err.status === 401 && !anonymousAllowed()
      ? "Please sign in: this server requires an account."
      : "Your session has ended. Please sign in again.");
  });
}

async function start() {
  wire();
  if (await finishGoogleSignIn()) {
    await enterWorkspace();
    return;
  }
  if (session.signedIn || (session.mode === "anonymous" && anonymousAllowed())) {
    await enterWorkspace();
  } else {
    showSignIn($("signin-error").textContent);
  }
}

start();

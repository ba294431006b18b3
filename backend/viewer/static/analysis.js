// A new analysis: the form (file, symptoms, dictation), the upload, and live progress per stage.

import { ApiError, getJson, readEvents, request } from "./api.js";
import { $, config, h, show } from "./dom.js";

const STAGES = [
  ["input", "Input checks"],
  ["vision", "Image model"],
  ["memory", "Memory release"],
  ["nlp", "Symptoms text"],
  ["fusion", "Image–text fusion"],
  ["report", "Summary"],
];
const OUTCOME_TEXT = { ok: "done", skipped: "skipped", withheld: "withheld", failed: "failed" };
const FOLLOW_S = 120;
const POLL_WAIT_S = 25;

let chosenFile = null;
let previewUrl = null;

function maxUploadBytes() {
  return Number.parseFloat(config("max-upload-mb", "20")) * 1024 * 1024;
}

// --- the form ------------------------------------------------------------------------------
export function setUpForm(onAccepted) {
  $("max-mb").textContent = config("max-upload-mb", "20");
  const input = $("image-input");
  const zone = $("dropzone");
  const symptoms = $("symptoms");
  symptoms.maxLength = Number.parseInt(config("max-symptoms", "5000"), 10);
  input.addEventListener("change", () => choose(input.files[0] || null));
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    zone.addEventListener(name, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer?.files?.[0];
    if (file) choose(file);
  });
  symptoms.addEventListener("input", countSymptoms);
  countSymptoms();
  setUpDictation();
  $("analysis-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    await submit(onAccepted);
  });
}

function countSymptoms() {
  const symptoms = $("symptoms");
  $("symptoms-count").textContent = `${symptoms.value.length} / ${symptoms.maxLength}`;
}

function choose(file) {
  chosenFile = file;
  formError("");
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = null;
  const preview = $("image-preview");
  show(preview, false);
  if (!file) {
    $("image-chosen").textContent = "No file chosen.";
    return;
  }
  const kb = Math.max(1, Math.round(file.size / 1024));
  $("image-chosen").textContent = `${file.name} (${kb.toLocaleString()} KB)`;
  if (file.size > maxUploadBytes()) {
    formError(`This file is ${(file.size / 1048576).toFixed(1)} MB; the limit is ${config("max-upload-mb", "20")} MB.`);
  }
  // Browsers show PNG and JPEG; a DICOM file is shown once the server has read it.
  if (/^image\/(png|jpeg)$/.test(file.type)) {
    previewUrl = URL.createObjectURL(file);
    preview.src = previewUrl;
    preview.alt = `Preview of ${file.name}`;
    preview.addEventListener("error", () => show(preview, false), { once: true });
    show(preview);
  }
}

function formError(text) {
  const el = $("analysis-error");
  el.textContent = text;
  show(el, Boolean(text));
}

async function submit(onAccepted) {
  if (!chosenFile) {
    formError("Choose a chest X-ray first (PNG, JPEG or DICOM).");
    $("image-input").focus();
    return;
  }
  if (chosenFile.size > maxUploadBytes()) {
    formError(`This file is larger than ${config("max-upload-mb", "20")} MB.`);
    return;
  }
  formError("");
  const button = $("analyze-submit");
  button.disabled = true;
  button.textContent = "Uploading…";
  const form = new FormData();
  form.append("image", chosenFile, chosenFile.name);
  const symptoms = $("symptoms").value.trim();
  if (symptoms) form.append("symptoms", symptoms);
  const ref = $("patient-ref").value.trim();
  if (ref) form.append("patient_ref", ref);
  try {
    const accepted = await (await request("/api/v1/analyze", {
      method: "POST",
      body: form,
      headers: { "Idempotency-Key": crypto.randomUUID() },
    })).json();
    button.textContent = "Analysing…";
    await onAccepted(accepted);
  } catch (err) {
    formError(uploadProblem(err));
  } finally {
    button.disabled = false;
    button.textContent = "Analyse";
  }
}

/** What to tell a person whose upload was refused. */
function uploadProblem(err) {
  if (!(err instanceof ApiError)) return `The upload failed: ${err.message}`;
  if (err.status === 415 || err.status === 422 || err.status === 400) {
    return `This file cannot be analysed: ${err.friendly}`;
  }
  if (err.status === 413) return `The file is too large: ${err.friendly}`;
  return err.friendly;
}

// --- dictation: MediaRecorder → /analyze/transcribe → editable text ---------------------------
let recorder = null;

function setUpDictation() {
  const button = $("dictate");
  if (!navigator.mediaDevices?.getUserMedia || typeof MediaRecorder === "undefined") {
    button.disabled = true;
    $("dictate-status").textContent = "Dictation is not available in this browser.";
    return;
  }
  button.addEventListener("click", () => (recorder ? stopDictation() : startDictation()));
}

async function startDictation() {
  const status = $("dictate-status");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch {
    status.textContent = "The microphone is not available (permission refused or no device).";
    return;
  }
  const type = ["audio/webm;codecs=opus", "audio/webm", "audio/ogg;codecs=opus"]
    .find((t) => MediaRecorder.isTypeSupported(t));
  const chunks = [];
  recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
  recorder.addEventListener("dataavailable", (event) => event.data.size && chunks.push(event.data));
  recorder.addEventListener("stop", async () => {
    stream.getTracks().forEach((track) => track.stop());
    await transcribe(new Blob(chunks, { type: recorder?.mimeType || type || "audio/webm" }));
    recorder = null;
  });
  recorder.start();
  $("dictate").setAttribute("aria-pressed", "true");
  $("dictate-label").textContent = "Stop dictation";
  status.textContent = "Recording… press again to stop.";
}

function stopDictation() {
  $("dictate").setAttribute("aria-pressed", "false");
  $("dictate-label").textContent = "Dictate";
  if (recorder && recorder.state !== "inactive") recorder.stop();
}

async function transcribe(blob) {
  const status = $("dictate-status");
  status.textContent = "Transcribing…";
  const form = new FormData();
  const extension = blob.type.includes("ogg") ? "ogg" : "webm";
  form.append("audio", blob, `dictation.${extension}`);
  try {
    const body = await (await request("/api/v1/analyze/transcribe", { method: "POST", body: form })).json();
    const text = (body.text || "").trim();
    if (!text) {
      status.textContent = "No speech was recognised.";
      return;
    }
    const symptoms = $("symptoms");
    symptoms.value = symptoms.value.trim() ? `${symptoms.value.trim()} ${text}` : text;
    countSymptoms();
    symptoms.focus();
    status.textContent = "Transcribed: check and edit the text before you submit.";
  } catch (err) {
    status.textContent = err instanceof ApiError ? `Transcription failed: ${err.friendly}` : "Transcription failed.";
  }
}

// --- progress ------------------------------------------------------------------------------
export function resetProgress() {
  $("stage-list").replaceChildren(...STAGES.map(([name, label]) =>
    h("li", { class: "stage pending", dataset: { stage: name } },
      h("span", { class: "stage-name" }, label),
      h("span", { class: "stage-state" }, "waiting"))));
  $("progress-bar").value = 0;
  $("progress-status").textContent = "Uploaded. Waiting for a worker…";
  show($("progress-note"), false);
  show($("progress"));
}

function markStage(event) {
  const item = $("stage-list").querySelector(`[data-stage="${CSS.escape(event.stage)}"]`);
  if (!item) return;
  const state = event.phase === "start" ? "running" : (event.outcome || "ok");
  item.className = `stage ${state}`;
  const text = event.phase === "start" ? "running…"
    : `${OUTCOME_TEXT[event.outcome] || "done"}${event.elapsed_ms !== null && event.elapsed_ms !== undefined ? ` · ${Math.round(event.elapsed_ms)} ms` : ""}`;
  item.querySelector(".stage-state").textContent = text;
  $("progress-bar").value = event.progress;
  if (event.phase === "start") {
    const label = STAGES.find(([name]) => name === event.stage)?.[1] || event.stage;
    $("progress-status").textContent = `Running: ${label}…`;
  }
}

function markStatus(data) {
  if (data.status === "queued") {
    const ahead = data.queue_position ?? 0;
    $("progress-status").textContent = ahead ? `Queued: ${ahead} ahead of this analysis.` : "Queued: starting soon.";
  } else if (data.status === "running") {
    $("progress-status").textContent = data.stage ? `Running: ${data.stage}…` : "Running…";
  }
  if (typeof data.progress === "number") $("progress-bar").value = data.progress;
  if (data.note) {
    $("progress-note").textContent = data.note;
    show($("progress-note"));
  }
}

/**
 * Follow the task until it is finished: server-sent events, reconnecting when a stream times
 * out; long polls of the status when streams fail. Resolves with the final status.
 */
export async function follow(taskId) {
  for (let attempt = 0; attempt < 30; attempt += 1) {
    let final = null;
    try {
      const response = await request(`/api/v1/analyze/events/${encodeURIComponent(taskId)}?wait=${FOLLOW_S}`, {
        headers: { Accept: "text/event-stream" },
      });
      await readEvents(response, (name, data) => {
        if (name === "status") markStatus(data);
        else if (name === "stage") markStage(data);
        else if (name === "final") final = data;
        else if (name === "error") throw new ApiError(500, { detail: data.message, code: data.code }, null);
      });
    } catch (err) {
      if (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429) throw err;
      return longPoll(taskId);
    }
    if (final) return finish(final);
  }
  return longPoll(taskId);
}

async function longPoll(taskId) {
  $("progress-note").textContent = "Live stage updates are unavailable; checking the status instead.";
  show($("progress-note"));
  for (;;) {
    const status = await getJson(`/api/v1/analyze/status/${encodeURIComponent(taskId)}?wait=${POLL_WAIT_S}`);
    markStatus(status);
    if (["complete", "partial", "failed", "cancelled"].includes(status.status)) {
      return finish({ ...status, result_url: status.status === "cancelled" ? null : `/api/v1/analyze/result/${status.session_id}` });
    }
  }
}

function finish(final) {
  $("progress-bar").value = 1;
  const text = {
    complete: "Finished.",
    partial: "Finished, with parts missing: read the warnings.",
    failed: `The analysis failed${final.error ? `: ${final.error}` : "."}`,
    cancelled: "The analysis was cancelled.",
  }[final.status] || `Finished (${final.status}).`;
  $("progress-status").textContent = text;
  for (const item of $("stage-list").querySelectorAll(".stage.pending, .stage.running")) {
    item.className = "stage skipped";
    item.querySelector(".stage-state").textContent = "—";
  }
  return final;
}

/** After the result is read: stages the stream did not report get their outcome from it. */
export function showStageOutcomes(result) {
  if ($("progress").hidden) return;
  for (const [name, outcome] of Object.entries(result.stages || {})) {
    const item = $("stage-list").querySelector(`[data-stage="${CSS.escape(name)}"]`);
    const state = item?.querySelector(".stage-state");
    if (!state || !["—", "waiting"].includes(state.textContent)) continue;
    item.className = `stage ${outcome}`;
    state.textContent = OUTCOME_TEXT[outcome] || outcome;
  }
}

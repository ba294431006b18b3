// The JSON API as the page uses it: credentials, problem+json errors, server-sent events.
// Every request goes to this origin with credentials "same-origin", so a cookie the API sets
// (e.g. an anonymous identity) travels with the next request like a bearer token does.

const ACCESS = "medsight.access";
const REFRESH = "medsight.refresh";
const MODE = "medsight.mode"; // "account" | "anonymous"

export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super(problem.detail || problem.title || `Request failed (${status})`);
    this.status = status;
    this.code = problem.code || "";
    this.title = problem.title || "";
    this.detail = problem.detail || "";
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
    this.retryAfter = retryAfter;
  }

  /** A sentence a person can act on. */
  get friendly() {
    if (this.status === 0) return "The server cannot be reached. Check the connection and retry.";
    if (this.status === 429) {
      const wait = this.retryAfter ? ` Try again in ${formatWait(this.retryAfter)}.` : " Try again later.";
      return `Too many requests.${wait}`;
    }
    if (this.status === 401) return this.detail || "Please sign in.";
    let text = this.detail || this.title || `The request failed (HTTP ${this.status}).`;
    if (this.errors.length && !this.detail) {
      text = this.errors.map((e) => e.msg || e.message || String(e)).join(" ");
    }
    return text;
  }
}

function formatWait(seconds) {
  const s = Math.max(1, Math.round(seconds));
  if (s < 90) return `${s} s`;
  return `${Math.round(s / 60)} min`;
}

export const session = {
  get mode() {
    return sessionStorage.getItem(MODE);
  },
  get signedIn() {
    return Boolean(sessionStorage.getItem(ACCESS) || sessionStorage.getItem(REFRESH));
  },
  store(pair) {
    sessionStorage.setItem(ACCESS, pair.access_token);
    sessionStorage.setItem(REFRESH, pair.refresh_token);
    sessionStorage.setItem(MODE, "account");
  },
  anonymous() {
    this.clear();
    sessionStorage.setItem(MODE, "anonymous");
  },
  clear() {
    sessionStorage.removeItem(ACCESS);
    sessionStorage.removeItem(REFRESH);
    sessionStorage.removeItem(MODE);
  },
};

let onSignedOut = () => {};
/** Called when the API refuses the credentials and they cannot be refreshed. */
export function whenSignedOut(callback) {
  onSignedOut = callback;
}

function authHeaders() {
  const token = sessionStorage.getItem(ACCESS);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

let refreshing = null;
async function refreshTokens() {
  const token = sessionStorage.getItem(REFRESH);
  if (!token) return false;
  refreshing ??= (async () => {
    try {
      const r = await fetch("/api/v1/auth/refresh", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: token }),
      });
      if (!r.ok) return false;
      session.store(await r.json());
      return true;
    } catch {
      return false;
    } finally {
      setTimeout(() => { refreshing = null; }, 0);
    }
  })();
  return refreshing;
}

async function problemOf(response) {
  const retry = Number.parseFloat(response.headers.get("Retry-After") || "");
  let problem = {};
  try {
    const type = response.headers.get("Content-Type") || "";
    problem = type.includes("json") ? await response.json() : { detail: (await response.text()).slice(0, 300) };
  } catch {
    problem = {};
  }
  return new ApiError(response.status, problem, Number.isFinite(retry) ? retry : null);
}

/**
 * fetch() against the API: bearer credentials when signed in, one refresh on 401, and any
 * error answer thrown as an ApiError (problem+json's `detail` is its message).
 */
export async function request(path, options = {}) {
  const attempt = () => fetch(path, {
    credentials: "same-origin",
    ...options,
    headers: { Accept: "application/json", ...authHeaders(), ...(options.headers || {}) },
  });
  let response;
  try {
    response = await attempt();
    if (response.status === 401 && !options.signIn && session.signedIn && await refreshTokens()) {
      response = await attempt();
    }
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, { detail: "The server cannot be reached." }, null);
  }
  if (!response.ok) {
    const error = await problemOf(response);
    // A refused sign-in is the form's business; elsewhere a 401 means the session is over.
    if (response.status === 401 && !options.signIn) onSignedOut(error);
    throw error;
  }
  return response;
}

export async function getJson(path, options) {
  return (await request(path, options)).json();
}

export async function postJson(path, body, options = {}) {
  return (await request(path, {
    method: "POST",
    ...options,
    headers: { "Content-Type": "application/json", ...(options.headers || {}) },
    body: JSON.stringify(body),
  })).json();
}

/**
 * Read a text/event-stream response: calls onEvent(name, data) for each event, in order.
 * Returns when the stream ends. (EventSource cannot send a bearer token, so fetch it is.)
 */
export async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue; // heartbeat
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

/** Save a response body as a file (the API needs credentials, so a plain link cannot). */
export async function download(path, filename) {
  const response = await request(path, { headers: { Accept: "*/*" } });
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

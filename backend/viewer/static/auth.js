// Signing in: email and password, Google (when configured), or anonymous (where allowed).

import { ApiError, getJson, postJson, request, session } from "./api.js";
import { $, config, show } from "./dom.js";

let registering = false;

export const anonymousAllowed = () => config("anonymous", "refused") === "allowed";

export function setUpSignIn(onSignedIn) {
  $("signin-mode").addEventListener("click", () => setRegistering(!registering));
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    await signIn(onSignedIn);
  });
  show($("google-block"), config("google", "off") === "on");
  $("google-signin").addEventListener("click", startGoogleSignIn);
  show($("anonymous-block"), anonymousAllowed());
  $("anonymous-start").addEventListener("click", () => {
    session.anonymous();
    onSignedIn();
  });
}

function setRegistering(value) {
  registering = value;
  $("signin-title").textContent = value ? "Create an account" : "Sign in";
  $("signin-submit").textContent = value ? "Create account" : "Sign in";
  $("signin-mode").textContent = value ? "I already have an account" : "Create an account instead";
  $("signin-password").autocomplete = value ? "new-password" : "current-password";
  show($("signin-name-field"), value);
  signInError("");
}

export function signInError(text) {
  $("signin-error").textContent = text;
  show($("signin-error"), Boolean(text));
}

async function signIn(onSignedIn) {
  const email = $("signin-email").value.trim();
  const password = $("signin-password").value;
  if (!email || !password) {
    signInError("Enter your email and password.");
    (email ? $("signin-password") : $("signin-email")).focus();
    return;
  }
  const button = $("signin-submit");
  button.disabled = true;
  signInError("");
  try {
    if (registering) {
      const fullName = $("signin-name").value.trim();
      await postJson("/api/v1/auth/register", { email, password, ...(fullName ? { full_name: fullName } : {}) }, { signIn: true });
    }
    session.store(await postJson("/api/v1/auth/login", { email, password }, { signIn: true }));
    $("signin-password").value = "";
    setRegistering(false);
    await onSignedIn();
  } catch (err) {
    signInError(err instanceof ApiError ? err.friendly : "Signing in failed.");
  } finally {
    button.disabled = false;
  }
}

// --- Google: the whole code flow lives in these two functions ------------------------------
function startGoogleSignIn() {
  const back = `${location.origin}/`;
  location.assign(`/api/v1/auth/google?return_to=${encodeURIComponent(back)}`);
}

/** Back from Google with ?code=: exchange it for tokens (once) and clean the address bar. */
export async function finishGoogleSignIn() {
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  if (!code) return false;
  params.delete("code");
  const query = params.toString();
  history.replaceState(null, "", `${location.pathname}${query ? `?${query}` : ""}${location.hash}`);
  try {
    session.store(await postJson("/api/v1/auth/google/exchange", { code }, { signIn: true }));
    return true;
  } catch (err) {
    signInError(err instanceof ApiError ? `Google sign-in failed: ${err.friendly}` : "Google sign-in failed.");
    return false;
  }
}

export async function currentUser() {
  return getJson("/api/v1/auth/me");
}

export async function signOut() {
  if (session.mode === "account") {
    try {
      await request("/api/v1/auth/logout", { method: "POST", signIn: true });
    } catch {
      // Signed out here either way; the tokens expire on their own.
    }
  }
  session.clear();
}

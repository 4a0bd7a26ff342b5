// The login form. POST /api/v1/login sets the session cookie (HttpOnly): the token in its
// answer is deliberately not kept anywhere a script could read it later.

import { ApiError, call } from "./api.js";
import { el, fill } from "./dom.js";

export function loginScreen(app, view, message) {
  const t = app.translator;
  // No `required`: the browser's own bubble would speak its language, not the page's.
  const username = el("input", { id: "username", name: "username", autocomplete: "username", maxlength: 64 });
  const password = el("input", {
    id: "password", name: "password", type: "password", autocomplete: "current-password", maxlength: 1024,
  });
  const problem = el("p", { class: "error", id: "login-error", role: "alert" }, message || "");
  const submit = el("button", { type: "submit", class: "primary" }, t.t("login.submit"));

  async function logIn(event) {
    event.preventDefault();
    if (!username.value.trim() || !password.value) {
      problem.textContent = t.t("login.empty");
      return;
    }
    submit.disabled = true;
    problem.textContent = "";
    try {
      await call("login", { method: "POST", body: { username: username.value.trim(), password: password.value } });
      password.value = "";
      await app.loggedIn();
    } catch (error) {
      submit.disabled = false;
      problem.textContent = error instanceof ApiError && error.status === 401
        ? t.t("login.failed")
        : t.t("error", { reason: error.message });
    }
  }

  fill(view,
    el("form", { class: "login", id: "login", onsubmit: logIn },
      el("h1", {}, t.t("login.title")),
      el("label", { for: "username" }, t.t("login.username")), username,
      el("label", { for: "password" }, t.t("login.password")), password,
      submit,
      problem));
  username.focus();
}

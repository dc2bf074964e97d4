// Signing in, and the password change a root still on the default password must make first.

import { html, useState, Field, ErrorNote, mustChangePassword } from "../ui.js";
import { Turnstile } from "./signup.js";
import { post, put, setCsrf } from "../api.js";
import { t } from "../i18n.js";
import { OAuthLogin } from "./oauth.js";

export function LoginPage({ status, onLogin, callbackError }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [token, setToken] = useState("");

  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const data = await post("/api/user/login", { username, password }, token ? { turnstile: token } : undefined);
      setCsrf(data && data.csrf_token);
      // The login answer is the user; it may say apart that the password must change.
      const user = (data && data.user) || data || {};
      if (data && data.require_password_change) user.require_password_change = true;
      onLogin(user);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return html`<form class="card auth-card" onSubmit=${submit} data-testid="login-form">
    <h1>${(status && status.system_name) || "unigate"}</h1>
    <p class="muted">${t("login.subtitle")}</p>
    <${Field} label=${t("login.username")}>
      <input name="username" autocomplete="username" required value=${username}
        onInput=${(e) => setUsername(e.target.value)} />
    </${Field}>
    <${Field} label=${t("login.password")}>
      <input name="password" type="password" autocomplete="current-password" required value=${password}
        onInput=${(e) => setPassword(e.target.value)} />
    </${Field}>
    <${Turnstile} status=${status} onToken=${setToken} />
    <${ErrorNote} error=${error} />
    <button type="submit" disabled=${busy}>${t("login.submit")}</button>
    <p class="auth-links">
      ${status && status.register_enabled && html`<a href="#/register" data-testid="to-register">${t("signup.title")}</a>`}
      <a href="#/forgot-password" data-testid="to-forgot">${t("reset.forgot")}</a>
    </p>
  </form>
  <${OAuthLogin} status=${status} callbackError=${callbackError} onLogin=${(user) => {
    setCsrf(user && user.csrf_token);
    onLogin(user);
  }} />`;
}

export function ChangePasswordPage({ user, onDone }) {
  const [original, setOriginal] = useState("");
  const [password, setPassword] = useState("");
  const [again, setAgain] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    if (password !== again) {
      setError(new Error(t("password.mismatch")));
      return;
    }
    if (password === original) {
      setError(new Error(t("password.same")));
      return;
    }
    setBusy(true);
    try {
      await put("/api/user/self", { password, original_password: original });
      await onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return html`<form class="card auth-card" onSubmit=${submit} data-testid="change-password-form">
    <h1>${t("password.title")}</h1>
    ${mustChangePassword(user) && html`<p class="warning" role="alert">${t("password.must_change")}</p>`}
    <${Field} label=${t("password.current")}>
      <input name="original_password" type="password" autocomplete="current-password" required
        value=${original} onInput=${(e) => setOriginal(e.target.value)} />
    </${Field}>
    <${Field} label=${t("password.new")} hint=${t("password.rule")}>
      <input name="new_password" type="password" autocomplete="new-password" required minlength="8"
        value=${password} onInput=${(e) => setPassword(e.target.value)} />
    </${Field}>
    <${Field} label=${t("password.again")}>
      <input name="new_password_again" type="password" autocomplete="new-password" required minlength="8"
        value=${again} onInput=${(e) => setAgain(e.target.value)} />
    </${Field}>
    <${ErrorNote} error=${error} />
    <button type="submit" disabled=${busy}>${t("password.submit")}</button>
  </form>`;
}

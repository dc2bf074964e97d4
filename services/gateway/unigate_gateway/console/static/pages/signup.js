// Signing oneself up and back in, as One API's front end does: registration (with the code
// mailed to the address when EmailVerificationEnabled, and the inviter's code from ?aff=),
// asking for a reset link, and the reset link's page, which sets a new password and shows it
// once. Cloudflare Turnstile's widget guards them while TurnstileCheckEnabled is on.

import { html, useState, useEffect, useRef, Field, ErrorNote, CopyButton, navigate, toast } from "../ui.js";
import { get, post } from "../api.js";
import { t } from "../i18n.js";

/** The query of the hash route: #/reset?email=..&token=.. */
export function routeParams() {
  const q = location.hash.split("?")[1] || "";
  return new URLSearchParams(q);
}

let turnstileScript = null;
function loadTurnstile() {
  if (!turnstileScript) {
    turnstileScript = new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = "https://challenges.cloudflare.com/turnstile/v0/api.js?render=explicit";
      s.async = true;
      s.onload = () => resolve(window.turnstile);
      s.onerror = () => reject(new Error("Turnstile could not be loaded"));
      document.head.appendChild(s);
    });
  }
  return turnstileScript;
}

/** Cloudflare's widget; calls onToken with each token it gives (and "" when one expires). */
export function Turnstile({ status, onToken }) {
  const box = useRef(null);
  useEffect(() => {
    if (!status || !status.turnstile_check || !box.current) return undefined;
    let id = null;
    loadTurnstile()
      .then((ts) => {
        id = ts.render(box.current, {
          sitekey: status.turnstile_site_key,
          callback: (token) => onToken(token),
          "expired-callback": () => onToken(""),
        });
      })
      .catch((err) => toast(err.message, "error"));
    return () => {
      if (id !== null && window.turnstile) window.turnstile.remove(id);
    };
  }, [status && status.turnstile_check]);
  if (!status || !status.turnstile_check) return null;
  return html`<div ref=${box} class="turnstile" data-testid="turnstile"></div>`;
}

function withTurnstile(token) {
  return token ? { turnstile: token } : undefined;
}

export function RegisterPage({ status }) {
  const params = routeParams();
  const [form, setForm] = useState({
    username: "",
    password: "",
    again: "",
    email: "",
    verification_code: "",
    aff_code: params.get("aff") || localStorage.getItem("unigate.aff") || "",
  });
  const [token, setToken] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [sent, setSent] = useState(false);
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const verify = Boolean(status && status.email_verification);

  useEffect(() => {
    if (params.get("aff")) localStorage.setItem("unigate.aff", params.get("aff"));
  }, []);

  const sendCode = async () => {
    setError(null);
    setBusy(true);
    try {
      await get("/api/verification", { email: form.email.trim(), ...withTurnstile(token) });
      setSent(true);
      toast(t("signup.code_sent"), "success");
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    if (form.password !== form.again) {
      setError(new Error(t("password.mismatch")));
      return;
    }
    setBusy(true);
    try {
      const body = { username: form.username.trim(), password: form.password, aff_code: form.aff_code.trim() };
      if (verify) {
        body.email = form.email.trim();
        body.verification_code = form.verification_code.trim();
      }
      await post("/api/user/register", body, withTurnstile(token));
      localStorage.removeItem("unigate.aff");
      toast(t("signup.done"), "success");
      navigate("login");
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  if (status && (!status.register_enabled || status.password_register_enabled === false)) {
    return html`<div class="card auth-card" data-testid="register-closed">
      <h1>${t("signup.title")}</h1>
      <p class="muted">${t("signup.closed")}</p>
      <a href="#/login">${t("signup.to_login")}</a>
    </div>`;
  }
  return html`<form class="card auth-card" onSubmit=${submit} data-testid="register-form">
    <h1>${t("signup.title")}</h1>
    <${Field} label=${t("login.username")}>
      <input name="username" autocomplete="username" required maxlength="64" value=${form.username} onInput=${set("username")} />
    </${Field}>
    <${Field} label=${t("login.password")} hint=${t("password.rule")}>
      <input name="password" type="password" autocomplete="new-password" required minlength="8" value=${form.password} onInput=${set("password")} />
    </${Field}>
    <${Field} label=${t("password.again")}>
      <input name="password_again" type="password" autocomplete="new-password" required minlength="8" value=${form.again} onInput=${set("again")} />
    </${Field}>
    ${verify &&
    html`<${Field} label=${t("users.email")}>
        <div class="inline">
          <input name="email" type="email" autocomplete="email" required value=${form.email} onInput=${set("email")} />
          <button type="button" class="secondary" data-testid="send-code" disabled=${busy || !form.email} onClick=${sendCode}>
            ${sent ? t("signup.resend") : t("signup.send_code")}
          </button>
        </div>
      </${Field}>
      <${Field} label=${t("signup.code")} hint=${sent ? t("signup.code_hint") : ""}>
        <input name="verification_code" inputmode="numeric" autocomplete="one-time-code" required value=${form.verification_code}
          onInput=${set("verification_code")} />
      </${Field}>`}
    <${Field} label=${t("signup.aff_code")}>
      <input name="aff_code" value=${form.aff_code} onInput=${set("aff_code")} />
    </${Field}>
    <${Turnstile} status=${status} onToken=${setToken} />
    <${ErrorNote} error=${error} />
    <button type="submit" disabled=${busy}>${t("signup.submit")}</button>
    <p><a href="#/login">${t("signup.to_login")}</a></p>
  </form>`;
}

export function ForgotPasswordPage({ status }) {
  const [email, setEmail] = useState("");
  const [token, setToken] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [sent, setSent] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      await get("/api/reset_password", { email: email.trim(), ...withTurnstile(token) });
      setSent(true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="card auth-card" onSubmit=${submit} data-testid="forgot-form">
    <h1>${t("reset.title")}</h1>
    ${sent
      ? html`<p class="success-note" role="status" data-testid="reset-mail-sent">${t("reset.mail_sent")}</p>`
      : html`<p class="muted">${t("reset.ask")}</p>
          <${Field} label=${t("users.email")}>
            <input name="email" type="email" autocomplete="email" required value=${email} onInput=${(e) => setEmail(e.target.value)} />
          </${Field}>
          <${Turnstile} status=${status} onToken=${setToken} />
          <${ErrorNote} error=${error} />
          <button type="submit" disabled=${busy}>${t("reset.send")}</button>`}
    <p><a href="#/login">${t("signup.to_login")}</a></p>
  </form>`;
}

export function ResetPage() {
  const params = routeParams();
  const email = params.get("email") || "";
  const token = params.get("token") || "";
  const [password, setPassword] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      setPassword(await post("/api/user/reset", { email, token }));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="card auth-card" onSubmit=${submit} data-testid="reset-form">
    <h1>${t("reset.title")}</h1>
    <p class="muted">${email}</p>
    ${password
      ? html`<p>${t("reset.new_password")}</p>
          <div class="key-box"><code data-testid="new-password">${password}</code><${CopyButton} text=${password} /></div>
          <p class="muted">${t("reset.change_hint")}</p>
          <a href="#/login" data-testid="reset-to-login">${t("signup.to_login")}</a>`
      : html`<${ErrorNote} error=${error} />
          <button type="submit" disabled=${busy || !email || !token}>${t("reset.confirm")}</button>`}
  </form>`;
}

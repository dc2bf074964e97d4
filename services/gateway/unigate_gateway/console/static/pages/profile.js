// The caller's own account: name, password and a management access token (top-ups are on
// pages/topup.js).

import { html, useState, useAction, Field, ErrorNote, CopyButton, toast, fmtQuota, fmtNumber } from "../ui.js";
import { get, put } from "../api.js";
import { t } from "../i18n.js";
import { roleLabel } from "./users.js";
import { Bindings } from "./oauth.js";

function Account({ user, refreshUser }) {
  const [displayName, setDisplayName] = useState(user.display_name || "");
  const [email, setEmail] = useState(user.email || "");
  const [original, setOriginal] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState(null);
  const [busy, run] = useAction();
  const submit = (e) => {
    e.preventDefault();
    setError(null);
    const body = { display_name: displayName.trim(), email: email.trim() };
    if (password) {
      body.password = password;
      body.original_password = original;
    }
    run(async () => {
      await put("/api/user/self", body);
      setOriginal("");
      setPassword("");
      toast(t("common.saved"), "success");
      await refreshUser();
    });
  };
  return html`<form class="card" onSubmit=${submit} data-testid="profile-form">
    <h2>${t("profile.account")}</h2>
    <${Field} label=${t("users.display_name")}>
      <input name="display_name" value=${displayName} onInput=${(e) => setDisplayName(e.target.value)} />
    </${Field}>
    <${Field} label=${t("users.email")}>
      <input name="email" type="email" value=${email} onInput=${(e) => setEmail(e.target.value)} />
    </${Field}>
    ${user.has_password === false
      ? html`<p class="muted" data-testid="no-password">${t("profile.no_password")}</p>`
      : html`<${Field} label=${t("password.current")} hint=${t("profile.password_hint")}>
      <input name="original_password" type="password" autocomplete="current-password" value=${original}
        onInput=${(e) => setOriginal(e.target.value)} />
    </${Field}>`}
    <${Field} label=${t("password.new")}>
      <input name="password" type="password" autocomplete="new-password" minlength="8" value=${password}
        onInput=${(e) => setPassword(e.target.value)} />
    </${Field}>
    <${ErrorNote} error=${error} />
    <button type="submit" disabled=${busy}>${t("common.save")}</button>
  </form>`;
}

function AccessToken() {
  const [token, setToken] = useState("");
  const [busy, run] = useAction();
  const make = () =>
    run(async () => {
      const data = await get("/api/user/token");
      setToken(typeof data === "string" ? data : (data && data.access_token) || "");
    });
  return html`<div class="card">
    <h2>${t("profile.access_token")}</h2>
    <p class="muted">${t("profile.access_token_hint")}</p>
    ${token && html`<div class="key-box"><code>${token}</code><${CopyButton} text=${token} /></div>`}
    <button class="secondary" disabled=${busy} onClick=${make}>${t("profile.new_access_token")}</button>
  </div>`;
}

export function ProfilePage({ user, status, refreshUser, callback }) {
  return html`<section>
    <div class="page-head"><h1>${t("nav.profile")}</h1></div>
    <div class="cards">
      <div class="stat-card"><span>${t("login.username")}</span><strong>${user.username}</strong></div>
      <div class="stat-card"><span>${t("users.role")}</span><strong>${roleLabel(user.role)}</strong></div>
      <div class="stat-card"><span>${t("users.group")}</span><strong>${user.group}</strong></div>
      <div class="stat-card"><span>${t("dashboard.balance")}</span><strong data-testid="profile-balance">${fmtQuota(user.quota)}</strong></div>
      <div class="stat-card"><span>${t("dashboard.requests")}</span><strong>${fmtNumber(user.request_count)}</strong></div>
    </div>
    <div class="two-col">
      <${Account} user=${user} refreshUser=${refreshUser} />
      <div>
        <${AccessToken} />
        <${Bindings} user=${user} status=${status} refreshUser=${refreshUser} notice=${callback} />
      </div>
    </div>
  </section>`;
}

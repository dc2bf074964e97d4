// External logins: the buttons on the login page (as /api/status offers them), the page a
// provider sends the browser back to (/oauth/<provider>), and binding from the profile.

import { html, useState, useAction, Field, ErrorNote, toast } from "../ui.js";
import { apiRaw, get, post, setCsrf } from "../api.js";
import { t } from "../i18n.js";

const LABELS = { github: "GitHub", oidc: "OIDC", lark: "Lark", wechat: "WeChat" };

/** The redirect providers /api/status says are on. */
export function redirectProviders(status) {
  const s = status || {};
  return [
    ["github", !!s.github_oauth],
    ["oidc", !!s.oidc],
    ["lark", !!s.lark_client_id],
  ]
    .filter(([, on]) => on)
    .map(([name]) => name);
}

/** Open a flow (auth chose state, PKCE and nonce) and go to the provider. */
async function start(provider) {
  const answer = await apiRaw("GET", "/api/oauth/state", undefined, { provider });
  if (!answer.success || !answer.url) throw new Error(answer.message || "could not start");
  location.assign(answer.url);
}

/**
 * On /oauth/<provider>?code=&state= (the provider's redirect): finish the login or binding,
 * then leave the callback URL (its code is spent) for the console's own.
 * Resolves to null when this is not a callback, else {error} or {bound} or {user}.
 */
export async function finishCallback() {
  const m = location.pathname.match(/^\/oauth\/(github|oidc|lark)$/);
  if (!m) return null;
  const params = new URLSearchParams(location.search);
  let result;
  if (params.get("error")) {
    result = { error: `${LABELS[m[1]]}: ${params.get("error")}` };
  } else {
    const answer = await apiRaw("GET", `/api/oauth/${m[1]}`, undefined, {
      code: params.get("code") || "",
      state: params.get("state") || "",
    });
    if (!answer.success) result = { error: answer.message || String(answer.status) };
    else if (answer.message === "bind") result = { bound: m[1] };
    else {
      setCsrf(answer.data && answer.data.csrf_token);
      result = { user: answer.data };
    }
  }
  history.replaceState(null, "", result.bound ? "/#/profile" : "/#/dashboard");
  return result;
}

export function OAuthLogin({ status, onLogin, callbackError }) {
  const [error, setError] = useState(callbackError ? new Error(callbackError) : null);
  const [code, setCode] = useState("");
  const [busy, run] = useAction();
  const providers = redirectProviders(status);
  const wechat = status && status.wechat_login;
  if (!providers.length && !wechat && !error) return null;
  const go = (provider) => run(async () => {
    setError(null);
    try {
      await start(provider);
    } catch (err) {
      setError(err);
    }
  });
  const wechatLogin = (e) => {
    e.preventDefault();
    run(async () => {
      setError(null);
      try {
        const user = await get("/api/oauth/wechat", { code: code.trim() });
        onLogin(user);
      } catch (err) {
        setError(err);
      }
    });
  };
  return html`<div class="card auth-card oauth-card" data-testid="oauth-login">
    <p class="muted">${t("oauth.or")}</p>
    <div class="actions">
      ${providers.map(
        (p) => html`<button class="secondary" type="button" disabled=${busy} data-testid=${`oauth-${p}`}
          onClick=${() => go(p)}>${t("oauth.login_with", { provider: LABELS[p] })}</button>`,
      )}
    </div>
    ${wechat && html`<form onSubmit=${wechatLogin} data-testid="wechat-login">
      ${status.wechat_qrcode && html`<img src=${status.wechat_qrcode} alt="WeChat" width="160" height="160" />`}
      <${Field} label=${t("oauth.wechat_code")}>
        <input name="wechat_code" required value=${code} onInput=${(e) => setCode(e.target.value)} />
      </${Field}>
      <button type="submit" class="secondary" disabled=${busy}>${t("oauth.login_with", { provider: "WeChat" })}</button>
    </form>`}
    <${ErrorNote} error=${error} />
  </div>`;
}

export function Bindings({ user, status, refreshUser, notice }) {
  const [error, setError] = useState(notice && notice.error ? new Error(notice.error) : null);
  const [code, setCode] = useState("");
  const [busy, run] = useAction();
  const providers = redirectProviders(status);
  const wechat = status && status.wechat_login;
  const act = (fn) => run(async () => {
    setError(null);
    try {
      await fn();
    } catch (err) {
      setError(err);
    }
  });
  const unbind = (p) => act(async () => {
    await post(`/api/oauth/${p}/unbind`);
    toast(t("oauth.unbound", { provider: LABELS[p] }), "success");
    await refreshUser();
  });
  const bindWeChat = (e) => {
    e.preventDefault();
    act(async () => {
      await get("/api/oauth/wechat/bind", { code: code.trim() });
      setCode("");
      toast(t("oauth.bound", { provider: "WeChat" }), "success");
      await refreshUser();
    });
  };
  const row = (p, bindControl) => {
    const id = user[`${p}_id`];
    return html`<tr data-testid=${`binding-${p}`}>
      <td>${LABELS[p]}</td>
      <td>${id ? html`<code data-testid=${`bound-${p}`}>${id}</code>` : html`<span class="muted">${t("oauth.not_bound")}</span>`}</td>
      <td>${id
        ? html`<button class="secondary" disabled=${busy} data-testid=${`unbind-${p}`} onClick=${() => unbind(p)}>${t("oauth.unbind")}</button>`
        : bindControl}</td>
    </tr>`;
  };
  if (!providers.length && !wechat) return null;
  return html`<div class="card" data-testid="bindings">
    <h2>${t("oauth.bindings")}</h2>
    <table><tbody>
      ${providers.map((p) =>
        row(p, html`<button class="secondary" disabled=${busy} data-testid=${`bind-${p}`}
          onClick=${() => act(() => start(p))}>${t("oauth.bind")}</button>`),
      )}
      ${wechat && row("wechat", html`<form onSubmit=${bindWeChat}>
        <input name="wechat_bind_code" required placeholder=${t("oauth.wechat_code")} value=${code}
          onInput=${(e) => setCode(e.target.value)} />
        <button type="submit" class="secondary" disabled=${busy}>${t("oauth.bind")}</button>
      </form>`)}
    </tbody></table>
    <${ErrorNote} error=${error} />
  </div>`;
}

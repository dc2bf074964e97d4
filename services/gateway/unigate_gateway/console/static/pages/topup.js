// Adding quota: the operator's shop (One API's TopUpLink), redeeming a code, and the
// caller's invitation code and link (QuotaForInviter / QuotaForInvitee reward sign-ups).

import { html, useState, useAction, useLoad, Field, CopyButton, toast, fmtQuota } from "../ui.js";
import { get, post } from "../api.js";
import { t } from "../i18n.js";

function Redeem({ refreshUser }) {
  const [code, setCode] = useState("");
  const [busy, run] = useAction();
  const submit = (e) => {
    e.preventDefault();
    run(async () => {
      const quota = await post("/api/user/topup", { key: code.trim() });
      const amount = typeof quota === "object" && quota !== null ? quota.quota : quota;
      toast(t("profile.topup_ok", { amount: fmtQuota(amount) }), "success");
      setCode("");
      await refreshUser();
    });
  };
  return html`<form class="card" onSubmit=${submit} data-testid="topup-form">
    <h2>${t("profile.topup")}</h2>
    <${Field} label=${t("profile.code")}>
      <input name="code" required value=${code} onInput=${(e) => setCode(e.target.value)} />
    </${Field}>
    <button type="submit" disabled=${busy}>${t("profile.redeem")}</button>
  </form>`;
}

function Invite() {
  const { data: code } = useLoad(() => get("/api/user/aff"), []);
  const link = code ? `${location.origin}/#/register?aff=${encodeURIComponent(code)}` : "";
  return html`<div class="card" data-testid="invite">
    <h2>${t("topup.invite")}</h2>
    <p class="muted">${t("topup.invite_hint")}</p>
    ${code &&
    html`<div class="key-box"><code data-testid="aff-code">${code}</code><${CopyButton} text=${code} /></div>
      <div class="key-box"><code data-testid="aff-link">${link}</code><${CopyButton} text=${link} /></div>`}
  </div>`;
}

export function TopUpPage({ user, status, refreshUser }) {
  const shop = status && status.top_up_link;
  return html`<section>
    <div class="page-head"><h1>${t("nav.topup")}</h1></div>
    <div class="cards">
      <div class="stat-card"><span>${t("dashboard.balance")}</span><strong data-testid="topup-balance">${fmtQuota(user.quota)}</strong></div>
    </div>
    <div class="two-col">
      <div>
        ${shop &&
        html`<div class="card" data-testid="topup-link">
          <h2>${t("topup.buy")}</h2>
          <p class="muted">${t("topup.buy_hint")}</p>
          <a class="button" href=${shop} target="_blank" rel="noopener noreferrer">${t("topup.buy")}</a>
        </div>`}
        <${Redeem} refreshUser=${refreshUser} />
      </div>
      <${Invite} />
    </div>
  </section>`;
}

// Settings (root): One API's options — registration and accounts, the site's texts (logo,
// footer, notice, about, home page), mail (SMTP), Turnstile, pricing (model and completion
// ratios, pre-filled with the built-in tables), group ratios and group rate limits — each
// saved on its own.

import { html, useState, useEffect, useLoad, useAction, Field, ErrorNote, toast } from "../ui.js";
import { get, put } from "../api.js";
import { t } from "../i18n.js";

// key, kind, label key, hint key. JSON options are checked to be objects before saving.
const KNOWN = [
  ["general", [
    ["SystemName", "text", "settings.system_name", ""],
    ["RegisterEnabled", "bool", "settings.register_enabled", "settings.register_hint"],
    ["QuotaForNewUser", "number", "settings.quota_new_user", ""],
    ["RetryTimes", "number", "settings.retry_times", "settings.retry_times_hint"],
    ["MaxOutputTokens", "number", "settings.max_output_tokens", "settings.max_output_tokens_hint"],
  ]],
  ["site", [
    ["Logo", "text", "settings.logo", ""],
    ["Footer", "textarea", "settings.footer", ""],
    ["ChatLink", "text", "settings.chat_link", ""],
    ["Notice", "textarea", "settings.notice", "settings.notice_hint"],
    ["About", "textarea", "settings.about", "settings.about_hint"],
    ["HomePageContent", "textarea", "settings.home_page_content", "settings.home_page_content_hint"],
  ]],
  ["accounts", [
    ["PasswordRegisterEnabled", "bool", "settings.password_register", ""],
    ["EmailVerificationEnabled", "bool", "settings.email_verification", "settings.email_verification_hint"],
    ["EmailDomainRestrictionEnabled", "bool", "settings.domain_restriction", ""],
    ["EmailDomainWhitelist", "text", "settings.domain_whitelist", "settings.domain_whitelist_hint"],
    ["ServerAddress", "text", "settings.server_address", "settings.server_address_hint"],
    ["QuotaForInvitee", "number", "settings.quota_invitee", ""],
    ["QuotaForInviter", "number", "settings.quota_inviter", ""],
    ["TopUpLink", "text", "settings.top_up_link", "settings.top_up_link_hint"],
  ]],
  ["mail", [
    ["SMTPServer", "text", "settings.smtp_server", ""],
    ["SMTPPort", "number", "settings.smtp_port", "settings.smtp_port_hint"],
    ["SMTPAccount", "text", "settings.smtp_account", ""],
    ["SMTPToken", "secret", "settings.smtp_token", "settings.secret_hint"],
    ["SMTPFrom", "text", "settings.smtp_from", ""],
    ["SMTPSSLEnabled", "bool", "settings.smtp_ssl", ""],
  ]],
  ["turnstile", [
    ["TurnstileCheckEnabled", "bool", "settings.turnstile_check", "settings.turnstile_hint"],
    ["TurnstileSiteKey", "text", "settings.turnstile_site_key", ""],
    ["TurnstileSecretKey", "secret", "settings.turnstile_secret_key", "settings.secret_hint"],
  ]],
  ["pricing", [
    ["ModelRatio", "json", "settings.model_ratio", "settings.model_ratio_hint"],
    ["CompletionRatio", "json", "settings.completion_ratio", "settings.completion_ratio_hint"],
    ["CacheRatio", "json", "settings.cache_ratio", "settings.cache_ratio_hint"],
    ["CreateCacheRatio", "json", "settings.create_cache_ratio", "settings.create_cache_ratio_hint"],
    ["AudioRatio", "json", "settings.audio_ratio", "settings.audio_ratio_hint"],
    ["UnitPrice", "json", "settings.unit_price", "settings.unit_price_hint"],
  ]],
  ["groups", [
    ["GroupRatio", "json", "settings.group_ratio", "settings.group_ratio_hint"],
    ["GroupRateLimits", "json", "settings.group_rate_limits", "settings.group_rate_limits_hint"],
  ]],
];
// What an option left unset means (One API's defaults), so the form shows what is in force.
const DEFAULTS = { PasswordRegisterEnabled: "true" };
const KNOWN_KEYS = new Set(KNOWN.flatMap(([, opts]) => opts.map(([k]) => k)));

function pretty(value) {
  try {
    return JSON.stringify(JSON.parse(value), null, 2);
  } catch {
    return value;
  }
}

function OptionRow({ name, kind, label, hint, value, onSaved }) {
  const [draft, setDraft] = useState(kind === "json" && value ? pretty(value) : value);
  const [error, setError] = useState(null);
  const [busy, run] = useAction();
  useEffect(() => setDraft(kind === "json" && value ? pretty(value) : value), [value]);

  const save = (e) => {
    e.preventDefault();
    setError(null);
    let out = kind === "bool" ? String(draft === true || draft === "true") : String(draft ?? "");
    if (kind === "json") {
      try {
        const v = JSON.parse(out || "{}");
        if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error();
        out = JSON.stringify(v);
      } catch {
        setError(new Error(t("settings.bad_json")));
        return;
      }
    }
    if (kind === "secret" && out === "") {
      setError(new Error(t("settings.secret_empty")));
      return;
    }
    if (kind === "number" && out !== "" && !/^\d+$/.test(out)) {
      setError(new Error(t("settings.bad_number")));
      return;
    }
    run(async () => {
      await put("/api/option/", { key: name, value: out });
      toast(t("settings.saved", { key: name }), "success");
      if (kind === "secret") setDraft("");
      onSaved();
    });
  };

  let input;
  if (kind === "bool") {
    input = html`<label class="check"><input type="checkbox" name=${name} checked=${draft === true || draft === "true"}
      onChange=${(e) => setDraft(e.target.checked ? "true" : "false")} /> ${t("common.enabled")}</label>`;
  } else if (kind === "textarea") {
    input = html`<textarea name=${name} rows="4" value=${draft} onInput=${(e) => setDraft(e.target.value)}></textarea>`;
  } else if (kind === "json") {
    input = html`<textarea name=${name} rows="6" class="mono" value=${draft} onInput=${(e) => setDraft(e.target.value)}></textarea>`;
  } else if (kind === "secret") {
    // Never read back (options ending in Key/Token/Secret/Password): only replaced.
    input = html`<input name=${name} type="password" autocomplete="off" value=${draft}
      onInput=${(e) => setDraft(e.target.value)} />`;
  } else {
    input = html`<input name=${name} type=${kind === "number" ? "number" : "text"} value=${draft}
      onInput=${(e) => setDraft(e.target.value)} />`;
  }
  return html`<form class="option-row" onSubmit=${save} data-option=${name}>
    <${Field} wide label=${`${label} (${name})`} hint=${hint}>${input}</${Field}>
    <${ErrorNote} error=${error} />
    <button type="submit" class="secondary" disabled=${busy}>${t("common.save")}</button>
  </form>`;
}

export function SettingsPage() {
  const options = useLoad(() => get("/api/option/"), []);
  const values = {};
  const list = Array.isArray(options.data) ? options.data : (options.data && options.data.options) || [];
  for (const o of list) values[o.key] = o.value;
  const others = list.filter((o) => !KNOWN_KEYS.has(o.key));

  return html`<section>
    <div class="page-head"><h1>${t("nav.settings")}</h1></div>
    <${ErrorNote} error=${options.error} />
    ${KNOWN.map(
      ([section, opts]) => html`<div class="card settings-section">
        <h2>${t(`settings.section_${section}`)}</h2>
        ${opts.map(
          ([name, kind, label, hint]) => html`<${OptionRow} key=${name} name=${name} kind=${kind}
            label=${t(label)} hint=${hint ? t(hint) : ""} value=${values[name] ?? DEFAULTS[name] ?? ""} onSaved=${options.reload} />`,
        )}
      </div>`,
    )}
    ${others.length > 0 &&
    html`<div class="card settings-section">
      <h2>${t("settings.section_other")}</h2>
      ${others.map(
        (o) => html`<${OptionRow} key=${o.key} name=${o.key} kind="text" label=${o.key} hint="" value=${o.value}
          onSaved=${options.reload} />`,
      )}
    </div>`}
  </section>`;
}

// API keys: create (the key is shown once, with a copy button), edit limits (quota, expiry,
// models, subnets, RPM/TPM), disable, delete.

import {
  html,
  useState,
  useAction,
  Modal,
  Field,
  CopyButton,
  toast,
  fmtTime,
  fmtQuota,
  toLocalInput,
  fromLocalInput,
} from "../ui.js";
import { post, put, del } from "../api.js";
import { t } from "../i18n.js";
import { usePagedList, ListHead, ListTable, StatusLabel, ToggleButton, EditDelete, FormFooter } from "../lists.js";

const STATUS = { 1: ["ok", "status.enabled"], 2: ["muted", "status.disabled"], 3: ["warn", "tokens.expired"], 4: ["warn", "tokens.exhausted"] };

function TokenForm({ token, quotaPerUnit, onClose, onSaved }) {
  const editing = Boolean(token);
  const [form, setForm] = useState(() => ({
    name: token ? token.name : "",
    remain_quota: token ? token.remain_quota : 0,
    unlimited_quota: token ? token.unlimited_quota : true,
    expires: token && token.expired_time > 0 ? toLocalInput(token.expired_time) : "",
    models: token ? token.models : "",
    subnet: token ? token.subnet : "",
    rpm_limit: token ? token.rpm_limit : 0,
    tpm_limit: token ? token.tpm_limit : 0,
  }));
  const [error, setError] = useState(null);
  const [busy, run] = useAction();
  const set = (k) => (e) =>
    setForm({ ...form, [k]: e.target.type === "checkbox" ? e.target.checked : e.target.value });

  const submit = (e) => {
    e.preventDefault();
    setError(null);
    run(async () => {
      const body = {
        name: form.name.trim(),
        remain_quota: Number(form.remain_quota) || 0,
        unlimited_quota: Boolean(form.unlimited_quota),
        expired_time: form.expires ? fromLocalInput(form.expires) : -1,
        models: form.models.split(/[,\n]/).map((s) => s.trim()).filter(Boolean).join(","),
        subnet: form.subnet.split(/[,\n]/).map((s) => s.trim()).filter(Boolean).join(","),
        rpm_limit: Number(form.rpm_limit) || 0,
        tpm_limit: Number(form.tpm_limit) || 0,
      };
      if (!body.name) {
        setError(new Error(t("tokens.name_required")));
        return;
      }
      const saved = editing
        ? await put("/api/token/", { ...body, id: token.id })
        : await post("/api/token/", body);
      toast(t("common.saved"), "success");
      onSaved(editing ? null : saved);
    });
  };

  return html`<${Modal} title=${editing ? t("tokens.edit") : t("tokens.add")} onClose=${onClose} wide>
    <form class="grid-form" onSubmit=${submit} data-testid="token-form">
      <${Field} label=${t("tokens.name")}>
        <input name="name" required value=${form.name} onInput=${set("name")} />
      </${Field}>
      <${Field} label=${t("tokens.expires")} hint=${t("tokens.expires_hint")}>
        <input name="expires" type="datetime-local" value=${form.expires} onInput=${set("expires")} />
      </${Field}>
      <${Field} label=${t("tokens.unlimited")}>
        <label class="check"><input name="unlimited_quota" type="checkbox" checked=${form.unlimited_quota}
          onChange=${set("unlimited_quota")} /> ${t("tokens.unlimited_hint")}</label>
      </${Field}>
      <${Field} label=${t("tokens.remain_quota")} hint=${`${fmtQuota(form.remain_quota)} · ${t("tokens.quota_unit", { n: quotaPerUnit })}`}>
        <input name="remain_quota" type="number" min="0" disabled=${form.unlimited_quota}
          value=${form.remain_quota} onInput=${set("remain_quota")} />
      </${Field}>
      <${Field} wide label=${t("tokens.models")} hint=${t("tokens.models_hint")}>
        <input name="models" value=${form.models} onInput=${set("models")} placeholder="gpt-4o-mini,gpt-4o" />
      </${Field}>
      <${Field} wide label=${t("tokens.subnet")} hint=${t("tokens.subnet_hint")}>
        <input name="subnet" value=${form.subnet} onInput=${set("subnet")} placeholder="10.0.0.0/8,192.168.1.5/32" />
      </${Field}>
      <${Field} label=${t("tokens.rpm")} hint=${t("tokens.zero_unlimited")}>
        <input name="rpm_limit" type="number" min="0" value=${form.rpm_limit} onInput=${set("rpm_limit")} />
      </${Field}>
      <${Field} label=${t("tokens.tpm")} hint=${t("tokens.zero_unlimited")}>
        <input name="tpm_limit" type="number" min="0" value=${form.tpm_limit} onInput=${set("tpm_limit")} />
      </${Field}>
      <${FormFooter} error=${error} busy=${busy} onClose=${onClose} />
    </form>
  </${Modal}>`;
}

/** The new key, shown this once: unigate keeps only its hash. */
function NewKey({ token, onClose }) {
  const key = token.key.startsWith("sk-") ? token.key : `sk-${token.key}`;
  return html`<${Modal} title=${t("tokens.created")} onClose=${onClose}>
    <p class="warning">${t("tokens.shown_once")}</p>
    <div class="key-box">
      <code data-testid="new-key">${key}</code>
      <${CopyButton} text=${key} testid="copy-key" />
    </div>
    <div class="form-actions"><button onClick=${onClose}>${t("common.done")}</button></div>
  </${Modal}>`;
}

export function TokensPage({ status }) {
  const [editing, setEditing] = useState(null);
  const [created, setCreated] = useState(null);
  const list = usePagedList("/api/token/");
  const quotaPerUnit = (status && status.quota_per_unit) || 500000;

  const setStatus = (tok, s) =>
    list.act(() => put("/api/token/", { id: tok.id, status: s }, { status_only: "true" }));
  const remove = (tok) =>
    list.confirmed(t("tokens.confirm_delete", { name: tok.name }), () => del(`/api/token/${tok.id}`));

  return html`<section>
    <${ListHead} title=${t("nav.tokens")} list=${list}>
      <button data-testid="add-token" onClick=${() => setEditing({})}>${t("tokens.add")}</button>
    </${ListHead}>
    <${ListTable} list=${list} testid="token-table" columns="9" head=${html`
        <th>${t("tokens.name")}</th><th>${t("tokens.key")}</th><th>${t("common.status")}</th>
        <th class="num">${t("tokens.used_quota")}</th><th class="num">${t("tokens.remain_quota")}</th>
        <th>${t("tokens.limits")}</th><th>${t("common.created")}</th><th>${t("tokens.expires")}</th>
        <th>${t("common.actions")}</th>`}
      row=${(tok) => {
          const limits = [
            tok.models && `${t("tokens.models")}: ${tok.models}`,
            tok.subnet && `${t("tokens.subnet")}: ${tok.subnet}`,
            tok.rpm_limit && `RPM ${tok.rpm_limit}`,
            tok.tpm_limit && `TPM ${tok.tpm_limit}`,
          ].filter(Boolean);
          return html`<tr key=${tok.id} data-token=${tok.name}>
            <td>${tok.name}</td>
            <td><code>${tok.key}</code></td>
            <td><${StatusLabel} labels=${STATUS} status=${tok.status} /></td>
            <td class="num">${fmtQuota(tok.used_quota)}</td>
            <td class="num">${tok.unlimited_quota ? t("tokens.unlimited") : fmtQuota(tok.remain_quota)}</td>
            <td class="small">${limits.length ? limits.join(" · ") : "-"}</td>
            <td>${fmtTime(tok.created_time)}</td>
            <td>${tok.expired_time > 0 ? fmtTime(tok.expired_time) : t("tokens.never")}</td>
            <td class="actions">
              <${ToggleButton} enabled=${tok.status === 1} busy=${list.busy}
                onEnable=${() => setStatus(tok, 1)} onDisable=${() => setStatus(tok, 2)} />
              <${EditDelete} onEdit=${() => setEditing(tok)} onDelete=${() => remove(tok)} />
            </td>
          </tr>`;
      }} />
    ${editing &&
    html`<${TokenForm} token=${editing.id ? editing : null} quotaPerUnit=${quotaPerUnit}
      onClose=${() => setEditing(null)}
      onSaved=${(saved) => { setEditing(null); if (saved && saved.key) setCreated(saved); list.reload(); }} />`}
    ${created && html`<${NewKey} token=${created} onClose=${() => setCreated(null)} />`}
  </section>`;
}

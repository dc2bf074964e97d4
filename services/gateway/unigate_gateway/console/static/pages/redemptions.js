// Redemption codes (admins): create a batch and copy its codes; disable, enable, delete.

import {
  html,
  useState,
  useAction,
  Modal,
  Field,
  CopyButton,
  fmtTime,
  fmtQuota,
} from "../ui.js";
import { post, put, del } from "../api.js";
import { t } from "../i18n.js";
import { usePagedList, ListHead, ListTable, StatusLabel, ToggleButton, EditDelete, FormFooter } from "../lists.js";

const STATUS = { 1: ["ok", "redemptions.unused"], 2: ["muted", "status.disabled"], 3: ["info", "redemptions.used"] };

function CreateForm({ onClose, onCreated }) {
  const [form, setForm] = useState({ name: "", quota: 500000, count: 1 });
  const [error, setError] = useState(null);
  const [busy, run] = useAction();
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const submit = (e) => {
    e.preventDefault();
    setError(null);
    run(async () => {
      const data = await post("/api/redemption/", {
        name: form.name.trim(),
        quota: Number(form.quota) || 0,
        count: Number(form.count) || 1,
      });
      onCreated(Array.isArray(data) ? data : (data && data.names) || []);
    });
  };
  return html`<${Modal} title=${t("redemptions.add")} onClose=${onClose}>
    <form class="grid-form" onSubmit=${submit} data-testid="redemption-form">
      <${Field} wide label=${t("redemptions.name")}>
        <input name="name" required value=${form.name} onInput=${set("name")} />
      </${Field}>
      <${Field} label=${t("redemptions.quota")} hint=${fmtQuota(form.quota)}>
        <input name="quota" type="number" min="1" required value=${form.quota} onInput=${set("quota")} />
      </${Field}>
      <${Field} label=${t("redemptions.count")}>
        <input name="count" type="number" min="1" max="100" required value=${form.count} onInput=${set("count")} />
      </${Field}>
      <${FormFooter} error=${error} busy=${busy} onClose=${onClose} label=${t("common.create")} />
    </form>
  </${Modal}>`;
}

export function RedemptionsPage() {
  const [creating, setCreating] = useState(false);
  const [codes, setCodes] = useState(null);
  const list = usePagedList("/api/redemption/");

  const setStatus = (r, status) =>
    list.act(() => put("/api/redemption/", { id: r.id, status }, { status_only: "true" }));
  const remove = (r) =>
    list.confirmed(t("redemptions.confirm_delete", { name: r.name }), () => del(`/api/redemption/${r.id}`));

  return html`<section>
    <${ListHead} title=${t("nav.redemptions")} list=${list} noSearch>
      <button data-testid="add-redemption" onClick=${() => setCreating(true)}>${t("redemptions.add")}</button>
    </${ListHead}>
    <${ListTable} list=${list} testid="redemption-table" columns="8" head=${html`
        <th>ID</th><th>${t("redemptions.name")}</th><th>${t("redemptions.code")}</th><th>${t("common.status")}</th>
        <th class="num">${t("redemptions.quota")}</th><th>${t("common.created")}</th><th>${t("redemptions.redeemed")}</th>
        <th>${t("common.actions")}</th>`}
      row=${(r) => html`<tr key=${r.id}>
            <td>${r.id}</td><td>${r.name}</td><td><code>${r.key}</code></td>
            <td><${StatusLabel} labels=${STATUS} status=${r.status} /></td>
            <td class="num">${fmtQuota(r.quota)}</td><td>${fmtTime(r.created_time)}</td>
            <td>${r.redeemed_time ? `${fmtTime(r.redeemed_time)} (#${r.redeemed_by})` : "-"}</td>
            <td class="actions">
              ${r.status === 1 && html`<${CopyButton} text=${r.key} />`}
              ${(r.status === 1 || r.status === 2) &&
              html`<${ToggleButton} enabled=${r.status === 1} busy=${list.busy}
                onEnable=${() => setStatus(r, 1)} onDisable=${() => setStatus(r, 2)} />`}
              <${EditDelete} busy=${list.busy} onDelete=${() => remove(r)} />
            </td>
          </tr>`} />
    ${creating &&
    html`<${CreateForm} onClose=${() => setCreating(false)}
      onCreated=${(keys) => { setCreating(false); setCodes(keys); list.reload(); }} />`}
    ${codes &&
    html`<${Modal} title=${t("redemptions.created", { n: codes.length })} onClose=${() => setCodes(null)}>
      <textarea readonly rows=${Math.min(12, codes.length + 1)} class="codes" data-testid="new-codes">${codes.join("\n")}</textarea>
      <div class="form-actions">
        <${CopyButton} text=${codes.join("\n")} label=${t("redemptions.copy_all")} testid="copy-codes" />
        <button onClick=${() => setCodes(null)}>${t("common.done")}</button>
      </div>
    </${Modal}>`}
  </section>`;
}

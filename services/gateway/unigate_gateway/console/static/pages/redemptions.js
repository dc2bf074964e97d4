// Redemption codes (admins): create a batch and copy its codes; disable, enable, delete.

import {
  html,
  useState,
  useLoad,
  useAction,
  Modal,
  Field,
  Pager,
  Badge,
  ErrorNote,
  CopyButton,
  fmtTime,
  fmtQuota,
  confirmAction,
} from "../ui.js";
import { post, put, del, getList } from "../api.js";
import { t } from "../i18n.js";

const PAGE_SIZE = 20;
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
      <div class="field-wide"><${ErrorNote} error=${error} /></div>
      <div class="form-actions field-wide">
        <button type="button" class="secondary" onClick=${onClose}>${t("common.cancel")}</button>
        <button type="submit" disabled=${busy}>${t("common.create")}</button>
      </div>
    </form>
  </${Modal}>`;
}

export function RedemptionsPage() {
  const [page, setPage] = useState(0);
  const [creating, setCreating] = useState(false);
  const [codes, setCodes] = useState(null);
  const [busy, run] = useAction();
  const list = useLoad(() => getList("/api/redemption/", { p: page, size: PAGE_SIZE }), [page]);
  const { items, total } = list.data || { items: [], total: 0 };

  const setStatus = (r, status) =>
    run(async () => {
      await put("/api/redemption/", { id: r.id, status }, { status_only: "true" });
      list.reload();
    });
  const remove = (r) =>
    confirmAction(t("redemptions.confirm_delete", { name: r.name })) &&
    run(async () => {
      await del(`/api/redemption/${r.id}`);
      list.reload();
    });

  return html`<section>
    <div class="page-head">
      <h1>${t("nav.redemptions")}</h1>
      <div class="toolbar">
        <button data-testid="add-redemption" onClick=${() => setCreating(true)}>${t("redemptions.add")}</button>
      </div>
    </div>
    <${ErrorNote} error=${list.error} />
    <table data-testid="redemption-table">
      <thead><tr>
        <th>ID</th><th>${t("redemptions.name")}</th><th>${t("redemptions.code")}</th><th>${t("common.status")}</th>
        <th class="num">${t("redemptions.quota")}</th><th>${t("common.created")}</th><th>${t("redemptions.redeemed")}</th>
        <th>${t("common.actions")}</th>
      </tr></thead>
      <tbody>
        ${items.map((r) => {
          const [kind, label] = STATUS[r.status] || ["muted", "status.unknown"];
          return html`<tr key=${r.id}>
            <td>${r.id}</td><td>${r.name}</td><td><code>${r.key}</code></td>
            <td><${Badge} kind=${kind}>${t(label)}</${Badge}></td>
            <td class="num">${fmtQuota(r.quota)}</td><td>${fmtTime(r.created_time)}</td>
            <td>${r.redeemed_time ? `${fmtTime(r.redeemed_time)} (#${r.redeemed_by})` : "-"}</td>
            <td class="actions">
              ${r.status === 1 && html`<${CopyButton} text=${r.key} />`}
              ${r.status === 1 &&
              html`<button class="secondary" disabled=${busy} onClick=${() => setStatus(r, 2)}>${t("common.disable")}</button>`}
              ${r.status === 2 &&
              html`<button class="secondary" disabled=${busy} onClick=${() => setStatus(r, 1)}>${t("common.enable")}</button>`}
              <button class="danger" disabled=${busy} onClick=${() => remove(r)}>${t("common.delete")}</button>
            </td>
          </tr>`;
        })}
        ${!list.loading && items.length === 0 && html`<tr><td colspan="8" class="muted">${t("common.empty")}</td></tr>`}
      </tbody>
    </table>
    <${Pager} page=${page} size=${PAGE_SIZE} total=${total} onPage=${setPage} />
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

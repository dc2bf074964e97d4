// Channels: the list with status, response time and balance; add and edit with a form that
// knows each type's key format and default base URL; test, enable, disable, delete.

import {
  html,
  useState,
  useEffect,
  useAction,
  Modal,
  Field,
  Badge,
  toast,
  fmtTime,
  fmtQuota,
} from "../ui.js";
import { get, post, put, del, apiRaw } from "../api.js";
import { t } from "../i18n.js";
import { usePagedList, useGroups, ListHead, ListTable, ToggleButton, EditDelete, FormFooter } from "../lists.js";

let typesPromise = null;

/** Channel types with their form hints (served by the gateway from channel_types.py). */
export function channelTypes() {
  if (!typesPromise) {
    typesPromise = fetch("/console/channel-types.json").then((r) => r.json());
  }
  return typesPromise;
}

function StatusBadge({ channel }) {
  if (channel.status === 1) return html`<${Badge} kind="ok">${t("status.enabled")}</${Badge}>`;
  if (channel.status === 3) {
    return html`<${Badge} kind="error" title=${channel.status_reason}>${t("channels.auto_disabled")}</${Badge}>`;
  }
  return html`<${Badge} kind="muted">${t("status.disabled")}</${Badge}>`;
}

function jsonOrError(text, label) {
  if (!text || !text.trim()) return "";
  try {
    const v = JSON.parse(text);
    if (typeof v !== "object" || Array.isArray(v) || v === null) throw new Error("not an object");
    return JSON.stringify(v);
  } catch {
    throw new Error(t("channels.bad_json", { field: label }));
  }
}

function pretty(json) {
  if (!json || json === "{}") return "";
  try {
    return JSON.stringify(JSON.parse(json), null, 2);
  } catch {
    return json;
  }
}

/** A JSON key (a service-account file): [the object on one line, null] or [null, problem]. */
function jsonKey(text, fields) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return [null, t("channels.key_json_invalid")];
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return [null, t("channels.key_json_invalid")];
  }
  const missing = fields.filter((f) => !value[f]);
  if (missing.length) return [null, t("channels.key_json_missing", { fields: missing.join(", ") })];
  return [JSON.stringify(value), null];
}

function ChannelForm({ channel, types, groups, onClose, onSaved }) {
  const editing = Boolean(channel && channel.id);
  const [form, setForm] = useState(() => ({
    type: channel ? channel.type : (types[0] && types[0].id) || 1,
    name: channel ? channel.name : "",
    key: "",
    base_url: channel ? channel.base_url : "",
    models: channel ? channel.models : "",
    group: channel ? channel.group : "default",
    model_mapping: pretty(channel && channel.model_mapping),
    priority: channel ? channel.priority : 0,
    weight: channel ? channel.weight : 1,
    config: pretty(channel && channel.config),
    system_prompt: channel ? channel.system_prompt : "",
    timeout_ms: channel ? channel.timeout_ms : 0,
  }));
  const [error, setError] = useState(null);
  const [busy, run] = useAction();
  const type = types.find((x) => x.id === Number(form.type)) || {};
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const jsonFields = type.key_json_fields || [];
  // A JSON key spans lines as pasted; it is one key, stored on one line.
  const [jsonKeyLine, jsonProblem] =
    jsonFields.length && form.key.trim() ? jsonKey(form.key, jsonFields) : [null, null];
  const keyLines = jsonFields.length
    ? jsonKeyLine ? [jsonKeyLine] : []
    : form.key.split("\n").map((s) => s.trim()).filter(Boolean);
  const badKey =
    type.key_pattern && keyLines.some((k) => !new RegExp(type.key_pattern).test(k));
  const needsBaseUrl = !type.base_url && !type.base_url_hint;
  const fillModels = () => setForm({ ...form, models: (type.models || []).join(",") });
  const groupSet = new Set(form.group.split(",").map((s) => s.trim()).filter(Boolean));
  const toggleGroup = (g) => {
    const next = new Set(groupSet);
    if (next.has(g)) next.delete(g);
    else next.add(g);
    setForm({ ...form, group: [...next].join(",") });
  };

  const submit = (e) => {
    e.preventDefault();
    setError(null);
    run(async () => {
      let body;
      try {
        body = {
          type: Number(form.type),
          name: form.name.trim(),
          base_url: form.base_url.trim(),
          models: form.models.split(/[,\n]/).map((s) => s.trim()).filter(Boolean).join(","),
          group: form.group || "default",
          model_mapping: jsonOrError(form.model_mapping, t("channels.model_mapping")) || "{}",
          priority: Number(form.priority) || 0,
          weight: Number(form.weight) || 0,
          config: jsonOrError(form.config, t("channels.config")) || "{}",
          system_prompt: form.system_prompt,
          timeout_ms: Number(form.timeout_ms) || 0,
        };
      } catch (err) {
        setError(err);
        return;
      }
      if (jsonProblem) {
        setError(new Error(jsonProblem));
        return;
      }
      if (keyLines.length) body.key = keyLines.join("\n");
      else if (!editing) {
        setError(new Error(t("channels.key_required")));
        return;
      }
      if (needsBaseUrl && !body.base_url) {
        setError(new Error(t("channels.base_url_required")));
        return;
      }
      if (editing) await put("/api/channel/", { ...body, id: channel.id });
      else await post("/api/channel/", body);
      toast(t("common.saved"), "success");
      onSaved();
    });
  };

  return html`<${Modal} title=${editing ? t("channels.edit") : t("channels.add")} onClose=${onClose} wide>
    <form class="grid-form" onSubmit=${submit} data-testid="channel-form">
      <${Field} label=${t("channels.type")}>
        <select name="type" value=${form.type} onChange=${set("type")}>
          ${types.map((x) => html`<option value=${x.id}>${x.name} (${x.id})</option>`)}
        </select>
      </${Field}>
      <${Field} label=${t("channels.name")}>
        <input name="name" required value=${form.name} onInput=${set("name")} />
      </${Field}>
      <${Field} wide label=${t("channels.key")}
        hint=${`${t("channels.key_format")}: ${type.key_hint || "-"}` +
          (type.key_parts && type.key_parts.length ? ` (${type.key_parts.join(" | ")})` : "") +
          (jsonFields.length ? "" : ` · ${t("channels.key_multi")}`) +
          (editing ? ` · ${t("channels.key_keep")}` : "")}>
        <textarea name="key" rows="2" placeholder=${editing ? channel.key : type.key_hint}
          value=${form.key} onInput=${set("key")}></textarea>
        ${badKey && html`<span class="warning" data-testid="key-warning">${t("channels.key_mismatch", { format: type.key_hint })}</span>`}
        ${jsonProblem && html`<span class="warning" data-testid="key-warning">${jsonProblem}</span>`}
      </${Field}>
      <${Field} wide label=${t("channels.base_url")}
        hint=${type.base_url
          ? `${t("channels.base_url_default")}: ${type.base_url}`
          : type.base_url_hint
            ? `${t("channels.base_url_derived")}: ${type.base_url_hint}`
            : t("channels.base_url_required")}>
        <input name="base_url" placeholder=${type.base_url || type.base_url_hint || "https://"} value=${form.base_url}
          onInput=${set("base_url")} required=${needsBaseUrl} />
      </${Field}>
      <${Field} wide label=${t("channels.models")} hint=${t("channels.models_hint")}>
        <textarea name="models" rows="2" value=${form.models} onInput=${set("models")}></textarea>
        ${(type.models || []).length > 0 &&
        html`<button type="button" class="secondary" data-testid="fill-models" onClick=${fillModels}>${t("channels.fill_models")}</button>`}
      </${Field}>
      <${Field} wide label=${t("channels.groups")}>
        <div class="checks">
          ${[...new Set([...groups, ...groupSet])].map(
            (g) => html`<label class="check"><input type="checkbox" checked=${groupSet.has(g)}
              onChange=${() => toggleGroup(g)} /> ${g}</label>`,
          )}
        </div>
      </${Field}>
      <${Field} label=${t("channels.priority")}>
        <input name="priority" type="number" value=${form.priority} onInput=${set("priority")} />
      </${Field}>
      <${Field} label=${t("channels.weight")}>
        <input name="weight" type="number" min="0" value=${form.weight} onInput=${set("weight")} />
      </${Field}>
      <${Field} wide label=${t("channels.model_mapping")} hint='{"gpt-4o": "gpt-4o-2024-08-06"}'>
        <textarea name="model_mapping" rows="3" value=${form.model_mapping} onInput=${set("model_mapping")}></textarea>
      </${Field}>
      <${Field} wide label=${t("channels.config")} hint=${type.config_hint || "{}"}>
        <textarea name="config" rows="2" value=${form.config} onInput=${set("config")}></textarea>
      </${Field}>
      <${Field} wide label=${t("channels.system_prompt")}>
        <textarea name="system_prompt" rows="2" value=${form.system_prompt} onInput=${set("system_prompt")}></textarea>
      </${Field}>
      <${Field} label=${t("channels.timeout_ms")} hint=${t("channels.timeout_hint")}>
        <input name="timeout_ms" type="number" min="0" value=${form.timeout_ms} onInput=${set("timeout_ms")} />
      </${Field}>
      <${FormFooter} error=${error} busy=${busy} onClose=${onClose} />
    </form>
  </${Modal}>`;
}

/** The last test of a channel: this page's "Test all" result if there is one, else what
 * the periodic monitor wrote on the row. */
function TestCell({ channel, result }) {
  if (result) {
    return result.success
      ? html`<span class="badge badge-ok" data-testid="test-result" data-ok="1">${result.time_ms} ms</span>`
      : html`<span class="badge badge-error" data-testid="test-result" data-ok="0" title=${result.message}>${result.message || t("channels.last_test_failed")}</span>`;
  }
  if (channel.test_error) {
    return html`<span class="badge badge-warn" title=${`${channel.test_error} · ${fmtTime(channel.test_time)}`}>${t("channels.last_test_failed")}</span>`;
  }
  return html`<span title=${fmtTime(channel.test_time)}>${channel.response_time ? `${channel.response_time} ms` : "-"}</span>`;
}

/** Each key of a multi-key channel, masked, with its state; a disabled one can be put back. */
function KeysModal({ channel, onClose, onChanged }) {
  const [keys, setKeys] = useState(channel.keys || []);
  const [busy, run] = useAction();
  const enable = (k) =>
    run(async () => {
      const updated = await post(`/api/channel/${channel.id}/key/${k.fingerprint}/enable`, {});
      setKeys(updated.keys || []);
      toast(t("channels.key_enabled_toast", { key: k.masked }), "success");
      onChanged();
    });
  return html`<${Modal} title=${t("channels.keys_title", { name: channel.name })} onClose=${onClose}>
    <table class="key-table" data-testid="key-table">
      <tbody>
        ${keys.map(
          (k) => html`<tr key=${k.fingerprint} data-key=${k.masked} data-status=${k.status}>
            <td><code>${k.masked}</code></td>
            <td>${k.status === 1
              ? html`<${Badge} kind="ok">${t("channels.key_enabled")}</${Badge}>`
              : html`<${Badge} kind="error" title=${k.reason}>${t("channels.key_disabled")}</${Badge}>`}
              ${k.status !== 1 && html`<div class="muted">${k.reason}</div>`}</td>
            <td>${k.status !== 1 &&
              html`<button class="secondary" disabled=${busy} data-testid="enable-key" onClick=${() => enable(k)}>${t("channels.key_enable")}</button>`}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  </${Modal}>`;
}

export function ChannelsPage() {
  const [editing, setEditing] = useState(null);
  const [reason, setReason] = useState(null);
  const [keysOf, setKeysOf] = useState(null);
  const [results, setResults] = useState({});
  const [types, setTypes] = useState([]);
  const groups = useGroups();
  const list = usePagedList("/api/channel/");
  const { busy } = list;
  useEffect(() => {
    channelTypes().then(setTypes, () => setTypes([]));
  }, []);
  const typeName = (id) => (types.find((x) => x.id === id) || {}).name || `#${id}`;

  const test = (c) =>
    list.act(async () => {
      const r = await apiRaw("GET", `/api/channel/test/${c.id}`);
      const ms = r.time_ms ?? (r.time !== undefined ? Math.round(r.time * 1000) : undefined);
      setResults((prev) => ({ ...prev, [c.id]: { id: c.id, success: Boolean(r.success), time_ms: ms, message: r.message } }));
      if (r.success) toast(t("channels.test_ok", { name: c.name, ms: ms ?? "?" }), "success");
      else toast(t("channels.test_failed", { name: c.name, message: r.message || r.status }), "error");
    });
  const testAll = () =>
    list.act(async () => {
      const r = await apiRaw("GET", "/api/channel/test");
      const results = Array.isArray(r.data) ? r.data : [];
      setResults(Object.fromEntries(results.map((x) => [x.id, x])));
      const ok = results.filter((x) => x.success).length;
      if (r.success === false) toast(r.message || String(r.status), "error");
      else toast(t("channels.test_all_done", { ok, total: results.length }), ok === results.length ? "success" : "error");
    });
  const balance = (c) =>
    list.act(async () => {
      const r = await apiRaw("GET", `/api/channel/update_balance/${c.id}`);
      if (r.success) toast(t("channels.balance_ok", { name: c.name, balance: r.balance }), "success");
      else toast(r.message || String(r.status), "error");
    });
  const setStatus = (c, status) => list.act(() => put("/api/channel/", { id: c.id, status }));
  const remove = (c) =>
    list.confirmed(t("channels.confirm_delete", { name: c.name }), () => del(`/api/channel/${c.id}`));
  const openEdit = (c) =>
    list.run(async () => {
      setEditing(await get(`/api/channel/${c.id}`));
    });

  return html`<section>
    <${ListHead} title=${t("nav.channels")} list=${list}>
      <button class="secondary" disabled=${busy} onClick=${testAll}>${t("channels.test_all")}</button>
      <button data-testid="add-channel" onClick=${() => setEditing({})}>${t("channels.add")}</button>
    </${ListHead}>
    <${ListTable} list=${list} testid="channel-table" columns="9" head=${html`
        <th>ID</th><th>${t("channels.name")}</th><th>${t("channels.type")}</th><th>${t("common.status")}</th>
        <th class="num">${t("channels.response_time")}</th><th class="num">${t("channels.balance")}</th>
        <th class="num">${t("channels.used_quota")}</th><th class="num">${t("channels.priority")}</th>
        <th>${t("common.actions")}</th>`}
      row=${(c) => html`<tr key=${c.id} data-channel=${c.name}>
            <td>${c.id}</td>
            <td>${c.name}</td>
            <td>${typeName(c.type)}</td>
            <td>
              <${StatusBadge} channel=${c} />
              ${c.status === 3 &&
              html`<button class="link" data-testid="why-disabled" onClick=${() => setReason(c)}>${t("channels.why")}</button>`}
              ${c.key_count > 1 &&
              html`<button class="link" data-testid="channel-keys" onClick=${() => setKeysOf(c)}>${t("channels.keys_state", {
                enabled: (c.keys || []).filter((k) => k.status === 1).length,
                total: c.key_count,
              })}</button>`}
            </td>
            <td class="num"><${TestCell} channel=${c} result=${results[c.id]} /></td>
            <td class="num" title=${fmtTime(c.balance_updated_time)}>
              <button class="link" onClick=${() => balance(c)}>
                ${c.balance_updated_time ? `$${Number(c.balance).toFixed(2)}` : t("channels.balance_unknown")}
              </button>
            </td>
            <td class="num">${fmtQuota(c.used_quota)}</td>
            <td class="num">${c.priority}</td>
            <td class="actions">
              <button class="secondary" disabled=${busy} data-action="test" onClick=${() => test(c)}>${t("channels.test")}</button>
              <${ToggleButton} enabled=${c.status === 1} onEnable=${() => setStatus(c, 1)} onDisable=${() => setStatus(c, 2)} />
              <${EditDelete} onEdit=${() => openEdit(c)} onDelete=${() => remove(c)} />
            </td>
          </tr>`} />
    ${editing &&
    html`<${ChannelForm} channel=${editing.id ? editing : null} types=${types} groups=${groups}
      onClose=${() => setEditing(null)} onSaved=${() => { setEditing(null); list.reload(); }} />`}
    ${keysOf &&
    html`<${KeysModal} channel=${keysOf} onClose=${() => setKeysOf(null)} onChanged=${() => list.reload()} />`}
    ${reason &&
    html`<${Modal} title=${t("channels.why_title", { name: reason.name })} onClose=${() => setReason(null)}>
      <p data-testid="disable-reason">${reason.status_reason || t("channels.no_reason")}</p>
      ${reason.status_time > 0 && html`<p class="muted">${t("channels.disabled_at")}: ${fmtTime(reason.status_time)}</p>`}
    </${Modal}>`}
  </section>`;
}

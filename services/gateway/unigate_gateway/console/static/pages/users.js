// Users (admins): list and search, add, edit (group, quota, limits, password), and One API's
// manage actions (enable, disable, promote, demote, delete).

import {
  html,
  useState,
  useAction,
  Modal,
  Field,
  Badge,
  toast,
  fmtQuota,
  fmtNumber,
  ROLE_ADMIN,
  ROLE_ROOT,
} from "../ui.js";
import { post, put } from "../api.js";
import { t } from "../i18n.js";
import { usePagedList, useGroups, ListHead, ListTable, ToggleButton, EditDelete, FormFooter } from "../lists.js";

export function roleLabel(role) {
  if (role >= ROLE_ROOT) return t("users.role_root");
  if (role >= ROLE_ADMIN) return t("users.role_admin");
  return t("users.role_user");
}

function UserForm({ user, groups, onClose, onSaved }) {
  const editing = Boolean(user);
  const [form, setForm] = useState(() => ({
    username: user ? user.username : "",
    display_name: user ? user.display_name : "",
    password: "",
    group: user ? user.group : "default",
    quota: user ? user.quota : 0,
    rpm_limit: user ? user.rpm_limit : 0,
    tpm_limit: user ? user.tpm_limit : 0,
    email: user ? user.email : "",
  }));
  const [error, setError] = useState(null);
  const [busy, run] = useAction();
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });

  const submit = (e) => {
    e.preventDefault();
    setError(null);
    run(async () => {
      const body = {
        username: form.username.trim(),
        display_name: form.display_name.trim(),
        email: form.email.trim(),
      };
      if (form.password) body.password = form.password;
      if (editing) {
        Object.assign(body, {
          id: user.id,
          group: form.group,
          quota: Number(form.quota) || 0,
          rpm_limit: Number(form.rpm_limit) || 0,
          tpm_limit: Number(form.tpm_limit) || 0,
        });
        await put("/api/user/", body);
      } else {
        if (!form.password) {
          setError(new Error(t("users.password_required")));
          return;
        }
        await post("/api/user/", body);
      }
      toast(t("common.saved"), "success");
      onSaved();
    });
  };

  return html`<${Modal} title=${editing ? t("users.edit") : t("users.add")} onClose=${onClose} wide>
    <form class="grid-form" onSubmit=${submit} data-testid="user-form">
      <${Field} label=${t("login.username")}>
        <input name="username" required value=${form.username} onInput=${set("username")} />
      </${Field}>
      <${Field} label=${t("users.display_name")}>
        <input name="display_name" value=${form.display_name} onInput=${set("display_name")} />
      </${Field}>
      <${Field} label=${t("login.password")} hint=${editing ? t("users.password_keep") : t("password.rule")}>
        <input name="password" type="password" autocomplete="new-password" value=${form.password} onInput=${set("password")} />
      </${Field}>
      <${Field} label=${t("users.email")}>
        <input name="email" type="email" value=${form.email} onInput=${set("email")} />
      </${Field}>
      ${editing &&
      html`<${Field} label=${t("users.group")}>
          <select name="group" value=${form.group} onChange=${set("group")}>
            ${[...new Set([...groups, form.group])].map((g) => html`<option value=${g}>${g}</option>`)}
          </select>
        </${Field}>
        <${Field} label=${t("users.quota")} hint=${fmtQuota(form.quota)}>
          <input name="quota" type="number" value=${form.quota} onInput=${set("quota")} />
        </${Field}>
        <${Field} label=${t("tokens.rpm")} hint=${t("users.limit_hint")}>
          <input name="rpm_limit" type="number" min="0" value=${form.rpm_limit} onInput=${set("rpm_limit")} />
        </${Field}>
        <${Field} label=${t("tokens.tpm")} hint=${t("users.limit_hint")}>
          <input name="tpm_limit" type="number" min="0" value=${form.tpm_limit} onInput=${set("tpm_limit")} />
        </${Field}>`}
      <${FormFooter} error=${error} busy=${busy} onClose=${onClose} />
    </form>
  </${Modal}>`;
}

export function UsersPage({ user: me }) {
  const [editing, setEditing] = useState(null);
  const groups = useGroups();
  const list = usePagedList("/api/user/");
  const { busy } = list;

  const manage = (u, action) => {
    const call = () => post("/api/user/manage", { username: u.username, action });
    return action === "delete"
      ? list.confirmed(t("users.confirm_delete", { name: u.username }), call)
      : list.act(call);
  };

  return html`<section>
    <${ListHead} title=${t("nav.users")} list=${list}>
      <button data-testid="add-user" onClick=${() => setEditing({})}>${t("users.add")}</button>
    </${ListHead}>
    <${ListTable} list=${list} testid="user-table" columns="10" head=${html`
        <th>ID</th><th>${t("login.username")}</th><th>${t("users.display_name")}</th><th>${t("users.role")}</th>
        <th>${t("common.status")}</th><th>${t("users.group")}</th><th class="num">${t("users.quota")}</th>
        <th class="num">${t("users.used_quota")}</th><th class="num">${t("dashboard.requests")}</th>
        <th>${t("common.actions")}</th>`}
      row=${(u) => html`<tr key=${u.id} data-user=${u.username}>
            <td>${u.id}</td><td>${u.username}</td><td>${u.display_name}</td>
            <td>${roleLabel(u.role)}</td>
            <td>${u.status === 1
              ? html`<${Badge} kind="ok">${t("status.enabled")}</${Badge}>`
              : html`<${Badge} kind="muted">${t("status.disabled")}</${Badge}>`}</td>
            <td>${u.group}</td>
            <td class="num">${fmtQuota(u.quota)}</td>
            <td class="num">${fmtQuota(u.used_quota)}</td>
            <td class="num">${fmtNumber(u.request_count)}</td>
            <td class="actions">
              ${u.id !== me.id && u.role < me.role &&
              html`<${ToggleButton} enabled=${u.status === 1} busy=${busy}
                  onEnable=${() => manage(u, "enable")} onDisable=${() => manage(u, "disable")} />
                ${me.role >= ROLE_ROOT && u.role < ROLE_ADMIN &&
                html`<button class="secondary" disabled=${busy} onClick=${() => manage(u, "promote")}>${t("users.promote")}</button>`}
                ${me.role >= ROLE_ROOT && u.role >= ROLE_ADMIN &&
                html`<button class="secondary" disabled=${busy} onClick=${() => manage(u, "demote")}>${t("users.demote")}</button>`}
                <${EditDelete} busy=${busy} onEdit=${() => setEditing(u)} onDelete=${() => manage(u, "delete")} />`}
            </td>
          </tr>`} />
    ${editing &&
    html`<${UserForm} user=${editing.id ? editing : null} groups=${groups}
      onClose=${() => setEditing(null)} onSaved=${() => { setEditing(null); list.reload(); }} />`}
  </section>`;
}

// Users (admins): list and search, add, edit (group, quota, limits, password), and One API's
// manage actions (enable, disable, promote, demote, delete).

import {
  html,
  useState,
  useEffect,
  useLoad,
  useAction,
  Modal,
  Field,
  Pager,
  Badge,
  ErrorNote,
  toast,
  fmtQuota,
  fmtNumber,
  confirmAction,
  ROLE_ADMIN,
  ROLE_ROOT,
} from "../ui.js";
import { get, post, put, getList } from "../api.js";
import { t } from "../i18n.js";

const PAGE_SIZE = 20;

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
      <div class="field-wide"><${ErrorNote} error=${error} /></div>
      <div class="form-actions field-wide">
        <button type="button" class="secondary" onClick=${onClose}>${t("common.cancel")}</button>
        <button type="submit" disabled=${busy}>${t("common.save")}</button>
      </div>
    </form>
  </${Modal}>`;
}

export function UsersPage({ user: me }) {
  const [page, setPage] = useState(0);
  const [keyword, setKeyword] = useState("");
  const [search, setSearch] = useState("");
  const [editing, setEditing] = useState(null);
  const [groups, setGroups] = useState(["default"]);
  const [busy, run] = useAction();
  const list = useLoad(
    () =>
      search
        ? getList("/api/user/search", { keyword: search, p: page, size: PAGE_SIZE })
        : getList("/api/user/", { p: page, size: PAGE_SIZE }),
    [page, search],
  );
  const { items, total } = list.data || { items: [], total: 0 };
  useEffect(() => {
    get("/api/group/").then(
      (g) => setGroups(Array.isArray(g) ? g : (g && g.names) || ["default"]),
      () => {},
    );
  }, []);

  const manage = (u, action) =>
    (action !== "delete" || confirmAction(t("users.confirm_delete", { name: u.username }))) &&
    run(async () => {
      await post("/api/user/manage", { username: u.username, action });
      list.reload();
    });

  return html`<section>
    <div class="page-head">
      <h1>${t("nav.users")}</h1>
      <div class="toolbar">
        <form onSubmit=${(e) => { e.preventDefault(); setPage(0); setSearch(keyword); }}>
          <input type="search" placeholder=${t("common.search")} value=${keyword}
            onInput=${(e) => setKeyword(e.target.value)} />
        </form>
        <button data-testid="add-user" onClick=${() => setEditing({})}>${t("users.add")}</button>
      </div>
    </div>
    <${ErrorNote} error=${list.error} />
    <table data-testid="user-table">
      <thead><tr>
        <th>ID</th><th>${t("login.username")}</th><th>${t("users.display_name")}</th><th>${t("users.role")}</th>
        <th>${t("common.status")}</th><th>${t("users.group")}</th><th class="num">${t("users.quota")}</th>
        <th class="num">${t("users.used_quota")}</th><th class="num">${t("dashboard.requests")}</th>
        <th>${t("common.actions")}</th>
      </tr></thead>
      <tbody>
        ${items.map(
          (u) => html`<tr key=${u.id} data-user=${u.username}>
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
              html`${u.status === 1
                  ? html`<button class="secondary" disabled=${busy} onClick=${() => manage(u, "disable")}>${t("common.disable")}</button>`
                  : html`<button class="secondary" disabled=${busy} onClick=${() => manage(u, "enable")}>${t("common.enable")}</button>`}
                ${me.role >= ROLE_ROOT && u.role < ROLE_ADMIN &&
                html`<button class="secondary" disabled=${busy} onClick=${() => manage(u, "promote")}>${t("users.promote")}</button>`}
                ${me.role >= ROLE_ROOT && u.role >= ROLE_ADMIN &&
                html`<button class="secondary" disabled=${busy} onClick=${() => manage(u, "demote")}>${t("users.demote")}</button>`}
                <button class="secondary" onClick=${() => setEditing(u)}>${t("common.edit")}</button>
                <button class="danger" disabled=${busy} onClick=${() => manage(u, "delete")}>${t("common.delete")}</button>`}
            </td>
          </tr>`,
        )}
        ${!list.loading && items.length === 0 && html`<tr><td colspan="10" class="muted">${t("common.empty")}</td></tr>`}
      </tbody>
    </table>
    <${Pager} page=${page} size=${PAGE_SIZE} total=${total} onPage=${setPage} />
    ${editing &&
    html`<${UserForm} user=${editing.id ? editing : null} groups=${groups}
      onClose=${() => setEditing(null)} onSaved=${() => { setEditing(null); list.reload(); }} />`}
  </section>`;
}

// The admin lists (channels, users, tokens, redemptions): one page of records from the API,
// searched by keyword, in a table with a pager; the row actions that load the page again;
// and the footer of their forms.

import {
  html,
  useState,
  useEffect,
  useLoad,
  useAction,
  Pager,
  Badge,
  ErrorNote,
  confirmAction,
} from "./ui.js";
import { get, getList } from "./api.js";
import { t } from "./i18n.js";

export const PAGE_SIZE = 20;

/**
 * One page of the records at `path` (at `${path}search` once a keyword is submitted).
 * `act(fn)` runs a row action with the list busy, then loads the page again;
 * `confirmed(message, fn)` does so once the user confirms `message`.
 */
export function usePagedList(path) {
  const [page, setPage] = useState(0);
  const [keyword, setKeyword] = useState("");
  const [search, setSearch] = useState("");
  const [busy, run] = useAction();
  const list = useLoad(
    () =>
      search
        ? getList(`${path}search`, { keyword: search, p: page, size: PAGE_SIZE })
        : getList(path, { p: page, size: PAGE_SIZE }),
    [page, search],
  );
  const { items, total } = list.data || { items: [], total: 0 };
  const act = (fn) =>
    run(async () => {
      await fn();
      list.reload();
    });
  return {
    ...list,
    items,
    total,
    page,
    setPage,
    keyword,
    setKeyword,
    busy,
    run,
    act,
    confirmed: (message, fn) => confirmAction(message) && act(fn),
    submitSearch: () => {
      setPage(0);
      setSearch(keyword);
    },
  };
}

/** The group names, for the forms that pick one. */
export function useGroups() {
  const [groups, setGroups] = useState(["default"]);
  useEffect(() => {
    get("/api/group/").then(
      (g) => setGroups(Array.isArray(g) ? g : (g && g.names) || ["default"]),
      () => {},
    );
  }, []);
  return groups;
}

/** A list page's title and toolbar: the keyword search of `list` (unless `noSearch`), then
 * the page's own buttons. */
export function ListHead({ title, list, noSearch, children }) {
  return html`<div class="page-head">
    <h1>${title}</h1>
    <div class="toolbar">
      ${!noSearch &&
      html`<form onSubmit=${(e) => { e.preventDefault(); list.submitSearch(); }}>
        <input type="search" placeholder=${t("common.search")} value=${list.keyword}
          onInput=${(e) => list.setKeyword(e.target.value)} />
      </form>`}
      ${children}
    </div>
  </div>`;
}

/** The list's error, its table (`head`: the header cells; `row(item)`: one row; `columns`:
 * how many), a note when it is empty, and the pager. */
export function ListTable({ list, testid, columns, head, row }) {
  return html`<${ErrorNote} error=${list.error} />
    <div class="table-scroll"><table data-testid=${testid}>
      <thead><tr>${head}</tr></thead>
      <tbody>
        ${list.items.map(row)}
        ${!list.loading && list.items.length === 0 && html`<tr><td colspan=${columns} class="muted">${t("common.empty")}</td></tr>`}
      </tbody>
    </table></div>
    <${Pager} page=${list.page} size=${PAGE_SIZE} total=${list.total} onPage=${list.setPage} />`;
}

/** The badge of a record's status, from `labels`: status → [badge kind, label key]. */
export function StatusLabel({ labels, status }) {
  const [kind, label] = labels[status] || ["muted", "status.unknown"];
  return html`<${Badge} kind=${kind}>${t(label)}</${Badge}>`;
}

/** Disable an enabled record, or enable a disabled one. */
export function ToggleButton({ enabled, busy, onEnable, onDisable }) {
  return enabled
    ? html`<button class="secondary" data-action="disable" disabled=${busy} onClick=${onDisable}>${t("common.disable")}</button>`
    : html`<button class="secondary" data-action="enable" disabled=${busy} onClick=${onEnable}>${t("common.enable")}</button>`;
}

/** A row's edit (when `onEdit` is given) and delete buttons. */
export function EditDelete({ busy, onEdit, onDelete }) {
  return html`${onEdit && html`<button class="secondary" data-action="edit" onClick=${onEdit}>${t("common.edit")}</button>`}
    <button class="danger" data-action="delete" disabled=${busy} onClick=${onDelete}>${t("common.delete")}</button>`;
}

/** The end of a form: its error, then cancel and submit (`label`, by default "save"). */
export function FormFooter({ error, busy, onClose, label }) {
  return html`<div class="field-wide"><${ErrorNote} error=${error} /></div>
    <div class="form-actions field-wide">
      <button type="button" class="secondary" onClick=${onClose}>${t("common.cancel")}</button>
      <button type="submit" disabled=${busy}>${label || t("common.save")}</button>
    </div>`;
}

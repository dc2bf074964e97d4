// The usage log: filters, paging and CSV export (the whole filtered set, streamed by billing).
// Pages are read by cursor (first, next, previous, last): each costs the same wherever it is in
// a log of any size; the total is exact up to 10,000 and "10,000+" beyond.

import {
  html,
  useState,
  useLoad,
  Badge,
  ErrorNote,
  fmtTime,
  fmtQuota,
  fmtNumber,
  toLocalInput,
  fromLocalInput,
  ROLE_ADMIN,
} from "../ui.js";
import { query, getLogPage, get } from "../api.js";
import { t } from "../i18n.js";

// Calls billed in another unit than tokens show it under the tokens (the ledger's unit).
const UNIT_KEYS = {
  second: "logs.unit_second",
  character: "logs.unit_character",
  image: "logs.unit_image",
  search_unit: "logs.unit_search_unit",
};

const PAGE_SIZE = 20;
const TYPES = [
  [0, "logs.type_all"],
  [1, "logs.type_topup"],
  [2, "logs.type_consume"],
  [3, "logs.type_manage"],
  [4, "logs.type_system"],
  [5, "logs.type_test"],
];

// Where the page is: a cursor (none: the newest page), and how many pages it is from the end
// it was reached from (the newest or, after "last", the oldest).
const FIRST = { cursor: {}, n: 0, fromOldest: false };
const LAST = { cursor: { oldest: "true" }, n: 0, fromOldest: true };

function LogPager({ at, page, onMove }) {
  const pages = Math.max(1, Math.ceil(page.total / PAGE_SIZE));
  const step = (older) => (at.fromOldest === older ? -1 : 1);
  let label;
  if (!page.capped) {
    label = `${t("common.page")} ${at.fromOldest ? pages - at.n : at.n + 1} / ${pages}`;
  } else if (!at.fromOldest) {
    label = `${t("common.page")} ${at.n + 1}`;
  } else {
    label = at.n ? `${t("logs.last_page")} − ${at.n}` : t("logs.last_page");
  }
  const total = `${fmtNumber(page.total)}${page.capped ? "+" : ""}`;
  return html`<div class="pager">
    <button class="secondary" data-testid="pager-first" disabled=${!page.newer} onClick=${() => onMove(FIRST)}>« ${t("logs.first")}</button>
    <button class="secondary" data-testid="pager-prev" disabled=${!page.newer}
      onClick=${() => onMove({ cursor: { newer_than: page.newer }, n: at.n + step(false), fromOldest: at.fromOldest })}>‹ ${t("common.prev")}</button>
    <span data-testid="pager-label">${label} · ${t("common.total")} ${total}</span>
    <button class="secondary" data-testid="pager-next" disabled=${!page.older}
      onClick=${() => onMove({ cursor: { older_than: page.older }, n: at.n + step(true), fromOldest: at.fromOldest })}>${t("common.next")} ›</button>
    <button class="secondary" data-testid="pager-last" disabled=${!page.older} onClick=${() => onMove(LAST)}>${t("logs.last")} »</button>
  </div>`;
}

function emptyFilter() {
  const now = Math.floor(Date.now() / 1000);
  return {
    type: 0,
    start: toLocalInput(now - 7 * 86400),
    end: "",
    username: "",
    token_name: "",
    model_name: "",
    channel: "",
    request_id: "",
  };
}

/** The query parameters of a filter, in One API's names. */
function params(filter, admin) {
  const p = {
    type: filter.type || "",
    start_timestamp: filter.start ? fromLocalInput(filter.start) : "",
    end_timestamp: filter.end ? fromLocalInput(filter.end) : "",
    token_name: filter.token_name.trim(),
    model_name: filter.model_name.trim(),
    request_id: filter.request_id.trim(),
  };
  if (admin) {
    p.username = filter.username.trim();
    p.channel = filter.channel.trim();
  }
  return p;
}

// Content logging's bodies of one request (when logging was on for its key or group), loaded
// on demand: the list itself never carries them.
function ContentDetail({ base, requestId }) {
  const [state, setState] = useState(null);
  const load = async () => {
    setState({ loading: true });
    try {
      const rows = await get(base, { request_id: requestId, content: "true" });
      const row = Array.isArray(rows) && rows[0];
      setState({ row: row || {} });
    } catch (err) {
      setState({ error: err });
    }
  };
  if (!state) {
    return html`<button type="button" class="link small" data-testid="show-bodies" onClick=${load}>${t("logs.bodies")}</button>`;
  }
  if (state.loading) return html`<span class="muted small">…</span>`;
  if (state.error) return html`<${ErrorNote} error=${state.error} />`;
  const row = state.row;
  if (!row.request_body && !row.response_body) {
    return html`<span class="muted small" data-testid="no-bodies">${t("logs.no_bodies")}</span>`;
  }
  return html`<div class="log-bodies" data-testid="log-bodies">
    <div class="muted small">${t("logs.request_body")}</div><pre class="mono small">${row.request_body}</pre>
    <div class="muted small">${t("logs.response_body")}</div><pre class="mono small">${row.response_body}</pre>
  </div>`;
}

export function LogsPage({ user }) {
  const admin = user.role >= ROLE_ADMIN;
  const [draft, setDraft] = useState(emptyFilter);
  const [filter, setFilter] = useState(draft);
  const [at, setAt] = useState(FIRST);
  const base = admin ? "/api/log/" : "/api/log/self";
  const list = useLoad(
    () => getLogPage(base, { ...params(filter, admin), ...at.cursor, size: PAGE_SIZE }),
    [JSON.stringify(at), JSON.stringify(filter)],
  );
  const page = list.data || { items: [], total: 0, capped: false, older: "", newer: "" };
  const items = page.items;
  const set = (k) => (e) => setDraft({ ...draft, [k]: e.target.value });
  const exportUrl = `${admin ? "/api/log/export" : "/api/log/self/export"}${query(params(filter, admin))}`;

  return html`<section>
    <div class="page-head">
      <h1>${t("nav.logs")}</h1>
      <div class="toolbar">
        <a class="button secondary" href=${exportUrl} download="logs.csv" data-testid="export-csv">${t("logs.export")}</a>
      </div>
    </div>
    <form class="filters" data-testid="log-filters"
      onSubmit=${(e) => { e.preventDefault(); setAt(FIRST); setFilter(draft); }}>
      <label>${t("logs.type")}
        <select name="type" value=${draft.type} onChange=${(e) => setDraft({ ...draft, type: Number(e.target.value) })}>
          ${TYPES.map(([v, k]) => html`<option value=${v}>${t(k)}</option>`)}
        </select>
      </label>
      <label>${t("logs.start")}<input name="start" type="datetime-local" value=${draft.start} onInput=${set("start")} /></label>
      <label>${t("logs.end")}<input name="end" type="datetime-local" value=${draft.end} onInput=${set("end")} /></label>
      ${admin && html`<label>${t("login.username")}<input name="username" value=${draft.username} onInput=${set("username")} /></label>`}
      <label>${t("logs.token")}<input name="token_name" value=${draft.token_name} onInput=${set("token_name")} /></label>
      <label>${t("logs.model")}<input name="model_name" value=${draft.model_name} onInput=${set("model_name")} /></label>
      ${admin && html`<label>${t("logs.channel")}<input name="channel" type="number" min="0" value=${draft.channel} onInput=${set("channel")} /></label>`}
      <label>${t("logs.request_id")}<input name="request_id" value=${draft.request_id} onInput=${set("request_id")} /></label>
      <div class="filter-actions">
        <button type="submit">${t("logs.apply")}</button>
        <button type="button" class="secondary" onClick=${() => { const f = emptyFilter(); setDraft(f); setFilter(f); setAt(FIRST); }}>${t("logs.reset")}</button>
      </div>
    </form>
    <${ErrorNote} error=${list.error} />
    <div class="table-scroll">
    <table data-testid="log-table">
      <thead><tr>
        <th>${t("logs.time")}</th><th>${t("logs.type")}</th>
        ${admin && html`<th>${t("login.username")}</th><th>${t("logs.channel")}</th>`}
        <th>${t("logs.token")}</th><th>${t("logs.model")}</th>
        <th class="num">${t("logs.prompt_tokens")}</th><th class="num">${t("logs.completion_tokens")}</th>
        <th class="num">${t("dashboard.quota")}</th><th class="num">${t("logs.latency")}</th>
        <th>${t("common.status")}</th><th>${t("logs.detail")}</th>
      </tr></thead>
      <tbody>
        ${items.map((r) => {
          const type = TYPES.find(([v]) => v === r.type);
          const failed = r.status_code && r.status_code >= 400;
          return html`<tr key=${r.id} data-request-id=${r.request_id}>
            <td>${fmtTime(r.created_at)}</td>
            <td>${type ? t(type[1]) : r.type}</td>
            ${admin && html`<td>${r.username}</td><td>${r.channel || "-"}</td>`}
            <td>${r.token_name}</td>
            <td>${r.model_name}${r.upstream_model && r.upstream_model !== r.model_name ? html` <span class="muted">→ ${r.upstream_model}</span>` : ""}</td>
            <td class="num">${fmtNumber(r.prompt_tokens)}${r.cached_tokens || r.cache_write_tokens ? html`<div class="muted small" data-testid="cache-tokens">${t("logs.cache_tokens", { read: fmtNumber(r.cached_tokens || 0), write: fmtNumber(r.cache_write_tokens || 0) })}</div>` : ""}</td>
            <td class="num">${fmtNumber(r.completion_tokens)}${r.estimated ? "*" : ""}${UNIT_KEYS[r.unit] ? html`<div class="muted small" data-testid="units">${t(UNIT_KEYS[r.unit], { n: fmtNumber(r.quantity || 0) })}</div>` : ""}</td>
            <td class="num">${fmtQuota(r.quota)}</td>
            <td class="num">${r.elapsed_time ? `${r.elapsed_time} ms` : "-"}${r.is_stream ? html` <${Badge} kind="info">${t("logs.stream")}</${Badge}>` : ""}</td>
            <td>${r.type === 2 ? html`<${Badge} kind=${failed ? "error" : "ok"}>${r.status_code || "-"}</${Badge}>` : ""}</td>
            <td class="small" title=${r.request_id}>${r.error_code || r.content || r.request_id}
              ${r.type === 2 && r.request_id && html`<div><${ContentDetail} base=${base} requestId=${r.request_id} /></div>`}</td>
          </tr>`;
        })}
        ${!list.loading && items.length === 0 && html`<tr><td colspan="12" class="muted">${t("common.empty")}</td></tr>`}
      </tbody>
    </table>
    </div>
    <p class="muted small">${t("logs.estimated_note")}</p>
    <${LogPager} at=${at} page=${page} onMove=${setAt} />
  </section>`;
}

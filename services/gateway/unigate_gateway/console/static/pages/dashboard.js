// The dashboard: balance, and requests, tokens and quota over time and by model, from the
// ledger's rollups; for admins also the channels that used the most quota.

import {
  html,
  useState,
  useLoad,
  fmtQuota,
  fmtQuotaTicks,
  fmtNumber,
  ErrorNote,
  ROLE_ADMIN,
} from "../ui.js";
import { get, getList } from "../api.js";
import { t } from "../i18n.js";
import { DayChart, Bars } from "../charts.js";

const DAY = 86400;

/** Every UTC day (YYYY-MM-DD) from `start` to `end` (unix seconds), so gaps show as 0. */
function daysBetween(start, end) {
  const out = [];
  for (let d = Math.floor(start / DAY) * DAY; d <= end; d += DAY) {
    out.push(new Date(d * 1000).toISOString().slice(0, 10));
  }
  return out;
}

async function loadUsage(user, days, scope) {
  const end = Math.floor(Date.now() / 1000);
  const start = (Math.floor(end / DAY) - (days - 1)) * DAY;
  const all = scope === "all" && user.role >= ROLE_ADMIN;
  const params = { start_timestamp: start, end_timestamp: end };
  const base = all ? "/api/log/stat" : "/api/log/self/stat";
  const [byDay, byModel] = await Promise.all([
    get(base, { ...params, group_by: "day" }),
    get(base, { ...params, group_by: "model" }),
  ]);
  let channels = [];
  if (all) {
    // The server orders them: a client-side sort of one page would miss the rest.
    channels = (await getList("/api/channel/", { p: 0, size: 5, order: "used_quota" })).items;
  }
  return { start, end, byDay, byModel, channels };
}

function rowsOf(stat) {
  return (stat && (stat.rows || stat.items)) || [];
}

export function DashboardPage({ user }) {
  const [days, setDays] = useState(7);
  const [scope, setScope] = useState(user.role >= ROLE_ADMIN ? "all" : "self");
  const { data, error, loading } = useLoad(() => loadUsage(user, days, scope), [days, scope]);

  const dayRows = rowsOf(data && data.byDay);
  const dayList = data ? daysBetween(data.start, data.end) : [];
  const at = new Map(dayRows.map((r) => [r.day, r]));
  const series = (f) => dayList.map((d) => (at.has(d) ? f(at.get(d)) : 0));
  const tokens = (r) => Number(r.prompt_tokens || 0) + Number(r.completion_tokens || 0);
  // The stat answer is One API's totals ({quota, requests, ...}) plus the grouped rows.
  const total = (data && data.byDay) || {};
  const models = rowsOf(data && data.byModel)
    .map((r) => ({ ...r, tokens: tokens(r) }))
    .sort((a, b) => b.quota - a.quota || b.requests - a.requests);

  return html`<section>
    <div class="page-head">
      <h1>${t("nav.dashboard")}</h1>
      <div class="toolbar">
        ${user.role >= ROLE_ADMIN &&
        html`<select data-testid="dashboard-scope" value=${scope} onChange=${(e) => setScope(e.target.value)}>
          <option value="all">${t("dashboard.scope_all")}</option>
          <option value="self">${t("dashboard.scope_self")}</option>
        </select>`}
        <select data-testid="dashboard-days" value=${days} onChange=${(e) => setDays(Number(e.target.value))}>
          ${[7, 14, 30, 90].map((n) => html`<option value=${n}>${t("dashboard.last_days", { n })}</option>`)}
        </select>
      </div>
    </div>
    <div class="cards">
      <div class="stat-card"><span>${t("dashboard.balance")}</span>
        <strong data-testid="stat-balance">${fmtQuota(user.quota)}</strong></div>
      <div class="stat-card"><span>${t("dashboard.used")}</span>
        <strong data-testid="stat-used">${fmtQuota(user.used_quota)}</strong></div>
      <div class="stat-card"><span>${t("dashboard.requests")}</span>
        <strong data-testid="stat-requests">${fmtNumber(total.requests)}</strong></div>
      <div class="stat-card"><span>${t("dashboard.tokens")}</span>
        <strong data-testid="stat-tokens">${fmtNumber(tokens(total))}</strong></div>
      <div class="stat-card"><span>${t("dashboard.quota")}</span>
        <strong data-testid="stat-quota">${fmtQuota(total.quota)}</strong></div>
    </div>
    <${ErrorNote} error=${error} />
    ${loading && !data && html`<div class="muted">${t("common.loading")}</div>`}
    ${data &&
    html`<div class="charts">
        <${DayChart} testid="chart-requests" title=${t("dashboard.requests_per_day")} days=${dayList}
          values=${series((r) => Number(r.requests || 0))} color="#2563eb" />
        <${DayChart} testid="chart-tokens" title=${t("dashboard.tokens_per_day")} days=${dayList}
          values=${series(tokens)} color="#16a34a" />
        <${DayChart} testid="chart-quota" title=${t("dashboard.quota_per_day")} days=${dayList}
          values=${series((r) => Number(r.quota || 0))} color="#d97706" formatTicks=${fmtQuotaTicks} />
      </div>
      <div class="charts">
        <${Bars} testid="bars-model-quota" title=${t("dashboard.quota_by_model")}
          rows=${models.map((m) => ({ name: m.model_name, value: Number(m.quota || 0) }))} format=${fmtQuota} />
        <${Bars} testid="bars-model-requests" title=${t("dashboard.requests_by_model")}
          rows=${models.map((m) => ({ name: m.model_name, value: Number(m.requests || 0) }))} />
      </div>
      <h2>${t("dashboard.by_model")}</h2>
      <table data-testid="model-table">
        <thead><tr>
          <th>${t("logs.model")}</th><th class="num">${t("dashboard.requests")}</th>
          <th class="num">${t("logs.prompt_tokens")}</th><th class="num">${t("logs.completion_tokens")}</th>
          <th class="num">${t("dashboard.quota")}</th>
        </tr></thead>
        <tbody>
          ${models.map(
            (m) => html`<tr key=${m.model_name} data-model=${m.model_name}>
              <td>${m.model_name}</td><td class="num">${fmtNumber(m.requests)}</td>
              <td class="num">${fmtNumber(m.prompt_tokens)}</td><td class="num">${fmtNumber(m.completion_tokens)}</td>
              <td class="num">${fmtQuota(m.quota)}</td>
            </tr>`,
          )}
          ${models.length === 0 && html`<tr><td colspan="5" class="muted">${t("common.empty")}</td></tr>`}
        </tbody>
      </table>
      ${scope === "all" &&
      html`<h2>${t("dashboard.top_channels")}</h2>
        <table data-testid="top-channels">
          <thead><tr>
            <th>${t("channels.name")}</th><th class="num">${t("channels.used_quota")}</th>
            <th class="num">${t("channels.response_time")}</th><th class="num">${t("channels.balance")}</th>
          </tr></thead>
          <tbody>
            ${data.channels.map(
              (c) => html`<tr key=${c.id}>
                <td>${c.name}</td><td class="num">${fmtQuota(c.used_quota)}</td>
                <td class="num">${c.response_time ? `${c.response_time} ms` : "-"}</td>
                <td class="num">${c.balance_updated_time ? `$${Number(c.balance).toFixed(2)}` : "-"}</td>
              </tr>`,
            )}
          </tbody>
        </table>`}`}
  </section>`;
}

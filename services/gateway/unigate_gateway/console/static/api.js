// The management API client: One API's envelope {success, message, data}, the session cookie
// the browser keeps, and the CSRF token every cookie-authenticated write must carry.

export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// Kept for the tab's life, so a reload still carries it (the cookie alone must not suffice).
let csrfToken = sessionStorage.getItem("unigate.csrf") || "";
const listeners = new Set();

/** Called with the HTTP status when the session is gone (401) or must change its password. */
export function onAuthProblem(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function setCsrf(token) {
  if (token && typeof token === "string") {
    csrfToken = token;
    sessionStorage.setItem("unigate.csrf", token);
  }
}

function currentCsrf() {
  return csrfToken;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** One call; resolves to `data` of a successful envelope, throws ApiError otherwise. */
export async function api(method, path, body, params) {
  return (await envelope(method, path, body, params)).data;
}

/** One call; resolves to the whole successful envelope (lists carry `total` beside `data`). */
export async function envelope(method, path, body, params) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && method !== "HEAD") {
    const token = currentCsrf();
    if (token) headers["X-CSRF-Token"] = token;
  }
  let resp;
  try {
    resp = await fetch(path + query(params), init);
  } catch (err) {
    throw new ApiError(String(err.message || err), 0, null);
  }
  setCsrf(resp.headers.get("X-CSRF-Token"));
  let json = null;
  try {
    json = await resp.json();
  } catch {
    json = null;
  }
  if (json && typeof json === "object" && json.data && typeof json.data === "object") {
    setCsrf(json.data.csrf_token);
  }
  if (resp.status === 401 || resp.status === 403) {
    for (const fn of listeners) fn(resp.status, json);
  }
  const ok = resp.ok && json && (json.success === true || json.success === undefined);
  if (!ok) {
    const message =
      (json && (json.message || (json.error && json.error.message))) ||
      `${resp.status} ${resp.statusText}`;
    throw new ApiError(message, resp.status, json);
  }
  return json;
}

/** The whole envelope (for calls whose answer is outside `data`, like a channel test). */
export async function apiRaw(method, path, body, params) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET") {
    const token = currentCsrf();
    if (token) headers["X-CSRF-Token"] = token;
  }
  const resp = await fetch(path + query(params), init);
  setCsrf(resp.headers.get("X-CSRF-Token"));
  const json = await resp.json().catch(() => null);
  if (resp.status === 401) for (const fn of listeners) fn(resp.status, json);
  return { status: resp.status, ...(json || {}) };
}

export const get = (path, params) => api("GET", path, undefined, params);
export const post = (path, body, params) => api("POST", path, body ?? {}, params);
export const put = (path, body, params) => api("PUT", path, body ?? {}, params);
export const del = (path, params) => api("DELETE", path, undefined, params);

/** A page of the log: its rows, the total (`capped`: at least that many), and the cursors of
 * the next (older) and previous (newer) pages, "" at either end. */
export async function getLogPage(path, params) {
  const json = await envelope("GET", path, undefined, params);
  const items = Array.isArray(json.data) ? json.data : [];
  return {
    items,
    total: Number(json.total ?? items.length),
    capped: json.total_capped === true,
    older: json.older_than || "",
    newer: json.newer_than || "",
  };
}

/** A page of a list: {items, total}. */
export async function getList(path, params) {
  const json = await envelope("GET", path, undefined, params);
  const items = Array.isArray(json.data) ? json.data : [];
  return { items, total: Number(json.total ?? items.length) };
}

// Shared pieces of the console: the Preact/htm bindings, formatting, and small components
// (modal, pager, toasts, copy button, form fields).

import {
  html,
  render,
  useState,
  useEffect,
  useRef,
  useCallback,
  useMemo,
} from "./vendor/htm-preact.mjs";
import { t, lang } from "./i18n.js";

export { html, render, useState, useEffect, useRef, useCallback, useMemo };

export const ROLE_USER = 1;
export const ROLE_ADMIN = 10;
export const ROLE_ROOT = 100;

export function navigate(path) {
  location.hash = `#/${path}`;
}

/** Whether the session must change its password before anything else. */
export function mustChangePassword(user) {
  return Boolean(user && (user.must_change_password || user.require_password_change));
}

// --- formatting -----------------------------------------------------------------------------

// One API's unit: 500,000 quota = 1 USD unless /api/status says otherwise.
let quotaPerUnit = 500000;
export function setQuotaPerUnit(n) {
  if (n > 0) quotaPerUnit = n;
}

export function fmtQuota(q) {
  const n = Number(q || 0);
  // Cents, unless the amount is below a cent and not zero (one cheap call costs ~$0.00001).
  return `$${(n / quotaPerUnit).toFixed(n !== 0 && Math.abs(n) < quotaPerUnit / 100 ? 6 : 2)}`;
}

/** Money tick labels of a chart axis, all with the same number of decimals: enough to tell
 * neighbouring ticks apart (at least cents, at most millionths of a dollar). */
export function fmtQuotaTicks(ticks) {
  const dollars = ticks.map((q) => Number(q || 0) / quotaPerUnit);
  const steps = dollars.slice(1).map((d, i) => Math.abs(d - dollars[i])).filter((d) => d > 0);
  const step = steps.length ? Math.min(...steps) : Math.max(...dollars.map(Math.abs), 0);
  const decimals = step > 0 ? Math.min(6, Math.max(2, Math.ceil(-Math.log10(step) - 1e-9))) : 2;
  return dollars.map((d) => `$${d.toFixed(decimals)}`);
}

export function fmtNumber(n) {
  return Number(n || 0).toLocaleString(lang() === "zh" ? "zh-CN" : "en-US");
}

export function fmtTime(seconds) {
  if (!seconds || seconds <= 0) return "-";
  const d = new Date(seconds * 1000);
  const p = (x) => String(x).padStart(2, "0");
  return (
    `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`
  );
}

/** A unix time as the value of an <input type="datetime-local">, and back. */
export function toLocalInput(seconds) {
  if (!seconds || seconds <= 0) return "";
  const d = new Date(seconds * 1000 - new Date().getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}
export function fromLocalInput(value) {
  if (!value) return 0;
  return Math.floor(new Date(value).getTime() / 1000);
}

// --- toasts ---------------------------------------------------------------------------------

const toastListeners = new Set();
export function toast(message, kind = "info") {
  for (const fn of toastListeners) fn({ message: String(message), kind, id: Math.random() });
}
export function toastError(err) {
  toast(err && err.message ? err.message : String(err), "error");
}

export function Toasts() {
  const [items, setItems] = useState([]);
  useEffect(() => {
    const fn = (item) => {
      setItems((xs) => [...xs, item]);
      setTimeout(() => setItems((xs) => xs.filter((x) => x.id !== item.id)), 5000);
    };
    toastListeners.add(fn);
    return () => toastListeners.delete(fn);
  }, []);
  return html`<div class="toasts" aria-live="polite">
    ${items.map(
      (x) => html`<div key=${x.id} class=${`toast toast-${x.kind}`} role="status">${x.message}</div>`,
    )}
  </div>`;
}

// --- components -----------------------------------------------------------------------------

export function Modal({ title, onClose, children, wide }) {
  useEffect(() => {
    const onKey = (e) => e.key === "Escape" && onClose && onClose();
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [onClose]);
  return html`<div class="modal-backdrop" onClick=${(e) => e.target === e.currentTarget && onClose && onClose()}>
    <div class=${`modal ${wide ? "modal-wide" : ""}`} role="dialog" aria-modal="true" aria-label=${title}>
      <div class="modal-head">
        <h2>${title}</h2>
        ${onClose && html`<button class="icon" aria-label=${t("common.close")} onClick=${onClose}>×</button>`}
      </div>
      <div class="modal-body">${children}</div>
    </div>
  </div>`;
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Clipboard API refused (no permission, or not a secure context): select-and-copy.
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  toast(t("common.copied"), "success");
}

export function CopyButton({ text, label, testid }) {
  return html`<button type="button" class="secondary" data-testid=${testid} onClick=${() => copyText(text)}>
    ${label || t("common.copy")}
  </button>`;
}

export function Field({ label, hint, children, wide }) {
  return html`<label class=${`field ${wide ? "field-wide" : ""}`}>
    <span class="field-label">${label}</span>
    ${children}
    ${hint && html`<span class="field-hint">${hint}</span>`}
  </label>`;
}

export function Pager({ page, size, total, onPage }) {
  const pages = Math.max(1, Math.ceil((total || 0) / size));
  return html`<div class="pager">
    <button class="secondary" disabled=${page <= 0} onClick=${() => onPage(page - 1)}>‹ ${t("common.prev")}</button>
    <span data-testid="pager-label">${t("common.page")} ${page + 1} / ${pages} · ${t("common.total")} ${fmtNumber(total)}</span>
    <button class="secondary" disabled=${page + 1 >= pages} onClick=${() => onPage(page + 1)}>${t("common.next")} ›</button>
  </div>`;
}

export function Badge({ kind, children, title }) {
  return html`<span class=${`badge badge-${kind}`} title=${title}>${children}</span>`;
}

/** Run an async action with the button busy, and report its error as a toast. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const run = useCallback(async (fn) => {
    setBusy(true);
    try {
      return await fn();
    } catch (err) {
      toastError(err);
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return [busy, run];
}

/** Load data with `loader()` whenever `deps` change; `reload()` loads again. */
export function useLoad(loader, deps) {
  const [state, setState] = useState({ loading: true, data: null, error: null });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    loader().then(
      (data) => live && setState({ loading: false, data, error: null }),
      (error) => live && setState({ loading: false, data: null, error }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return { ...state, reload: () => setTick((x) => x + 1) };
}

export function ErrorNote({ error }) {
  if (!error) return null;
  return html`<div class="error-note" role="alert">${error.message || String(error)}</div>`;
}

export function confirmAction(message) {
  return window.confirm(message);
}

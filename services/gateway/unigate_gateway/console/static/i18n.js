// Chinese and English labels. The dictionaries are JSON (i18n/en.json, i18n/zh.json) so a
// test can check that both hold every key the pages use. The choice is kept in localStorage.

const STORE_KEY = "unigate.lang";
export const LANGS = ["en", "zh"];
const dicts = {};
let current = "en";
const listeners = new Set();

function initialLang() {
  const saved = localStorage.getItem(STORE_KEY);
  if (LANGS.includes(saved)) return saved;
  return (navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en";
}

export async function loadLanguages() {
  await Promise.all(
    LANGS.map(async (l) => {
      const resp = await fetch(`/console/i18n/${l}.json`);
      dicts[l] = await resp.json();
    }),
  );
  setLang(initialLang(), false);
}

export function lang() {
  return current;
}

export function setLang(l, persist = true) {
  if (!LANGS.includes(l)) return;
  current = l;
  if (persist) localStorage.setItem(STORE_KEY, l);
  document.documentElement.lang = l === "zh" ? "zh-CN" : "en";
  for (const fn of listeners) fn(l);
}

export function onLang(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** The label `key` in the current language; `{name}` placeholders come from `vars`. */
export function t(key, vars) {
  let s = (dicts[current] && dicts[current][key]) ?? (dicts.en && dicts.en[key]) ?? key;
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.replaceAll(`{${k}}`, String(v));
  return s;
}

// The console's entry point: the session, the hash router and the page frame.

import {
  html,
  render,
  useState,
  useEffect,
  Toasts,
  setQuotaPerUnit,
  navigate,
  mustChangePassword,
  ROLE_USER,
  ROLE_ADMIN,
  ROLE_ROOT,
} from "./ui.js";
import { get, onAuthProblem } from "./api.js";
import { t, lang, setLang, onLang, loadLanguages } from "./i18n.js";
import { LoginPage, ChangePasswordPage } from "./pages/login.js";
import { DashboardPage } from "./pages/dashboard.js";
import { ChannelsPage } from "./pages/channels.js";
import { TokensPage } from "./pages/tokens.js";
import { UsersPage } from "./pages/users.js";
import { RedemptionsPage } from "./pages/redemptions.js";
import { LogsPage } from "./pages/logs.js";
import { SettingsPage } from "./pages/settings.js";
import { ProfilePage } from "./pages/profile.js";
import { finishCallback } from "./pages/oauth.js";
import { TopUpPage } from "./pages/topup.js";
import { RegisterPage, ForgotPasswordPage, ResetPage } from "./pages/signup.js";

// Path, label key, page, the least role that sees it.
const PAGES = [
  ["dashboard", "nav.dashboard", DashboardPage, ROLE_USER],
  ["channels", "nav.channels", ChannelsPage, ROLE_ADMIN],
  ["tokens", "nav.tokens", TokensPage, ROLE_USER],
  ["users", "nav.users", UsersPage, ROLE_ADMIN],
  ["redemptions", "nav.redemptions", RedemptionsPage, ROLE_ADMIN],
  ["logs", "nav.logs", LogsPage, ROLE_USER],
  ["settings", "nav.settings", SettingsPage, ROLE_ROOT],
  ["topup", "nav.topup", TopUpPage, ROLE_USER],
  ["profile", "nav.profile", ProfilePage, ROLE_USER],
];
// Pages of someone not logged in, besides the login form.
const BARE_PAGES = {
  register: RegisterPage,
  "forgot-password": ForgotPasswordPage,
  reset: ResetPage,
};

function currentRoute() {
  const path = location.hash.replace(/^#\/?/, "").split("?")[0];
  return path || "dashboard";
}

function LangSwitch() {
  const other = lang() === "zh" ? "en" : "zh";
  return html`<button class="secondary lang-switch" data-testid="lang-switch" onClick=${() => setLang(other)}>
    ${other === "zh" ? "中文" : "English"}
  </button>`;
}

function Frame({ user, route, onLogout, children }) {
  const visible = PAGES.filter(([, , , role]) => (user.role || 0) >= role);
  return html`<div class="frame">
    <nav class="sidebar">
      <div class="brand"><img src="/console/favicon.svg" alt="" width="24" height="24" /> unigate</div>
      ${visible.map(
        ([path, label]) => html`<a href=${`#/${path}`} class=${route === path ? "active" : ""} data-nav=${path}>
          ${t(label)}
        </a>`,
      )}
    </nav>
    <div class="main">
      <header class="topbar">
        <span class="who" data-testid="who">${user.display_name || user.username}</span>
        <${LangSwitch} />
        <button class="secondary" onClick=${onLogout}>${t("nav.logout")}</button>
      </header>
      <main class="content">${children}</main>
    </div>
  </div>`;
}

function App() {
  const [, setLangTick] = useState(0);
  const [route, setRoute] = useState(currentRoute());
  const [session, setSession] = useState({ loading: true, user: null });
  const [status, setStatus] = useState({});
  // What the page a login provider sent us back to said (an error, or a binding made).
  const [callback, setCallback] = useState(null);

  useEffect(() => onLang(() => setLangTick((x) => x + 1)), []);
  useEffect(() => {
    const onHash = () => setRoute(currentRoute());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  useEffect(
    () =>
      onAuthProblem((code) => {
        if (code === 401) setSession({ loading: false, user: null });
      }),
    [],
  );

  const refreshUser = async () => {
    try {
      const user = await get("/api/user/self");
      setSession({ loading: false, user });
      return user;
    } catch {
      setSession({ loading: false, user: null });
      return null;
    }
  };

  useEffect(() => {
    get("/api/status")
      .then((s) => {
        setStatus(s || {});
        setQuotaPerUnit(Number((s && s.quota_per_unit) || 0));
        if (s && s.system_name) document.title = s.system_name;
      })
      .catch(() => {});
    finishCallback()
      .catch((err) => ({ error: String(err.message || err) }))
      .then((result) => {
        setCallback(result);
        setRoute(currentRoute());
        refreshUser();
      });
  }, []);

  const logout = async () => {
    try {
      await get("/api/user/logout");
    } catch {
      // Logged out either way: the cookie is gone or was already invalid.
    }
    setSession({ loading: false, user: null });
    navigate("login");
  };

  if (session.loading) return html`<div class="loading">…</div>`;
  if (!session.user && BARE_PAGES[route]) {
    const Bare = BARE_PAGES[route];
    return html`<div class="bare">
      <div class="bare-top"><${LangSwitch} /></div>
      <${Bare} status=${status} />
      <${Toasts} />
    </div>`;
  }
  if (!session.user) {
    return html`<div class="bare">
      <div class="bare-top"><${LangSwitch} /></div>
      <${LoginPage} status=${status} callbackError=${callback && !callback.bound && callback.error} onLogin=${(user) => {
        setSession({ loading: false, user });
        if (!mustChangePassword(user) && (route === "login" || route === "change-password")) {
          navigate("dashboard");
        }
      }} />
      <${Toasts} />
    </div>`;
  }
  if (mustChangePassword(session.user)) {
    return html`<div class="bare">
      <div class="bare-top"><${LangSwitch} /></div>
      <${ChangePasswordPage} user=${session.user} onDone=${async () => {
        await refreshUser();
        navigate("dashboard");
      }} />
      <${Toasts} />
    </div>`;
  }
  const user = session.user;
  const entry =
    PAGES.find(([path, , , role]) => path === route && (user.role || 0) >= role) || PAGES[0];
  const Page = entry[2];
  return html`<${Frame} user=${user} route=${entry[0]} onLogout=${logout}>
      <${Page} user=${user} status=${status} refreshUser=${refreshUser} callback=${callback} />
    </${Frame}>
    <${Toasts} />`;
}

loadLanguages().then(() => render(html`<${App} />`, document.getElementById("app")));

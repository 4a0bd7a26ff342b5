// The dashboard's shell: who is logged in, the language, the header, and which screen shows.
// Screens are chosen by the URL's #fragment (#/fleet, #/kiosk/site/kiosk, #/residents/<site>/<pseudonym>):
// the fragment never reaches the server, so a pseudonym in it is in no access log.

import { ApiError, call } from "./api.js";
import { el, fill } from "./dom.js";
import { FILTERS_KEY, fleetScreen } from "./fleet.js";
import { DEFAULT_LANGUAGE, Translator } from "./i18n.js";
import { kioskScreen } from "./kiosk.js";
import { loginScreen } from "./login.js";
import { residentsScreen } from "./residents.js";
import { rolloutsScreen } from "./rollouts.js";

const LANGUAGE_KEY = "doorstep.dashboard.lang"; // a display preference, nothing about anyone

/** What `me` (GET /api/v1/me) may do: the same rule as cloud_bridge/access.py Principal.may. */
export function may(me, capability, site) {
  const scope = me && me.capabilities[capability];
  if (!scope) return false;
  return scope === "all" || site === undefined || site === null || site === me.site;
}

const ROUTES = [
  { pattern: /^#\/kiosk\/([^/]+)\/([^/]+)$/, screen: kioskScreen, needs: "fleet:read" },
  { pattern: /^#\/residents(?:\/([^/]*))?(?:\/([^/]*))?$/, screen: residentsScreen, needs: "health:read" },
  { pattern: /^#\/rollouts$/, screen: rolloutsScreen, needs: "fleet:read", everySite: true },
  { pattern: /^(?:#\/?)?(?:fleet)?$/, screen: fleetScreen, needs: "fleet:read" },
];

/** One screen's life: its refresh loop stops when another screen replaces it. */
class Screen {
  constructor(app) {
    this.app = app;
    this.t = app.translator;
    this.me = app.me;
    this.settings = app.settings;
    this.stopped = false;
    this.timers = new Set();
  }

  may(capability, site) {
    return may(this.me, capability, site);
  }

  /** Run `refresh` now and again `refresh_s` after each run ends (never two at once). */
  every(refresh, seconds = this.settings.refresh_s) {
    const run = async () => {
      if (this.stopped) return;
      try {
        await refresh();
        if (!this.stopped) this.app.fresh(null);
      } catch (error) {
        if (this.stopped) return;
        if (error instanceof ApiError && error.status === 401) {
          this.app.sessionEnded();
          return;
        }
        this.app.fresh(error);
      }
      if (!this.stopped) {
        const timer = setTimeout(() => { this.timers.delete(timer); run(); }, seconds * 1000);
        this.timers.add(timer);
      }
    };
    run();
  }

  stop() {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}

/** The API address a browser was sent here from to log in first (the bridge answers an API
 * address opened in a browser, without a session, with this page and ?next=): only a path of
 * this site's API, never another site. */
function apiAddressAsked() {
  const next = new URLSearchParams(window.location.search).get("next");
  return next && next.startsWith("/api/") && !next.startsWith("//") ? next : null;
}

class App {
  constructor() {
    this.translator = new Translator(localStorage.getItem(LANGUAGE_KEY) || DEFAULT_LANGUAGE);
    this.me = null;
    this.settings = null;
    this.screen = null;
    this.lastFresh = null;
    this.header = document.getElementById("top");
    this.view = document.getElementById("view");
    window.addEventListener("hashchange", () => this.route());
  }

  async start() {
    try {
      this.me = await call("me");
      this.settings = await call("dashboard/settings");
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        this.showLogin(null);
        return;
      }
      this.renderHeader();
      fill(this.view, el("p", { class: "error" }, this.translator.t("error", { reason: error.message })));
      return;
    }
    const next = apiAddressAsked();
    if (next) {
      window.location.replace(next);
      return;
    }
    this.route();
  }

  setLanguage(lang) {
    localStorage.setItem(LANGUAGE_KEY, lang);
    this.translator = new Translator(lang);
    if (this.me) this.route(); else this.showLogin(null);
  }

  showLogin(message) {
    this.stopScreen();
    this.me = null;
    this.renderHeader();
    loginScreen(this, this.view, message);
  }

  async loggedIn() {
    await this.start();
  }

  sessionEnded() {
    this.showLogin(this.translator.t("session.expired"));
  }

  async logOut() {
    this.stopScreen();
    this.me = null; // from now on every address shows the login, even before the answer
    sessionStorage.removeItem(FILTERS_KEY); // the next person starts with the whole fleet
    try {
      await call("logout", { method: "POST" });
    } catch (error) {
      // Already ended (401): the outcome is the same.
    }
    this.showLogin(null);
  }

  stopScreen() {
    if (this.screen) this.screen.stop();
    this.screen = null;
  }

  route() {
    if (!this.me) {
      // Logged out (or not yet in): whatever the address asks for, the login comes first.
      this.showLogin(null);
      return;
    }
    this.stopScreen();
    this.renderHeader();
    // A family doctor starts from residents, not the fleet (issue 21); the fleet is #/fleet.
    const home = /^(?:#\/?)?$/.test(window.location.hash) && may(this.me, "health:read");
    const hash = home ? "#/residents" : window.location.hash;
    const route = ROUTES.find((r) => r.pattern.test(hash)) || ROUTES[ROUTES.length - 1];
    const params = (hash.match(route.pattern) || []).slice(1).map((p) => (p === undefined ? p : decodeURIComponent(p)));
    this.screen = new Screen(this);
    this.fresh(undefined);
    // Releases and rollouts span sites: for those who read every site's fleet.
    if (!may(this.me, route.needs) || (route.everySite && this.me.capabilities[route.needs] !== "all")) {
      fill(this.view, el("p", { class: "error", "data-testid": "forbidden" }, this.translator.t("forbidden")));
      return;
    }
    fill(this.view);
    route.screen(this.screen, this.view, ...params);
  }

  /** Tell the header how the last refresh went: null (fine), an error, or undefined (loading). */
  fresh(error) {
    const t = this.translator;
    const badge = document.getElementById("freshness");
    if (!badge) return;
    if (error === undefined) {
      badge.dataset.state = "loading";
      badge.textContent = t.t("fresh.loading");
    } else if (error === null) {
      this.lastFresh = new Date();
      badge.dataset.state = "ok";
      badge.textContent = t.t("fresh.updated", { time: t.time(this.lastFresh) });
    } else {
      badge.dataset.state = "failed";
      badge.textContent = `${t.t("fresh.failed", { time: t.time(this.lastFresh) })} (${error.message})`;
    }
  }

  renderHeader() {
    const t = this.translator;
    document.documentElement.lang = t.lang;
    document.title = t.t("app.title");
    const other = t.lang === "en" ? DEFAULT_LANGUAGE : "en";
    const nav = [];
    if (this.me && may(this.me, "fleet:read")) nav.push(el("a", { href: "#/fleet", "data-nav": "fleet" }, t.t("nav.fleet")));
    if (this.me && this.me.capabilities["fleet:read"] === "all") {
      nav.push(el("a", { href: "#/rollouts", "data-nav": "rollouts" }, t.t("nav.rollouts")));
    }
    if (this.me && may(this.me, "health:read")) {
      nav.push(el("a", { href: "#/residents", "data-nav": "residents" }, t.t("nav.residents")));
    }
    const who = this.me
      ? t.t("who", {
        name: this.me.username,
        role: t.of("role", this.me.role),
        site: this.me.site ? t.t("who.site", { site: this.me.site }) : "",
      })
      : "";
    fill(this.header,
      el("a", { class: "brand", href: "#/" }, t.t("app.title")),
      el("nav", {}, nav),
      el("span", { id: "freshness", class: "freshness", "aria-live": "polite" }),
      el("span", { class: "spacer" }),
      this.me ? el("span", { class: "who", "data-testid": "who" }, who) : null,
      el("button", { type: "button", class: "link-button", id: "language", onclick: () => this.setLanguage(other) },
        t.t("lang.other")),
      this.me ? el("button", { type: "button", class: "link-button", id: "logout", onclick: () => this.logOut() },
        t.t("logout")) : null);
  }
}

new App().start();

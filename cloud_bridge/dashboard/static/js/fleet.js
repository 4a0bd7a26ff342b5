// The fleet: every kiosk and device the person may see, open alerts first, refreshed by
// polling (GET /api/v1/kiosks orders kiosks with open alerts first, then offline ones).

import { allPages, call } from "./api.js";
import { enrolmentForm } from "./enrol.js";
import { el, fill, parseTime } from "./dom.js";
import {
  AlertsPanel, BRIDGE_SITE, configBadge, deviceProblems, devicesTable, kioskHref, outboxDepthText, runwayText, section,
  softwareBadge, statusBadge, table,
} from "./widgets.js";

export const FILTERS_KEY = "doorstep.dashboard.fleet-filters"; // kept while the tab is open, for "back"

function loadFilters() {
  try {
    return { site: "", status: "", search: "", problemsOnly: false, ...JSON.parse(sessionStorage.getItem(FILTERS_KEY) || "{}") };
  } catch {
    return { site: "", status: "", search: "", problemsOnly: false };
  }
}

export function fleetScreen(screen, view) {
  const t = screen.t;
  const filters = loadFilters();
  const data = { kiosks: [], devices: [], alerts: [], complete: true, totals: {}, bridge: null };
  const banner = el("div", { "data-testid": "bridge-link", role: "alert" });
  const summary = el("div", { class: "summary", "data-testid": "summary" });
  const alerts = new AlertsPanel(screen, { onChanged: () => refresh() });
  const kioskTable = el("div", { "data-testid": "kiosks" });
  const deviceTable = el("div", { "data-testid": "devices" });
  const siteSelect = el("select", { id: "filter-site", onchange: () => { filters.site = siteSelect.value; changed(); } });
  const statusSelect = el("select", { id: "filter-status", onchange: () => { filters.status = statusSelect.value; changed(); } },
    ["", "online", "offline", "unknown", "alerts"].map((value) => el("option", { value },
      value === "" ? t.t("filter.all") : value === "alerts" ? t.t("filter.alerts") : t.of("status", value))));
  statusSelect.value = filters.status;
  const search = el("input", { id: "filter-search", type: "search", placeholder: t.t("filter.search"), value: filters.search,
    oninput: () => { filters.search = search.value.trim(); changed(); } });
  const problemsOnly = el("input", { id: "filter-problems", type: "checkbox", checked: filters.problemsOnly,
    onchange: () => { filters.problemsOnly = problemsOnly.checked; changed(); } });
  const siteBound = screen.me.capabilities["fleet:read"] === "own";
  if (siteBound) filters.site = ""; // one site only: a filter kept from another login must not hide it

  function changed() {
    sessionStorage.setItem(FILTERS_KEY, JSON.stringify(filters));
    render();
  }

  fill(view,
    banner,
    summary,
    el("div", { class: "filters" },
      siteBound ? null : el("label", {}, t.t("filter.site"), " ", siteSelect),
      el("label", {}, t.t("filter.status"), " ", statusSelect),
      el("label", {}, search),
      el("label", {}, problemsOnly, " ", t.t("filter.problems"))),
    section(t.t("alerts.title"), alerts.node),
    section(t.t("kiosks.title"), kioskTable),
    section(t.t("devices.title"), deviceTable),
    screen.me.capabilities["fleet:manage"] ? section(t.t("enrol.title"), enrolmentForm(screen)) : null);

  function kioskShown(kiosk, devicesOf) {
    if (filters.site && kiosk.site !== filters.site) return false;
    if (filters.status === "alerts" ? kiosk.open_alerts === 0 : filters.status && kiosk.status !== filters.status) return false;
    if (filters.search && !`${kiosk.site}/${kiosk.kiosk}`.includes(filters.search)) return false;
    if (filters.problemsOnly) {
      const low = screen.settings.low_battery_percent;
      const troubled = kiosk.status !== "online" || kiosk.open_alerts > 0
        || (devicesOf.get(`${kiosk.site}/${kiosk.kiosk}`) || []).some((d) => deviceProblems(d, low).length);
      if (!troubled) return false;
    }
    return true;
  }

  function render() {
    const low = screen.settings.low_battery_percent;
    const devicesOf = new Map();
    for (const device of data.devices) {
      const key = `${device.site}/${device.kiosk}`;
      if (!devicesOf.has(key)) devicesOf.set(key, []);
      devicesOf.get(key).push(device);
    }
    const sites = [...new Set(data.kiosks.map((k) => k.site))].sort();
    const chosen = filters.site;
    fill(siteSelect, el("option", { value: "" }, t.t("filter.all")), sites.map((s) => el("option", { value: s }, s)));
    siteSelect.value = sites.includes(chosen) ? chosen : "";

    // The bridge cannot hear the broker: every kiosk's status is unknown until it can again.
    fill(banner, data.bridge && !data.bridge.broker_connected
      ? el("p", { class: "banner banner-critical" },
        t.t("bridge.deaf", { since: t.dateTime(parseTime(data.bridge.since)) }))
      : null);

    const count = (status) => data.kiosks.filter((k) => k.status === status).length;
    const troubledDevices = data.devices.filter((d) => deviceProblems(d, low).length).length;
    const critical = data.alerts.filter((a) => a.severity === "critical").length;
    fill(summary,
      stat(data.kiosks.length, t.t("summary.kiosks"), "total"),
      stat(count("online"), t.t("summary.online"), "online"),
      stat(count("offline"), t.t("summary.offline"), count("offline") ? "offline" : "zero"),
      count("unknown") ? stat(count("unknown"), t.t("summary.unknown"), "unknown") : null,
      stat(data.alerts.length, t.t("summary.alerts"), data.alerts.length ? "alerts" : "zero"),
      critical ? stat(critical, t.t("summary.critical"), "critical") : null,
      stat(data.devices.length, t.t("summary.devices"), "total"),
      stat(troubledDevices, t.t("summary.device_problems"), troubledDevices ? "alerts" : "zero"),
      data.complete ? null : el("span", { class: "warning" }, t.t("partial", { shown: data.kiosks.length, total: data.totals.kiosks })));

    const kiosks = data.kiosks.filter((k) => kioskShown(k, devicesOf));
    const shownKeys = new Set(kiosks.map((k) => `${k.site}/${k.kiosk}`));
    // An alert follows its kiosk's filter; with more kiosks than were fetched, every alert shows;
    // one about a bridge worker (its broker session taken over) concerns every kiosk and always shows.
    alerts.update(data.alerts.filter((a) => a.site === BRIDGE_SITE || shownKeys.has(`${a.site}/${a.kiosk}`) || !data.complete));
    fill(kioskTable, kioskRows(screen, kiosks, devicesOf));
    const devices = data.devices
      .filter((d) => shownKeys.has(`${d.site}/${d.kiosk}`))
      .filter((d) => !filters.problemsOnly || deviceProblems(d, low).length)
      // Troubled devices first, each kiosk's in address order (the API's order) after that.
      .map((d, index) => ({ d, index, bad: deviceProblems(d, low).length ? 0 : 1 }))
      .sort((a, b) => a.bad - b.bad || a.index - b.index)
      .map(({ d }) => d);
    fill(deviceTable, devicesTable(screen, devices, { withKiosk: true }));
  }

  async function refresh() {
    const [bridge, kiosks, devices, open] = await Promise.all([
      call("bridge"),
      allPages("kiosks"),
      allPages("devices"),
      allPages("alerts", { state: "unresolved" }, 2),
    ]);
    if (screen.stopped) return;
    Object.assign(data, {
      bridge, kiosks: kiosks.items, devices: devices.items, alerts: open.items,
      complete: kiosks.complete, totals: { kiosks: kiosks.total },
    });
    render();
  }

  screen.every(refresh);
}

function stat(value, label, kind) {
  return el("span", { class: `stat stat-${kind}` }, el("strong", {}, String(value)), " ", label);
}

function kioskRows(screen, kiosks, devicesOf) {
  const t = screen.t;
  const low = screen.settings.low_battery_percent;
  const headers = [
    { label: t.t("col.status") }, { label: t.t("col.kiosk") }, { label: t.t("col.last_seen") },
    { label: t.t("col.backlog"), num: true }, { label: t.t("col.runway"), num: true }, { label: t.t("col.outbox"), num: true },
    { label: t.t("col.disk"), num: true },
    { label: t.t("col.cpu"), num: true }, { label: t.t("col.devices") }, { label: t.t("col.config") },
    { label: t.t("col.software") }, { label: t.t("col.alerts"), num: true },
  ];
  const rows = kiosks.map((k) => {
    const devices = devicesOf.get(`${k.site}/${k.kiosk}`) || [];
    const issues = ["offline", "fault", "battery", "bond"]
      .map((problem) => [problem, devices.filter((d) => deviceProblems(d, low).includes(problem)).length])
      .filter(([, n]) => n > 0)
      .map(([problem, n]) => el("span", { class: "issue" }, t.t(`devices.issue.${problem}`, { n })));
    const backlog = k.backlog_records;
    const seen = parseTime(k.last_seen_at);
    const depth = outboxDepthText(t, k);
    const runway = runwayText(screen, k);
    return el("tr", { class: `kiosk-row kiosk-${k.status}`, "data-kiosk": `${k.site}/${k.kiosk}`, "data-status": k.status },
      el("td", {}, statusBadge(t, k.status, k.status_reason)),
      el("td", {}, el("a", { href: kioskHref(k.site, k.kiosk) }, el("span", { class: "site" }, `${k.site}/`), el("strong", {}, k.kiosk))),
      el("td", { title: k.last_seen_at }, t.ago(seen)),
      el("td", { class: `num${backlog > 100 ? " bad" : ""}` },
        backlog === null || backlog === undefined ? "—" : t.t("backlog.records", { n: backlog }),
        k.backlog_oldest_age_s ? el("span", { class: "sub" }, ` ${t.t("backlog.oldest", { age: t.duration(k.backlog_oldest_age_s) })}`) : null,
        depth ? el("div", { class: "sub", "data-testid": "outbox-depth" }, depth) : null),
      el("td", { class: `num${runway.short ? " bad" : ""}`, "data-testid": "runway" }, runway.text),
      el("td", { class: `num${k.health_over_budget ? " bad" : ""}` }, t.bytes(k.outbox_bytes)),
      el("td", { class: "num" }, t.bytes(k.disk_free_bytes)),
      el("td", { class: "num" }, k.cpu_temperature_c === null || k.cpu_temperature_c === undefined ? "—" : `${k.cpu_temperature_c.toFixed(0)} °C`),
      el("td", {}, t.t("devices.count", { n: devices.length }), issues.length ? " " : null, issues),
      el("td", {}, configBadge(t, k)),
      el("td", { "data-testid": "software" }, softwareBadge(t, k)),
      el("td", { class: "num" }, k.open_alerts ? el("span", { class: "badge" }, String(k.open_alerts)) : "0"));
  });
  return table(headers, rows, { empty: t.t("kiosks.none") });
}

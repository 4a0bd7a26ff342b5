// Pieces the fleet and kiosk screens share: status badges, the alerts table with its actions,
// and the devices table.

import { call } from "./api.js";
import { el, fill, parseTime } from "./dom.js";

export const PSEUDONYM = /^[0-9a-f]{64}$/;
/** The "site" of alerts about a bridge worker itself, not a kiosk (cloud_bridge/alert_rules.py
 * BRIDGE_SITE): its `about` is the worker's client id, and it has no kiosk page to link to. */
export const BRIDGE_SITE = "_bridge";

export function kioskHref(site, kiosk) {
  return `#/kiosk/${encodeURIComponent(site)}/${encodeURIComponent(kiosk)}`;
}

/** A pseudonym shortened for a table (it is no one's name; the full one is in its title). */
export function shortPseudonym(pseudonym) {
  return `${pseudonym.slice(0, 8)}…`;
}

export function statusBadge(t, status, reason) {
  return el("span", { class: `status status-${status}`, "data-status": status, title: reason ? t.of("reason", reason) : null },
    el("span", { class: "dot" }), t.of("status", status));
}

/** A kiosk's desired configuration against what it runs (cloud_bridge/desired_config.py,
 * config_state); its reason, if it refused or rolled back, as the title. "—": none desired. */
export function configBadge(t, k) {
  if (k.desired_version === null || k.desired_version === undefined) return "—";
  const bad = k.config_state !== "in_sync";
  return el("span", { class: `config config-${k.config_state}${bad ? " bad" : ""}`, "data-config": k.config_state,
    title: k.config_reason || null },
  t.t("config.versions", { running: k.config_version ?? "?", desired: k.desired_version }), " · ", t.t(`config.${k.config_state}`));
}

/** The Doorstep version a kiosk runs, and its newest update when that is under way or failed
 * (a healthy one is the version it runs). */
export function softwareBadge(t, k) {
  if (!k.software_version) return "—";
  const update = k.update_state && k.update_state !== "healthy" && k.update_version ? k.update_version : null;
  const failed = ["rolled_back", "refused", "failed"].includes(k.update_state);
  return el("span", { class: `software${failed ? " bad" : ""}`, "data-software": k.software_version, title: k.update_reason || null },
    k.software_version,
    update ? el("span", { class: "sub", "data-update": k.update_state }, ` → ${update} · ${t.of("update", k.update_state)}`) : null);
}

export function table(headers, rows, { empty, className } = {}) {
  return el("table", { class: className || "grid-table" },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { class: h.num ? "num" : null }, h.label)))),
    el("tbody", {}, rows.length ? rows : el("tr", { class: "empty" }, el("td", { colspan: headers.length }, empty || "—"))));
}

export function section(title, ...children) {
  return el("section", { class: "panel" }, el("h2", {}, title), ...children);
}

// --- Devices ----------------------------------------------------------------------------------

/** What is wrong with a device, as label keys: offline, fault, battery. */
export function deviceProblems(device, lowBattery) {
  const problems = [];
  if (device.link === "offline" || device.link === "degraded") problems.push("offline");
  if (device.state === "fault" || device.error_code) problems.push("fault");
  if (device.battery_percent !== null && device.battery_percent !== undefined && device.battery_percent <= lowBattery) {
    problems.push("battery");
  }
  if (device.failing_since && BOND_ERRORS.some((code) => (device.error_counts || {})[code])) problems.push("bond");
  return problems;
}

// The codes of a device that refuses the kiosk until paired again (contract/device_errors.py).
const BOND_ERRORS = ["ble_bond_lost", "ble_not_bonded"];

/** A device's fault: a laundry machine's own error code, else the newest failure the kiosk saw
 * (its plain-words message on hover), with the counts since it began while it goes on. */
function deviceError(t, d) {
  if (d.error_code) return el("td", { class: "bad" }, `E${d.error_code} ${t.pick(d.error_text)}`.trim());
  if (!d.last_error_code) return el("td", {}, "—");
  const counts = Object.entries(d.error_counts || {}).map(([code, n]) => `${t.of("deverr", code)} ×${n}`).join("，");
  return el("td", { class: d.failing_since ? "bad" : null, title: d.last_error_message || null },
    t.of("deverr", d.last_error_code),
    d.failing_since && counts
      ? el("div", { class: "count" }, t.t("devices.failing", { since: t.dateTime(parseTime(d.failing_since)), counts }))
      : el("div", { class: "count" }, t.ago(parseTime(d.last_error_at))));
}

export function devicesTable(screen, devices, { withKiosk = false } = {}) {
  const t = screen.t;
  const low = screen.settings.low_battery_percent;
  const headers = [
    ...(withKiosk ? [{ label: t.t("col.kiosk") }] : []),
    { label: t.t("col.address") }, { label: t.t("col.model") }, { label: t.t("col.firmware") },
    { label: t.t("col.link") }, { label: t.t("col.battery"), num: true }, { label: t.t("col.machine") },
    { label: t.t("col.error") }, { label: t.t("col.last_seen") }, { label: t.t("col.last_reading") },
  ];
  const rows = devices.map((d) => {
    const problems = deviceProblems(d, low);
    const battery = d.battery_percent ?? null;
    return el("tr", { class: problems.length ? "problem" : null, "data-device": `${d.site}/${d.kiosk}/${d.address}` },
      withKiosk ? el("td", {}, el("a", { href: kioskHref(d.site, d.kiosk) }, `${d.site}/${d.kiosk}`)) : null,
      el("td", { class: "mono" }, d.address),
      el("td", {}, d.model || "—"),
      el("td", { class: "mono" }, d.firmware || "—"),
      el("td", {}, el("span", { class: `link link-${d.link || "unknown"}` }, t.of("link", d.link || "unknown"))),
      el("td", { class: `num${problems.includes("battery") ? " bad" : ""}` }, battery === null ? "—" : `${battery}%`),
      el("td", {}, d.state ? el("span", { class: `machine machine-${d.state}` }, t.of("machine", d.state)) : "—"),
      deviceError(t, d),
      el("td", { title: d.last_seen_at || null }, t.ago(parseTime(d.last_seen_at))),
      el("td", { title: d.last_reading_at || null }, t.ago(parseTime(d.last_reading_at))));
  });
  return table(headers, rows, { empty: t.t("devices.none") });
}

// --- Alerts -----------------------------------------------------------------------------------

/**
 * The alerts table. While someone is writing a note for an acknowledgement or resolution, the
 * refresh does not rebuild the table (it would take their text and focus away); the newest
 * alerts are shown once they confirm or cancel.
 */
/** An alert's one line in this page's language: the bridge writes it in both (data.title_zh
 * beside the English title; an alert stored before it did has the English only). */
export function alertTitle(t, alert) {
  return t.lang === "en" ? alert.title : (alert.data && alert.data.title_zh) || alert.title;
}

export class AlertsPanel {
  constructor(screen, { withKiosk = true, onChanged }) {
    this.screen = screen;
    this.withKiosk = withKiosk;
    this.onChanged = onChanged;
    this.alerts = [];
    this.editing = null; // {id, action}
    this.node = el("div", { class: "alerts", "data-testid": "alerts" });
  }

  update(alerts) {
    this.alerts = alerts;
    if (!this.editing) this.render();
  }

  render() {
    const t = this.screen.t;
    const headers = [
      { label: t.t("col.severity") }, { label: t.t("col.kind") },
      ...(this.withKiosk ? [{ label: t.t("col.where") }] : []),
      { label: t.t("col.title") }, { label: t.t("col.since") }, { label: t.t("col.state") }, { label: t.t("col.actions") },
    ];
    const rows = [];
    for (const alert of this.alerts) {
      rows.push(this.row(alert));
      if (this.editing && this.editing.id === alert.id) rows.push(this.form(alert, headers.length));
    }
    fill(this.node, table(headers, rows, { empty: t.t("alerts.none"), className: "grid-table alerts-table" }));
  }

  row(alert) {
    const t = this.screen.t;
    const opened = parseTime(alert.opened_at);
    const about = alert.kind === "dangerous_reading" && PSEUDONYM.test(alert.about)
      ? el("a", { href: `#/residents/${alert.about}`, class: "mono", title: alert.about }, t.t("alert.trend"))
      : alert.about ? el("span", { class: "mono about" }, alert.about) : null;
    const manage = this.screen.may("alerts:manage", alert.site);
    const actions = manage ? [
      alert.state === "open" ? el("button", { type: "button", class: "small", "data-action": "acknowledge",
        onclick: () => this.edit(alert.id, "acknowledge") }, t.t("alert.acknowledge")) : null,
      el("button", { type: "button", class: "small", "data-action": "resolve",
        onclick: () => this.edit(alert.id, "resolve") }, t.t("alert.resolve")),
    ] : [];
    return el("tr", { class: `alert-${alert.severity} alert-${alert.state}`, "data-alert": alert.id, "data-kind": alert.kind },
      el("td", {}, el("span", { class: `severity severity-${alert.severity}` }, t.of("severity", alert.severity))),
      el("td", {}, t.of("alertkind", alert.kind)),
      this.withKiosk ? el("td", {}, alert.site === BRIDGE_SITE
        ? el("span", { class: "bridge-worker" }, t.t("alert.bridge_worker", { who: alert.about }))
        : [el("a", { href: kioskHref(alert.site, alert.kiosk) }, `${alert.site}/${alert.kiosk}`), about ? " " : null, about])
        : null,
      el("td", { class: "title-cell" }, alertTitle(t, alert), alert.occurrences > 1 ? el("span", { class: "count" }, ` ×${alert.occurrences}`) : null,
        !this.withKiosk && about ? [" ", about] : null,
        alert.data && alert.data.action ? el("div", { class: "action" }, t.pick(alert.data.action)) : null),
      el("td", { title: alert.opened_at }, t.ago(opened)),
      el("td", {}, alert.state === "acknowledged" && alert.acknowledged_by
        ? t.t("alert.by", { who: alert.acknowledged_by }) : t.of("alertstate", alert.state)),
      el("td", { class: "actions" }, actions));
  }

  edit(id, action) {
    this.editing = { id, action, problem: "" };
    this.render();
    const input = this.node.querySelector("input[name=note]");
    if (input) input.focus();
  }

  form(alert, columns) {
    const t = this.screen.t;
    const note = el("input", { name: "note", maxlength: 2000, placeholder: t.t("alert.note"), class: "note" });
    const problem = el("span", { class: "error" }, this.editing.problem || "");
    const confirm = async (event) => {
      event.preventDefault();
      const { action } = this.editing;
      try {
        await call(`alerts/${alert.id}/${action}`, { method: "POST", body: note.value.trim() ? { note: note.value.trim() } : {} });
      } catch (error) {
        problem.textContent = t.t("alert.failed", { reason: error.message });
        return;
      }
      this.editing = null;
      this.render();
      if (this.onChanged) this.onChanged();
    };
    const cancel = () => { this.editing = null; this.render(); };
    return el("tr", { class: "alert-form" }, el("td", { colspan: columns },
      el("form", { onsubmit: confirm },
        el("strong", {}, t.t(`alert.${this.editing.action}`), " "), note, " ",
        el("button", { type: "submit", class: "small primary", "data-action": "confirm" }, t.t("alert.confirm")), " ",
        el("button", { type: "button", class: "small", onclick: cancel }, t.t("alert.cancel")), " ", problem)));
  }
}

// The outbox's classes as the kiosk's telemetry names them, highest priority first (docs/outbox.md).
const RECORD_CLASSES = ["health", "event", "telemetry"];

/** A kiosk's undelivered records per class, each with its oldest's age: "健康 3 条 最早 5 分钟 · 事件 0 条 …".
 * Null for a kiosk that has not reported them (an older kiosk, or no telemetry yet). */
export function outboxDepthText(t, k) {
  if (!k.outbox_depth) return null;
  return RECORD_CLASSES.filter((c) => k.outbox_depth[c]).map((c) => {
    const { records, oldest_age_s: oldest } = k.outbox_depth[c];
    const count = t.t("depth.class", { class: t.t(`class.${c}`), n: records });
    return oldest ? `${count} ${t.t("backlog.oldest", { age: t.duration(oldest) })}` : count;
  }).join(" · ");
}

/** A kiosk's runway: hours left, "not growing", or "—" (not measured, or an older kiosk), and
 * whether it is under the alert's line (settings.runway_h). */
export function runwayText(screen, k) {
  const t = screen.t;
  if (k.runway_h !== null && k.runway_h !== undefined) {
    return { text: t.t("runway.hours", { h: k.runway_h < 10 ? k.runway_h.toFixed(1) : Math.round(k.runway_h) }),
      short: k.runway_h < screen.settings.runway_h };
  }
  const measured = k.outbox_growth_bytes_per_h !== null && k.outbox_growth_bytes_per_h !== undefined;
  return { text: measured ? t.t("runway.unbounded") : "—", short: false };
}

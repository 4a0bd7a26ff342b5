// One kiosk: its state, alerts, devices, telemetry charts, recent events, (for those who
// may send commands at its site) the command panel with each command's result, and (for
// technicians) its support bundles: ask for one, download those it sent; and its fleet
// configuration: the site's document and the kiosk's own, edited here.

import { ApiError, allPages, apiHref, call } from "./api.js";
import { chartWidth, timeChart } from "./chart.js";
import { el, fill, parseTime } from "./dom.js";
import {
  AlertsPanel, configBadge, devicesTable, outboxDepthText, runwayText, section, softwareBadge, statusBadge, table,
} from "./widgets.js";

const FINAL = new Set(["succeeded", "failed", "refused", "timed_out"]);
const COMMAND_POLL_S = 1; // a command's answer usually comes within a second or two
const TELEMETRY_REFRESH_S = 30; // telemetry arrives once a minute by default
const TELEMETRY_PAGES = 6; // at most 3,000 reports per chart: two days at the agent's default
const CONFIRM_WINDOW_MS = 5000;
const RANGES = { "6h": 6 * 3600e3, "24h": 24 * 3600e3, "7d": 7 * 24 * 3600e3 };
const GENERAL_COMMANDS = ["ping", "status", "reload_config", "flush_outbox", "export_diagnostics"];
// Commands that disturb someone (a restart, a resident's wash) want a second click.
const CONFIRM = new Set(["reload_config", "laundry_stop"]);
const MODBUS_ADDRESS = /^modbus-unit-(\d+)$/;

export function kioskScreen(screen, view, site, kioskId) {
  const t = screen.t;
  const mayCommand = screen.may("commands:send", site);
  const mayBundles = screen.may("support_bundles:read", site);
  const bundles = el("div", { "data-testid": "support-bundles" });
  const head = el("div", { class: "kiosk-head" });
  const facts = el("div", { class: "facts", "data-testid": "facts" });
  // From the newest telemetry report: whether the kiosk's loudspeaker really plays.
  const speech = el("div", { class: "facts", "data-testid": "speech" });
  const alerts = new AlertsPanel(screen, { withKiosk: false, onChanged: () => refresh() });
  const devices = el("div", { "data-testid": "kiosk-devices" });
  const events = el("div", { "data-testid": "events" });
  const charts = el("div", { class: "charts charts-3", "data-testid": "charts" });
  const history = el("div", { "data-testid": "command-history" });
  const commands = new Map(); // request id -> the command as last fetched
  const state = { range: "24h", kiosk: null, panel: null, panelKey: "" };

  const rangeSelect = el("select", { id: "telemetry-range", onchange: () => { state.range = rangeSelect.value; refreshTelemetry(); } },
    Object.keys(RANGES).map((r) => el("option", { value: r }, t.t(`range.${r}`))));
  rangeSelect.value = state.range;
  const panelHolder = el("div", { "data-testid": "command-panel" });

  fill(view,
    el("p", {}, el("a", { href: "#/fleet" }, t.t("kiosk.back"))),
    head,
    facts,
    speech,
    screen.may("fleet:manage", site) ? retireControl(t, site, kioskId) : null,
    section(t.t("kiosk.alerts"), alerts.node),
    mayCommand ? section(t.t("commands.title"), panelHolder) : null,
    section(t.t("commands.history"), history),
    mayBundles ? section(t.t("bundles.title"), el("p", {},
      mayCommand ? el("button", { type: "button", "data-action": "request-support-bundle",
        onclick: () => send("upload_support_bundle", {}) }, t.t("bundles.request")) : null,
      " ", el("span", { class: "sub" }, t.t("bundles.what"))), bundles) : null,
    screen.may("fleet:manage", site) ? section(t.t("config.title"), configEditor(t, site, kioskId, () => refresh())) : null,
    section(t.t("devices.title"), devices),
    el("section", { class: "panel" }, el("h2", {}, t.t("kiosk.telemetry"), " ",
      el("label", { class: "inline" }, t.t("range"), " ", rangeSelect)), charts),
    section(t.t("kiosk.events"), events));

  async function refresh() {
    let kiosk;
    try {
      kiosk = await call(`kiosks/${encodeURIComponent(site)}/${encodeURIComponent(kioskId)}`);
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 403)) {
        // Not (yet) a kiosk, or not one of this person's sites: say so, offer nothing.
        fill(head, el("h1", {}, `${site}/${kioskId}`), el("p", { class: "error", "data-testid": "kiosk-refused" },
          error.status === 404 ? t.t("kiosk.not_found") : `${t.t("forbidden")}: ${error.message}`));
        fill(panelHolder);
        state.panelKey = "";
        return;
      }
      throw error;
    }
    const [open, recent, sent, sentBundles] = await Promise.all([
      call("alerts", { query: { site, kiosk: kioskId, state: "unresolved", limit: 100 } }),
      call("events", { query: { site, kiosk: kioskId, limit: 30 } }),
      call("commands", { query: { site, kiosk: kioskId, limit: 20 } }),
      mayBundles ? call(`kiosks/${encodeURIComponent(site)}/${encodeURIComponent(kioskId)}/support-bundles`) : null,
    ]);
    if (screen.stopped) return;
    state.kiosk = kiosk;
    renderHead(kiosk);
    alerts.update(open.items);
    fill(devices, devicesTable(screen, kiosk.devices));
    fill(events, eventsTable(t, recent.items));
    for (const command of sent.items) {
      const known = commands.get(command.request_id);
      if (!known || !FINAL.has(known.status) || FINAL.has(command.status)) commands.set(command.request_id, command);
    }
    renderHistory();
    if (mayCommand) renderPanel(kiosk.devices);
    if (sentBundles) fill(bundles, bundlesTable(t, sentBundles.items));
  }

  function renderHead(k) {
    fill(head,
      el("h1", {}, el("span", { class: "site" }, `${k.site}/`), k.kiosk, " ", statusBadge(t, k.status, k.status_reason)),
      k.status_reason ? el("p", { class: "sub", "data-testid": "status-reason" }, `${t.t("kiosk.reason")}: ${t.of("reason", k.status_reason)}`) : null);
    const fact = (label, value, bad) => el("div", { class: `fact${bad ? " bad" : ""}` }, el("span", { class: "label" }, label), el("span", { class: "value" }, value));
    const runway = runwayText(screen, k);
    const budget = k.outbox_budget_bytes ? t.t("kiosk.budget", { used: t.bytes(k.outbox_bytes), budget: t.bytes(k.outbox_budget_bytes) }) : t.bytes(k.outbox_bytes);
    fill(facts,
      fact(t.t("col.last_seen"), t.ago(parseTime(k.last_seen_at))),
      fact(t.t("kiosk.first_seen"), t.dateTime(parseTime(k.first_seen_at))),
      fact(t.t("kiosk.uptime"), t.duration(k.uptime_s)),
      // clock_ahead_at: a message dated more than a day ahead of the bridge came (a broken clock).
      fact(t.t("kiosk.clock"), k.clock_ahead_at ? t.t("kiosk.clock.ahead", { ago: t.ago(parseTime(k.clock_ahead_at)) })
        : k.clock_trusted === false ? t.t("kiosk.clock.untrusted") : k.clock_trusted ? t.t("kiosk.clock.trusted") : "—",
      Boolean(k.clock_ahead_at) || k.clock_trusted === false),
      fact(t.t("col.backlog"), k.backlog_records === null || k.backlog_records === undefined ? "—"
        : `${t.t("backlog.records", { n: k.backlog_records })}${k.backlog_oldest_age_s ? ` · ${t.t("backlog.oldest", { age: t.duration(k.backlog_oldest_age_s) })}` : ""}`,
      k.backlog_records > 100),
      fact(t.t("kiosk.undelivered"), outboxDepthText(t, k) || "—"),
      fact(t.t("col.runway"), runway.text + (k.outbox_growth_bytes_per_h > 0
        ? ` · ${t.t("runway.growth", { bytes: t.bytes(k.outbox_growth_bytes_per_h) })}` : ""), runway.short),
      fact(t.t("col.outbox"), k.health_over_budget ? `${budget} · ${t.t("kiosk.over_budget")}` : budget, k.health_over_budget),
      fact(t.t("col.disk"), t.bytes(k.disk_free_bytes)),
      fact(t.t("col.cpu"), k.cpu_temperature_c === null || k.cpu_temperature_c === undefined ? "—" : `${k.cpu_temperature_c.toFixed(1)} °C`),
      fact(t.t("kiosk.seq"), t.t("kiosk.seq.value", { last: k.last_seq, checked: k.seq_checked_through })),
      // Desired against reported; why a version was refused or rolled back, in the kiosk's words.
      fact(t.t("col.config"), el("span", { "data-testid": "config" }, configBadge(t, k),
        k.config_reason && ["refused", "rolled_back"].includes(k.config_state) ? el("span", { class: "sub" }, ` ${k.config_reason}`) : null),
      k.desired_version !== null && k.desired_version !== undefined && k.config_state !== "in_sync"),
      // The version it runs, the one it would roll back to, and its newest update in its own words.
      fact(t.t("col.software"), el("span", { "data-testid": "software" }, softwareBadge(t, k),
        k.software_previous_version ? el("span", { class: "sub" }, ` ${t.t("software.previous", { version: k.software_previous_version })}`) : null,
        k.update_reason ? el("span", { class: "sub" }, ` ${k.update_reason}`) : null),
      ["rolled_back", "refused", "failed"].includes(k.update_state)));
  }

  /** Shown only for a kiosk that speaks (speech_ok null: speech off, or an older kiosk). */
  function renderSpeech(reports) {
    const newest = reports.reduce((a, r) => (a && parseTime(a.kiosk_time) >= parseTime(r.kiosk_time) ? a : r), null);
    const ok = newest ? newest.payload.speech_ok : null;
    if (ok === null || ok === undefined) {
      fill(speech);
      return;
    }
    const value = ok ? t.t("kiosk.speech.ok") : t.t("kiosk.speech.failing", { error: newest.payload.speech_error || "—" });
    fill(speech, el("div", { class: `fact${ok ? "" : " bad"}` },
      el("span", { class: "label" }, t.t("kiosk.speech")), el("span", { class: "value" }, value)));
  }

  // --- Commands ---------------------------------------------------------------------------

  const feedback = el("p", { class: "feedback", "data-testid": "command-feedback", "aria-live": "polite" });

  function renderPanel(kioskDevices) {
    const bluetooth = kioskDevices.filter((d) => !MODBUS_ADDRESS.test(d.address)).map((d) => d.address);
    const units = kioskDevices.map((d) => d.address.match(MODBUS_ADDRESS)).filter(Boolean).map((m) => Number(m[1])).sort((a, b) => a - b);
    const key = JSON.stringify([bluetooth, units]);
    if (key === state.panelKey) return; // rebuilt only when the devices change: keeps choices
    state.panelKey = key;
    const deviceSelect = el("select", { id: "command-device" }, bluetooth.map((a) => el("option", { value: a }, a)));
    const unitSelect = el("select", { id: "command-unit" }, units.map((u) => el("option", { value: u }, t.t("commands.unit", { n: u }))));
    const button = (command, args, what) => {
      const node = el("button", { type: "button", "data-command": command }, what);
      let armed = 0;
      node.addEventListener("click", () => {
        if (CONFIRM.has(command) && Date.now() - armed > CONFIRM_WINDOW_MS) {
          armed = Date.now();
          node.textContent = t.t("commands.confirm", { what });
          node.classList.add("armed");
          setTimeout(() => { node.textContent = what; node.classList.remove("armed"); }, CONFIRM_WINDOW_MS);
          return;
        }
        armed = 0;
        node.textContent = what;
        node.classList.remove("armed");
        send(command, args());
      });
      return node;
    };
    fill(panelHolder,
      el("div", { class: "command-group" }, el("span", { class: "group-label" }, t.t("commands.general")),
        GENERAL_COMMANDS.map((c) => button(c, () => ({}), t.t(`cmd.${c}`)))),
      el("div", { class: "command-group" }, el("span", { class: "group-label" }, t.t("commands.device")),
        bluetooth.length ? [deviceSelect, button("reconnect_device", () => ({ address: deviceSelect.value }), t.t("cmd.reconnect_device"))]
          : el("span", { class: "sub" }, t.t("commands.no_devices"))),
      el("div", { class: "command-group" }, el("span", { class: "group-label" }, t.t("commands.laundry")),
        units.length ? [unitSelect,
          button("laundry_stop", () => ({ unit: Number(unitSelect.value) }), t.t("cmd.laundry_stop")),
          button("laundry_clear_fault", () => ({ unit: Number(unitSelect.value) }), t.t("cmd.laundry_clear_fault"))]
          : el("span", { class: "sub" }, t.t("commands.no_machines")),
        units.length ? el("span", { class: "sub" }, t.t("commands.start_note")) : null),
      feedback);
  }

  async function send(command, args) {
    feedback.textContent = "";
    let created;
    try {
      created = await call(`kiosks/${encodeURIComponent(site)}/${encodeURIComponent(kioskId)}/commands`,
        { method: "POST", body: { command, args } });
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) { screen.app.sessionEnded(); return; }
      feedback.textContent = t.t("commands.refused_here", { reason: error.message });
      return;
    }
    commands.set(created.request_id, created);
    renderHistory();
    follow(created.request_id);
  }

  /** GET /api/v1/commands/{id} every second until the command's status is final. */
  async function follow(requestId) {
    while (!screen.stopped) {
      await new Promise((resolve) => setTimeout(resolve, COMMAND_POLL_S * 1000));
      if (screen.stopped) return;
      try {
        const command = await call(`commands/${encodeURIComponent(requestId)}`);
        commands.set(requestId, command);
        renderHistory();
        if (FINAL.has(command.status)) return;
      } catch (error) {
        if (error instanceof ApiError && error.status === 401) { screen.app.sessionEnded(); return; }
        // A network hiccup: try again at the next tick.
      }
    }
  }

  function renderHistory() {
    const rows = [...commands.values()]
      .sort((a, b) => (b.issued_at > a.issued_at ? 1 : b.issued_at < a.issued_at ? -1 : 0))
      .slice(0, 20)
      .map((c) => el("tr", { "data-request-id": c.request_id, "data-command-status": c.status },
        el("td", { title: c.issued_at }, t.time(parseTime(c.issued_at))),
        el("td", {}, t.of("cmd", c.command)),
        el("td", { class: "mono" }, describeArgs(t, c.args)),
        el("td", {}, c.issued_by),
        el("td", {}, el("span", { class: `cmd cmd-${c.status}` }, t.of("cmdstatus", c.status))),
        el("td", { class: "result" }, c.detail || "", resultData(t, c.data))));
    fill(history, table([
      { label: t.t("col.time") }, { label: t.t("col.command") }, { label: t.t("col.args") },
      { label: t.t("col.issued_by") }, { label: t.t("col.status") }, { label: t.t("col.result") },
    ], rows, { empty: t.t("commands.none") }));
  }

  // --- Telemetry ----------------------------------------------------------------------------

  async function refreshTelemetry() {
    const to = new Date();
    const from = new Date(to.getTime() - RANGES[state.range]);
    const reports = await allPages("telemetry", { site, kiosk: kioskId, since: from.toISOString() }, TELEMETRY_PAGES);
    if (screen.stopped) return;
    renderSpeech(reports.items);
    const points = (pick) => reports.items.map((r) => ({ t: parseTime(r.kiosk_time), v: pick(r.payload) }))
      .filter((p) => p.t && Number.isFinite(p.v));
    const mb = 1024 ** 2;
    const gb = 1024 ** 3;
    const budgets = reports.items.map((r) => r.payload.outbox_budget_bytes).filter(Number.isFinite);
    const outbox = points((p) => p.outbox_bytes / mb);
    const budget = budgets.length ? budgets[0] / mb : null;
    // The budget is drawn once the outbox is half way there; below that it would flatten the line.
    const nearBudget = budget !== null && outbox.some((p) => p.v > budget / 2);
    const lang = t.lang;
    const columns = window.matchMedia("(min-width: 1100px)").matches ? 3 : 1;
    const width = chartWidth(charts, columns);
    fill(charts,
      timeChart({
        title: t.t("chart.backlog"), from, to, lang, width, emptyText: t.t("chart.empty"), height: 200,
        series: ["health", "event"].map((cls) => ({
          key: cls, label: t.t(`series.${cls}`), points: points((p) => p.outbox && p.outbox[cls] ? p.outbox[cls].records : NaN),
        })),
      }),
      timeChart({
        title: t.t("chart.outbox"), from, to, lang, width, emptyText: t.t("chart.empty"), height: 200,
        yMax: nearBudget ? Math.max(budget * 1.1, ...outbox.map((p) => p.v * 1.1)) : undefined,
        bands: nearBudget ? [{ key: "over_budget", label: t.t("band.over_budget"), from: budget, below: null }] : [],
        series: [{ key: "outbox", label: t.t("series.outbox"), points: outbox }],
      }),
      timeChart({
        title: t.t("chart.disk"), from, to, lang, width, zero: false, emptyText: t.t("chart.empty"), height: 200,
        series: [{ key: "disk", label: t.t("series.disk"), points: points((p) => (p.disk_free_bytes ?? NaN) / gb) }],
      }),
      reports.complete ? null : el("p", { class: "sub" }, t.t("partial", { shown: reports.items.length, total: reports.total })));
  }

  screen.every(refresh);
  screen.every(refreshTelemetry, Math.max(TELEMETRY_REFRESH_S, screen.settings.refresh_s));
}

function describeArgs(t, args) {
  const entries = Object.entries(args || {});
  if (entries.length === 0) return "—";
  return entries.map(([name, value]) => (name === "unit" ? t.t("commands.unit", { n: value }) : `${name}: ${value}`)).join(", ");
}

/** Take the kiosk off the fleet (a test kiosk, one taken away), with a second click to confirm:
 * its readings stay, and it is listed again if it sends again. */
function retireControl(t, site, kioskId) {
  let armed = 0;
  const problem = el("span", { class: "error", role: "alert" });
  const button = el("button", { type: "button", class: "small", "data-action": "retire", onclick: retire }, t.t("kiosk.retire"));
  async function retire() {
    if (Date.now() - armed > CONFIRM_WINDOW_MS) {
      armed = Date.now();
      button.textContent = t.t("kiosk.retire.confirm");
      button.classList.add("armed");
      setTimeout(() => { button.textContent = t.t("kiosk.retire"); button.classList.remove("armed"); }, CONFIRM_WINDOW_MS);
      return;
    }
    button.disabled = true;
    try {
      await call(`kiosks/${encodeURIComponent(site)}/${encodeURIComponent(kioskId)}`, { method: "DELETE" });
      window.location.hash = "#/fleet";
    } catch (error) {
      button.disabled = false;
      problem.textContent = t.t("alert.failed", { reason: error.message });
    }
  }
  return el("p", { class: "retire", "data-testid": "retire" }, button, " ", el("span", { class: "sub" }, t.t("kiosk.retire.what")), " ", problem);
}

/** The site's and the kiosk's configuration documents (docs/configuration.md, "Fleet
 * configuration") as JSON, each saved whole with PUT; a refused one shows every problem, by
 * field, as the API gives them, and nothing changes. Loaded once: a refresh of the page's
 * facts must not undo what someone is typing. */
function configEditor(t, site, kioskId, onSaved) {
  const node = el("div", { class: "config-editor", "data-testid": "config-editor" });
  const paths = {
    site: `sites/${encodeURIComponent(site)}/config`,
    kiosk: `kiosks/${encodeURIComponent(site)}/${encodeURIComponent(kioskId)}/config`,
  };
  const editor = (which, document) => {
    const text = el("textarea", { rows: 8, spellcheck: "false", "data-config-document": which },
      JSON.stringify(document, null, 2));
    const outcome = el("div", { class: "feedback", "data-testid": `config-outcome-${which}`, "aria-live": "polite" });
    const save = async () => {
      fill(outcome);
      let document;
      try {
        document = JSON.parse(text.value.trim() || "{}");
      } catch (error) {
        fill(outcome, el("p", { class: "error" }, t.t("config.not_json", { reason: error.message })));
        return;
      }
      try {
        const answer = await call(paths[which], { method: "PUT", body: document });
        fill(outcome, el("p", {}, answer.changed.length
          ? t.t("config.saved", { versions: answer.changed.map((c) => `${c.kiosk} v${c.version}`).join(", ") })
          : t.t("config.unchanged")));
        onSaved();
      } catch (error) {
        const problems = (error.body && (error.body.problems || (error.body.detail && error.body.detail.problems))) || [error.message];
        fill(outcome, el("p", { class: "error" }, t.t("config.refused")),
          el("ul", { class: "error" }, problems.map((problem) => el("li", {}, problem))));
      }
    };
    return el("div", { class: "config-document" },
      el("h3", {}, t.t(`config.${which}`)), text,
      el("p", {}, el("button", { type: "button", "data-action": `save-config-${which}`, onclick: save }, t.t("config.save"))),
      outcome);
  };
  call(paths.kiosk).then((current) => {
    fill(node, el("p", { class: "sub" }, t.t("config.what")),
      editor("site", current.site_document), editor("kiosk", current.kiosk_document));
  }, (error) => fill(node, el("p", { class: "error" }, error.message)));
  return node;
}

/** A kiosk's support bundles, newest first, each a link that downloads its archive. */
function bundlesTable(t, items) {
  const rows = items.map((b) => el("tr", { "data-bundle": b.request_id },
    el("td", { title: b.received_at }, t.dateTime(parseTime(b.received_at))),
    el("td", {}, b.requested_by),
    el("td", {}, t.bytes(b.size_bytes)),
    el("td", {}, b.logs_truncated ? t.t("bundles.logs_cut", { bytes: t.bytes(b.manifest.logs_omitted_bytes) }) : t.t("bundles.logs_whole")),
    el("td", {}, el("a", { href: apiHref(`support-bundles/${encodeURIComponent(b.request_id)}/download`), download: "" },
      t.t("bundles.download")))));
  return table([{ label: t.t("col.time") }, { label: t.t("col.issued_by") }, { label: t.t("bundles.size") },
    { label: t.t("bundles.logs") }, { label: "" }], rows, { empty: t.t("bundles.none") });
}

function resultData(t, data) {
  if (!data || Object.keys(data).length === 0) return null;
  return el("details", {}, el("summary", {}, t.t("cmd.data")), el("pre", {}, JSON.stringify(data, null, 2)));
}

function eventsTable(t, items) {
  const rows = items.map((e) => el("tr", { "data-event": e.type },
    el("td", { title: e.kiosk_time }, t.dateTime(parseTime(e.kiosk_time))),
    el("td", {}, t.of("event", e.type)),
    el("td", { class: "mono" }, e.device_address || "—"),
    el("td", {}, describeEvent(t, e))));
  return table([{ label: t.t("col.time") }, { label: t.t("col.type") }, { label: t.t("col.address") }, { label: t.t("col.summary") }],
    rows, { empty: t.t("events.none") });
}

/** One line per event, in words. A resident's pseudonym is never shown here: staff and
 * technicians have no use for it, and the fewer places it appears the better. */
function describeEvent(t, event) {
  const p = event.payload || {};
  if (event.type === "laundry_machine") {
    return [t.t("event.machine", { unit: p.unit, state: t.of("machine", p.state) }),
      p.remaining_seconds ? `, ${t.t("event.remaining", { min: Math.ceil(p.remaining_seconds / 60) })}` : "",
      p.error_code ? ` · E${p.error_code} ${t.pick(p.error_text)}` : "",
      p.link && p.link !== "online" ? ` · ${t.of("link", p.link)}${p.link_error ? ` (${p.link_error})` : ""}` : ""].join("");
  }
  if (event.type === "laundry_vend") {
    return [t.t("event.vend", { unit: p.unit, program: p.program, outcome: t.of("vend", p.outcome) }),
      p.points_charged ? ` · ${t.t("event.points", { n: p.points_charged })}` : "",
      p.free_reason === "over_80" ? ` · ${t.t("event.free")}` : "",
      p.reason ? ` · ${p.reason}` : ""].join("");
  }
  if (event.type === "relay_checkin") {
    return t.t("event.checkin", { method: t.of("relaymethod", p.method), inside: p.inside });
  }
  if (event.type === "relay_checkout") {
    return p.reason === "expired"
      ? t.t("event.expired", { inside: p.inside })
      : t.t("event.checkout", { method: t.of("relaymethod", p.method), stay: t.duration(p.stay_s), inside: p.inside });
  }
  if (event.type === "staff_called") {
    // The service the screen belongs to (its name's first part, as the bridge's alert says it).
    const area = String(p.screen || "").split("-")[0];
    return t.t("event.staff_called.screen", { area: t.t(t.has(`screenarea.${area}`) ? `screenarea.${area}` : "screenarea.other") });
  }
  // An event type this page does not know (a newer kiosk's): its type only. Its payload may
  // hold something about a person that this page has not been taught to leave out.
  return "";
}

// For the family doctor: a resident's blood pressure over time, by pseudonym, with the
// guideline's bands (GET /api/v1/dashboard/settings) drawn behind. The bridge holds only
// pseudonyms; nothing here asks for or shows who a resident is.

import { allPages, call } from "./api.js";
import { chartWidth, timeChart } from "./chart.js";
import { el, fill, parseTime } from "./dom.js";
import { PSEUDONYM, kioskHref, section, shortPseudonym, table } from "./widgets.js";

const RANGES = { "30d": 30, "90d": 90, "1y": 365, all: null };
const READING_PAGES = 10; // 5,000 readings: years of daily measurements

/** A reading's pressures in mmHg and its category, as the bridge judged them by the one rule
 * (contract/clinical.py): the page neither converts units nor categorises, so it cannot
 * disagree with the kiosk or the alert. Null where a cuff sent a special value; no category for
 * a suspect reading. */
export function meaningOf(reading) {
  const meaning = reading.blood_pressure || {};
  const round = (v) => (v === null || v === undefined ? null : Math.round(v));
  return { systolic: round(meaning.systolic_mmhg), diastolic: round(meaning.diastolic_mmhg),
    category: meaning.category || null, dangerous: meaning.dangerous === true };
}

export function residentsScreen(screen, view, pseudonym) {
  const t = screen.t;
  const guideline = screen.settings.blood_pressure;
  const input = el("input", { id: "pseudonym", class: "mono wide", value: pseudonym || "", maxlength: 64,
    placeholder: t.t("residents.pseudonym"), autocomplete: "off", spellcheck: "false" });
  const problem = el("span", { class: "error", id: "pseudonym-error", role: "alert" });
  const body = el("div");
  const open = (event) => {
    event.preventDefault();
    const value = input.value.trim().toLowerCase();
    if (!PSEUDONYM.test(value)) {
      problem.textContent = t.t("residents.invalid");
      return;
    }
    window.location.hash = `#/residents/${value}`;
  };
  fill(view,
    el("h1", {}, t.t("residents.title")),
    el("form", { class: "search", onsubmit: open }, el("label", { for: "pseudonym" }, t.t("residents.pseudonym")), " ",
      input, " ", el("button", { type: "submit", class: "primary" }, t.t("residents.open")), " ", problem),
    el("p", { class: "sub privacy" }, t.t("residents.privacy")),
    body);

  if (!pseudonym) {
    recentResidents(screen, body);
    return;
  }
  if (!PSEUDONYM.test(pseudonym)) {
    problem.textContent = t.t("residents.invalid");
    return;
  }
  oneResident(screen, body, pseudonym, guideline);
}

function recentResidents(screen, body) {
  const t = screen.t;
  screen.every(async () => {
    const answer = await call("readings", { query: { kind: "blood_pressure", limit: 500 } });
    if (screen.stopped) return;
    const residents = new Map();
    for (const reading of answer.items) {
      if (!reading.subject) continue; // measured without saving to a record
      const entry = residents.get(reading.subject) || { latest: reading, count: 0 };
      entry.count += 1;
      residents.set(reading.subject, entry);
    }
    const rows = [...residents.entries()].map(([subject, { latest, count }]) => {
      const { systolic, diastolic, category } = meaningOf(latest);
      return el("tr", { "data-subject": subject },
        el("td", {}, el("a", { href: `#/residents/${subject}`, class: "mono", title: subject }, shortPseudonym(subject))),
        el("td", { class: "num" }, String(count)),
        el("td", { class: "num" }, `${systolic ?? "—"}/${diastolic ?? "—"}`),
        el("td", {}, category ? el("span", { class: `category category-${category}` }, t.of("category", category)) : "—"),
        el("td", { title: latest.kiosk_time }, t.ago(parseTime(latest.kiosk_time))),
        el("td", {}, `${latest.site}/${latest.kiosk}`));
    });
    fill(body, section(t.t("residents.recent"), table([
      { label: t.t("col.pseudonym") }, { label: t.t("col.readings"), num: true }, { label: "mmHg", num: true },
      { label: t.t("col.category") }, { label: t.t("col.last_reading") }, { label: t.t("col.kiosk") },
    ], rows, { empty: t.t("residents.none") })));
  });
}

function oneResident(screen, body, pseudonym, guideline) {
  const t = screen.t;
  const state = { range: "90d" };
  const rangeSelect = el("select", { id: "reading-range", onchange: () => { state.range = rangeSelect.value; load(); } },
    Object.keys(RANGES).map((r) => el("option", { value: r }, t.t(`range.${r}`))));
  rangeSelect.value = state.range;
  const summary = el("p", { "data-testid": "reading-summary" });
  const charts = el("div", { class: "charts charts-2", "data-testid": "bp-charts" });
  const readings = el("div", { "data-testid": "readings" });
  const veryHigh = guideline.bands.find((b) => b.category === "very_high") || {};
  const line = guideline.dangerous_reading;
  fill(body,
    el("h2", { class: "mono pseudonym", "data-testid": "pseudonym" }, pseudonym),
    el("div", { class: "filters" }, el("label", {}, t.t("range"), " ", rangeSelect), summary),
    charts,
    el("p", { class: "sub", "data-testid": "guideline" },
      t.t("guideline.source", { name: guideline.guideline, s: veryHigh.systolic_from, d: veryHigh.diastolic_from,
        as: line.systolic, ad: line.diastolic })),
    section(t.t("residents.readings"), readings));

  async function load() {
    const days = RANGES[state.range];
    const to = new Date();
    const from = days ? new Date(to.getTime() - days * 86400e3) : null;
    const answer = await allPages("readings", {
      subject: pseudonym, kind: "blood_pressure", since: from ? from.toISOString() : null,
    }, READING_PAGES);
    if (screen.stopped) return;
    const points = answer.items.map((r) => ({ reading: r, at: parseTime(r.kiosk_time), ...meaningOf(r) }))
      .filter((p) => p.at);
    const latest = points[0];
    fill(summary, points.length
      ? t.t("residents.summary", { n: answer.total, latest: `${latest.systolic ?? "—"}/${latest.diastolic ?? "—"} mmHg · ${t.dateTime(latest.at)}` })
      : t.t("residents.none"));
    const start = from || (points.length ? new Date(Math.min(...points.map((p) => p.at.getTime())) - 86400e3) : null);
    const width = chartWidth(charts, window.matchMedia("(min-width: 1100px)").matches ? 2 : 1);
    const chartOf = (which, title, lo, hi) => {
      const values = points.map((p) => p[which]).filter((v) => v !== null);
      return timeChart({
        title, from: start, to, lang: t.lang, width, emptyText: t.t("chart.empty"), height: 260,
        yMin: Math.min(lo, ...values.map((v) => v - 10)), yMax: Math.max(hi, ...values.map((v) => v + 10)),
        bands: guideline.bands.map((b) => ({ key: b.category, label: t.of("category", b.category),
          from: b[`${which}_from`], below: b[`${which}_below`] })),
        series: [{ key: which, label: title, points: points.filter((p) => p[which] !== null).map((p) => ({
          t: p.at, v: p[which], title: `${t.dateTime(p.at)}  ${p.systolic ?? "—"}/${p.diastolic ?? "—"} mmHg`,
        })) }],
      });
    };
    fill(charts,
      chartOf("systolic", t.t("chart.systolic"), 90, 200),
      chartOf("diastolic", t.t("chart.diastolic"), 50, 130),
      answer.complete ? null : el("p", { class: "sub" }, t.t("partial", { shown: answer.items.length, total: answer.total })));
    fill(readings, readingsTable(t, points));
  }

  screen.every(load);
}

function readingsTable(t, points) {
  const rows = points.map((p) => {
    const r = p.reading;
    const payload = r.payload;
    const category = p.category;
    const notes = [
      ...(p.dangerous ? [t.t("flag.dangerous")] : []),
      ...(payload.status || []).map((s) => t.of("bpstatus", s)),
      ...(payload.suspect && payload.suspect.length
        ? [t.t("flag.suspect", { why: payload.suspect.map((code) => t.of("suspect", code)).join(t.lang === "en" ? "; " : "；") })]
        : []),
      ...(r.kiosk_clock_trusted ? [] : [t.t("flag.clock")]),
      ...(payload.unit === "kPa" ? [t.t("flag.kpa")] : []),
    ];
    return el("tr", { "data-reading": r.message_id, "data-category": category || "" },
      el("td", { title: r.kiosk_time }, t.dateTime(p.at)),
      el("td", { class: "num" }, p.systolic ?? "—"),
      el("td", { class: "num" }, p.diastolic ?? "—"),
      el("td", { class: "num" }, payload.pulse_rate === null || payload.pulse_rate === undefined ? "—" : Math.round(payload.pulse_rate)),
      el("td", {}, category ? el("span", { class: `category category-${category}` }, t.of("category", category)) : "—"),
      el("td", {}, el("a", { href: kioskHref(r.site, r.kiosk) }, `${r.site}/${r.kiosk}`)),
      el("td", { class: notes.length ? "warn" : null }, notes.join("；")));
  });
  return table([
    { label: t.t("col.time") }, { label: t.t("col.systolic"), num: true }, { label: t.t("col.diastolic"), num: true },
    { label: t.t("col.pulse"), num: true }, { label: t.t("col.category") }, { label: t.t("col.kiosk") }, { label: t.t("col.flags") },
  ], rows, { empty: t.t("residents.none") });
}

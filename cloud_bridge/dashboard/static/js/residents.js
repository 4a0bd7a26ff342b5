// For the family doctor: find a resident by card, QR code or pseudonym; the site's residents
// with the dangerous and rising first; one resident's home averages (GET /api/v1/residents/…),
// blood pressure over time with the guideline's bands (GET /api/v1/dashboard/settings) drawn
// behind, and the printed report. The bridge holds only pseudonyms; a card number typed here is
// sent once in a POST body and forgotten, and nothing here shows who a resident is.

import { ApiError, allPages, apiHref, call } from "./api.js";
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

/** #/residents (the doctor's home: find a resident, then the site's residents, the worrying
 * ones first), #/residents/{pseudonym} (at the doctor's own site) or #/residents/{site}/{pseudonym}. */
export function residentsScreen(screen, view, first, second) {
  const t = screen.t;
  const guideline = screen.settings.blood_pressure;
  const site = second === undefined ? screen.me.site : first;
  const pseudonym = second === undefined ? first : second;
  const body = el("div");
  fill(view,
    el("h1", {}, t.t(pseudonym ? "residents.title" : "residents.home")),
    findForm(screen),
    el("p", { class: "sub privacy" }, t.t("residents.privacy")),
    body);
  if (!pseudonym) {
    siteResidents(screen, body);
    return;
  }
  if (!PSEUDONYM.test(pseudonym) || !site) {
    fill(body, el("p", { class: "error", role: "alert" }, t.t("residents.invalid")));
    return;
  }
  oneResident(screen, body, site, pseudonym, guideline);
}

/** A card number, a resident's QR code (a scanner types it, then Enter) or a pseudonym. The card
 * number goes to the bridge in a POST body only, and the field is emptied once it is sent: it is
 * in no address, no history and no access log. */
function findForm(screen) {
  const t = screen.t;
  const input = el("input", { id: "find-resident", class: "mono wide", maxlength: 200, type: "text",
    placeholder: t.t("residents.find.placeholder"), autocomplete: "off", spellcheck: "false" });
  const problem = el("span", { class: "error", id: "find-resident-error", role: "alert" });
  const find = async (event) => {
    event.preventDefault();
    const typed = input.value.trim();
    input.value = "";
    problem.textContent = "";
    if (!typed) return;
    if (PSEUDONYM.test(typed.toLowerCase())) {
      window.location.hash = `#/residents/${typed.toLowerCase()}`;
      return;
    }
    try {
      const found = await call("residents/lookup", { method: "POST", body: { card_or_code: typed } });
      window.location.hash = `#/residents/${found.site}/${found.pseudonym}`;
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) problem.textContent = t.t("residents.find.none");
      else if (error instanceof ApiError && error.status === 422) problem.textContent = t.t("residents.find.invalid");
      else problem.textContent = t.t("error", { reason: error.message });
    }
  };
  const may = screen.may("residents:find");
  return el("form", { class: "search", onsubmit: find, "data-testid": "find-resident" },
    el("label", { for: "find-resident" }, t.t(may ? "residents.find" : "residents.pseudonym")), " ",
    input, " ", el("button", { type: "submit", class: "primary" }, t.t("residents.open")), " ", problem);
}

function averageText(mean) {
  return mean ? `${Math.round(mean.systolic_mmhg)}/${Math.round(mean.diastolic_mmhg)}` : "—";
}

function categoryBadge(t, category) {
  return category ? el("span", { class: `category category-${category}` }, t.of("category", category)) : "—";
}

/** The site's residents from GET /api/v1/residents: dangerous first, then rising, then recent. */
function siteResidents(screen, body) {
  const t = screen.t;
  screen.every(async () => {
    const answer = await call("residents", { query: { limit: 500 } });
    if (screen.stopped) return;
    const rows = answer.items.map((r) => {
      const average = r.average || {};
      const flags = [r.dangerous ? t.t("residents.dangerous") : null, r.rising ? t.t("residents.rising") : null]
        .filter(Boolean).join("；");
      return el("tr", { "data-subject": r.pseudonym, "data-dangerous": String(r.dangerous), "data-rising": String(r.rising) },
        el("td", {}, el("a", { href: `#/residents/${r.site}/${r.pseudonym}`, class: "mono", title: r.pseudonym },
          shortPseudonym(r.pseudonym))),
        el("td", { class: flags ? "warn" : null }, flags || "—"),
        el("td", { class: "num" }, averageText(average.overall)),
        el("td", {}, categoryBadge(t, average.category)),
        el("td", { class: "num" }, String(r.readings)),
        el("td", { title: r.last_reading_at }, t.ago(parseTime(r.last_reading_at))),
        el("td", {}, r.site));
    });
    fill(body, section(t.t("residents.recent"), table([
      { label: t.t("col.pseudonym") }, { label: t.t("col.trend") }, { label: t.t("col.average"), num: true },
      { label: t.t("col.category") }, { label: t.t("col.readings"), num: true }, { label: t.t("col.last_reading") },
      { label: t.t("col.site") },
    ], rows, { empty: t.t("residents.none") })));
  });
}

/** The home averages of cloud_bridge/averages.py, as the report prints them. */
function averagesBox(t, summary) {
  const average = summary.average;
  if (!average || !average.overall) return el("p", { "data-testid": "averages" }, t.t("averages.none"));
  const line = (label, mean) => el("tr", {}, el("th", {}, label), el("td", { class: "num" }, averageText(mean)),
    el("td", { class: "num" }, mean ? String(mean.readings) : "0"));
  return el("div", { "data-testid": "averages", "data-category": average.category || "" },
    el("p", {}, t.t("averages.period", { from: average.first_day, to: average.last_day }), " ",
      categoryBadge(t, average.category),
      summary.dangerous ? el("span", { class: "warn" }, " ", t.t("residents.dangerous")) : null,
      summary.rising ? el("span", { class: "warn" }, " ", t.t("residents.rising")) : null),
    el("table", { class: "averages" },
      el("tr", {}, el("th", {}), el("th", {}, "mmHg"), el("th", {}, t.t("col.readings"))),
      line(t.t("averages.overall"), average.overall), line(t.t("averages.morning"), average.morning),
      line(t.t("averages.evening"), average.evening),
      summary.before && summary.before.overall ? line(t.t("averages.before"), summary.before.overall) : null),
    average.enough ? null : el("p", { class: "sub" }, t.t("averages.few")),
    average.left_out_unreliable ? el("p", { class: "sub" }, t.t("averages.left_out", { n: average.left_out_unreliable })) : null,
    el("p", { class: "sub" }, t.t("averages.rule")));
}

function oneResident(screen, body, site, pseudonym, guideline) {
  const t = screen.t;
  const state = { range: "90d" };
  const rangeSelect = el("select", { id: "reading-range", onchange: () => { state.range = rangeSelect.value; load(); } },
    Object.keys(RANGES).map((r) => el("option", { value: r }, t.t(`range.${r}`))));
  rangeSelect.value = state.range;
  const summary = el("p", { "data-testid": "reading-summary" });
  const averages = el("div");
  const charts = el("div", { class: "charts charts-2", "data-testid": "bp-charts" });
  const readings = el("div", { "data-testid": "readings" });
  const veryHigh = guideline.bands.find((b) => b.category === "very_high") || {};
  const line = guideline.dangerous_reading;
  fill(body,
    el("h2", { class: "mono pseudonym", "data-testid": "pseudonym" }, pseudonym),
    el("p", {}, el("a", { class: "button primary", href: apiHref(`residents/${site}/${pseudonym}/report.pdf`),
      target: "_blank", rel: "noopener", "data-testid": "report" }, t.t("residents.report"))),
    section(t.t("averages.title"), averages),
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
    const [answer, found] = await Promise.all([
      allPages("readings", { site, subject: pseudonym, kind: "blood_pressure", since: from ? from.toISOString() : null },
        READING_PAGES),
      call(`residents/${site}/${pseudonym}`).catch((error) => {
        if (error instanceof ApiError && error.status === 404) return null;
        throw error;
      }),
    ]);
    if (screen.stopped) return;
    fill(averages, found ? averagesBox(t, found) : el("p", { "data-testid": "averages" }, t.t("averages.none")));
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

// Line charts over time, drawn as inline SVG: no library, nothing fetched. Colours come from
// classes in dashboard.css (series s0, s1, … and bands band-<name>).

import { el, svg } from "./dom.js";

const DEFAULT_WIDTH = 760;
const MARGIN = { left: 46, right: 16, top: 10, bottom: 24 };
const BAND_LABELS = 104; // room on the right for the bands' names
const MAX_MARKERS = 240; // past this many points a series is a line without dots

const MINUTE = 60e3;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const TIME_STEPS = [MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY,
  2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 91 * DAY, 182 * DAY, 365 * DAY];

/** About `count` round values covering [lo, hi]. */
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toFixed(10)));
  return ticks;
}

function timeTicks(t0, t1) {
  const step = TIME_STEPS.find((s) => (t1 - t0) / s <= 6) || TIME_STEPS[TIME_STEPS.length - 1];
  // Whole steps in local time for steps of a day or more, so ticks fall on midnights.
  const offset = step >= DAY ? new Date(t0).getTimezoneOffset() * MINUTE : 0;
  const ticks = [];
  for (let t = Math.ceil((t0 - offset) / step) * step + offset; t <= t1; t += step) ticks.push(t);
  return ticks;
}

function timeLabel(t, span, lang) {
  const date = new Date(t);
  if (span <= 36 * HOUR) return date.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit", hour12: false });
  return date.toLocaleDateString(lang, { month: "2-digit", day: "2-digit" });
}

/** The width in px each of `columns` charts gets in `holder` (its viewBox: text stays at its
 * CSS size instead of shrinking with the picture). */
export function chartWidth(holder, columns) {
  const available = holder.getBoundingClientRect().width || DEFAULT_WIDTH * columns;
  return Math.floor((available - 10 * (columns - 1)) / columns) - 18; // grid gap, figure padding and border
}

/**
 * A chart of `series` ([{key, label, points: [{t: Date, v: number, title}]}]) over [from, to],
 * with horizontal `bands` ([{key, label, from, below}], null = open-ended) drawn behind.
 */
export function timeChart({
  title, series, bands = [], from, to, yMin, yMax, zero = true, height = 200, width = DEFAULT_WIDTH, emptyText, lang,
}) {
  const WIDTH = Math.max(320, Math.round(width));
  const values = series.flatMap((s) => s.points.map((p) => p.v)).filter((v) => Number.isFinite(v));
  const times = series.flatMap((s) => s.points.map((p) => p.t.getTime()));
  let t0 = from ? from.getTime() : Math.min(...times);
  let t1 = to ? to.getTime() : Math.max(...times);
  if (!Number.isFinite(t0) || !Number.isFinite(t1)) { t1 = Date.now(); t0 = t1 - DAY; }
  if (t1 - t0 < MINUTE) { t0 -= HOUR; t1 += HOUR; }
  // From zero for counts; for levels such as free disk, around the values so a trend shows.
  const spread = values.length ? Math.max(...values) - Math.min(...values) : 0;
  let lo = yMin ?? (zero ? Math.min(...values, 0) : Math.min(...values) - Math.max(spread * 0.2, Math.abs(Math.min(...values)) * 0.05));
  let hi = yMax ?? Math.max(...values, zero ? 1 : -Infinity);
  if (yMax === undefined && values.length) hi += Math.max((hi - lo) * 0.1, zero ? 0 : Math.abs(hi) * 0.05);
  if (!Number.isFinite(lo)) lo = 0;
  if (!Number.isFinite(hi)) hi = 1;
  if (!(hi > lo)) hi = lo + 1;

  const plotW = WIDTH - MARGIN.left - (bands.length ? BAND_LABELS : MARGIN.right);
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const x = (t) => MARGIN.left + ((t - t0) / (t1 - t0)) * plotW;
  const y = (v) => MARGIN.top + (1 - (Math.min(Math.max(v, lo), hi) - lo) / (hi - lo)) * plotH;

  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${height}`, class: "chart", role: "img", "aria-label": title,
  });
  for (const band of bands) {
    const top = y(band.below ?? hi);
    const bottom = y(band.from ?? lo);
    if (bottom - top <= 0) continue;
    chart.append(svg("rect", {
      x: MARGIN.left, y: top, width: plotW, height: bottom - top, class: `band band-${band.key}`,
      "data-band": band.key,
    }));
    if (bottom - top >= 11) {
      chart.append(svg("text", { x: MARGIN.left + plotW + 6, y: (top + bottom) / 2 + 4, class: `band-label band-text-${band.key}` },
        band.label));
    }
  }
  for (const v of niceTicks(lo, hi)) {
    chart.append(svg("line", { x1: MARGIN.left, x2: MARGIN.left + plotW, y1: y(v), y2: y(v), class: "grid" }));
    chart.append(svg("text", { x: MARGIN.left - 6, y: y(v) + 4, class: "tick tick-y" }, String(v)));
  }
  for (const t of timeTicks(t0, t1)) {
    chart.append(svg("line", { x1: x(t), x2: x(t), y1: MARGIN.top, y2: MARGIN.top + plotH, class: "grid" }));
    chart.append(svg("text", { x: x(t), y: height - 6, class: "tick tick-x" }, timeLabel(t, t1 - t0, lang)));
  }
  chart.append(svg("rect", { x: MARGIN.left, y: MARGIN.top, width: plotW, height: plotH, class: "frame" }));

  series.forEach((s, index) => {
    const points = s.points.filter((p) => Number.isFinite(p.v)).sort((a, b) => a.t - b.t);
    if (points.length === 0) return;
    const d = points.map((p, i) => `${i ? "L" : "M"}${x(p.t.getTime()).toFixed(1)},${y(p.v).toFixed(1)}`).join("");
    chart.append(svg("path", { d, class: `line s${index}`, "data-series": s.key }));
    if (points.length <= MAX_MARKERS) {
      for (const p of points) {
        chart.append(svg("circle", {
          cx: x(p.t.getTime()), cy: y(p.v), r: 3, class: `point s${index}`, "data-series": s.key, "data-value": p.v,
        }, svg("title", {}, p.title || String(p.v))));
      }
    }
  });
  if (values.length === 0) {
    chart.append(svg("text", { x: MARGIN.left + plotW / 2, y: MARGIN.top + plotH / 2, class: "empty-text" }, emptyText || "—"));
  }

  const legend = el("div", { class: "legend" },
    series.map((s, index) => el("span", { class: "legend-item" }, el("span", { class: `swatch s${index}` }), s.label)));
  return el("figure", { class: "chart-figure", "data-chart": title, "data-points": values.length },
    el("figcaption", {}, title), chart, series.length > 1 ? legend : null);
}

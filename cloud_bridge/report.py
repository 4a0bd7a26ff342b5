"""The printed report for the family doctor (issue 21): one A4 page (more when the table runs
over), Chinese first with English beside it: the resident's pseudonym and QR code, the period,
the home averages and their category, the trend with the guideline's bands, every reading with
its flags in words, and the guideline named.

Drawn with ReportLab (a maintained PDF library) in WenQuanYi Micro Hei, embedded as a subset:
ReportLab embeds TrueType outlines only, and Debian's Noto CJK fonts are CFF (OpenType) ones;
ReportLab's built-in CJK CID fonts are not embedded, so a reader without Adobe's language pack
shows boxes (poppler's pdftotext cannot read them either). The QR code is segno's matrix drawn
as squares, so it stays sharp at any printer's resolution.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Final

import segno
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from cloud_bridge.averages import PERIOD_DAYS, HomeAverage, Mean
from cloud_bridge.residents import ResidentReading, ResidentSummary
from contract.clinical import BloodPressureGuideline, bands
from contract.resident_code import ResidentCode

# Debian's fonts-wqy-microhei (./dev installs it; docs/deployment.md).
FONT_FILE: Final = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
FONT: Final = "WenQuanYiMicroHei"
# Readings shown in the chart and the table: the 30 days up to the last one.
REPORT_DAYS: Final = 30

CATEGORY_WORDS: Final = {
    "normal": "正常 normal", "high_normal": "正常高值 high-normal", "high": "高血压 high", "very_high": "很高 very high",
}
# The kiosk's plausibility reasons (drivers/plausibility.py) and the cuff's own status bits
# (Blood Pressure Measurement Status, contract/payloads.py), in the words the dashboard uses.
FLAG_WORDS: Final = {
    "systolic_not_above_diastolic": "收缩压不高于舒张压",
    "pulse_pressure_too_narrow": "收缩压与舒张压相差太小",
    "systolic_out_of_range": "收缩压超出可信范围",
    "diastolic_out_of_range": "舒张压超出可信范围",
    "mean_arterial_pressure_outside_pressures": "平均压不在收缩压与舒张压之间",
    "pulse_rate_out_of_range": "脉搏超出可信范围",
    "no_value": "设备没有给出数值",
    "body_movement": "测量时身体移动",
    "cuff_too_loose": "袖带过松",
    "irregular_pulse": "脉搏不齐",
    "pulse_rate_exceeds_upper_limit": "脉率高于上限",
    "pulse_rate_below_lower_limit": "脉率低于下限",
    "improper_measurement_position": "测量姿势不当",
}
BAND_COLOURS: Final = {
    "normal": colors.HexColor("#e3f2e1"), "high_normal": colors.HexColor("#fff4cc"),
    "high": colors.HexColor("#ffe0cc"), "very_high": colors.HexColor("#f8cfd0"),
}

WIDTH, HEIGHT = A4
MARGIN: Final = 18 * mm


class ReportUnavailable(RuntimeError):
    """The bridge cannot draw reports here: its font is not installed (the operator's fix)."""


def _font() -> str:
    if FONT not in pdfmetrics.getRegisteredFontNames():
        if not FONT_FILE.exists():
            raise ReportUnavailable(f"{FONT_FILE} is missing: apt-get install fonts-wqy-microhei")
        pdfmetrics.registerFont(TTFont(FONT, str(FONT_FILE), subfontIndex=0))
    return FONT


def reading_flags(reading: ResidentReading) -> list[str]:
    """A reading's flags in words, as the dashboard's table shows them."""
    payload = reading.row.payload
    words = ["达到危险读数告警线 dangerous"] if reading.meaning.dangerous else []
    words += [FLAG_WORDS.get(code, code) for code in payload.get("status") or []]
    if reading.suspect:
        words.append("读数不可靠 unreliable: " + "；".join(FLAG_WORDS.get(code, code) for code in reading.suspect))
    if not reading.row.kiosk_clock_trusted:
        words.append("终端时间未校准")
    return words


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def _mean_words(mean: Mean | None) -> str:
    if mean is None:
        return "—"
    return f"{mean.systolic_mmhg:.0f}/{mean.diastolic_mmhg:.0f} mmHg（{mean.readings} 次 readings）"


class _Page:
    """A canvas with a cursor running down the page, starting a new page when it runs out."""

    def __init__(self, canvas: Canvas, font: str) -> None:
        self.canvas, self.font, self.y = canvas, font, HEIGHT - MARGIN

    def text(self, words: str, size: float = 10, x: float = MARGIN, gap: float = 1.5) -> None:
        """`words` from `x` to the right margin, broken onto more lines where they run over."""
        for line in self._lines(words, size, WIDTH - MARGIN - x):
            self.room(size * gap)
            self.canvas.setFont(self.font, size)
            self.canvas.drawString(x, self.y - size, line)
            self.y -= size * gap

    def _lines(self, words: str, size: float, width: float) -> list[str]:
        # Character by character: Chinese has no spaces to break at.
        lines, line = [], ""
        for char in words:
            if line and pdfmetrics.stringWidth(line + char, self.font, size) > width:
                lines.append(line)
                line = char.lstrip()
            else:
                line += char
        return [*lines, line]

    def room(self, height: float) -> None:
        if self.y - height < MARGIN:
            self.canvas.showPage()
            self.y = HEIGHT - MARGIN


def _qr(canvas: Canvas, text: str, x: float, y: float, size: float) -> None:
    """The QR code of `text` with its top-left corner at (x, y), `size` wide, quiet zone included."""
    matrix = segno.make(text, error="m").matrix
    border = 4  # modules of quiet zone (ISO/IEC 18004:2015, 7.3.7)
    module = size / (len(matrix) + 2 * border)
    canvas.setFillColor(colors.black)
    for row, line in enumerate(matrix):
        for column, dark in enumerate(line):
            if dark:
                canvas.rect(x + (column + border) * module, y - (row + border + 1) * module, module, module,
                            stroke=0, fill=1)


def _chart(page: _Page, readings: Sequence[ResidentReading], guideline: BloodPressureGuideline) -> None:
    """Systolic and diastolic over time, the guideline's bands behind (by systolic, as the
    dashboard's systolic chart draws them); unreliable readings as hollow marks."""
    height, width = 60 * mm, WIDTH - 2 * MARGIN
    page.room(height + 10 * mm)
    canvas, top = page.canvas, page.y
    low, high = 40.0, 220.0
    x0, y0 = MARGIN + 10 * mm, top - height
    plot_w = width - 10 * mm - 28 * mm

    def y_of(value: float) -> float:
        return y0 + (min(max(value, low), high) - low) / (high - low) * height

    for band in bands(guideline):
        bottom, upper = band.systolic_from or low, band.systolic_below or high
        canvas.setFillColor(BAND_COLOURS[band.category.value])
        canvas.rect(x0, y_of(bottom), plot_w, y_of(upper) - y_of(bottom), stroke=0, fill=1)
        canvas.setFillColor(colors.black)
        canvas.setFont(page.font, 7)
        canvas.drawString(x0 + plot_w + 2 * mm, (y_of(bottom) + y_of(upper)) / 2 - 2,
                          f"{CATEGORY_WORDS[band.category.value].split()[0]} ≥{bottom:g}" if band.systolic_from else
                          CATEGORY_WORDS[band.category.value].split()[0])
    canvas.setStrokeColor(colors.grey)
    canvas.rect(x0, y0, plot_w, height, stroke=1, fill=0)
    canvas.setFont(page.font, 7)
    for tick in range(60, 221, 40):
        canvas.drawRightString(x0 - 1.5 * mm, y_of(tick) - 2, str(tick))
    times = [r.at.timestamp() for r in readings]
    t0, t1 = min(times), max(times)
    span = (t1 - t0) or 1.0

    def x_of(reading: ResidentReading) -> float:
        return x0 + (reading.at.timestamp() - t0) / span * plot_w if t1 > t0 else x0 + plot_w / 2

    for which, colour in (("systolic_mmhg", colors.HexColor("#c0392b")), ("diastolic_mmhg", colors.HexColor("#2c6fbb"))):
        points = [(x_of(r), y_of(v), bool(r.suspect)) for r in readings if (v := getattr(r.meaning, which)) is not None]
        canvas.setStrokeColor(colour)
        canvas.setFillColor(colour)
        reliable = [(x, y) for x, y, suspect in points if not suspect]
        for (xa, ya), (xb, yb) in zip(reliable, reliable[1:], strict=False):
            canvas.line(xa, ya, xb, yb)
        for x, y, suspect in points:
            canvas.circle(x, y, 1.2 * mm, stroke=1, fill=0 if suspect else 1)
    canvas.setFillColor(colors.black)
    canvas.drawString(x0, y0 - 4 * mm, f"{readings[0].at:%Y-%m-%d}")
    canvas.drawRightString(x0 + plot_w, y0 - 4 * mm, f"{readings[-1].at:%Y-%m-%d}")
    canvas.drawCentredString(x0 + plot_w / 2, y0 - 4 * mm,
                             "● 收缩压 systolic（红 red） ● 舒张压 diastolic（蓝 blue）  ○ 不可靠 unreliable  mmHg")
    page.y = y0 - 8 * mm


def _averages(page: _Page, average: HomeAverage | None, before: HomeAverage | None) -> None:
    if average is None:
        page.text("本期没有读数 No readings in this period")
        return
    category = CATEGORY_WORDS[average.category.value] if average.category else "—"
    page.text(f"本期 Period: {average.first_day:%Y-%m-%d} – {average.last_day:%Y-%m-%d}"
              f"（{PERIOD_DAYS} 天去掉第 1 天 {PERIOD_DAYS} days, the first left out）", 10)
    page.text(f"平均 Average: {_mean_words(average.overall)}    分级 Category: {category}", 12)
    page.text(f"早晨 Mornings: {_mean_words(average.morning)}    晚上 Evenings: {_mean_words(average.evening)}", 10)
    if not average.enough:
        page.text("读数少于 12 次，平均值仅供参考 Fewer than 12 readings: read the average with care", 9)
    if average.left_out_unreliable:
        page.text(f"不可靠读数未计入 Unreliable readings left out: {average.left_out_unreliable}", 9)
    if before is not None and before.overall is not None:
        before_category = CATEGORY_WORDS[before.category.value] if before.category else "—"
        page.text(f"上期 Previous period ({before.first_day:%m-%d} – {before.last_day:%m-%d}): "
                  f"{_mean_words(before.overall)}  {before_category}", 9)


def _table(page: _Page, readings: Sequence[ResidentReading]) -> None:
    columns = (0, 32 * mm, 52 * mm, 70 * mm, 102 * mm)
    page.text("读数 Readings", 12)
    header = ("时间 Time", "血压 mmHg", "脉搏 Pulse", "分级 Category", "标记 Flags")
    rows = [(f"{r.at:%Y-%m-%d %H:%M}",
             f"{_number(r.meaning.systolic_mmhg)}/{_number(r.meaning.diastolic_mmhg)}",
             _number(r.row.payload.get("pulse_rate")),
             CATEGORY_WORDS[r.meaning.category] if r.meaning.category else "—",
             "；".join(reading_flags(r)) or "—")
            for r in reversed(readings)]
    for cells in (header, *rows):
        page.room(12)
        page.canvas.setFont(page.font, 8)
        for x, cell in zip(columns, cells, strict=True):
            page.canvas.drawString(MARGIN + x, page.y - 8, cell)
        page.y -= 12


def render_report(
    summary: ResidentSummary, readings: Sequence[ResidentReading], guideline: BloodPressureGuideline,
    *, printed_at: datetime,
) -> bytes:
    """The report as PDF bytes; `readings` oldest first (cloud_bridge/residents.py)."""
    font = _font()
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, pageCompression=1)
    canvas.setTitle("家庭血压报告 Home blood-pressure report")
    canvas.setAuthor("Doorstep")
    page = _Page(canvas, font)
    code = ResidentCode(summary.site, summary.pseudonym).text()
    qr_size = 32 * mm
    _qr(canvas, code, WIDTH - MARGIN - qr_size, HEIGHT - MARGIN, qr_size)
    page.text("家庭血压报告", 18, gap=1.3)
    page.text("Home blood-pressure report", 11)
    page.text(f"站点 Site: {summary.site}    打印 Printed: {printed_at:%Y-%m-%d %H:%M} UTC", 9)
    page.text("居民编号（假名）Resident (pseudonym):", 9)
    page.text(summary.pseudonym[:32], 8)
    page.text(summary.pseudonym[32:], 8)
    page.y = min(page.y, HEIGHT - MARGIN - qr_size - 2 * mm)
    page.text("扫码查找居民 Scan into the dashboard's look-up", 7, x=WIDTH - MARGIN - qr_size)
    _averages(page, summary.average, summary.before)
    last = readings[-1].at
    shown = [r for r in readings if (last - r.at).days < REPORT_DAYS]
    page.text(f"近 {REPORT_DAYS} 天趋势 Trend, the last {REPORT_DAYS} days", 12)
    _chart(page, shown, guideline)
    page.text(f"分级依据 Categories: {guideline.name}；家庭血压：连续 7 天早晚测量，去掉第 1 天，取其余平均"
              "（2018 指南 家庭血压监测；ESH 2010 home BP monitoring）", 8)
    _table(page, shown)
    canvas.showPage()
    canvas.save()
    return out.getvalue()

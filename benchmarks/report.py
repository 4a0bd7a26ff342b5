"""Figures, the summary table, and the section of docs/performance.md each benchmark owns.

Every figure is kept per run (a benchmark repeats its measurement), so the table shows the
mean and the spread, and the ratio to the raw stack is taken within each run: Doorstep and the
raw stack of one run shared the machine's noise, runs did not.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.machine import describe

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "performance.md"
PLOTS = REPO / "docs" / "performance"

_INTRO = """# Performance, measured

Every figure here was measured by a command in `benchmarks/` (see its section), against the raw
stack Doorstep is built on (paho-mqtt, Mosquitto, SQLite, PostgreSQL used directly) **in the same
run on the same machine**: the machine is shared and noisy, so the ratio is the figure that means
something. Each measurement was repeated; a cell reads `mean (min-max)` over the runs. Each
section is rewritten by its own benchmark; the text outside the sections is by hand.

Reproduce: `./dev setup && .venv/bin/pip install -e '.[bench]'`, then
`.venv/bin/python -m benchmarks.<name>` (`--help` for sizes).
"""


@dataclass
class Figure:
    """One measured quantity: Doorstep's value and the raw stack's, per run."""

    name: str
    unit: str
    doorstep: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    goal: str = ""
    # Judges the mean of Doorstep's values (and of the ratios, if there is a raw stack): met or not.
    judge: Callable[[float, float | None], bool] | None = None
    higher_is_better: bool = True

    @property
    def ratios(self) -> list[float]:
        return [d / r for d, r in zip(self.doorstep, self.raw, strict=False) if r]

    def met(self) -> bool | None:
        if self.judge is None or not self.doorstep:
            return None
        ratio = statistics.fmean(self.ratios) if self.ratios else None
        return self.judge(statistics.fmean(self.doorstep), ratio)


def spread(values: Sequence[float], digits: int = 0) -> str:
    if not values:
        return "-"
    fmt = f"{{:,.{digits}f}}"
    mean = fmt.format(statistics.fmean(values))
    if len(values) == 1:
        return mean
    return f"{mean} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def _digits(values: Sequence[float]) -> int:
    biggest = max((abs(v) for v in values), default=0)
    return 0 if biggest >= 100 else 1 if biggest >= 10 else 2 if biggest >= 1 else 3


def table(figures: Sequence[Figure]) -> str:
    rows = ["| measure | Doorstep | raw stack | ratio | goal | met |", "| --- | ---: | ---: | ---: | --- | --- |"]
    for f in figures:
        met = f.met()
        mark = "-" if met is None else ("yes" if met else "**no**")
        rows.append(
            f"| {f.name} ({f.unit}) | {spread(f.doorstep, _digits(f.doorstep))} | {spread(f.raw, _digits(f.raw))} | "
            f"{spread(f.ratios, 2)} | {f.goal or '-'} | {mark} |"
        )
    return "\n".join(rows)


def write_section(name: str, title: str, body: str, docs: Path = DOCS) -> None:
    """Replace (or append) this benchmark's section of the performance page."""
    start, end = f"<!-- benchmark:{name}:start -->", f"<!-- benchmark:{name}:end -->"
    section = f"{start}\n## {title}\n\n{body.strip()}\n{end}"
    text = docs.read_text() if docs.exists() else _INTRO
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(text)


def section_body(command: str, figures: Sequence[Figure], notes: str, plots: Sequence[Path], docs: Path) -> str:
    links = "\n".join(f"![{p.stem}]({p.relative_to(docs.parent).as_posix()})" for p in plots if p.exists())
    return f"`{command}`. {describe()}\n\n{table(figures)}\n\n{notes.strip()}\n\n{links}\n"


def common_arguments(parser: argparse.ArgumentParser, *, repeat: int = 2) -> None:
    parser.add_argument("--repeat", type=int, default=repeat, help="measure this many times (the spread is reported)")
    parser.add_argument("--docs", type=Path, default=DOCS, help="the page whose section is rewritten")
    parser.add_argument("--plots", type=Path, default=PLOTS, help="where the PNG plots go")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs and tests)")


def publish(name: str, title: str, command: str, figures: Sequence[Figure], notes: str, plots: Sequence[Path],
            docs: Path) -> None:
    """Print the table and rewrite the benchmark's section of the docs."""
    print(f"\n{title}\n{table(figures)}\n")
    write_section(name, title, section_body(command, figures, notes, plots, docs), docs)
    print(f"written to {docs}")

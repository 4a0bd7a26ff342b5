"""PNG plots for docs/performance/: matplotlib without a display."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402

Series = tuple[str, Sequence[float], Sequence[float]]  # label, x, y


def lines(path: Path, title: str, xlabel: str, ylabel: str, series: Sequence[Series], *, logy: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    for label, x, y in series:
        axes.plot(x, y, label=label, linewidth=1.2)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if logy:
        axes.set_yscale("log")
    axes.grid(True, alpha=0.3)
    if len(series) > 1:
        axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path

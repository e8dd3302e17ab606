"""The per-band tuning as one picture: recall against latency per band, the chosen points.

Written into the version as `assets.extra/scann_tuning.png` (matplotlib, imported only here
and only when a plot is drawn).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scann_serving.export._bands import BandTuning
from scann_serving.export._tuning import SweepPoint, save_latency_plot


def plot_bands(tuning: BandTuning, report: list[dict[str, Any]], path: Path) -> Path:
    """One picture of the per-band sweep: each band's measured points (worst recall@k of
    the band against single-query latency) with its recall-latency frontier, the chosen
    point of each band (a star), the target, and brute force's latency at each band's k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(1, len(tuning.bands))))
    for band, color in zip(tuning.bands, colors, strict=True):
        label = f"k {band.lowest_k}..{band.up_to_k}"
        points = sorted(band.points, key=lambda p: p.single_p50_ms)
        ax.scatter(
            [p.single_p50_ms for p in points],
            [p.recall for p in points],
            s=9,
            color=color,
            alpha=0.4,
        )
        frontier = _frontier(points)
        ax.plot(
            [p.single_p50_ms for p in frontier], [p.recall for p in frontier], color=color, lw=1.2
        )
        c = band.chosen
        ax.plot(
            [c.single_p50_ms], [c.recall], marker="*", ms=13, color=color, mec="black", ls="none",
            label=f"{label}: leaves {c.num_leaves_to_search}, reorder "
            f"{c.num_reordering_candidates} ({c.single_p50_ms:.3f} ms)",
        )  # fmt: skip
    ax.axhline(
        tuning.target_recall, color="grey", ls="--", lw=1, label=f"target {tuning.target_recall}"
    )
    for i, row in enumerate(report):  # one legend entry, on the last line
        last = "brute force, 1 query" if i == len(report) - 1 else None
        ax.axvline(row["brute_force_single_p50_ms"], color="black", ls=":", lw=0.8, label=last)
    ax.set_ylabel("worst recall@k over the band's k vs brute force")
    budget = " (budget ran out)" if tuning.budget_exhausted else ""
    ax.set_title(f"ScaNN search knobs per band of k: recall vs latency{budget}", fontsize=10)
    return save_latency_plot(fig, ax, path)


def _frontier(points: list[SweepPoint]) -> list[SweepPoint]:
    """The points no faster point beats on recall, by latency."""
    out: list[SweepPoint] = []
    for p in sorted(points, key=lambda p: (p.single_p50_ms, -p.recall)):
        if not out or p.recall > out[-1].recall:
            out.append(p)
    return out

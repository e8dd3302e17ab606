"""Tuning the query-time knobs per band of k, so the recall target holds for every k served.

`retrieve` accepts any k up to max_k, and knobs tuned for k = 10 lose a quarter of the true
top-100 (issue 11). The exported graph and the native bundle therefore hold a small table
(`SearchBand` rows, upper bounds `band_limits`: 1, 10, 50, the default k and max_k) and pick
the row from the request's k. Each band is swept on the pybind twin of the exported index,
smallest first: its grid starts at the previous band's choice (a larger band never searches
less) and a point counts as reaching the target when its *worst* recall@k over every k of
the band does (one search at the band's upper k gives them all: ScaNN's top-k is a prefix of
its top-`up_to_k` for the same knobs). The fastest such point is kept, else the best recall.

A time budget bounds the sweep (the default tuning has one): when it runs out, the bands
measured so far keep their best point and the rest get the last choice, widened to their k
(measured once, so the report says what they give).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scann_serving.export._evaluation import recall_curve, scann_top_k, single_query_ms
from scann_serving.export._index import IndexConfig
from scann_serving.export._tuning import LEAF_FRACTIONS, SweepPoint
from scann_serving.export._types import Progress, Searcher
from scann_serving.server._native_search import SearchBand

#: The k's recall is reported at (with max_k); each is also a band's upper bound.
REPORTED_KS = (1, 10, 50)
#: What the export tunes to when the user names neither a target nor the knobs.
DEFAULT_TARGET_RECALL = 0.95
#: Seconds the default tuning may spend sweeping (`--tuning-budget`).
DEFAULT_TUNING_BUDGET_S = 60.0
#: Reordering sizes of a band, as multiples of max(its k, 10).
BAND_REORDER_MULTIPLES = (1, 2, 4, 10, 20, 50)
#: A hit is refined towards the last miss of its row while the gap exceeds this share of it.
REFINE_GAP = 0.1
#: A row of the sweep stops when two more leaf steps gained at most this much recall.
SATURATION_GAIN = 0.002
#: Queries timed one by one per sweep point.
SWEEP_LATENCY_QUERIES = 100


def band_limits(k: int, max_k: int) -> tuple[int, ...]:
    """The bands' upper bounds: 1, 10, 50, the default k and max_k, those <= max_k."""
    return tuple(sorted({v for v in (*REPORTED_KS, k, max_k) if 1 <= v <= max_k}))


@dataclass(frozen=True)
class BandResult:
    """One band's sweep.

    Attributes:
        up_to_k: The band's largest k (the smallest is the previous band's plus one).
        lowest_k: The band's smallest k.
        chosen: The kept point; its `recall` is the worst recall@k over the band's k's.
        reached: Whether the chosen point reaches the target.
        points: Every measured point (empty when the budget ran out before the band).
    """

    up_to_k: int
    lowest_k: int
    chosen: SweepPoint
    reached: bool
    points: tuple[SweepPoint, ...]

    @property
    def band(self) -> SearchBand:
        """The table row."""
        return SearchBand(
            self.up_to_k, self.chosen.num_leaves_to_search, self.chosen.num_reordering_candidates
        )


@dataclass(frozen=True)
class BandTuning:
    """The per-band sweep and its outcome (the manifest's `tuning` block).

    Attributes:
        target_recall: The recall every band was tuned to.
        source: "--target-recall" or "default" (no target and no knobs given).
        bands: One result per band, by increasing k.
        budget_seconds: The time budget, None for none.
        seconds: The time the sweep took.
        budget_exhausted: Whether the budget ran out before every point was measured.
    """

    target_recall: float
    source: str
    bands: tuple[BandResult, ...]
    budget_seconds: float | None
    seconds: float
    budget_exhausted: bool

    @property
    def reached(self) -> bool:
        """Whether every band reached the target."""
        return all(b.reached for b in self.bands)

    @property
    def table(self) -> tuple[SearchBand, ...]:
        """The search-band table the module and the bundle hold."""
        return tuple(b.band for b in self.bands)

    def result_for(self, k: int) -> BandResult:
        """The band a search of k uses."""
        return next((b for b in self.bands if b.up_to_k >= k), self.bands[-1])

    def to_dict(self) -> dict[str, Any]:
        """The manifest's `tuning` block (`chosen`/`sweep`: the default k's band)."""
        return {
            "target_recall": self.target_recall,
            "source": self.source,
            "reached": self.reached,
            "budget_seconds": self.budget_seconds,
            "seconds": round(self.seconds, 3),
            "budget_exhausted": self.budget_exhausted,
            "bands": [
                {
                    "up_to_k": b.up_to_k,
                    "lowest_k": b.lowest_k,
                    "reached": b.reached,
                    "chosen": asdict(b.chosen),
                    "sweep": [asdict(p) for p in b.points],
                }
                for b in self.bands
            ],
        }


@dataclass(frozen=True)
class BandSweep:
    """What `tune_bands` measures with.

    Attributes:
        searcher: The pybind twin of the exported index.
        config: Its config (leaves, and the knobs used when the budget leaves a band out).
        queries: Held-out query embeddings, float32 `[q, dim]`.
        exact: Their exact top rows, `[q, >= max_k]`.
        num_candidates: The catalogue size (bounds the reordering).
    """

    searcher: Searcher
    config: IndexConfig
    queries: np.ndarray
    exact: np.ndarray
    num_candidates: int


def tune_bands(
    sweep: BandSweep,
    limits: tuple[int, ...],
    *,
    target_recall: float,
    source: str = "--target-recall",
    budget_seconds: float | None = None,
    progress: Progress = print,
    clock: Callable[[], float] = time.monotonic,
) -> BandTuning:
    """Sweeps each band of `limits` (increasing upper bounds of k), smallest first."""
    if sweep.config.brute_force:
        raise ValueError("tuning needs a tree index; brute force is already exact")
    if not 0.0 < target_recall <= 1.0:
        raise ValueError(f"--target-recall {target_recall} must be in (0, 1], e.g. 0.95")
    started = clock()
    deadline = None if budget_seconds is None else started + budget_seconds
    budget = "no time budget" if deadline is None else f"budget {budget_seconds:g}s"
    progress(
        f"tuning {len(limits)} bands of k (up to {', '.join(map(str, limits))}) to recall "
        f">= {target_recall} on {len(sweep.queries)} held-out queries ({source}; {budget})"
    )
    results: list[BandResult] = []
    floor = (1, 0)
    exhausted = False
    for lowest, up_to_k in zip((0, *limits), limits, strict=False):
        points: list[SweepPoint] = []
        if not exhausted:
            exhausted = _sweep_band(sweep, up_to_k, lowest + 1, floor, target_recall, points, {
                "deadline": deadline, "clock": clock, "progress": progress,
            })  # fmt: skip
        result = _choose_band(sweep, up_to_k, lowest + 1, floor, points, target_recall)
        results.append(result)
        floor = (result.chosen.num_leaves_to_search, result.chosen.num_reordering_candidates)
        state = "reached" if result.reached else "NOT reached"
        if not points:
            state = "not measured (budget spent), widened from the previous band"
        progress(
            f"  band k {lowest + 1}..{up_to_k}: leaves {floor[0]}, reorder {floor[1]}, "
            f"worst recall {result.chosen.recall:.3f} ({state})"
        )
    seconds = clock() - started
    if exhausted:
        progress(
            f"tuning: the {budget_seconds:g}s budget ran out after {seconds:.1f}s; the best "
            "settings found are kept (raise --tuning-budget to sweep further)"
        )
    return BandTuning(target_recall, source, tuple(results), budget_seconds, seconds, exhausted)


def _sweep_band(
    sweep: BandSweep,
    up_to_k: int,
    lowest_k: int,
    floor: tuple[int, int],
    target: float,
    points: list[SweepPoint],
    run: dict[str, Any],
) -> bool:
    """Measures the band's grid into `points`; True when the budget ran out.

    Per reordering size (ascending), leaves ascend until the target is reached (then the
    fewest leaves reaching it are searched for between the last miss and the hit); a larger
    reordering then only tries fewer leaves than the last hit (more of both is slower).
    """
    leaves_grid = _leaves(sweep.config, floor[0])
    cap: int | None = None
    for reorder in _reorders(up_to_k, floor[1], sweep.num_candidates):
        row: list[float] = []
        missed = 0  # the most leaves measured in this row that miss the target
        for leaves in leaves_grid:
            if cap is not None and leaves >= cap:
                break
            if _spent(run):
                return True
            point = _measure(sweep, up_to_k, lowest_k, leaves, reorder, points, run)
            row.append(point.recall)
            if point.recall >= target:
                # The grid is coarse (5% steps of the leaves at 1M): halve the gap to the
                # last miss while it is wider than REFINE_GAP of it, keeping the fewest hit.
                cap = leaves
                while missed and cap - missed > max(1, int(missed * REFINE_GAP)):
                    if _spent(run):
                        return True
                    middle = (missed + cap) // 2
                    hit = _measure(sweep, up_to_k, lowest_k, middle, reorder, points, run)
                    missed, cap = (missed, middle) if hit.recall >= target else (middle, cap)
                break
            missed = leaves
            if _saturated(row):
                break  # this reordering size limits recall: more leaves only cost time
    return False


def _spent(run: dict[str, Any]) -> bool:
    return run["deadline"] is not None and run["clock"]() > run["deadline"]


def _measure(
    sweep: BandSweep,
    up_to_k: int,
    lowest_k: int,
    leaves: int,
    reorder: int,
    points: list[SweepPoint],
    run: dict[str, Any],
) -> SweepPoint:
    point = measure_point(sweep, up_to_k, lowest_k, leaves, reorder)
    points.append(point)
    run["progress"](
        f"  k {lowest_k}..{up_to_k} leaves {leaves:>5} reorder {reorder:>5}: "
        f"worst recall {point.recall:.3f}  {point.single_p50_ms:.3f} ms"
    )
    return point


def _saturated(row: list[float]) -> bool:
    """Whether recall stopped growing with the leaves (the last two steps gained nothing)."""
    return len(row) >= 3 and row[-1] - row[-3] <= SATURATION_GAIN


def measure_point(
    sweep: BandSweep, up_to_k: int, lowest_k: int, leaves: int, reorder: int
) -> SweepPoint:
    """The worst recall@k over k in lowest_k..up_to_k and the single-query p50 at up_to_k."""
    knobs = {"leaves_to_search": leaves, "pre_reorder_num_neighbors": max(up_to_k, reorder)}
    found = scann_top_k(sweep.searcher, sweep.queries, up_to_k, knobs)  # type: ignore[arg-type]
    worst = float(recall_curve(found, sweep.exact)[lowest_k - 1 :].min())

    def search_one(query: np.ndarray) -> Any:
        return sweep.searcher.search(query, up_to_k, max(up_to_k, reorder), leaves)

    times = single_query_ms(search_one, sweep.queries, SWEEP_LATENCY_QUERIES)
    return SweepPoint(leaves, reorder, worst, statistics.median(times))


def _leaves(config: IndexConfig, floor: int) -> list[int]:
    grid = {max(1, min(config.num_leaves, round(config.num_leaves * f))) for f in LEAF_FRACTIONS}
    return sorted({floor, *(v for v in grid if v > floor)})


def _reorders(up_to_k: int, floor: int, num_candidates: int) -> list[int]:
    base = max(up_to_k, 10)
    ladder = {min(num_candidates, max(floor, up_to_k, base * m)) for m in BAND_REORDER_MULTIPLES}
    return sorted(ladder)


def _choose_band(
    sweep: BandSweep,
    up_to_k: int,
    lowest_k: int,
    floor: tuple[int, int],
    points: list[SweepPoint],
    target: float,
) -> BandResult:
    good = [p for p in points if p.recall >= target]
    if good:
        chosen = min(good, key=lambda p: (p.single_p50_ms, -p.recall))
    elif points:
        chosen = max(points, key=lambda p: (p.recall, -p.single_p50_ms))
    else:
        # The budget ran out first: the previous band's knobs (or the config's), widened to
        # this k, measured once so the report says what they give.
        leaves = max(floor[0], sweep.config.num_leaves_to_search)
        reorder = min(
            max(floor[1], up_to_k, sweep.config.num_reordering_candidates), sweep.num_candidates
        )
        chosen = measure_point(sweep, up_to_k, lowest_k, leaves, reorder)
    return BandResult(up_to_k, lowest_k, chosen, chosen.recall >= target, tuple(points))

"""Index options, the in-process twin of the exported index, the tuning choice and its plot,
and the measurement helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scann_serving.export import IndexConfig, IndexOptions, default_config, tree_config
from scann_serving.export._evaluation import (
    exact_top_k,
    factorized_top_k,
    held_out_pairs,
    recall_at_k,
)
from scann_serving.export._tuning import SweepPoint, TuningResult, _choose, grid, plot


def test_default_config_is_unchanged_for_the_lead_api() -> None:
    assert default_config(300).brute_force is True
    big = default_config(1_000_000, k=10, max_k=100)
    assert (big.brute_force, big.num_leaves, big.num_leaves_to_search) == (False, 1000, 50)
    assert big.num_reordering_candidates == 100
    assert tree_config(600).num_leaves == 24


def test_index_options_resolve_defaults_and_overrides() -> None:
    assert IndexOptions().resolve(1_700, k=10, max_k=100).brute_force is True
    tree = IndexOptions(kind="tree").resolve(1_700, k=10, max_k=100)
    assert (tree.brute_force, tree.num_leaves) == (False, 41)
    # Asking for leaves on a small catalogue means a tree; leaves to search follow (5%).
    tuned = IndexOptions(num_leaves=100, dimensions_per_block=4).resolve(10_000, k=10, max_k=100)
    assert (tuned.num_leaves, tuned.num_leaves_to_search, tuned.dimensions_per_block) == (100, 5, 4)
    forced = IndexOptions(kind="brute-force").resolve(1_000_000, k=10, max_k=100)
    assert forced.brute_force is True


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (IndexOptions(kind="lsh"), "--index 'lsh' must be one of auto, tree, brute-force"),
        (
            IndexOptions(num_leaves=5_000),
            "num_leaves=5000 must be between 1 and the catalogue size",
        ),
        (IndexOptions(kind="tree", num_reordering_candidates=5), "must be >= k=10"),
        (IndexOptions(num_leaves=10, num_leaves_to_search=11), "num_leaves_to_search=11"),
    ],
)
def test_index_options_that_cannot_work_name_the_knob(options: IndexOptions, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        options.resolve(1_000, k=10, max_k=100)


def test_search_kwargs_are_the_query_time_knobs_of_the_index() -> None:
    tree = IndexConfig(
        num_leaves=100, num_leaves_to_search=7, num_reordering_candidates=50, brute_force=False
    )
    assert tree.search_kwargs() == {"leaves_to_search": 7, "pre_reorder_num_neighbors": 50}
    # At least k candidates are reordered, whatever the config says.
    assert tree.search_kwargs(80)["pre_reorder_num_neighbors"] == 80
    assert tree.with_search(9, 200).search_kwargs(10) == {
        "leaves_to_search": 9,
        "pre_reorder_num_neighbors": 200,
    }
    assert IndexConfig(brute_force=True).search_kwargs(10) == {}


def test_the_in_process_twin_is_the_exported_index() -> None:
    """Tuning and benchmarks run on a pybind twin of the TF searcher: same results, any knobs."""
    from scann_serving.export._index import build_pybind_searcher, build_tf_searcher, pybind_twin
    from scann_serving.export._types import ExportedSearcher, Searcher

    rng = np.random.default_rng(0)
    db = rng.standard_normal((3_000, 16)).astype(np.float32)
    queries = rng.standard_normal((40, 16)).astype(np.float32)
    config = tree_config(3_000)
    exported = build_tf_searcher(db, config, 10)
    twin = pybind_twin(exported, db, config, 10)
    brute = build_pybind_searcher(db, default_config(3_000), 10)
    assert isinstance(exported, ExportedSearcher)
    assert all(isinstance(s, Searcher) for s in (exported, twin, brute))
    assert not isinstance(twin, ExportedSearcher)
    for leaves, reorder in ((config.num_leaves_to_search, 100), (20, 300)):
        knobs = config.with_search(leaves, reorder).search_kwargs(10)
        want = exported.search_batched(queries, 10, **knobs)[0].numpy()
        got = np.asarray(twin.search_batched(queries, 10, **knobs)[0])
        assert (want == got).all()


def _point(leaves: int, reorder: int, recall: float, ms: float) -> SweepPoint:
    return SweepPoint(leaves, reorder, recall, ms)


def test_tuning_picks_the_fastest_setting_that_reaches_the_target() -> None:
    config = tree_config(10_000)
    points = [
        _point(5, 100, 0.80, 0.01),
        _point(10, 100, 0.951, 0.03),
        _point(10, 200, 0.96, 0.02),
        _point(40, 100, 0.99, 0.08),
    ]
    result = _choose(config, points, 0.95, 10)
    assert result.reached and result.chosen == points[2]
    assert (result.config.num_leaves_to_search, result.config.num_reordering_candidates) == (
        10,
        200,
    )
    unreachable = _choose(config, points, 0.999, 10)
    assert not unreachable.reached and unreachable.chosen == points[3]
    assert unreachable.to_dict()["sweep"][0]["recall"] == 0.80


def test_grid_covers_leaves_and_reordering_within_the_catalogue() -> None:
    pairs = grid(tree_config(10_000), max_k=100, num_candidates=10_000)
    leaves = sorted({p[0] for p in pairs})
    assert leaves[0] == 1 and leaves[-1] == 100
    assert sorted({p[1] for p in pairs}) == [100, 200, 400, 1000]
    small = grid(tree_config(300), max_k=100, num_candidates=300)
    assert max(p[1] for p in small) == 300


def test_plot_writes_a_png(tmp_path: Path) -> None:
    points = (_point(1, 100, 0.5, 0.01), _point(4, 100, 0.97, 0.02), _point(4, 200, 0.99, 0.03))
    result = TuningResult(IndexConfig(), 0.95, 10, True, points[1], points)
    path = plot(result, tmp_path / "curve.png", brute_force_ms=0.5)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert path.stat().st_size > 5_000


def test_exact_top_k_and_recall() -> None:
    rng = np.random.default_rng(1)
    db = rng.standard_normal((500, 8)).astype(np.float32)
    queries = rng.standard_normal((30, 8)).astype(np.float32)
    top = exact_top_k(queries, db, 7)
    want = np.argsort(-(queries @ db.T), axis=1)[:, :7]
    assert (top == want).all()
    assert recall_at_k(top, want, 7) == 1.0
    half = top.copy()
    half[:, 4:] = -1
    assert recall_at_k(half, want, 7) == pytest.approx(4 / 7)


def test_factorized_top_k_counts_test_pairs_in_the_top_k() -> None:
    top = np.asarray([[3, 1, 2, 0], [0, 2, 1, 3]])
    rows, items = np.asarray([0, 0, 1, 1]), np.asarray([3, 2, 3, 1])
    assert factorized_top_k(top, rows, items, levels=(1, 2, 3, 4, 5)) == {
        "top_1": 0.25,
        "top_2": 0.25,
        "top_3": 0.75,
        "top_4": 1.0,
    }


def test_held_out_pairs_map_users_and_drop_unknown_items() -> None:
    users = np.asarray(["b", "a", "b", "c"], dtype=object)
    items = np.asarray(["x", "y", "unknown", "x"], dtype=object)
    distinct, rows, item_rows = held_out_pairs(users, items, np.asarray(["y", "x"], dtype=object))
    assert list(distinct) == ["a", "b", "c"]
    assert list(distinct[rows]) == ["b", "a", "c"]
    assert list(item_rows) == [1, 0, 1]


def test_augment_candidates_adds_perturbed_copies_with_their_own_identifiers() -> None:
    from scann_serving.export._pipeline import augment
    from scann_serving.export._towers import Towers

    rng = np.random.default_rng(2)
    base = np.abs(rng.standard_normal((50, 4))).astype(np.float32)
    ids = np.asarray([f"t{i}" for i in range(50)], dtype=object)
    towers = Towers(query_model=None, identifiers=ids, embeddings=base)
    messages: list[str] = []
    catalogue = augment(towers, 3, seed=0, progress=messages.append)
    assert catalogue.embeddings.shape == (200, 4) and catalogue.original_size == 50
    assert len(set(catalogue.identifiers)) == 200
    assert list(catalogue.identifiers[:50]) == list(ids)
    assert catalogue.identifiers[50] == "t0 (copy 1)"
    assert (catalogue.embeddings[:50] == base).all()
    ratio = catalogue.embeddings[50:].reshape(3, 50, 4) / base
    assert (ratio >= 0).all() and (ratio <= 1).all() and ratio.std() > 0.1
    assert messages == ["augmenting the catalogue: 3 perturbed copies -> 200 candidates"]


def test_paired_timing_alternates_blocks_of_both_searches() -> None:
    from scann_serving.export._evaluation import (
        PAIRED_BLOCK,
        PAIRED_WARMUP,
        paired_single_query_ms,
        single_stats,
    )

    calls: list[tuple[str, float]] = []
    queries = np.arange(2 * PAIRED_BLOCK + 5, dtype=np.float32)[:, None]
    n = PAIRED_BLOCK + 5
    first, second = paired_single_query_ms(
        lambda q: calls.append(("a", float(q[0]))),
        lambda q: calls.append(("b", float(q[0]))),
        queries,
        n,
    )
    assert len(first) == len(second) == n and min(first + second) >= 0
    # Block 1: a warms up then runs the block, then b does; block 2 (5 queries) likewise.
    block = list(range(PAIRED_BLOCK))
    want = [
        (name, float(i))
        for blk in (block, list(range(PAIRED_BLOCK, n)))
        for name in ("a", "b")
        for i in blk[:PAIRED_WARMUP] + blk
    ]
    assert calls == want
    assert set(single_stats(first)) == {"single_p50_ms", "single_p95_ms", "single_mean_ms"}

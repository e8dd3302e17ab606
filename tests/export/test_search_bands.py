"""The query-time knobs per band of k: the table, its tuning, and both searches picking from it.

- `band_limits` and the table's rules (increasing bands, a larger band never searches less);
- `tune_bands` on a real tree index: each band's choice is the fastest point whose worst
  recall@k over the band's k's reaches the target, the grid of a band starts at the previous
  band's choice, and a time budget that runs out keeps the best found (a fake clock);
- when the export tunes by default, and when it does not;
- the exported graph and the native bundle pick the same band for every k: both equal the
  pybind twin searched with that band's knobs, and the fresh-process verification (every k
  from 1 to max_k, filters at every band's k) passes on a version with distinct bands;
- a format-1 bundle (one knob pair) still loads, as one band tuned for the default k.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scann_serving.export import ExportConfig, IndexOptions, tree_config
from scann_serving.export._bands import BandSweep, band_limits, tune_bands
from scann_serving.export._evaluation import exact_top_k, recall_at_k, scann_top_k
from scann_serving.export._index import band_kwargs, build_pybind_searcher, single_band
from scann_serving.export._measure import served_recall, tuning_target
from scann_serving.export._plot import plot_bands
from scann_serving.server._native_search import SearchBand, SearchSettings, check_bands

#: Distinct knobs per band over `tree_config(400)` (20 leaves): the graph and the native
#: search must both pick the row of the request's k.
BANDS = (
    SearchBand(1, 1, 10),
    SearchBand(10, 3, 20),
    SearchBand(50, 8, 60),
    SearchBand(80, 20, 200),
)


@pytest.fixture(scope="module")
def index() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((30, 16)).astype(np.float32)
    db = (centers[rng.integers(30, size=4_000)] + rng.standard_normal((4_000, 16))).astype(
        np.float32
    )
    queries = (centers[rng.integers(30, size=120)] + rng.standard_normal((120, 16))).astype(
        np.float32
    )
    config = tree_config(len(db))
    searcher = build_pybind_searcher(db, config, 10)
    exact = exact_top_k(queries, db, 100)
    return {"db": db, "queries": queries, "config": config, "searcher": searcher, "exact": exact}


def test_band_limits_are_1_10_50_the_default_k_and_max_k() -> None:
    assert band_limits(10, 100) == (1, 10, 50, 100)
    assert band_limits(20, 200) == (1, 10, 20, 50, 200)
    assert band_limits(5, 20) == (1, 5, 10, 20)
    assert band_limits(1, 1) == (1,)
    assert band_limits(10, 10) == (1, 10)


def test_the_band_of_k_and_its_knobs() -> None:
    settings = SearchSettings(10, 80, BANDS)
    picks = {k: settings.band(k).up_to_k for k in (1, 2, 10, 11, 50, 51, 80, 200)}
    assert picks == {1: 1, 2: 10, 10: 10, 11: 50, 50: 50, 51: 80, 80: 80, 200: 80}
    assert settings.knobs(1) == (10, 1) and settings.knobs(30) == (60, 8)
    assert settings.knobs(70) == (200, 20) and settings.knobs(300) == (300, 20)
    assert band_kwargs(BANDS, 11) == {"leaves_to_search": 8, "pre_reorder_num_neighbors": 60}
    assert band_kwargs((SearchBand(10),), 5) == {}  # brute force: the searcher decides
    # An untuned index is one band, tuned (if at all) for the default k.
    config = tree_config(4_000)
    assert single_band(config, 10) == (
        SearchBand(10, config.num_leaves_to_search, config.num_reordering_candidates),
    )


@pytest.mark.parametrize(
    ("bands", "message"),
    [
        ((), "empty"),
        ((SearchBand(10, 3, 20), SearchBand(10, 4, 30)), "increasing up_to_k"),
        ((SearchBand(1, 5, 20), SearchBand(10, 4, 30)), "never search less"),
        ((SearchBand(1, 5, 40), SearchBand(10, 5, 30)), "never search less"),
        ((SearchBand(1, -1, 0), SearchBand(10, 5, 30)), "every search band or in none"),
    ],
)
def test_tables_that_cannot_work_are_refused(bands: tuple[SearchBand, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_bands(bands)


def test_each_band_keeps_the_fastest_point_reaching_the_target(
    index: dict[str, Any], tmp_path: Path
) -> None:
    sweep = BandSweep(
        index["searcher"], index["config"], index["queries"], index["exact"], len(index["db"])
    )
    messages: list[str] = []
    tuning = tune_bands(sweep, (1, 10, 50, 100), target_recall=0.9, progress=messages.append)
    assert tuning.reached and not tuning.budget_exhausted
    assert [b.up_to_k for b in tuning.bands] == [1, 10, 50, 100]
    assert [b.lowest_k for b in tuning.bands] == [1, 2, 11, 51]
    check_bands(tuning.table)  # increasing, never searching less
    for band in tuning.bands:
        chosen = band.chosen
        assert chosen.recall >= 0.9 and chosen in band.points
        assert chosen.num_reordering_candidates >= band.up_to_k
        faster = [p for p in band.points if p.single_p50_ms < chosen.single_p50_ms]
        assert all(p.recall < 0.9 for p in faster)
        # The worst recall@k of the band, measured as `retrieve(k)` searches for each k.
        knobs = band_kwargs(tuning.table, band.up_to_k)
        recalls = [
            recall_at_k(
                scann_top_k(index["searcher"], index["queries"], k, knobs), index["exact"], k
            )
            for k in range(band.lowest_k, band.up_to_k + 1)
        ]
        assert min(recalls) == pytest.approx(chosen.recall)
    # A band's grid starts at the previous band's choice.
    for low, high in itertools.pairwise(tuning.bands):
        for point in high.points:
            assert point.num_leaves_to_search >= low.chosen.num_leaves_to_search
            assert point.num_reordering_candidates >= low.chosen.num_reordering_candidates
    assert any("band k 51..100" in m for m in messages)
    # The evaluation's recall curve over every k agrees with the tuning's worst recalls.
    curve = served_recall(index["searcher"], index["queries"], index["exact"], tuning.table, 100)
    for band in tuning.bands:
        worst = curve[band.lowest_k - 1 : band.up_to_k].min()
        assert worst == pytest.approx(band.chosen.recall)
    png = plot_bands(tuning, [], tmp_path / "bands.png")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and png.stat().st_size > 5_000
    block = tuning.to_dict()
    assert block["source"] == "--target-recall" and len(block["bands"]) == 4
    assert block["bands"][1]["chosen"] == {
        "num_leaves_to_search": tuning.bands[1].chosen.num_leaves_to_search,
        "num_reordering_candidates": tuning.bands[1].chosen.num_reordering_candidates,
        "recall": tuning.bands[1].chosen.recall,
        "single_p50_ms": tuning.bands[1].chosen.single_p50_ms,
    }


def test_a_budget_that_runs_out_keeps_the_best_found(index: dict[str, Any]) -> None:
    sweep = BandSweep(
        index["searcher"], index["config"], index["queries"], index["exact"], len(index["db"])
    )
    ticks = itertools.count()
    messages: list[str] = []
    tuning = tune_bands(
        sweep,
        (1, 10, 50, 100),
        target_recall=0.999,
        source="default",
        budget_seconds=3,
        progress=messages.append,
        clock=lambda: float(next(ticks)),  # one second per look at the clock
    )
    assert tuning.budget_exhausted and tuning.budget_seconds == 3
    measured = [len(b.points) for b in tuning.bands]
    assert 0 < sum(measured) <= 3 and measured[-1] == 0
    check_bands(tuning.table)  # the unmeasured bands are widened, never narrowed
    last = tuning.bands[-1]
    assert last.chosen.num_reordering_candidates >= 100 and not np.isnan(last.chosen.recall)
    assert any("budget ran out" in m and "--tuning-budget" in m for m in messages)
    assert tuning.to_dict()["budget_exhausted"] is True


@pytest.mark.parametrize(
    ("options", "target", "want"),
    [
        (IndexOptions(kind="tree"), None, (0.95, "default")),
        (IndexOptions(kind="tree"), 0.9, (0.9, "--target-recall")),
        (IndexOptions(kind="tree", num_leaves_to_search=3), None, None),
        (IndexOptions(kind="tree", num_reordering_candidates=300), None, None),
        (IndexOptions(kind="tree", num_leaves_to_search=3), 0.9, (0.9, "--target-recall")),
        (IndexOptions(kind="brute-force"), 0.9, None),
        (IndexOptions(), None, None),  # auto: brute force for a small catalogue
    ],
)
def test_when_the_export_tunes(
    options: IndexOptions, target: float | None, want: tuple[float, str] | None
) -> None:
    config = ExportConfig(output=Path("/tmp/x"), index=options, target_recall=target)
    assert tuning_target(config, options.resolve(4_000, k=10, max_k=100)) == want


def test_the_tuning_budget_flag() -> None:
    from scann_serving.export._cli import config_from_args, parser

    args = ["--output", "/tmp/x"]
    assert config_from_args(parser().parse_args(args)).tuning_budget is None
    budget = config_from_args(parser().parse_args([*args, "--tuning-budget", "5"]))
    assert budget.tuning_budget == 5.0
    with pytest.raises(ValueError, match=r"--tuning-budget 0\.0 must be > 0"):
        ExportConfig(output=Path("/tmp/x"), tuning_budget=0.0).validate()


def test_graph_and_native_search_pick_the_band_of_k(tmp_path: Path) -> None:
    """The module's signature and the native index, over the same trained index, both equal
    the pybind twin searched with the band of k's knobs; the fresh-process verification
    (every k from 1 to max_k, filtered requests at each band's k) agrees."""
    import tensorflow as tf
    from scann_serving.export._verify import run_child
    from scann_serving.export.testing import make_tiny_version, tiny_attributes, tiny_spec
    from scann_serving.server._bundle import bundle_dir, read_bundle

    spec = tiny_spec(num_items=400)
    config = tree_config(400, k=10, max_k=80)
    version = make_tiny_version(
        tmp_path / "retrieval",
        spec=spec,
        max_k=80,
        index_config=config,
        attributes=tiny_attributes(spec),
        search_bands=BANDS,
    )
    manifest = json.loads((version / "assets.extra/scann_manifest.json").read_text())
    assert manifest["search_bands"] == [band.to_dict() for band in BANDS]
    native = read_bundle(bundle_dir(version))
    assert native.settings.bands == BANDS
    model = tf.saved_model.load(str(version))
    users = np.asarray(spec.users[:20], dtype=object)
    embeddings = spec.embed(list(users))
    differs = 0
    for k in (1, 2, 10, 11, 50, 51, 80):
        want = native.searcher.search_batched(embeddings, k, **band_kwargs(BANDS, k))[0]
        want_ids = spec.identifiers[np.asarray(want)]
        graph = model.signatures["retrieve"](query=tf.constant(list(users)), k=tf.constant(k))
        assert graph["identifiers"].numpy().astype(object).tolist() == [
            [i.encode() for i in row] for row in want_ids
        ], k
        got, _ = native.retrieve(users.astype(bytes).astype(object), k)
        assert got.tolist() == [[i.encode() for i in row] for row in want_ids], k
        other = next(b for b in BANDS if b.up_to_k != native.settings.band(k).up_to_k)
        wrong = native.searcher.search_batched(
            embeddings, k, max(k, other.reordering), other.leaves_to_search
        )[0]
        differs += int((np.asarray(wrong) != np.asarray(want)).any())
    assert differs > 0, "the bands' knobs must give different answers for the test to bite"
    probe = (users, spec.user_embeddings[:16])
    report = run_child(version, native_probe=probe)
    assert "native_error" not in report, report.get("native_error")
    assert report["native"]["identical_identifiers"] is True


def test_a_format_1_bundle_is_one_band_for_the_default_k(tmp_path: Path) -> None:
    from scann_serving.server._bundle import METADATA_FILENAME, read_info

    meta = {
        "format": 1,
        "num_candidates": 300,
        "embedding_dim": 8,
        "default_k": 10,
        "max_k": 100,
        "leaves_to_search": 7,
        "reordering": 150,
        "tower": None,
        "signatures": ["search_embedding"],
    }
    (tmp_path / METADATA_FILENAME).write_text(json.dumps(meta))
    settings = read_info(tmp_path).settings
    assert settings.bands == (SearchBand(10, 7, 150),)
    assert settings.knobs(1) == (150, 7) and settings.knobs(100) == (150, 7)
    assert settings.knobs(200) == (200, 7)

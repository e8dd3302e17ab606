"""The native bundle the export writes beside the SavedModel, and its verification.

Both shared exports carry one (v1: a tuned tree + AH index, v2: brute force through the
command), verified in the fresh process against the loaded SavedModel; a bundle that
answers differently is refused with the request named, so nothing would be published.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SharedExport
from scann_serving.client.contract import (
    RETRIEVE,
    RETRIEVE_FILTERED,
    SEARCH_EMBEDDING,
    SIGNATURE_NAMES,
)
from scann_serving.server._bundle import BUNDLE_RELPATH, bundle_dir, read_bundle
from scann_serving.server._native_search import TOWER_STRING, run_signature


@pytest.mark.parametrize("version", [1, 2])
def test_each_version_carries_a_verified_bundle(shared_export: SharedExport, version: int) -> None:
    manifest = shared_export.manifest(version)
    native = manifest["native"]
    assert native["path"] == BUNDLE_RELPATH and native["tower"] == TOWER_STRING
    # The synthetic exports carry attributes, so the bundle serves retrieve_filtered too.
    assert sorted(native["signatures"]) == sorted([*SIGNATURE_NAMES, RETRIEVE_FILTERED])
    assert native["bytes"] > 0 and native["savedmodel_bytes"] > 0
    checked = manifest["verification"]["native"]
    assert checked["identical_identifiers"] is True
    assert RETRIEVE_FILTERED in checked["signatures"]
    assert checked["rows_compared"] >= 2 * 1000  # held-out keys and embeddings, >= 1000 each
    assert (shared_export.base / str(version) / BUNDLE_RELPATH / "scann").is_dir()


def test_the_summary_reports_the_bundle_beside_the_savedmodel(shared_export: SharedExport) -> None:
    assert "native bundle (assets.extra/native)" in shared_export.cli.stdout
    assert "native bundle verified" in shared_export.cli.stdout


def test_the_bundle_searches_with_the_exported_knobs(shared_export: SharedExport) -> None:
    manifest = shared_export.manifest(1)
    index = read_bundle(bundle_dir(shared_export.base / "1"))
    assert index.settings.k == manifest["k"] and index.settings.max_k == manifest["max_k"]
    # The module's band table, and the default k's band is the index's scalar knobs.
    assert [band.to_dict() for band in index.settings.bands] == [
        {key: row[key] for key in ("up_to_k", "leaves_to_search", "reordering")}
        for row in manifest["search_bands"]
    ]
    default = index.settings.band(manifest["k"])
    assert default.leaves_to_search == manifest["index"]["num_leaves_to_search"]
    assert default.reordering == manifest["index"]["num_reordering_candidates"]
    assert index.num_candidates == manifest["num_candidates"]
    query = np.asarray([next(iter(index.table.keys or {}))], dtype=object)  # type: ignore[union-attr]
    for k in (1, manifest["max_k"]):
        identifiers, scores = run_signature(index, RETRIEVE, {"query": query, "k": np.int32(k)})
        assert identifiers.shape == scores.shape == (1, k)
        assert np.all(np.diff(scores[0]) <= 1e-6)  # best first


def test_an_old_single_pair_bundle_still_loads(shared_export: SharedExport, tmp_path: Path) -> None:
    """A format-1 bundle (one knob pair, no `search_bands`) serves as one band tuned for the
    default k, which is what its SavedModel's graph does for every k."""
    version = tmp_path / "1"
    shutil.copytree(shared_export.base / "1", version)
    meta_path = version / BUNDLE_RELPATH / "bundle.json"
    meta = json.loads(meta_path.read_text())
    default = next(b for b in meta.pop("search_bands") if b["up_to_k"] >= meta["default_k"])
    meta.update(format=1, leaves_to_search=default["leaves_to_search"])
    meta["reordering"] = default["reordering"]
    meta_path.write_text(json.dumps(meta))
    index = read_bundle(bundle_dir(version))
    assert len(index.settings.bands) == 1
    band = index.settings.bands[0]
    assert (band.up_to_k, band.leaves_to_search) == (meta["default_k"], meta["leaves_to_search"])
    query = np.asarray([next(iter(index.table.keys or {}))], dtype=object)  # type: ignore[union-attr]
    identifiers, _ = run_signature(index, RETRIEVE, {"query": query, "k": np.int32(50)})
    want = index.searcher.search_batched(
        index.table.embed(query),  # type: ignore[union-attr]
        50,
        max(50, meta["reordering"]),
        meta["leaves_to_search"],
    )[0]
    assert identifiers.tolist() == index.identifiers[np.asarray(want)].tolist()


def test_verification_refuses_a_bundle_that_answers_differently(
    shared_export: SharedExport, tmp_path: Path
) -> None:
    from scann_serving.export._verify import run_child

    version = tmp_path / "1"
    shutil.copytree(shared_export.base / "2", version)
    rows_path = version / BUNDLE_RELPATH / "query_rows.npy"
    rows = np.load(rows_path)
    np.save(rows_path, rows[::-1].copy())  # every key now embeds as another
    embeddings = np.random.default_rng(0).standard_normal((16, rows.shape[1]), np.float32)
    keys = np.asarray(["1", "2"], dtype=object)
    report = run_child(version, native_probe=(keys, embeddings))
    assert "native bundle request" in report["native_error"]
    # The index itself is untouched: embeddings alone still agree.
    meta_path = version / BUNDLE_RELPATH / "bundle.json"
    meta = json.loads(meta_path.read_text())
    meta.update(tower=None, signatures=[SEARCH_EMBEDDING])
    meta_path.write_text(json.dumps(meta))
    report = run_child(version, native_probe=(keys, embeddings))
    assert "native_error" not in report and report["native"]["signatures"] == [SEARCH_EMBEDDING]


def test_no_native_bundle_flag() -> None:
    from scann_serving.export._cli import config_from_args, parser

    args = ["--dataset", "synthetic", "--output", "/tmp/x"]
    assert config_from_args(parser().parse_args(args)).native_bundle is True
    no_bundle = parser().parse_args([*args, "--no-native-bundle"])
    assert config_from_args(no_bundle).native_bundle is False

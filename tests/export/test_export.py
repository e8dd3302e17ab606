"""The export end to end: versions on disk, the manifest, the signature contract in a separate
process, fresh-process verification and the ScaNN-ops requirement."""

from __future__ import annotations

import itertools
import json

import pytest
from _export_support import run_python
from conftest import SharedExport

REQUIRED = (
    "saved_model.pb",
    "assets.extra/tf_serving_warmup_requests",
    "assets.extra/scann_manifest.json",
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_two_exports_leave_versions_1_and_2_and_nothing_else_numeric(
    shared_export: SharedExport,
) -> None:
    base = shared_export.base
    assert sorted(p.name for p in base.iterdir() if p.name.isdigit()) == ["1", "2"]
    assert not [p.name for p in base.iterdir() if p.name.startswith(".staging")]
    for version in ("1", "2"):
        for name in REQUIRED:
            assert (base / version / name).is_file(), f"{version}/{name} missing"
        assert (base / version / "variables").is_dir()
    assert shared_export.result.version == 1
    assert shared_export.result.version_dir == base / "1"
    # The command prints a concise summary of what it wrote and what it measured.
    out = shared_export.cli.stdout
    assert f"wrote {base / '2'}" in out
    assert "recall@10" in out and "1 query p50" in out
    assert "verified in a fresh process" in out
    # ... and progress on stderr.
    assert "training the two-tower model" in shared_export.cli.stderr
    assert "epoch 1/1" in shared_export.cli.stderr


def test_manifest_of_the_tuned_tree_version(shared_export: SharedExport) -> None:
    manifest = shared_export.manifest(1)
    assert manifest == shared_export.result.manifest | {"version": 1}
    assert manifest["version"] == 1 and manifest["model_name"] == "retrieval"
    assert manifest["runtime"]["tensorflow"].startswith("2.20.")
    assert manifest["runtime"]["scann"] == "1.4.2"
    assert manifest["num_candidates"] == 600 and manifest["embedding_dim"] == 16
    index, tuning, evaluation = manifest["index"], manifest["tuning"], manifest["evaluation"]
    assert index["brute_force"] is False and index["num_leaves"] > 1
    assert tuning["target_recall"] == 0.9 and tuning["source"] == "--target-recall"
    assert tuning["budget_seconds"] is None and tuning["budget_exhausted"] is False
    # One band per upper k (1, 10, 50, max_k), each swept; the table is what the module holds.
    bands = tuning["bands"]
    assert [b["up_to_k"] for b in bands] == [1, 10, 50, 100]
    assert all(len(b["sweep"]) >= 1 for b in bands)
    table = manifest["search_bands"]
    assert [(row["leaves_to_search"], row["reordering"]) for row in table] == [
        (b["chosen"]["num_leaves_to_search"], b["chosen"]["num_reordering_candidates"])
        for b in bands
    ]
    assert [row["serves_k"] for row in table] == [[1, 1], [2, 10], [11, 50], [51, 100]]
    for low, high in itertools.pairwise(table):  # a larger band never searches less
        assert high["leaves_to_search"] >= low["leaves_to_search"]
        assert high["reordering"] >= low["reordering"]
    # The index's scalar knobs are the default k's band.
    assert (index["num_leaves_to_search"], index["num_reordering_candidates"]) == (
        table[1]["leaves_to_search"],
        table[1]["reordering"],
    )
    for band, row in zip(bands, table, strict=True):
        if band["reached"]:
            chosen = band["chosen"]
            assert chosen["recall"] >= 0.9
            faster = [p for p in band["sweep"] if p["single_p50_ms"] < chosen["single_p50_ms"]]
            assert all(p["recall"] < 0.9 for p in faster)
            # Measured on the same queries with the same knobs: the same worst recall.
            assert row["worst_recall"] == pytest.approx(chosen["recall"])
    if tuning["reached"]:
        assert evaluation["recall_worst"]["recall"] >= 0.9
    assert set(evaluation["recall_by_k"]) == {"1", "10", "50", "100"}
    assert evaluation["recall_by_k"]["10"] == evaluation["recall_at_k"]
    # The evaluation searches the very index the SavedModel carries (the TF op gives the same
    # recall as the in-process twin).
    assert evaluation["recall_at_k_exported_index"] == pytest.approx(evaluation["recall_at_k"])
    plot = shared_export.base / "1" / tuning["plot"]
    assert plot.read_bytes().startswith(PNG_MAGIC)
    assert shared_export.result.plot == plot
    assert manifest["verification"]["identical_identifiers"] is True
    assert manifest["verification"]["requests_replayed"] == manifest["warmup_records"] > 0
    assert manifest["dataset"]["fingerprint"].startswith("sha256:")
    assert len(manifest["training"]["loss_per_epoch"]) == 1
    # The synthetic dataset carries genres and years, so the version also filters.
    assert set(manifest["signatures"]) == {
        "serving_default",
        "retrieve",
        "search_embedding",
        "retrieve_with_exclusions",
        "retrieve_filtered",
    }
    attributes = manifest["attributes"]
    assert set(attributes["namespaces"]) == {"genre"} and set(attributes["numeric_attributes"]) == {
        "year"
    }
    assert attributes["candidates_with_tokens"] == manifest["num_candidates"]
    assert (
        1930
        <= attributes["numeric_attributes"]["year"]["min"]
        <= attributes["numeric_attributes"]["year"]["max"]
    )
    assert (shared_export.base / "1" / attributes["layout"] / "schema.json").is_file()


def test_evaluation_of_the_brute_force_version(shared_export: SharedExport) -> None:
    evaluation = shared_export.manifest(2)["evaluation"]
    assert shared_export.manifest(2)["index"]["brute_force"] is True
    assert evaluation["recall_at_k"] == 1.0
    accuracy = evaluation["factorized_top_k"]
    assert accuracy["brute_force"] == accuracy["scann"]
    assert set(accuracy["scann"]) == {"top_1", "top_5", "top_10", "top_50", "top_100"}
    # Accuracy grows with k; the trained towers beat a random ranking at depth 100.
    values = [accuracy["scann"][f"top_{k}"] for k in (1, 5, 10, 50, 100)]
    assert values == sorted(values)
    assert accuracy["scann"]["top_100"] > accuracy["chance"]["top_100"]
    for method in ("brute_force", "scann"):
        latency = evaluation["latency"][method]
        assert latency["single_p50_ms"] > 0 and latency["batch_qps"] > 0


CONTRACT_CHECK = """
import itertools
import json
import numpy as np
import tensorflow as tf
from scann.scann_ops.py import scann_ops  # registers the Scann ops

def check(path, max_k):
    model = tf.saved_model.load(path)
    sig = model.signatures
    queries = tf.constant(["1", "2", "3", "no-such-user"])
    default = sig["serving_default"](query=queries)
    ids, scores = default["identifiers"], default["scores"]
    assert ids.dtype == tf.string and scores.dtype == tf.float32, (ids.dtype, scores.dtype)
    assert ids.shape == (4, 10) and scores.shape == (4, 10), (ids.shape, scores.shape)
    assert np.all(np.diff(scores.numpy(), axis=1) <= 1e-6), "scores must be best first"

    three = sig["retrieve"](query=queries, k=tf.constant(3))
    assert three["identifiers"].shape == (4, 3)
    wide = sig["retrieve"](query=queries[:1], k=tf.constant(max_k))
    assert wide["identifiers"].shape == (1, max_k)
    errors = []
    for bad in (0, max_k + 1):
        try:
            sig["retrieve"](query=queries, k=tf.constant(bad))
        except tf.errors.InvalidArgumentError as exc:
            errors.append("k must be between 1 and max_k" in str(exc))
    assert errors == [True, True], errors

    by_embedding = sig["search_embedding"](embedding=model.query_model(queries))
    assert by_embedding["identifiers"].shape == (4, 10)

    top = ids.numpy()
    exclude = tf.constant([[top[i, 0], top[i, 2]] for i in range(4)])
    excluded = sig["retrieve_with_exclusions"](query=queries, exclude=exclude)["identifiers"]
    assert excluded.shape == (4, 10)
    wider = sig["retrieve"](query=queries, k=tf.constant(12))["identifiers"]
    return {
        "default": top.tolist(), "retrieve3": three["identifiers"].numpy().tolist(),
        "by_embedding": by_embedding["identifiers"].numpy().tolist(),
        "wider": wider.numpy().tolist(), "excluded": excluded.numpy().tolist(),
        "exclude": exclude.numpy().tolist(),
    }

print(json.dumps([check(path, max_k) for path, max_k in VERSIONS], default=lambda b: b.decode()))
"""


def test_signatures_follow_the_contract_in_a_separate_process(shared_export: SharedExport) -> None:
    versions = [
        (str(shared_export.base / str(v)), shared_export.manifest(v)["max_k"]) for v in (1, 2)
    ]
    proc = run_python(CONTRACT_CHECK.replace("VERSIONS", repr(versions)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for got in json.loads(proc.stdout.strip().splitlines()[-1]):
        # query-time k: the first 3 of the default answer; the saved query tower and the
        # embedding signature agree; exclusions drop exactly the excluded identifiers and
        # keep the order of the rest.
        assert [row[:3] for row in got["default"]] == got["retrieve3"]
        assert got["by_embedding"] == got["default"]
        rows = zip(got["wider"], got["exclude"], got["excluded"], strict=True)
        for wider, exclude, excluded in rows:
            assert excluded == [i for i in wider if i not in exclude][:10]


def test_loading_without_the_scann_ops_fails_with_tensorflows_message(
    shared_export: SharedExport,
) -> None:
    from scann_serving.export._verify import run_child

    report = run_child(shared_export.base / "1", scann_ops=False)
    assert "Op type not registered 'Scann>" in report["error"]


def test_verification_rejects_a_model_that_answers_differently(shared_export: SharedExport) -> None:
    """The comparison the fresh-process check makes, on real replayed results: the same
    answers pass, one changed identifier or score fails with the request named."""
    import copy

    import tensorflow as tf
    from scann.scann_ops.py import scann_ops  # noqa: F401  (registers the Scann ops)
    from scann_serving.export import VerificationError
    from scann_serving.export._verify import _compare, replay_warmup

    version = shared_export.base / "2"
    loaded = tf.saved_model.load(str(version))
    results = replay_warmup(version, lambda sig, inputs: loaded.signatures[sig](**inputs))
    assert len(results) == shared_export.manifest(2)["warmup_records"]
    _compare(results, copy.deepcopy(results))
    changed = copy.deepcopy(results)
    changed[3]["identifiers"][0][0] = "not-the-answer"
    with pytest.raises(VerificationError, match=r"warmup request 3 \(serving_default\)"):
        _compare(results, changed)
    rescored = copy.deepcopy(results)
    rescored[0]["scores"][0][0] += 1.0
    with pytest.raises(VerificationError, match="scores differ"):
        _compare(results, rescored)


def test_an_existing_version_is_never_overwritten(
    shared_export: SharedExport, capsys: pytest.CaptureFixture[str]
) -> None:
    from scann_serving.export._cli import main

    before = (shared_export.base / "1" / "saved_model.pb").stat().st_mtime_ns
    code = main(["--dataset", "synthetic", "--output", str(shared_export.base), "--version", "1"])
    assert code == 2
    assert "exists; versions are never overwritten" in capsys.readouterr().err
    assert (shared_export.base / "1" / "saved_model.pb").stat().st_mtime_ns == before


def test_no_bool_transpose_in_the_graph(shared_export: SharedExport) -> None:
    """A bool (or uint8) Transpose makes TensorFlow's oneDNN build log an ERROR line on CPUs
    it does not take for AVX-512 ones, the first time the version is served; the graph
    transposes numbers instead (read from saved_model.pb, so it holds on any CPU)."""
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((shared_export.base / "1" / "saved_model.pb").read_bytes())
    graph = saved.meta_graphs[0].graph_def
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    transposes = [n for n in nodes if n.op == "Transpose"]
    assert transposes, "the filtered signature transposes its masks: expected Transpose nodes"
    small = {types_pb2.DT_BOOL, types_pb2.DT_UINT8, types_pb2.DT_INT8}
    assert [n.name for n in transposes if n.attr["T"].type in small] == []

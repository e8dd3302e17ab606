"""Own string towers as lookup tables: which SavedModels are one, and the table they give.

A tower is loaded as `scann-export --query-model DIR` loads it (`SignatureTower`); the
table must answer every key (known, unknown, non-ASCII, empty) with the tower's own
output. Towers that are not a single-OOV lookup get no table and say why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tower_helpers import VOCABULARY, keras3_lookup_tower, tf_lookup_tower

#: Keys outside VOCABULARY, beside a few inside it.
QUERIES = ["u1", "Ünïcödé", "用户-3", "nope", "", "U1", " u1", "emoji-😀", "ünïcödé", "Case"]


def _towers(path: Path, signature: str) -> Any:
    from scann_serving.export._own_towers import SignatureTower
    from scann_serving.export._towers import Towers

    tower = SignatureTower(path, signature)
    width = int(tower(np.asarray([b"u1"], dtype=object)).shape[1])
    return Towers(
        query_model=tower,
        identifiers=np.asarray(["item"], dtype=object),
        embeddings=np.zeros((1, width), np.float32),
        query_key=tower.key_spec,
    )


def _table_of(path: Path, signature: str = "serve") -> tuple[Any, Any]:
    from scann_serving.export._native import tower_table

    towers = _towers(path, signature)
    return towers, tower_table(towers)


def _assert_answers_like_the_tower(towers: Any, table: Any) -> None:
    keys = np.asarray([q.encode() for q in QUERIES], dtype=object)
    np.testing.assert_allclose(table.embed(keys), towers.embed_keys(keys), rtol=0, atol=1e-6)


@pytest.mark.parametrize("mask_token", [None, ""])
def test_a_keras3_export_is_a_string_table(tmp_path: Path, mask_token: str | None) -> None:
    from scann_serving.server._native_search import TOWER_STRING

    tower = keras3_lookup_tower(tmp_path / "tower", mask_token=mask_token)
    towers, result = _table_of(tower)
    table = result.table
    assert table is not None and table.kind == TOWER_STRING, result.reason
    assert set(table.keys) >= {key.encode() for key in VOCABULARY}
    # Keras's mask token "" has its own row, held as one more key.
    assert (b"" in table.keys) == (mask_token == "")
    assert "one out-of-vocabulary row" in result.reason
    _assert_answers_like_the_tower(towers, table)


def test_a_tf_module_with_ops_after_the_lookup_is_a_string_table(tmp_path: Path) -> None:
    tower = tf_lookup_tower(tmp_path / "tower", "affine")
    towers, result = _table_of(tower, "serving_default")
    assert result.table is not None, result.reason
    assert len(result.table.rows) == len(VOCABULARY) + 1
    _assert_answers_like_the_tower(towers, result.table)


def test_a_hashed_oov_is_not_a_table(tmp_path: Path) -> None:
    tower = keras3_lookup_tower(tmp_path / "tower", num_oov_indices=3)
    _, result = _table_of(tower)
    assert result.table is None
    assert "unknown keys get 3 different embeddings" in result.reason


@pytest.mark.parametrize("after", ["length", "lower"])
def test_a_tower_that_reads_the_key_beyond_the_lookup_is_not_a_table(
    tmp_path: Path, after: str
) -> None:
    tower = tf_lookup_tower(tmp_path / "tower", after)
    _, result = _table_of(tower, "serving_default")
    assert result.table is None
    assert "different embeddings" in result.reason


def test_a_tower_without_a_lookup_table_is_not_one(tmp_path: Path) -> None:
    import tensorflow as tf

    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(key: tf.Tensor) -> dict[str, tf.Tensor]:
        buckets = tf.strings.to_hash_bucket_fast(key, 16)
        return {"embedding": tf.one_hot(buckets, 4)}

    module.serve = serve
    tf.saved_model.save(module, str(tmp_path / "tower"), signatures={"serving_default": serve})
    _, result = _table_of(tmp_path / "tower", "serving_default")
    assert result.table is None and "holds no string lookup table" in result.reason


def test_a_table_over_the_size_cap_is_not_written(tmp_path: Path) -> None:
    from scann_serving.export._tower_tables import string_table, tower_vocabulary

    towers = _towers(keras3_lookup_tower(tmp_path / "tower"), "serve")
    vocabulary = tower_vocabulary(towers.query_model)
    assert vocabulary is not None and len(vocabulary) == len(VOCABULARY)
    result = string_table(towers, 64, vocabulary)
    assert result.table is None and "(over 64)" in result.reason


def test_probes_skip_known_keys_and_vary_known_ones() -> None:
    from scann_serving.export._tower_tables import unknown_probes

    known = [key.encode() for key in ["UNKNOWN", "abc", ""]]
    probes = unknown_probes(known)
    assert not set(probes) & set(known)
    assert {b"ABC", b" abc", b"abc ", b"ab"} <= set(probes)
    assert len(probes) == len(set(probes))


def test_the_summary_names_the_query_key_and_the_tower_kind() -> None:
    from scann_serving.export._report import tower_line

    line = tower_line(
        {
            "query_key": {"dtype": "string"},
            "native": {"tower": None, "tower_reason": "unknown keys get 3 different embeddings"},
        }
    )
    assert line == (
        "query key string; native query tower: none: search_embedding only "
        "(unknown keys get 3 different embeddings)"
    )
    integer = tower_line({"query_key": {"dtype": "int64"}, "native": {"tower": "integer_table"}})
    assert integer == "query key int64; native query tower: integer table"


def test_a_tower_that_is_not_a_table_exports_a_search_embedding_bundle(tmp_path: Path) -> None:
    """Never an export failure: a hashed-OOV tower gets the embeddings-only bundle, and the
    fresh-process verification of that bundle passes."""
    from scann_serving.client.contract import SEARCH_EMBEDDING
    from scann_serving.export import ExportConfig, IndexOptions, OwnTowersOptions, export_model

    tower = keras3_lookup_tower(tmp_path / "tower", num_oov_indices=3)
    rng = np.random.default_rng(2)
    np.save(tmp_path / "items.npy", rng.standard_normal((120, 8)).astype(np.float32))
    (tmp_path / "ids.txt").write_text("".join(f"item-{i}\n" for i in range(120)))
    own = OwnTowersOptions(tower, tmp_path / "items.npy", tmp_path / "ids.txt", signature="serve")
    config = ExportConfig(
        output=tmp_path / "models",
        dataset=None,
        own_towers=own,
        index=IndexOptions(kind="brute-force"),
        eval_queries=20,
        latency_queries=5,
    )
    result = export_model(config, progress=lambda message: None)
    native = result.manifest["native"]
    assert native["tower"] is None and native["signatures"] == [SEARCH_EMBEDDING]
    assert "3 different embeddings" in native["tower_reason"]
    checked = result.manifest["verification"]["native"]
    assert checked["identical_identifiers"] is True and checked["signatures"] == [SEARCH_EMBEDDING]

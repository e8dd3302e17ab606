"""`retrieve_filtered` in the native bundle: the numpy twin of the graph, and its verification.

- over random attribute tables, filters, switch points and k, the native filtered search
  (`server._native_filter`) returns exactly the rows of the graph's `CandidateFilter` fed
  the same ScaNN results, never a failing candidate, and k whenever k pass;
- a version with attributes has a bundle covering `retrieve_filtered`, which
  `--backend=auto` therefore serves natively;
- the export's fresh-process verification refuses a bundle whose filter differs.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scann_serving.export._attributes import AttributeTable, CandidateAttributes
from scann_serving.server._attribute_files import AttributeIndex
from scann_serving.server._native_filter import FilteredSearch, FilterSettings

OPS = ("<", "<=", ">", ">=", "==", "!=")
COLORS = ("red", "green", "blue")


@st.composite
def tables(draw: Any) -> tuple[AttributeTable, np.ndarray]:
    n = draw(st.integers(1, 60))
    color = [tuple(draw(st.lists(st.sampled_from(COLORS), max_size=2))) for _ in range(n)]
    size = [tuple(draw(st.lists(st.sampled_from("SML"), max_size=1))) for _ in range(n)]
    values = st.sampled_from([np.nan, 1990.0, 2000.0, 2010.0])
    year = np.asarray(draw(st.lists(values, min_size=n, max_size=n)))
    ids = np.asarray([f"c{i}" for i in range(n)], dtype=object)
    source = CandidateAttributes(ids, {"color": color, "size": size}, {"year": year})
    embeddings = np.random.default_rng(n).standard_normal((n, 4)).astype(np.float32)
    return source.align(ids), embeddings


def filters() -> Any:
    tokens = st.sampled_from(
        [f"color={c}" for c in (*COLORS, "nope")] + [f"size={s}" for s in "SMLX"]
    )
    restricts = st.builds(
        lambda o, v: f"year{o}{v:g}", st.sampled_from(OPS), st.sampled_from([1990, 2000, 2005])
    )
    return st.tuples(
        st.lists(tokens, max_size=3), st.lists(tokens, max_size=2), st.lists(restricts, max_size=2)
    )


def _matrix(rows: list[list[str]]) -> np.ndarray:
    width = max([1, *(len(r) for r in rows)])
    return np.asarray([[v.encode() for v in r] + [b""] * (width - len(r)) for r in rows], object)


def native_filter(table: AttributeTable, embeddings: np.ndarray, exact: int) -> FilteredSearch:
    return FilteredSearch(AttributeIndex(table.layout()), embeddings, FilterSettings(exact, 0))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_native_filter_is_the_graph_and_never_returns_a_failing_candidate(data: Any) -> None:
    import tensorflow as tf
    from scann_serving.export._filtering import CandidateFilter

    table, embeddings = data.draw(tables())
    n = table.num_candidates
    exact = data.draw(st.sampled_from([0, 3, 1000]))
    batch = data.draw(st.integers(1, 4))
    chosen = [data.draw(filters()) for _ in range(batch)]
    k = data.draw(st.integers(1, 12))
    queries = np.random.default_rng(k).standard_normal((batch, 4)).astype(np.float32)
    # One set of ScaNN scores for both: the comparison is of the filtering, not the matmul.
    all_scores = queries @ embeddings.T
    ranked = np.argsort(-all_scores, axis=1, kind="stable")

    def tf_search(q: tf.Tensor, depth: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        top = tf.math.top_k(tf.constant(all_scores), k=tf.minimum(depth, n))
        return top.indices, top.values

    def np_search(depth: int) -> tuple[np.ndarray, np.ndarray]:
        rows = ranked[:, : min(depth, n)]
        return rows.astype(np.int64), np.take_along_axis(all_scores, rows, axis=1)

    matrices = [_matrix([list(f[i]) for f in chosen]) for i in range(3)]
    graph = CandidateFilter(table, embeddings, exact_max_passing=exact)
    want_rows, want_scores = graph(
        tf.constant(queries), tf.constant(k), *map(tf.constant, matrices), tf_search
    )
    native = native_filter(table, embeddings, exact)
    rows, scores = native.search(queries, k, native.masks(*matrices), np_search)
    assert rows.tolist() == want_rows.numpy().tolist()
    assert np.allclose(scores, want_scores.numpy(), atol=1e-5)
    for (allow, deny, numeric), got in zip(chosen, rows, strict=True):
        passing = table.passes(table.parse(allow, deny, numeric))
        real = got[got >= 0]
        assert passing[real].all(), "a returned candidate fails the filter"
        assert len(real) == min(k, int(passing.sum())) and len(set(real.tolist())) == len(real)


@pytest.fixture(scope="module")
def filtered_version(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    from scann_serving.export import tree_config
    from scann_serving.export.testing import make_tiny_version, tiny_attributes, tiny_spec

    spec = tiny_spec(num_items=400)
    version = make_tiny_version(
        tmp_path_factory.mktemp("native-filter") / "retrieval",
        spec=spec,
        index_config=tree_config(400, k=10, max_k=50),
        attributes=tiny_attributes(spec),
        exact_max_passing=20,
    )
    return version, spec


def test_auto_serves_a_version_with_attributes_natively(filtered_version: Any) -> None:
    from scann_serving.client.contract import RETRIEVE_FILTERED
    from scann_serving.server._backend import choose
    from scann_serving.server._bundle import bundle_dir, read_info

    version, _ = filtered_version
    assert RETRIEVE_FILTERED in read_info(bundle_dir(version)).signatures
    backend, reason = choose("auto", version)
    assert backend == "native", reason


def test_verification_refuses_a_differing_filter(filtered_version: Any, tmp_path: Path) -> None:
    from scann_serving.export._verify import run_child
    from scann_serving.server._bundle import BUNDLE_RELPATH

    # The untampered bundles pass it: the shared exports' (test_native_bundle) and, at
    # a low switch point over a tree, the served comparison in test_filtered_serving.
    version, spec = filtered_version
    probe = (np.asarray(spec.users[:8], dtype=object), spec.user_embeddings[:16])
    # The graph holds its own copy of the attributes; the bundle reads the plain files.
    # Moving every year a decade on changes what the native filter passes, only there.
    copy = tmp_path / "1"
    shutil.copytree(version, copy)
    numeric = copy / BUNDLE_RELPATH / ".." / "attributes" / "numeric.npy"
    np.save(numeric, np.load(numeric) + 10.0)
    report = run_child(copy, native_probe=probe)
    assert "retrieve_filtered" in report["native_error"]

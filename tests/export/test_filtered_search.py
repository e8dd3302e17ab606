"""`retrieve_filtered`: properties of the graph against the numpy reference filter.

Two hypothesis properties: the filter module over random attribute tables (run eagerly,
with an exact search, so each example costs milliseconds), and the real exported
SavedModel (a tree index, so the over-fetch and its widening run) over random filters and
k. In both, no returned candidate fails the filter, exactly k come back when at least k
pass, and padding is (b"", -inf) at the end. Bad filters are INVALID_ARGUMENT naming them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scann_serving.export._attributes import AttributeTable, CandidateAttributes

OPS = ("<", "<=", ">", ">=", "==", "!=")
COLORS = ("red", "green", "blue", "black", "white")


@st.composite
def tables(draw: Any) -> tuple[AttributeTable, np.ndarray]:
    n = draw(st.integers(1, 40))
    cells = st.lists(st.sampled_from(COLORS[:3]), max_size=2)
    color = [tuple(draw(cells)) for _ in range(n)]
    size = [tuple(draw(st.lists(st.sampled_from("SML"), max_size=1))) for _ in range(n)]
    year = np.asarray(
        draw(st.lists(st.sampled_from([np.nan, 1990.0, 2000.0, 2010.0]), min_size=n, max_size=n))
    )
    ids = np.asarray([f"c{i}" for i in range(n)], dtype=object)
    source = CandidateAttributes(ids, {"color": color, "size": size}, {"year": year})
    embeddings = np.random.default_rng(n).standard_normal((n, 4)).astype(np.float32)
    return source.align(ids), embeddings


def _filters(
    namespaces: dict[str, tuple[str, ...]], numeric: tuple[str, ...], values: list[float]
) -> Any:
    tokens = st.sampled_from([f"{ns}={v}" for ns, vs in namespaces.items() for v in (*vs, "nope")])
    restricts = st.builds(
        lambda n, o, v: f"{n}{o}{v:g}",
        st.sampled_from(numeric),
        st.sampled_from(OPS),
        st.sampled_from(values),
    )
    return st.tuples(
        st.lists(tokens, max_size=3), st.lists(tokens, max_size=2), st.lists(restricts, max_size=2)
    )


def _matrix(rows: list[list[str]]) -> np.ndarray:
    width = max(1, *(len(r) for r in rows))
    return np.asarray([r + [""] * (width - len(r)) for r in rows], dtype=object)


def _check(
    table: AttributeTable, filters: list[Any], k: int, rows: np.ndarray, scores: np.ndarray
) -> None:
    for (allow, deny, numeric), got, got_scores in zip(filters, rows, scores, strict=True):
        passing = table.passes(table.parse(allow, deny, numeric))
        real = got[got >= 0]
        assert len(got) == k
        assert passing[real].all(), "a returned candidate fails the filter"
        assert len(real) == min(k, int(passing.sum()))
        assert len(set(real.tolist())) == len(real)
        assert (got[len(real) :] == -1).all() and np.isneginf(got_scores[len(real) :]).all()
        assert (np.diff(got_scores[: len(real)]) <= 1e-6).all(), "best first"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_filter_module_over_random_attributes(data: Any) -> None:
    import tensorflow as tf
    from scann_serving.export._filtering import CandidateFilter

    table, embeddings = data.draw(tables())
    exact_max = data.draw(st.sampled_from([0, 3, 1000]))
    module = CandidateFilter(table, embeddings, exact_max_passing=exact_max)
    batch = data.draw(st.integers(1, 3))
    filters = [data.draw(_filters({"color": COLORS[:3], "size": tuple("SML")}, ("year",), [1990, 2000, 2005]))
               for _ in range(batch)]  # fmt: skip
    k = data.draw(st.integers(1, 12))
    queries = np.random.default_rng(k).standard_normal((batch, 4)).astype(np.float32)
    items = tf.constant(embeddings)

    def search(q: tf.Tensor, depth: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        top = tf.math.top_k(
            tf.matmul(q, items, transpose_b=True), k=tf.minimum(depth, len(embeddings))
        )
        return top.indices, top.values

    rows, scores = module(
        tf.constant(queries),
        tf.constant(k),
        *(tf.constant(_matrix([f[i] for f in filters])) for i in range(3)),
        search,
    )
    _check(table, filters, k, rows.numpy(), scores.numpy())
    # The exact path and the over-fetch (exact here) agree with brute force over the passing.
    for (allow, deny, numeric), q, got in zip(filters, queries, rows.numpy(), strict=True):
        passing = table.passes(table.parse(allow, deny, numeric))
        full = np.where(passing, embeddings @ q, -np.inf)
        want = np.argsort(-full, kind="stable")[: min(k, int(passing.sum()))]
        assert set(got[got >= 0].tolist()) == set(want.tolist())


@pytest.fixture(scope="module")
def filtered_version(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Any, AttributeTable, Any]:
    """A tiny exported version with attributes and a tree index (so ScaNN over-fetches),
    loaded in this process."""
    import tensorflow as tf
    from scann.scann_ops.py import scann_ops  # noqa: F401
    from scann_serving.export import tree_config
    from scann_serving.export.testing import make_tiny_version, tiny_attributes, tiny_spec

    spec = tiny_spec(num_items=400)
    table = tiny_attributes(spec)
    config = tree_config(400, k=10, max_k=50)
    version = make_tiny_version(
        tmp_path_factory.mktemp("filtered") / "retrieval",
        spec=spec,
        index_config=config,
        attributes=table,
        exact_max_passing=20,
    )
    return version, tf.saved_model.load(str(version)), table, spec


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_exported_signature_never_returns_a_failing_candidate(
    filtered_version: Any, data: Any
) -> None:
    _, loaded, table, spec = filtered_version
    batch = data.draw(st.integers(1, 3))
    namespaces = {"color": COLORS, "shop": ("shop0", "shop1", "shop2")}
    filters = [
        data.draw(_filters(namespaces, ("year", "price"), [1960, 1990, 2000, 50]))
        for _ in range(batch)
    ]
    k = data.draw(st.integers(1, 50))
    out = loaded.signatures["retrieve_filtered"](
        query=np.asarray(spec.users[:batch], dtype=object),
        k=np.int32(k),
        allow=_matrix([f[0] for f in filters]),
        deny=_matrix([f[1] for f in filters]),
        numeric=_matrix([f[2] for f in filters]),
    )
    index = {name: i for i, name in enumerate(spec.identifiers)}
    ids = [
        [index.get(i.decode(), -1) if i else -1 for i in row] for row in out["identifiers"].numpy()
    ]
    _check(table, filters, k, np.asarray(ids), out["scores"].numpy())


def test_export_records_the_schema_and_the_plain_layout(filtered_version: Any) -> None:
    version, _, table, _ = filtered_version
    manifest = json.loads((version / "assets.extra/scann_manifest.json").read_text())
    block = manifest["attributes"]
    assert set(block["namespaces"]) == {"color", "shop"}
    assert (
        set(block["numeric_attributes"]) == {"price", "year"}
        and block["numeric_attributes"]["year"]["missing"] > 0
    )
    assert block["layout"] == "assets.extra/attributes"
    assert "retrieve_filtered" in manifest["signatures"]
    assert set(manifest["signatures"]["retrieve_filtered"]["inputs"]) == {
        "query",
        "k",
        "allow",
        "deny",
        "numeric",
    }
    on_disk = AttributeTable.load(version / "assets.extra/attributes")
    assert np.array_equal(on_disk.tokens, table.tokens) and np.array_equal(
        on_disk.offsets, table.offsets
    )
    assert list(on_disk.vocabulary) == list(table.vocabulary)
    warm = manifest["warmup_records"]
    assert warm >= 12  # the ten of every version plus two filtered ones


@pytest.mark.parametrize(
    ("inputs", "named"),
    [
        ({"allow": [["colour=red"]]}, "unknown namespace"),
        ({"deny": [["red"]]}, "namespace=value"),
        ({"numeric": [["year=>1990"]]}, "NAME OP NUMBER"),
        ({"numeric": [["size<3"]]}, "unknown attribute"),
    ],
)
def test_bad_filters_are_invalid_argument_in_the_graph(
    filtered_version: Any, inputs: dict[str, Any], named: str
) -> None:
    import tensorflow as tf

    _, loaded, _, spec = filtered_version
    full = {"allow": [[""]], "deny": [[""]], "numeric": [[""]], **inputs}
    with pytest.raises(tf.errors.InvalidArgumentError, match=named):
        loaded.signatures["retrieve_filtered"](
            query=np.asarray(spec.users[:1], dtype=object),
            k=np.int32(5),
            **{key: np.asarray(value, dtype=object) for key, value in full.items()},
        )

"""Small real models for tests and examples: a real ScaNN SavedModel version in seconds.

`make_tiny_version` skips training (the query tower is a lookup table of random
embeddings) but is otherwise exactly what `scann-export` publishes: the same module, the
four signatures, warmup requests, manifest and atomic publish.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scann_serving.client.contract import ATTRIBUTES_MANIFEST_KEY
from scann_serving.export._attributes import AttributeTable, CandidateAttributes
from scann_serving.export._index import IndexConfig, build_tf_searcher, default_config
from scann_serving.export._manifest import build_manifest, fingerprint
from scann_serving.server._native_search import SearchBand

__all__ = ["TinyModelSpec", "make_tiny_version", "tiny_attributes", "tiny_spec"]


class TinyModelSpec:
    """The data behind a tiny model, to compute expected results in tests.

    Attributes:
        users: Query keys, string `[num_users]`.
        user_embeddings: float32 `[num_users, dim]` (unknown users embed to zeros).
        identifiers: Candidate identifiers, string `[num_items]`.
        item_embeddings: float32 `[num_items, dim]`.
    """

    def __init__(self, num_users: int, num_items: int, dim: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.users = np.asarray([str(i) for i in range(1, num_users + 1)], dtype=object)
        self.user_embeddings = rng.standard_normal((num_users, dim)).astype(np.float32)
        self.identifiers = np.asarray([f"item_{i}" for i in range(num_items)], dtype=object)
        self.item_embeddings = rng.standard_normal((num_items, dim)).astype(np.float32)
        self.dim = dim

    def embed(self, queries: list[str]) -> np.ndarray:
        """The query tower, in numpy."""
        index = {u: i for i, u in enumerate(self.users)}
        out = np.zeros((len(queries), self.dim), np.float32)
        for row, q in enumerate(queries):
            if q in index:
                out[row] = self.user_embeddings[index[q]]
        return out

    def brute_force(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k identifiers and scores by dot product."""
        scores = self.embed(queries) @ self.item_embeddings.T
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return self.identifiers[top], np.take_along_axis(scores, top, axis=1)


def tiny_spec(
    num_users: int = 50, num_items: int = 300, dim: int = 8, seed: int = 0
) -> TinyModelSpec:
    """The deterministic data of a tiny model."""
    return TinyModelSpec(num_users, num_items, dim, seed)


def tiny_attributes(spec: TinyModelSpec, seed: int = 1) -> AttributeTable:
    """Attributes for a tiny model's candidates: `color` (one or two of five), `shop` (one
    of three; every 10th candidate has none), numeric `year` (1950..2020; every 7th
    missing) and `price`."""
    rng = np.random.default_rng(seed)
    n = len(spec.identifiers)
    colors = ("red", "green", "blue", "black", "white")
    color = [
        tuple(rng.choice(colors, size=int(rng.integers(1, 3)), replace=False)) for _ in range(n)
    ]
    shop = [() if i % 10 == 9 else (f"shop{int(rng.integers(0, 3))}",) for i in range(n)]
    year = rng.integers(1950, 2021, n).astype(np.float64)
    year[6::7] = np.nan
    price = np.round(rng.uniform(1.0, 100.0, n), 2)
    source = CandidateAttributes(
        spec.identifiers,
        {"color": color, "shop": shop},
        {"year": year, "price": price},
        source="tiny",
    )
    return source.align(spec.identifiers)


def _lookup_tower(spec: TinyModelSpec) -> Any:
    import tensorflow as tf
    from scann_serving.export._text import encode_utf8

    class LookupTower(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="query_tower")
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(encode_utf8(spec.users)),
                    tf.range(len(spec.users), dtype=tf.int64),
                ),
                default_value=-1,
            )
            zeros = np.zeros((1, spec.dim), np.float32)
            self.embeddings = tf.Variable(np.concatenate([spec.user_embeddings, zeros]), name="emb")

        def __call__(self, query: tf.Tensor) -> tf.Tensor:
            rows = self.table.lookup(query)
            rows = tf.where(rows < 0, tf.cast(len(spec.users), tf.int64), rows)
            return tf.gather(self.embeddings, rows)

    return LookupTower()


def make_tiny_version(
    base_path: Path | str,
    *,
    model_name: str = "retrieval",
    version: int | None = None,
    spec: TinyModelSpec | None = None,
    k: int = 10,
    max_k: int = 50,
    index_config: IndexConfig | None = None,
    native_bundle: bool = True,
    native_tower: bool = True,
    attributes: AttributeTable | None = None,
    exact_max_passing: int | None = None,
    search_bands: tuple[SearchBand, ...] | None = None,
) -> Path:
    """Publishes a small real ScaNN retrieval model under `base_path` and returns its directory.

    By default 50 users x 300 items x 8 dims, brute-force ScaNN (exact results, so tests
    can compare against `spec.brute_force`). Pass `index_config` for a tree + AH index,
    `attributes` (e.g. `tiny_attributes(spec)`) for `retrieve_filtered`, `search_bands`
    for a table of query-time knobs per band of k (default: the config's one pair).
    With `native_bundle` (the default) the version carries `assets.extra/native/` too, so
    `scann-serve --backend=native` serves it; its tower is the spec's table (unknown keys
    get the zero row, as the SavedModel's tower gives them). `native_tower=False` leaves the
    tower out, as for a query tower that is not a lookup table (`search_embedding` only).
    """
    from scann_serving.export._module import RetrievalModule
    from scann_serving.export._savedmodel import (
        export_version,
        signature_summary,
        warmup_requests,
    )

    spec = spec or tiny_spec()
    config = index_config or default_config(len(spec.identifiers), k=k, max_k=max_k)
    searcher = build_tf_searcher(spec.item_embeddings, config, k)
    module = RetrievalModule(
        query_model=_lookup_tower(spec),
        identifiers=spec.identifiers,
        searcher=searcher,
        index_config=config,
        embedding_dim=spec.dim,
        k=k,
        max_k=max_k,
        attributes=attributes,
        embeddings=spec.item_embeddings if attributes is not None else None,
        exact_max_passing=exact_max_passing,
        search_bands=search_bands,
    )
    manifest = build_manifest(
        model_name=model_name,
        k=k,
        max_k=max_k,
        num_candidates=len(spec.identifiers),
        embedding_dim=spec.dim,
        index=config.to_dict(),
        signatures=signature_summary(module),
        dataset={
            "name": "tiny",
            "fingerprint": fingerprint(
                [spec.item_embeddings.tobytes(), spec.user_embeddings.tobytes()]
            ),
        },
    )
    warmup = warmup_requests(
        model_name,
        list(spec.users[:8]),
        spec.user_embeddings[:8],
        k=k,
        max_k=max_k,
        attributes=attributes,
    )
    manifest["search_bands"] = [band.to_dict() for band in module.search_bands]
    if attributes is not None:
        from scann_serving.export._stages import attributes_block

        manifest[ATTRIBUTES_MANIFEST_KEY] = attributes_block(attributes)

    def bundle(staging: Path) -> None:
        from scann_serving.export._index import pybind_twin
        from scann_serving.export._native import (
            filter_settings,
            search_settings,
            write_native_bundle,
        )
        from scann_serving.export._towers import Towers
        from scann_serving.server._native_search import TOWER_STRING, QueryTable

        rows = np.concatenate([spec.user_embeddings, np.zeros((1, spec.dim), np.float32)])
        keys = {str(user).encode(): row for row, user in enumerate(spec.users)}
        manifest["native"] = write_native_bundle(
            staging,
            twin=pybind_twin(searcher, spec.item_embeddings, config, k),
            identifiers=spec.identifiers,
            settings=search_settings(config, k, max_k, module.search_bands),
            towers=Towers(None, spec.identifiers, spec.item_embeddings),
            table=QueryTable(TOWER_STRING, rows, keys=keys, oov_row=len(spec.users))
            if native_tower
            else None,
            filtered=(
                filter_settings(config, len(spec.identifiers), exact_max_passing),
                spec.item_embeddings,
            )
            if attributes is not None
            else None,
        )

    return export_version(
        module,
        base_path,
        manifest=manifest,
        warmup=warmup,
        version=version,
        extra=bundle if native_bundle else None,
        attributes=attributes,
    )

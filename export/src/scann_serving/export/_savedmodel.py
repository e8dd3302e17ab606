"""Saving a `RetrievalModule` as a TF Serving version: SavedModel, warmup requests, manifest."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from scann_serving.client.contract import (
    ALLOW,
    ASSETS_EXTRA,
    ATTRIBUTES_DIRNAME,
    DENY,
    EMBEDDING,
    EXCLUDE,
    NUMERIC,
    QUERY,
    RETRIEVE,
    RETRIEVE_FILTERED,
    RETRIEVE_WITH_EXCLUSIONS,
    SEARCH_EMBEDDING,
    SERVING_DEFAULT,
    K,
)
from scann_serving.export._attributes import AttributeTable
from scann_serving.export._module import RetrievalModule
from scann_serving.export._publish import publish

#: The op namespace ScaNN's TensorFlow ops live in; SavedModel refuses it unless allowlisted.
SCANN_OP_NAMESPACE = "Scann"
SAVE_OPTIONS_KWARGS = {"namespace_whitelist": [SCANN_OP_NAMESPACE]}


def save_module(module: RetrievalModule, directory: Path) -> None:
    """Saves the module with its signatures and the Scann op namespace allowlisted."""
    tf.saved_model.save(
        module,
        str(directory),
        signatures=module.signatures(),
        options=tf.saved_model.SaveOptions(**SAVE_OPTIONS_KWARGS),
    )


def signature_summary(module: RetrievalModule) -> dict[str, Any]:
    """Input/output names, dtypes and shapes of each signature, for the manifest."""
    summary: dict[str, Any] = {}
    for name, fn in module.signatures().items():
        inputs = {
            spec.name: {"dtype": spec.dtype.name, "shape": _shape(spec.shape)}
            for spec in tf.nest.flatten(fn.structured_input_signature)
        }
        outputs = {
            key: {"dtype": spec.dtype.name, "shape": _shape(spec.shape)}
            for key, spec in fn.structured_outputs.items()
        }
        summary[name] = {"inputs": inputs, "outputs": outputs}
    return summary


def _shape(shape: tf.TensorShape) -> list[int] | None:
    return None if shape.rank is None else [-1 if d is None else int(d) for d in shape.as_list()]


def warmup_requests(
    model_name: str,
    queries: Sequence[str] | Sequence[int] | np.ndarray,
    embeddings: np.ndarray,
    *,
    k: int,
    max_k: int,
    query_dtype: str = "string",
    attributes: AttributeTable | None = None,
) -> list[Any]:
    """PredictRequests touching every signature, so each is traced and the index is hot.

    Covers single queries and a batch, the default and the largest k, exclusions and, with
    `attributes`, filters (a broad and a narrow one: both ways `retrieve_filtered` searches).
    `queries` are sent as the `query` input's dtype: strings, or int64 ids.
    """
    from tensorflow_serving.apis import predict_pb2

    def request(signature: str, inputs: dict[str, Any]) -> Any:
        req = predict_pb2.PredictRequest()
        req.model_spec.name = model_name
        req.model_spec.signature_name = signature
        for key, value in inputs.items():
            req.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        return req

    if query_dtype == "string":
        batch = np.asarray([str(q) for q in queries][:8] or ["warmup"], dtype=object)
    else:
        ids: list[Any] = list(queries)[:8] or [0]
        batch = np.asarray(ids, dtype=query_dtype)
    emb = np.asarray(embeddings, dtype=np.float32)
    requests = []
    for i in range(min(4, len(batch))):
        requests.append(request(SERVING_DEFAULT, {QUERY: batch[i : i + 1]}))
    requests += [
        request(SERVING_DEFAULT, {QUERY: batch}),
        request(RETRIEVE, {QUERY: batch, K: np.int32(k)}),
        request(RETRIEVE, {QUERY: batch[:1], K: np.int32(max_k)}),
        request(SEARCH_EMBEDDING, {EMBEDDING: emb[:1]}),
        request(SEARCH_EMBEDDING, {EMBEDDING: emb[:8]}),
        request(
            RETRIEVE_WITH_EXCLUSIONS,
            {
                QUERY: batch[:2],
                EXCLUDE: np.asarray([["__none__"]] * len(batch[:2]), dtype=object),
            },
        ),
    ]
    if attributes is not None:
        broad, _ = filter_examples(attributes, 1)
        _, narrow = filter_examples(attributes, len(batch[:2]))
        requests += [
            request(RETRIEVE_FILTERED, {QUERY: batch[:1], K: np.int32(k), **broad}),
            request(RETRIEVE_FILTERED, {QUERY: batch[:2], K: np.int32(max_k), **narrow}),
        ]
    return requests


def filter_examples(table: AttributeTable, rows: int) -> list[dict[str, np.ndarray]]:
    """Two filters of the table's own attributes, as `retrieve_filtered` inputs for `rows`
    queries: the most common token (broad: ScaNN over-fetches) and, with a deny and a
    numeric restrict, the rarest (narrow: the passing set is scored exactly)."""
    counts = np.bincount(table.tokens, minlength=len(table.vocabulary))
    order = np.argsort(-counts, kind="stable")
    common = str(table.vocabulary[order[0]]) if len(order) else ""
    rare = str(table.vocabulary[order[-1]]) if len(order) else ""
    restrict = ""
    if table.numeric_names:
        column = table.numeric[:, 0]
        low = float(np.nanmin(column)) if (~np.isnan(column)).any() else 0.0
        restrict = f"{table.numeric_names[0]}>={low:g}"

    def matrix(values: list[str], width: int = 1) -> np.ndarray:
        row = (values + [""] * width)[:width]
        return np.asarray([row] * rows, dtype=object)

    broad = {ALLOW: matrix([common]), DENY: matrix([""]), NUMERIC: matrix([""])}
    narrow = {
        ALLOW: matrix([rare, ""], 2),
        DENY: matrix([common if common != rare else ""]),
        NUMERIC: matrix([restrict]),
    }
    return [broad, narrow]


def export_version(
    module: RetrievalModule,
    base_path: Path | str,
    *,
    manifest: dict[str, Any],
    warmup: Sequence[Any],
    version: int | None = None,
    extra: Callable[[Path], None] | None = None,
    attributes: AttributeTable | None = None,
) -> Path:
    """Publishes `module` as the next (or the given) version under `base_path`, atomically.

    `extra(staging)` runs after the SavedModel is saved (e.g. to add the native bundle);
    with `attributes`, their plain files go under `assets.extra/attributes/`.
    """
    if set(manifest.get("signatures", ())) != set(module.signature_names):
        raise ValueError("the manifest must describe the module's signatures (signature_summary)")

    def write(staging: Path) -> None:
        save_module(module, staging)
        if extra is not None:
            extra(staging)
        if attributes is not None:
            attributes.save(staging / ASSETS_EXTRA / ATTRIBUTES_DIRNAME)

    return publish(
        base_path,
        write,
        version=version,
        manifest=manifest,
        warmup_requests=warmup,
    )

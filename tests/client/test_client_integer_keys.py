"""The client and a model whose query tower takes integer ids (no server, no TensorFlow):
the query input's dtype comes from the signature metadata, keys are converted to it, and
keys that are not ids the model knows are refused before any call."""

from __future__ import annotations

import numpy as np
import pytest
from scann_serving.client import InvalidRequest, ModelMetadata, Signature, TensorSpec
from scann_serving.client._base import BaseRetrievalClient
from scann_serving.client._proto import tf_framework_pb2 as fw
from scann_serving.client._tensors import to_numpy

OUTPUTS = {
    "identifiers": TensorSpec("identifiers", "DT_STRING", (None, 10)),
    "scores": TensorSpec("scores", "DT_FLOAT", (None, 10)),
}


def _metadata(query_dtype: str, manifest: dict | None = None) -> ModelMetadata:
    query = TensorSpec("query", query_dtype, (None,))
    signatures = {
        "serving_default": Signature("serving_default", "p", {"query": query}, OUTPUTS),
        "retrieve": Signature(
            "retrieve", "p", {"query": query, "k": TensorSpec("k", "DT_INT32", ())}, OUTPUTS
        ),
        "retrieve_with_exclusions": Signature(
            "retrieve_with_exclusions",
            "p",
            {"query": query, "exclude": TensorSpec("exclude", "DT_STRING", (None, None))},
            OUTPUTS,
        ),
    }
    return ModelMetadata("movies", 1, signatures, 16, 10, 100, manifest or {})


# A Struct carries every number as a double, as scann-serve's manifest arrives.
INT_MODEL = _metadata("DT_INT64", {"query_key": {"dtype": "int64", "min_id": 0.0, "max_id": 60.0}})


def _query(meta: ModelMetadata, queries, k=None, exclude=None) -> np.ndarray:
    client = BaseRetrievalClient("localhost:1", model="movies")
    plan = client._plan_retrieve(meta, (None, None), queries, k, exclude)
    return to_numpy(plan.request.inputs["query"])


def test_ids_are_sent_as_the_signatures_integer_dtype() -> None:
    assert INT_MODEL.query_dtype == "DT_INT64"
    for queries in ([3, 42], ["3", "42"], [b"3", np.int32(42)], np.asarray([3, 42])):
        sent = _query(INT_MODEL, queries)
        assert sent.dtype == np.int64 and sent.tolist() == [3, 42]
    assert _query(INT_MODEL, 7, k=20).tolist() == [7]
    assert _query(INT_MODEL, ["7"], exclude=["12"]).tolist() == [7]
    int32_model = _metadata("DT_INT32")
    assert _query(int32_model, ["-5"]).dtype == np.int32
    client = BaseRetrievalClient("localhost:1", model="movies")
    plan = client._plan_retrieve(INT_MODEL, (None, None), [3], None, None)
    assert plan.request.inputs["query"].dtype == fw.DT_INT64


def test_string_models_still_get_decimal_text() -> None:
    string_model = _metadata("DT_STRING")
    assert string_model.query_dtype == "DT_STRING"
    assert _query(string_model, [42, "u1"]).tolist() == ["42", "u1"]


@pytest.mark.parametrize(
    ("queries", "words"),
    [
        (["abc"], "query key 'abc': model 'movies' takes integer ids"),
        ([4.5], "query key 4.5"),
        (["4.0"], "'4.0'"),
        ([True], "True"),
        ([61], "outside the ids model 'movies' knows (0..60)"),
        ([-1], "(0..60)"),
        ([], "queries is empty"),
    ],
)
def test_keys_that_are_not_known_ids_are_refused_before_a_call(queries, words: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        _query(INT_MODEL, queries)
    assert isinstance(caught.value, ValueError)
    assert words in str(caught.value)


def test_without_a_manifest_the_dtype_bounds_apply() -> None:
    model = _metadata("DT_INT32")
    assert _query(model, [2**31 - 1]).tolist() == [2**31 - 1]
    with pytest.raises(InvalidRequest, match=str(2**31)):
        _query(model, [2**31])

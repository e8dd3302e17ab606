"""RetrievalClient against the official-stub fake: results, metadata, status, validation."""

from __future__ import annotations

import numpy as np
import pytest
from _client_fake import CATALOGUE, DEFAULT_K, DIM, MAX_K, MODEL, FakeState, query_embedding, top_k
from scann_serving.client import (
    InvalidArgument,
    InvalidRequest,
    NotFound,
    RetrievalClient,
    RetrievalResult,
)


def expected(keys: list[str], k: int, exclude: list[list[str]] | None = None) -> tuple:
    return top_k(np.stack([query_embedding(q) for q in keys]), k, exclude)


def test_retrieve_default_k_uses_serving_default(client: RetrievalClient, fake: FakeState) -> None:
    result = client.retrieve(["42", "7"])
    ids, scores = expected(["42", "7"], DEFAULT_K)
    assert isinstance(result, RetrievalResult)
    assert result.identifiers.tolist() == ids.tolist()
    np.testing.assert_allclose(result.scores, scores, rtol=1e-6)
    assert result.scores.dtype == np.float32
    assert (len(result), result.k) == (2, DEFAULT_K)
    assert (result.model_name, result.model_version, result.signature_name) == (
        MODEL,
        2,
        "serving_default",
    )
    predict = next(req for name, req, _ in fake.calls if name == "Predict")
    assert predict.model_spec.signature_name == "serving_default"
    assert set(predict.inputs) == {"query"}


def test_retrieve_with_k_uses_retrieve_signature(client: RetrievalClient, fake: FakeState) -> None:
    result = client.retrieve("42", k=12)
    assert result.identifiers.shape == (1, 12)
    assert result.identifiers.tolist() == expected(["42"], 12)[0].tolist()
    assert result.signature_name == "retrieve"


def test_single_int_query_is_a_batch_of_one(client: RetrievalClient) -> None:
    assert client.retrieve(42).identifiers.tolist() == expected(["42"], DEFAULT_K)[0].tolist()


def test_rows_and_to_dict(client: RetrievalClient) -> None:
    result = client.retrieve(["1"], k=3)
    rows = list(result.rows())
    assert [ident for ident, _ in rows[0]] == result.identifiers[0].tolist()
    assert result.to_dict()["identifiers"] == result.identifiers.tolist()
    with pytest.raises(ValueError):
        result.scores[0, 0] = 1.0  # results are read-only


def test_exclude_leaves_out_identifiers(client: RetrievalClient) -> None:
    plain = client.retrieve(["42", "7"])
    seen = [plain.identifiers[0, :2].tolist(), [plain.identifiers[1, 0]]]
    result = client.retrieve(["42", "7"], exclude=seen)
    assert result.signature_name == "retrieve_with_exclusions"
    for row, excluded in zip(result.identifiers.tolist(), seen, strict=True):
        assert not set(row) & set(excluded)
    assert result.identifiers.tolist() == expected(["42", "7"], DEFAULT_K, seen)[0].tolist()


def test_exclude_flat_list_applies_to_every_query_and_k_cuts(client: RetrievalClient) -> None:
    result = client.retrieve(["42", "7"], k=2, exclude=[CATALOGUE[0]])
    assert result.identifiers.shape == (2, 2)
    assert CATALOGUE[0] not in result.identifiers


def test_search_embeddings(client: RetrievalClient) -> None:
    vectors = np.stack([query_embedding("3"), query_embedding("4")])
    result = client.search(vectors, k=3)
    assert result.signature_name == "search_embedding"
    assert result.identifiers.tolist() == top_k(vectors, 3)[0].tolist()
    single = client.search(vectors[0].tolist())
    assert single.identifiers.shape == (1, DEFAULT_K)


def test_metadata_is_parsed_and_cached(client: RetrievalClient, fake: FakeState) -> None:
    meta = client.metadata()
    assert (meta.model_name, meta.model_version) == (MODEL, 2)
    assert set(meta.signatures) == {
        "serving_default",
        "retrieve",
        "search_embedding",
        "retrieve_with_exclusions",
    }
    assert meta.signatures["retrieve"].inputs["k"].dtype == "DT_INT32"
    assert meta.signatures["search_embedding"].inputs["embedding"].shape == (None, DIM)
    assert (meta.embedding_dim, meta.default_k, meta.max_k) == (DIM, DEFAULT_K, MAX_K)
    client.retrieve("1")
    client.retrieve("2", k=3)
    assert fake.methods().count("GetModelMetadata") == 1
    client.metadata(version=1)  # another version: its own cache entry
    assert fake.methods().count("GetModelMetadata") == 2


def test_metadata_from_tf_serving_without_manifest(
    client: RetrievalClient, fake: FakeState
) -> None:
    fake.serve_manifest = False  # TF Serving: unknown metadata field -> INVALID_ARGUMENT
    meta = client.metadata()
    assert meta.max_k is None and meta.manifest == {}
    assert meta.embedding_dim == DIM  # still known from the signature
    assert fake.methods() == ["GetModelMetadata", "GetModelMetadata"]
    fields = [list(req.metadata_field) for _, req, _ in fake.calls]
    assert fields == [["signature_def", "scann_manifest"], ["signature_def"]]
    # Without max_k the client lets the server check k.
    with pytest.raises(InvalidArgument, match="max_k"):
        client.retrieve("1", k=MAX_K + 1)
    assert "Predict" in fake.methods()


def test_default_k_from_static_output_shape(client: RetrievalClient, fake: FakeState) -> None:
    fake.serve_manifest, fake.default_k_dim = False, DEFAULT_K
    assert client.metadata().default_k == DEFAULT_K


def test_version_and_label_go_on_the_wire(client: RetrievalClient, fake: FakeState) -> None:
    assert client.retrieve("1", version=1).model_version == 1
    assert client.retrieve("1", label="stable").model_version == 1
    specs = [req.model_spec for name, req, _ in fake.calls if name == "Predict"]
    assert specs[0].version.value == 1 and not specs[0].version_label
    assert specs[1].version_label == "stable" and not specs[1].HasField("version")


def test_status(client: RetrievalClient) -> None:
    status = client.status()
    assert status.model_name == MODEL
    assert [(v.version, v.state, v.error_code) for v in status.versions] == [
        (1, "AVAILABLE", "OK"),
        (2, "AVAILABLE", "OK"),
    ]
    assert status.available and status.latest_available == 2
    assert [v.version for v in client.status(version=1).versions] == [1]


def test_unknown_model_is_not_found(fake: FakeState, target: str) -> None:
    with RetrievalClient(target, model="nope") as other:
        with pytest.raises(NotFound, match="nope") as info:
            other.retrieve("1")
        with pytest.raises(NotFound):
            other.status()
    assert isinstance(info.value.__cause__, Exception)  # raised from the gRPC error


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.retrieve([]), "queries is empty"),
        (lambda c: c.retrieve(["1"], k=0), "at least 1"),
        (lambda c: c.retrieve(["1"], k=MAX_K + 1), "max_k"),
        (lambda c: c.retrieve(["1"], k=2.5), "positive int"),
        (lambda c: c.retrieve(["1"], k=True), "positive int"),
        (lambda c: c.retrieve([None]), "query key"),
        (lambda c: c.retrieve(["1", "2"], exclude=[["a"], ["b"], ["c"]]), "3 rows for 2 queries"),
        (lambda c: c.retrieve(["1"], exclude="item_1"), "single string"),
        (lambda c: c.retrieve(["1"], k=DEFAULT_K + 1, exclude=["a"]), "exported k"),
        (lambda c: c.search(np.zeros((1, DIM + 1))), f"expects {DIM}"),
        (lambda c: c.search(np.zeros((0, DIM))), "non-empty"),
        (lambda c: c.search([[np.nan] * DIM]), "NaN"),
        (lambda c: c.search(np.zeros((1, DIM)), k=DEFAULT_K + 1), "exported k"),
        (lambda c: c.retrieve("1", version=1, label="stable"), "not both"),
        (lambda c: c.retrieve("1", version=0), "positive"),
        (lambda c: c.retrieve("1", timeout=0), "timeout"),
    ],
)
def test_bad_arguments_fail_before_predict(
    client: RetrievalClient, fake: FakeState, call, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message) as info:
        call(client)
    assert isinstance(info.value, ValueError)
    assert "Predict" not in fake.methods()


def test_constructor_checks_arguments() -> None:
    with pytest.raises(InvalidRequest, match="model"):
        RetrievalClient("localhost:1", model="")
    with pytest.raises(InvalidRequest, match="target"):
        RetrievalClient("", model="m")


def test_call_metadata_headers_are_sent(fake: FakeState, target: str) -> None:
    with RetrievalClient(target, model=MODEL, metadata=[("x-team", "recs")]) as c:
        c.retrieve("1")
    assert all(headers.get("x-team") == "recs" for _, _, headers in fake.calls)
    assert all(
        "scann-serving-client" in headers.get("user-agent", "") for _, _, headers in fake.calls
    )


def test_concurrent_first_calls_fetch_metadata_once(
    client: RetrievalClient, fake: FakeState
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda i: client.retrieve(str(i), k=2), range(64)))
    assert len(results) == 64
    assert fake.methods().count("GetModelMetadata") == 1


def test_metadata_is_refetched_after_its_ttl(fake: FakeState, target: str) -> None:
    import time

    with RetrievalClient(target, model=MODEL, metadata_ttl=0.2) as c:
        c.metadata()
        c.metadata()
        assert fake.methods().count("GetModelMetadata") == 1
        time.sleep(0.3)
        c.metadata()
        assert fake.methods().count("GetModelMetadata") == 2

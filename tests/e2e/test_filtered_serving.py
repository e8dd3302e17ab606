"""`retrieve_filtered` served by scann-serve: every client, transport and backend, one answer.

One tiny version with attributes (brute-force ScaNN, so answers are exact and can be
compared with numpy; a low exact switch point, so both the over-fetch and the exact path
run), served by scann-serve once per backend. The sync and async clients, scann-query,
the official tensorflow-serving-api stubs and both REST formats must all return the
reference answer; bad filters are INVALID_ARGUMENT / 400 naming the input. A tree-index
version is served by both backends at once and every request of the export's native
verification must get the same answer from each.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import requests
from serve_helpers import ServerProcess, console_script, predict_request, run_command

MODEL = "filtered"
QUERIES = ["1", "2"]
K = 5
ALLOW = {"color": ["red", "blue"]}
DENY = {"shop": ["shop0"]}
WHERE = "year>=1980"
TOKENS = {"allow": ["color=red", "color=blue"], "deny": ["shop=shop0"], "numeric": [WHERE]}


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    from scann_serving.export.testing import make_tiny_version, tiny_attributes, tiny_spec

    spec = tiny_spec()
    table = tiny_attributes(spec)
    base = tmp_path_factory.mktemp("filtered") / MODEL
    make_tiny_version(base, model_name=MODEL, spec=spec, attributes=table, exact_max_passing=20)
    return base, spec, table


@pytest.fixture(scope="module", params=["native", "tensorflow"])
def served(
    version: tuple[Path, Any, Any], request: pytest.FixtureRequest
) -> Iterator[ServerProcess]:
    flag = f"--backend={request.param}"
    with ServerProcess(flag, model_name=MODEL, model_base_path=version[0]) as server:
        server.backend = request.param
        yield server


def _expected(version: tuple[Path, Any, Any], allow=TOKENS["allow"], k: int = K) -> list[list[str]]:
    _, spec, table = version
    passing = table.passes(table.parse(allow, TOKENS["deny"], TOKENS["numeric"]))
    scores = np.where(passing[None, :], spec.embed(QUERIES) @ spec.item_embeddings.T, -np.inf)
    out = []
    for row in scores:
        top = np.argsort(-row, kind="stable")[:k]
        out.append([spec.identifiers[i] if np.isfinite(row[i]) else "" for i in top])
    return out


def test_clients_and_cli_return_the_filtered_answer(
    served: ServerProcess, version: tuple[Path, Any, Any]
) -> None:
    from scann_serving.client import AsyncRetrievalClient, RetrievalClient

    expected = _expected(version)
    with RetrievalClient(served.target, model=MODEL) as client:
        result = client.retrieve(QUERIES, K, allow=ALLOW, deny=DENY, where=WHERE)
        assert result.signature_name == "retrieve_filtered"
        assert result.identifiers.tolist() == expected
        assert "retrieve_filtered" in client.metadata().signatures

    async def async_call() -> list[list[str]]:
        async with AsyncRetrievalClient(served.target, model=MODEL) as client:
            answer = await client.retrieve(QUERIES, K, allow=ALLOW, deny=DENY, where=[WHERE])
            return answer.identifiers.tolist()

    assert asyncio.run(async_call()) == expected
    done = run_command(
        console_script("scann-query"),
        f"--target={served.target}",
        f"--model={MODEL}",
        "--json",
        "--query", *QUERIES,
        f"-k={K}",
        "--allow", "color=red", "color=blue",
        "--deny", "shop=shop0",
        f"--where={WHERE}",
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["identifiers"] == expected


def test_fewer_passing_than_k_pads_with_empty_identifiers(
    served: ServerProcess, version: tuple[Path, Any, Any]
) -> None:
    from scann_serving.client import RetrievalClient

    with RetrievalClient(served.target, model=MODEL) as client:
        result = client.retrieve(QUERIES[:1], 40, allow={"color": ["red"], "shop": ["shop2"]})
    table = version[2]
    passing = int(table.passes(table.parse(["color=red", "shop=shop2"])).sum())
    assert 0 < passing < 40
    row, scores = result.identifiers[0].tolist(), result.scores[0]
    assert all(row[:passing]) and row[passing:] == [""] * (40 - passing)
    assert np.isneginf(scores[passing:]).all() and np.isfinite(scores[:passing]).all()


def test_official_stubs_and_rest_formats_agree(
    served: ServerProcess, version: tuple[Path, Any, Any]
) -> None:
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    expected = _expected(version)
    matrices = {
        key: np.asarray([values] * len(QUERIES), dtype=object) for key, values in TOKENS.items()
    }
    request = predict_request(MODEL, QUERIES, signature="retrieve_filtered", k=K, **matrices)
    with served.channel() as channel:
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=30
        )
    ids = [v.decode() for v in reply.outputs["identifiers"].string_val]
    assert [ids[i : i + K] for i in range(0, len(ids), K)] == expected

    url = f"{served.rest_url}/v1/models/{MODEL}:predict"
    columnar = {
        "signature_name": "retrieve_filtered",
        "inputs": {"query": QUERIES, "k": K, **{key: m.tolist() for key, m in matrices.items()}},
    }
    reply = requests.post(url, json=columnar, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"]["identifiers"] == expected
    rows = {
        "signature_name": "retrieve_filtered",
        "instances": [{"query": q, "k": K, **TOKENS} for q in QUERIES],
    }
    reply = requests.post(url, json=rows, timeout=30)
    assert reply.status_code == 200, reply.text
    assert [p["identifiers"] for p in reply.json()["predictions"]] == expected


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("allow", "colour=red", "unknown namespace 'colour'"),
        ("deny", "red", "not a 'namespace=value' token"),
        ("numeric", "year=>1990", "not a numeric restrict"),
        ("numeric", "size<3", "unknown numeric attribute 'size'"),
    ],
)
def test_bad_filters_are_invalid_argument_naming_the_input(
    served: ServerProcess, key: str, value: str, named: str
) -> None:
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    inputs = {name: np.asarray([[""]], dtype=object) for name in TOKENS}
    inputs[key] = np.asarray([[value]], dtype=object)
    request = predict_request(MODEL, QUERIES[:1], signature="retrieve_filtered", k=K, **inputs)
    with served.channel() as channel, pytest.raises(grpc.RpcError) as caught:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"input '{key}'" in caught.value.details() and named in caught.value.details()
    body = {
        "signature_name": "retrieve_filtered",
        "inputs": {"query": QUERIES[:1], "k": K, **{n: a.tolist() for n, a in inputs.items()}},
    }
    reply = requests.post(f"{served.rest_url}/v1/models/{MODEL}:predict", json=body, timeout=30)
    assert reply.status_code == 400 and named in reply.json()["error"]


def test_the_client_refuses_unknown_names_before_calling(served: ServerProcess) -> None:
    from scann_serving.client import InvalidRequest, RetrievalClient

    with RetrievalClient(served.target, model=MODEL) as client:
        with pytest.raises(InvalidRequest, match=r"unknown namespace 'colour'.*color, shop"):
            client.retrieve(QUERIES, K, allow={"colour": ["red"]})
        with pytest.raises(InvalidRequest, match="unknown numeric attribute 'size'"):
            client.retrieve(QUERIES, K, where="size<3")
        with pytest.raises(InvalidRequest, match="NAME OP NUMBER"):
            client.retrieve(QUERIES, K, where="year after 1990")
        with pytest.raises(InvalidRequest, match="cannot be combined"):
            client.retrieve(QUERIES, K, allow=ALLOW, exclude=["item_1"])


@pytest.fixture(scope="module")
def tree_version(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    """A version with attributes and a tree index: the over-fetch widens leaves and reordering."""
    from scann_serving.export import tree_config
    from scann_serving.export.testing import make_tiny_version, tiny_attributes, tiny_spec

    spec = tiny_spec(num_items=400)
    table = tiny_attributes(spec)
    base = tmp_path_factory.mktemp("filtered-tree") / MODEL
    config = tree_config(400, k=10, max_k=50)
    make_tiny_version(
        base, model_name=MODEL, spec=spec, index_config=config, attributes=table,
        exact_max_passing=20,
    )  # fmt: skip
    return base, spec, table


def test_both_backends_return_the_same_answers(tree_version: tuple[Path, Any, Any]) -> None:
    from scann_serving.export._verify_native import filter_requests
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    base, spec, table = tree_version
    queries = np.asarray([str(u).encode() for u in spec.users[:8]], dtype=object)
    requests_ = filter_requests(table, queries, 10, 50)
    answers: dict[str, list[tuple[list[bytes], np.ndarray]]] = {}
    for backend in ("native", "tensorflow"):
        with (
            ServerProcess(
                f"--backend={backend}", model_name=MODEL, model_base_path=base, rest=False
            ) as server,
            server.channel() as channel,
        ):
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            answers[backend] = []
            for _, inputs in requests_:
                extra = {key: value for key, value in inputs.items() if key not in ("query", "k")}
                request = predict_request(
                    MODEL, inputs["query"].tolist(), signature="retrieve_filtered",
                    k=int(inputs["k"]), **extra,
                )  # fmt: skip
                reply = stub.Predict(request, timeout=30)
                answers[backend].append(
                    (
                        list(reply.outputs["identifiers"].string_val),
                        np.asarray(reply.outputs["scores"].float_val, np.float32),
                    )
                )
    assert len(answers["native"]) == len(requests_) > 30
    padded = 0
    for number, (native, tf_answer) in enumerate(
        zip(answers["native"], answers["tensorflow"], strict=True)
    ):
        assert native[0] == tf_answer[0], f"request {number}: identifiers differ"
        assert np.allclose(native[1], tf_answer[1], atol=1e-4, rtol=1e-4), f"request {number}"
        padded += native[0].count(b"")
    assert padded > 0  # the fewer-than-k requests came back padded on both

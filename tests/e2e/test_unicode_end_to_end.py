"""Non-ASCII keys and titles end to end: a UTF-8 catalogue through `scann-export`,
`scann-serve` and every way of querying it.

The catalogue (accents, CJK, emoji, a combining accent) and the query keys must come
back byte-identical through the official TF Serving stubs over gRPC, REST with text and
with {"b64"} strings, RetrievalClient and AsyncRetrievalClient, and scann-query's table
and --json. k is the catalogue size, so every title is in every answer.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from serve_helpers import ServerProcess, console_script, predict_request, run_command

MODEL = "catalogue"
TITLES = [
    "Amélie (2001)",
    "千と千尋の神隠し",
    "Ça tourne 🎬 (2019)",
    "Cafe\u0301 de Flore (2011)",
    "Smörgåsbord",
    "Ζορμπάς (1964)",
    "Летят журавли (1957)",
    "괴물 (2006)",
    "City of Lost Children, The (Cité des enfants perdus, La) (1995)",
    "Plain Title (1999)",
    "Émoji 🦊🍿 Night",
    "Ⅻ Monkeys",
]
USERS = ["zoë", "千尋", "🦊", "josé", "plain"]
N = len(TITLES)
QUERY = "千尋"
EXCLUDED = "Amélie (2001)"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 1 of a model trained by `scann-export` on a UTF-8 interactions CSV."""
    folder = tmp_path_factory.mktemp("unicode")
    rng = np.random.default_rng(3)
    rows = [(USERS[i % len(USERS)], TITLES[int(rng.integers(N))]) for i in range(240)]
    rows += [(user, title) for user in USERS[:2] for title in TITLES]  # every title is seen
    csv = folder / "events.csv"
    lines = ["user_id,item_id"] + [f'{u},"{t}"' for u, t in rows]
    csv.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    base = folder / MODEL
    done = run_command(
        console_script("scann-export"),
        f"--dataset=interactions:{csv}",
        f"--output={base}",
        f"--model-name={MODEL}",
        "-k=5",
        "--epochs=1",
        "--embedding-dim=8",
        "--eval-queries=5",
        "--latency-queries=5",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((base / "1/assets.extra/scann_manifest.json").read_text("utf-8"))
    assert manifest["max_k"] == N and manifest["dataset"]["encoding"] == "utf-8"
    assert manifest["verification"]["identical_identifiers"] is True
    return base


@pytest.fixture(scope="module")
def served(exported: Path) -> Iterator[ServerProcess]:
    with ServerProcess(model_name=MODEL, model_base_path=exported) as server:
        yield server


def _stub_predict(server: ServerProcess, signature: str, inputs: dict[str, Any]) -> list[bytes]:
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    request = predict_request(MODEL, signature=signature, **inputs)
    with server.channel() as channel:
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=30
        )
    return list(reply.outputs["identifiers"].string_val)


@pytest.fixture(scope="module")
def stub_answer(served: ServerProcess) -> list[str]:
    """The official stubs' answer for QUERY with k = N: raw bytes, checked, then decoded."""
    query = np.asarray([QUERY.encode("utf-8")], dtype=object)
    raw = _stub_predict(served, "retrieve", {"query": query, "k": np.int32(N)})
    assert sorted(raw) == sorted(t.encode("utf-8") for t in TITLES)
    return [v.decode("utf-8") for v in raw]


def test_official_stubs_get_every_title_byte_identical(
    served: ServerProcess, stub_answer: list[str]
) -> None:
    exclude = np.asarray([[EXCLUDED.encode("utf-8")]], dtype=object)
    query = np.asarray([QUERY.encode("utf-8")], dtype=object)
    kept = _stub_predict(served, "retrieve_with_exclusions", {"query": query, "exclude": exclude})
    assert EXCLUDED.encode("utf-8") not in kept and len(kept) == 5


def _rest(server: ServerProcess, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{server.rest_url}/v1/models/{MODEL}:predict", json=body, timeout=30)


def test_rest_text_and_b64_strings(served: ServerProcess, stub_answer: list[str]) -> None:
    b64 = {"b64": base64.b64encode(QUERY.encode("utf-8")).decode("ascii")}
    for query in (QUERY, b64):
        reply = _rest(served, {"signature_name": "retrieve", "inputs": {"query": [query], "k": N}})
        assert reply.status_code == 200, reply.text
        assert reply.json()["outputs"]["identifiers"] == [stub_answer]
        assert "千と千尋の神隠し".encode() in reply.content  # UTF-8 as is, not \u escapes
    row = _rest(served, {"instances": [{"query": QUERY, "exclude": [EXCLUDED]}],
                         "signature_name": "retrieve_with_exclusions"})  # fmt: skip
    assert row.status_code == 200, row.text
    assert EXCLUDED not in row.json()["predictions"][0]["identifiers"]


def test_rest_refuses_a_lone_surrogate_with_400(served: ServerProcess) -> None:
    body = '{"signature_name": "retrieve", "inputs": {"query": ["\\ud800"], "k": 3}}'
    reply = requests.post(
        f"{served.rest_url}/v1/models/{MODEL}:predict", data=body.encode(), timeout=30
    )
    assert reply.status_code == 400, reply.text
    assert "not valid Unicode" in reply.json()["error"]


def test_grpc_refuses_bytes_that_are_not_utf_8(served: ServerProcess) -> None:
    import grpc

    with pytest.raises(grpc.RpcError) as caught:
        _stub_predict(served, "serving_default", {"query": np.asarray([b"caf\xe9"], object)})
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not valid UTF-8" in (caught.value.details() or "")


def test_retrieval_clients_sync_and_async(served: ServerProcess, stub_answer: list[str]) -> None:
    from scann_serving.client import AsyncRetrievalClient, RetrievalClient

    with RetrievalClient(served.target, model=MODEL) as client:
        result = client.retrieve([QUERY, "zoë"], N)
        excluded = client.retrieve([QUERY], exclude=[EXCLUDED])
    assert result.identifiers[0].tolist() == stub_answer
    assert sorted(result.identifiers[1].tolist()) == sorted(TITLES)
    assert [ident for ident, _ in next(result.rows())] == stub_answer
    assert EXCLUDED not in excluded.identifiers[0].tolist()

    async def retrieve() -> Any:
        async with AsyncRetrievalClient(served.target, model=MODEL) as aclient:
            return await aclient.retrieve([QUERY], N)

    assert asyncio.run(retrieve()).identifiers[0].tolist() == stub_answer


def _query(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    done = run_command(
        console_script("scann-query"), f"--target={server.target}", f"--model={MODEL}", *args,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_scann_query_table_and_json(served: ServerProcess, stub_answer: list[str]) -> None:
    data = json.loads(_query(served, f"--query={QUERY}", f"-k={N}", "--json").stdout)
    assert data["queries"] == [QUERY] and data["identifiers"] == [stub_answer]
    table = _query(served, f"--query={QUERY}", f"-k={N}").stdout.splitlines()
    assert table[2] == f"query {QUERY}"
    cells = [re.split(r"\s{2,}", line.strip()) for line in table[4:]]
    assert [row[1] for row in cells] == stub_answer
    assert [row[0] for row in cells] == [str(rank) for rank in range(1, N + 1)]

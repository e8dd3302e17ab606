"""scann-query: tables, JSON, subcommands, one-line errors and exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _client_fake import DEFAULT_K, DIM, MAX_K, MODEL, FakeState, query_embedding, top_k
from scann_serving.client._cli import main
from serve_helpers import free_port


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_query_prints_a_table(capsys, fake: FakeState, target: str) -> None:
    code, out, err = run(capsys, "--target", target, "--model", MODEL, "--query", "42", "-k", "3")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"model {MODEL}  version 2  signature retrieve"
    assert lines[2] == "query 42"
    assert lines[3].split() == ["rank", "identifier", "score"]
    ids, scores = top_k(query_embedding("42")[None], 3)
    for rank, line in enumerate(lines[4:7], 1):
        assert line.split() == [str(rank), ids[0, rank - 1], f"{scores[0, rank - 1]:.4f}"]


def test_query_json(capsys, fake: FakeState, target: str) -> None:
    code, out, _ = run(capsys, "--target", target, "--model", MODEL, "--query", "1", "2", "--json")
    data = json.loads(out)
    assert code == 0 and data["queries"] == ["1", "2"]
    assert np.array(data["identifiers"]).shape == (2, DEFAULT_K)
    assert data["signature_name"] == "serving_default"


def test_embedding_and_exclude(capsys, fake: FakeState, target: str) -> None:
    vector = ",".join(str(x) for x in query_embedding("9"))
    code, out, _ = run(
        capsys, "--target", target, "--model", MODEL, "--embedding", vector, "--json"
    )
    assert code == 0
    assert (
        json.loads(out)["identifiers"] == top_k(query_embedding("9")[None], DEFAULT_K)[0].tolist()
    )
    first = json.loads(out)["identifiers"][0][0]
    code, out, _ = run(
        capsys, "--target", target, "--model", MODEL, "--query", "9", "--exclude", first, "--json"
    )
    assert code == 0 and first not in json.loads(out)["identifiers"][0]


def test_status_and_metadata_subcommands(capsys, fake: FakeState, target: str) -> None:
    code, out, _ = run(capsys, "status", "--target", target, "--model", MODEL)
    assert code == 0 and out.splitlines()[2].split() == ["1", "AVAILABLE", "OK"]
    code, out, _ = run(capsys, "--target", target, "--model", MODEL, "metadata", "--json")
    data = json.loads(out)
    assert (data["embedding_dim"], data["max_k"]) == (DIM, MAX_K)
    assert data["signatures"]["retrieve"]["inputs"]["k"]["dtype"] == "DT_INT32"
    code, out, _ = run(capsys, "metadata", "--target", target, "--model", MODEL)
    assert code == 0 and f"embedding_dim {DIM}" in out and "retrieve_with_exclusions" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "nope", "--query", "1"], "NotFound: NOT_FOUND: Servable not found"),
        (["--model", MODEL, "--query", "1", "-k", str(MAX_K + 1)], "InvalidRequest: k=21 is above"),
        (["--model", MODEL, "--embedding", "1,x"], "ValueError: --embedding"),
    ],
)
def test_failures_exit_1_with_one_line(capsys, fake: FakeState, target: str, argv, message) -> None:
    code, out, err = run(capsys, "--target", target, *argv)
    assert code == 1 and out == ""
    assert err.startswith(f"scann-query: error: {message}") and err.count("\n") == 1


def test_server_down_exits_1(capsys) -> None:
    code, _, err = run(
        capsys, "--target", f"127.0.0.1:{free_port()}", "--model", MODEL, "status", "--timeout", "5"
    )
    assert code == 1 and err.startswith("scann-query: error: Unavailable:")


def test_usage_errors_exit_2(capsys, target: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--target", target, "--query", "1"])
    assert info.value.code == 2 and "--model is required" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["--target", target, "--model", MODEL])
    assert info.value.code == 2


def test_installed_entry_point(fake: FakeState, target: str) -> None:
    exe = shutil.which("scann-query") or str(Path(sys.executable).parent / "scann-query")
    done = subprocess.run(
        [exe, "--target", target, "--model", MODEL, "--query", "42", "-k", "2", "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["identifiers"][0]) == 2


def test_wait_for_a_ready_model(capsys, fake: FakeState, target: str) -> None:
    fake.versions = ()  # nothing loaded yet: status answers no AVAILABLE version
    code, _, err = run(capsys, "--target", target, "--model", MODEL, "--wait", "1", "status")
    assert code == 1 and "not AVAILABLE after 1 s (no versions)" in err
    fake.versions = (1,)
    code, out, _ = run(capsys, "--target", target, "--model", MODEL, "--wait", "5", "--query", "1")
    assert code == 0 and "query 1" in out


def test_wait_gives_up_on_a_server_that_is_down(capsys) -> None:
    argv = ["--target", f"127.0.0.1:{free_port()}", "--model", MODEL, "--wait", "1", "--query", "1"]
    code, _, err = run(capsys, *argv)
    assert code == 1 and err.startswith("scann-query: error: Unavailable:") and "after 1 s" in err

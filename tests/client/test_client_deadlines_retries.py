"""Deadlines (client default, per call, None = none) and retries on UNAVAILABLE."""

from __future__ import annotations

import json

import grpc
import pytest
from _client_fake import MODEL, FakeState
from scann_serving.client import (
    DeadlineExceeded,
    NotFound,
    RetrievalClient,
    RetryPolicy,
    Unavailable,
)
from scann_serving.client._config import service_config
from serve_helpers import free_port


def test_client_timeout_is_the_default_deadline(fake: FakeState, target: str) -> None:
    with RetrievalClient(target, model=MODEL, timeout=0.3) as c:
        c.metadata()
        fake.delay = 3.0
        # The fake answers after 3 s, so DeadlineExceeded can only come from the 0.3 s default.
        with pytest.raises(DeadlineExceeded):
            c.retrieve("1")


def test_per_call_timeout_overrides_the_client(client: RetrievalClient, fake: FakeState) -> None:
    client.metadata()
    fake.delay = 0.6
    with pytest.raises(DeadlineExceeded):
        client.retrieve("1", timeout=0.2)
    assert client.retrieve("1", timeout=5).identifiers.shape[0] == 1


def test_timeout_none_means_no_deadline(fake: FakeState, target: str) -> None:
    with RetrievalClient(target, model=MODEL, timeout=0.2) as c:
        c.metadata()
        fake.delay = 0.5
        assert len(c.retrieve("1", timeout=None)) == 1  # longer than the client default


def test_unavailable_is_retried_by_grpc(client: RetrievalClient, fake: FakeState) -> None:
    fake.failures = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE]
    status = client.status()
    assert status.available
    assert fake.methods() == ["GetModelStatus"] * 3  # two failures, then the retry that worked


def test_retries_give_up_after_max_attempts(fake: FakeState, target: str) -> None:
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05)
    with RetrievalClient(target, model=MODEL, retry=policy) as c:
        fake.failures = [grpc.StatusCode.UNAVAILABLE] * 5
        with pytest.raises(Unavailable, match="scripted"):
            c.status()
    assert fake.methods() == ["GetModelStatus"] * 3


def test_retry_none_disables_retries(fake: FakeState, target: str) -> None:
    with RetrievalClient(target, model=MODEL, retry=None) as c:
        fake.failures = [grpc.StatusCode.UNAVAILABLE]
        with pytest.raises(Unavailable):
            c.status()
    assert fake.methods() == ["GetModelStatus"]


def test_not_found_is_not_retried(client: RetrievalClient, fake: FakeState) -> None:
    fake.failures = [grpc.StatusCode.NOT_FOUND]
    with pytest.raises(NotFound):
        client.status()
    assert fake.methods() == ["GetModelStatus"]


def test_server_down_is_unavailable_after_backoff() -> None:
    policy = RetryPolicy(max_attempts=4, initial_backoff=0.2, max_backoff=0.2, backoff_multiplier=1)
    # Unavailable, not DeadlineExceeded: the client gives up when the retries are used up,
    # well before the generous deadline would end the call.
    client = RetrievalClient(f"127.0.0.1:{free_port()}", model=MODEL, retry=policy, timeout=120)
    with client as c, pytest.raises(Unavailable):
        c.status()


def test_service_config_declares_retry_and_round_robin() -> None:
    config = json.loads(service_config(RetryPolicy(), "round_robin"))
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    (method,) = config["methodConfig"]
    assert {n["service"] for n in method["name"]} == {
        "tensorflow.serving.PredictionService",
        "tensorflow.serving.ModelService",
    }
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert method["retryPolicy"]["maxAttempts"] == 5


def test_retry_policy_checks_its_bounds() -> None:
    with pytest.raises(ValueError, match=r"2\.\.5"):
        RetryPolicy(max_attempts=9)
    with pytest.raises(ValueError, match="initial_backoff"):
        RetryPolicy(initial_backoff=0)


def test_dns_target_with_round_robin_reaches_the_server(fake: FakeState, target: str) -> None:
    port = target.rsplit(":", 1)[1]
    with RetrievalClient(f"dns:///localhost:{port}", model=MODEL) as c:
        assert c.status().available

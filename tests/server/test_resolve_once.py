"""Each predict request resolves its model version once, in-process and deterministic.

REST must read the version before predicting (the signature's input dtypes decode the
JSON); the version that decoded a request is the one that runs it, even when another
version becomes the latest between the adapter's lookup and the model call. A fake
manager stands in at the seam: its first lookup answers version 1, every later one
version 2, as if version 2 became AVAILABLE right after the request arrived.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from scann_serving.server._config import RestConfig
from scann_serving.server._core import ModelRef, PredictCall, ServingCore
from scann_serving.server._metrics import Metrics
from scann_serving.server._rest import RestServer
from scann_serving.server._servable import Signature, TensorInfo

MODEL = "swapping"


class FakeVersion:
    """A model version without TensorFlow: `serving_default` answers its own version number."""

    def __init__(self, version: int, query_dtype: str) -> None:
        self.name, self.version = MODEL, version
        self._signature = Signature(
            "serving_default",
            {"query": TensorInfo(query_dtype, (None,))},
            {"version": TensorInfo("int64", (None,))},
            "tensorflow/serving/predict",
            None,
        )

    def signature(self, name: str) -> Signature:
        assert name in ("", "serving_default"), name
        return self._signature

    def validate(self, signature: Signature, inputs: dict[str, np.ndarray]) -> int:
        return len(inputs["query"])

    def run(
        self, signature: Signature, inputs: dict[str, np.ndarray], wanted: list[str] | None
    ) -> dict[str, np.ndarray]:
        return {"version": np.full(len(inputs["query"]), self.version, dtype=np.int64)}


class SwappingManager:
    """Resolves version 1 first and version 2 from then on; counts the lookups."""

    def __init__(self) -> None:
        # Version 2 takes integer queries: decoding with its dtypes would reject strings.
        self.first, self.later = FakeVersion(1, "string"), FakeVersion(2, "int64")
        self.lookups = 0

    def resolve(self, name: str, version: int | None, label: str | None) -> FakeVersion:
        assert name == MODEL
        self.lookups += 1
        return self.first if self.lookups == 1 else self.later


@pytest.fixture
def core() -> ServingCore:
    return ServingCore(SwappingManager(), Metrics(), batcher=None)  # type: ignore[arg-type]


@pytest.fixture
def rest(core: ServingCore) -> Iterator[str]:
    server = RestServer(RestConfig(port=0, num_threads=1), core, core.metrics)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def _post(url: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


def test_rest_predict_runs_the_version_that_decoded_it(rest: str, core: ServingCore) -> None:
    status, body = _post(f"{rest}/v1/models/{MODEL}:predict", {"instances": ["a", "b"]})
    assert (status, body) == (200, {"predictions": [1, 1]})
    assert core.manager.lookups == 1  # type: ignore[attr-defined]
    assert 'version="1"' in core.metrics.render()
    assert 'version="2"' not in core.metrics.render()


def test_core_predict_resolves_once_without_a_resolved_version(core: ServingCore) -> None:
    call = PredictCall(ModelRef(MODEL), "", {"query": np.array([b"a"], dtype=object)})
    result = core.predict(call)
    assert (result.version, core.manager.lookups) == (1, 1)  # type: ignore[attr-defined]
    resolved = core.resolve(ModelRef(MODEL))
    assert resolved.version == 2
    assert core.predict(call, resolved).version == 2
    assert core.manager.lookups == 2  # type: ignore[attr-defined]

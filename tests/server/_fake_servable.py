"""A model version without TensorFlow, for in-process tests of the core, batcher and manager.

`FakeServable` satisfies `_servable.Servable` with the real request checks
(`validate_inputs`) and a run that answers each query row with rows derived from that
query only, so a test can tell whose rows a caller got. `FakeLoader` is a
`ServableLoader` whose behaviour per version is written into the version directory by
`publish_version` (so the manager's own polling decides what gets loaded). `Gate`s hold
runs or loads in flight deterministically. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scann_serving.server._errors import FailedPrecondition, Internal
from scann_serving.server._preflight import PreflightError
from scann_serving.server._servable import (
    DEFAULT_SIGNATURE,
    LoadError,
    Servable,
    ServableLoader,
    Signature,
    TensorInfo,
    output_keys,
    validate_inputs,
)

FAKE_K = 3
FAKE_MAX_K = 5
FAILING_QUERY = b"fail"  # a query the fake model raises Internal on
HOLD_LIMIT_SECONDS = 30.0  # a gate nobody opens frees its threads after this (test bug)
WAIT_SECONDS = 10.0  # how long a test waits for another thread to reach a state
BEHAVIOUR_FILE = "fake_behaviour"
#: What a version directory tells FakeLoader to do (publish_version(..., behaviour=)).
BEHAVIOURS = ("ok", "broken", "crash", "preflight", "bad_warmup")

_PREDICT = "tensorflow/serving/predict"
_OUTPUTS = {
    "identifiers": TensorInfo("string", (None, None)),
    "scores": TensorInfo("float32", (None, None)),
}
SIGNATURES = {
    DEFAULT_SIGNATURE: Signature(
        DEFAULT_SIGNATURE, {"query": TensorInfo("string", (None,))}, _OUTPUTS, _PREDICT, None
    ),
    "retrieve": Signature(
        "retrieve",
        {"query": TensorInfo("string", (None,)), "k": TensorInfo("int32", ())},
        _OUTPUTS,
        _PREDICT,
        None,
    ),
}


class Gate:
    """Holds every thread that reaches it until opened; counts who is held."""

    def __init__(self, *, is_open: bool = True) -> None:
        self._open = threading.Event()
        if is_open:
            self._open.set()
        self._cond = threading.Condition()
        self.held = 0

    def close(self) -> None:
        """Threads arriving from now on wait."""
        self._open.clear()

    def open(self) -> None:
        """Lets every held and future thread through."""
        self._open.set()

    def pass_through(self) -> None:
        """Called by the fake: waits while the gate is closed."""
        with self._cond:
            self.held += 1
            self._cond.notify_all()
        try:
            if not self._open.wait(HOLD_LIMIT_SECONDS):
                raise TimeoutError("a test closed a fake Gate and never opened it")
        finally:
            with self._cond:
                self.held -= 1
                self._cond.notify_all()

    def wait_held(self, count: int) -> None:
        """Blocks until `count` threads wait at the gate (AssertionError after WAIT_SECONDS)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.held >= count, WAIT_SECONDS):
                raise AssertionError(f"{self.held} threads reached the gate, expected {count}")


def answer(query: bytes, k: int, version: int) -> tuple[list[bytes], list[float]]:
    """The identifiers and scores the fake model returns for one query row."""
    identifiers = [query + b"/" + str(i).encode() for i in range(k)]
    scores = [float(version * 100 + k - i) for i in range(k)]
    return identifiers, scores


class FakeServable:
    """A `Servable` whose run derives each output row from its own query row.

    Every run is recorded in `batches` (the merged inputs, before the run gate) and then
    passes `run_gate`, so a closed gate holds calls in flight.
    """

    def __init__(
        self,
        name: str,
        version: int,
        path: Path,
        *,
        run_gate: Gate,
        max_request_batch_size: int = 100,
        fail_warmup: bool = False,
    ) -> None:
        self._name, self._version, self._path = name, version, path
        self.max_request_batch_size = max_request_batch_size
        self.fail_warmup = fail_warmup
        self.run_gate = run_gate
        self.batches: list[dict[str, np.ndarray]] = []
        self.warmups: list[int] = []
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> int:
        return self._version

    @property
    def path(self) -> Path:
        return self._path

    @property
    def manifest(self) -> dict[str, Any] | None:
        return {"max_k": FAKE_MAX_K, "k": FAKE_K, "fake": True}

    @property
    def signature_defs(self) -> dict[str, Any]:
        return {key: f"fake signature_def {key}" for key in SIGNATURES}

    @property
    def signatures(self) -> dict[str, Signature]:
        return SIGNATURES

    def signature(self, name: str) -> Signature:
        key = name or DEFAULT_SIGNATURE
        if key not in SIGNATURES:
            raise FailedPrecondition(f'Serving signature key "{key}" not found (fake)')
        return SIGNATURES[key]

    def validate(self, signature: Signature, inputs: dict[str, np.ndarray]) -> int:
        return validate_inputs(
            signature,
            inputs,
            max_request_batch_size=self.max_request_batch_size,
            max_k=FAKE_MAX_K,
        )

    def run(
        self,
        signature: Signature,
        inputs: dict[str, np.ndarray],
        output_filter: list[str] | None = None,
    ) -> dict[str, np.ndarray]:
        wanted = output_keys(signature, output_filter)
        with self._lock:
            self.batches.append(dict(inputs))
        self.run_gate.pass_through()
        queries = inputs["query"].tolist()
        if FAILING_QUERY in queries:
            raise Internal("model failed: the fake was asked to fail")
        k = int(inputs["k"]) if "k" in inputs else FAKE_K
        rows = [answer(query, k, self._version) for query in queries]
        outputs = {
            "identifiers": np.array([ids for ids, _ in rows], dtype=object).reshape(-1, k),
            "scores": np.array([scores for _, scores in rows], dtype=np.float32).reshape(-1, k),
        }
        return {key: outputs[key] for key in wanted}

    def warmup(self, iterations: int = 1) -> int:
        self.warmups.append(iterations)
        if self.fail_warmup:
            raise LoadError(f"warmup request 0 in {self._path} failed: the fake was told to fail")
        return 1

    def run_rows(self) -> list[list[bytes]]:
        """The query rows of each run so far, in order."""
        with self._lock:
            return [batch["query"].tolist() for batch in self.batches]


class FakeLoader:
    """A `ServableLoader`: builds FakeServables as each version directory's behaviour says.

    Every call is recorded in `calls` as (name, version) before `load_gate`, so a closed
    gate holds a load in progress (the version is LOADING meanwhile).
    """

    def __init__(self, *, max_request_batch_size: int = 100) -> None:
        self.run_gate = Gate()
        self.load_gate = Gate()
        self.max_request_batch_size = max_request_batch_size
        self.calls: list[tuple[str, int]] = []
        self.servables: dict[tuple[str, int], FakeServable] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str, version: int, path: Path) -> Servable:
        with self._lock:
            self.calls.append((name, version))
        self.load_gate.pass_through()
        behaviour = (path / BEHAVIOUR_FILE).read_text().strip()
        if behaviour == "broken":
            raise LoadError(f"{path}: the fake SavedModel is damaged; re-export it")
        if behaviour == "crash":
            raise RuntimeError("the fake loader crashed")
        if behaviour == "preflight":
            raise PreflightError(f"{path} was built with tensorflow 0.1 (fake); re-export it")
        servable = FakeServable(
            name,
            version,
            path,
            run_gate=self.run_gate,
            max_request_batch_size=self.max_request_batch_size,
            fail_warmup=behaviour == "bad_warmup",
        )
        with self._lock:
            self.servables[(name, version)] = servable
        return servable

    def loads_of(self, version: int, name: str | None = None) -> int:
        """How many times a version was loaded (attempts, failed ones included)."""
        with self._lock:
            return sum(1 for n, v in self.calls if v == version and name in (None, n))


if TYPE_CHECKING:  # mypy: the fake keeps matching the interface the manager takes
    _check: ServableLoader = FakeLoader()


def publish_version(base: Path, version: int, behaviour: str = "ok") -> Path:
    """Publishes version `version` under `base` atomically (hidden staging dir, rename)."""
    assert behaviour in BEHAVIOURS, behaviour
    base.mkdir(parents=True, exist_ok=True)
    staging = base / f".staging-{version}"
    staging.mkdir()
    (staging / BEHAVIOUR_FILE).write_text(behaviour)
    final = base / str(version)
    staging.rename(final)
    return final


def queries(*values: str) -> dict[str, np.ndarray]:
    """serving_default inputs for these query strings."""
    return {"query": np.array([v.encode() for v in values], dtype=object)}

"""The serving core: predict, metadata, status and reload over the model manager.

Knows nothing about gRPC or HTTP (kserve's dataplane): adapters turn wire requests into
`PredictCall`s, call here, and map `ServingError`s to statuses through `_errors`.
Lifecycle: `ready()` (every model has a warmed version), `begin_drain()` (refuse new
calls), `wait_idle()` (in-flight calls finished).
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scann_serving.client.contract import MANIFEST_METADATA_FIELD, SIGNATURE_DEF_METADATA_FIELD
from scann_serving.server._batching import Batcher
from scann_serving.server._config import ConfigError
from scann_serving.server._errors import (
    DeadlineExceeded,
    InvalidArgument,
    ServingError,
    Unavailable,
    Unimplemented,
)
from scann_serving.server._manager import ModelManager, VersionRecord, backend_of
from scann_serving.server._metrics import Metrics
from scann_serving.server._servable import DEFAULT_SIGNATURE, Servable, Signature

METHOD_CLASSIFY = "tensorflow/serving/classify"
METHOD_REGRESS = "tensorflow/serving/regress"
METHOD_PREDICT = "tensorflow/serving/predict"
METADATA_FIELDS = (SIGNATURE_DEF_METADATA_FIELD, MANIFEST_METADATA_FIELD)
DRAIN_ADMIT_SECONDS = 0.05


@dataclass(frozen=True)
class ModelRef:
    """A model_spec: name plus at most one of version / label (neither: the latest)."""

    name: str
    version: int | None = None
    label: str | None = None


@dataclass(frozen=True)
class PredictCall:
    """A predict request in domain terms (inputs are numpy; strings as object arrays of bytes)."""

    model: ModelRef
    signature: str
    inputs: dict[str, np.ndarray]
    output_filter: tuple[str, ...] = ()
    deadline: float | None = None  # time.monotonic() seconds
    api: str = "grpc"


class KeysCall(NamedTuple):
    """The common predict request, as raw keys: `query` (and `k` for `retrieve`) only.

    Adapters build one when a request has exactly that shape (`_wire.keys_call`); the core
    answers it through the version's `predict_keys` when the version has one, and the
    adapter sends the request down the full path (`PredictCall`) otherwise. A tuple: it is
    built on every such call, and a frozen dataclass costs several times more to build.
    """

    model: ModelRef
    signature: str
    keys: list[Any]  # UTF-8 bytes, or ints (`dtype`)
    dtype: str  # the query tensor's dtype: 'string' or 'int64'
    k: int | None = None  # None: serving_default's exported k
    deadline: float | None = None  # time.monotonic() seconds
    api: str = "grpc"


class PredictResult(NamedTuple):
    """Outputs of a predict call and the version that computed them (a tuple, as
    `KeysCall`: one is built for every call)."""

    model: str
    version: int
    signature: str
    outputs: dict[str, np.ndarray]


@dataclass(frozen=True)
class MetadataResult:
    """What GetModelMetadata reports: the SignatureDefs and the ScaNN manifest (k, max_k, ...)."""

    model: str
    version: int
    signature_defs: Mapping[str, Any]
    manifest: dict[str, Any] | None


@dataclass(frozen=True)
class _Prepared:
    """A checked predict call: the version and signature to run, its rows and outputs."""

    servable: Servable
    signature: Signature
    rows: int
    wanted: list[str] | None
    started: float  # time.perf_counter() at admission, for the latency metric

    def result(self, outputs: dict[str, np.ndarray]) -> PredictResult:
        return PredictResult(
            self.servable.name, self.servable.version, self.signature.name, outputs
        )


class ServingCore:
    """Predict / metadata / status / reload, with draining and deadlines."""

    def __init__(self, manager: ModelManager, metrics: Metrics, batcher: Batcher | None) -> None:
        self.manager = manager
        self.metrics = metrics
        self.batcher = batcher
        self._lock = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self._idle_waiters = 0  # wait_idle callers; calls notify only when there are some
        self._draining = False
        self._refuse_after = 0.0

    # --- lifecycle -----------------------------------------------------------------
    def ready(self) -> bool:
        """Healthy: not draining and every configured model has a warmed AVAILABLE version."""
        return not self._draining and self.manager.all_ready()

    def begin_drain(self) -> None:
        """Refuse new calls from now on (in-flight ones finish).

        Calls gRPC had already accepted but not yet handed to a thread are still served if
        they start within DRAIN_ADMIT_SECONDS: their callers sent them before the signal.
        """
        with self._lock:
            self._draining = True
            self._refuse_after = time.monotonic() + DRAIN_ADMIT_SECONDS

    def wait_idle(self, timeout: float) -> bool:
        """Waits until no call is in flight; False if `timeout` seconds passed first."""
        end = time.monotonic() + timeout
        with self._idle:
            self._idle_waiters += 1
            try:
                while self._in_flight:
                    left = end - time.monotonic()
                    if left <= 0:
                        return False
                    self._idle.wait(left)
            finally:
                self._idle_waiters -= 1
        return True

    def _enter(self) -> None:
        with self._lock:
            if self._draining and time.monotonic() >= self._refuse_after:
                raise Unavailable("server is shutting down; retry (on another replica)")
            self._in_flight += 1

    def _leave(self) -> None:
        # The Condition's lock directly, and notify_all (Python code) only for a waiter:
        # this runs on every call and the waiter exists only while draining.
        with self._lock:
            self._in_flight -= 1
            if not self._in_flight and self._idle_waiters:
                self._idle.notify_all()

    # --- predict -------------------------------------------------------------------
    def resolve(self, ref: ModelRef) -> Servable:
        """The version `ref` names, looked up once for an adapter that must read it first.

        REST decodes JSON with the signature's input dtypes: it resolves here, decodes
        against this version and hands it back to `predict`, so the version that decoded
        the request is the one that runs it even if a new one became AVAILABLE meanwhile.
        """
        return self.manager.resolve(ref.name, ref.version, ref.label)

    def _prepare(
        self, call: PredictCall, resolved: Servable | None
    ) -> tuple[Servable, Signature, int]:
        if call.deadline is not None and time.monotonic() > call.deadline:
            raise DeadlineExceeded("deadline expired before the request was computed")
        servable = self.resolve(call.model) if resolved is None else resolved
        signature = servable.signature(call.signature)
        rows = servable.validate(signature, call.inputs)
        return servable, signature, rows

    def _begin(self, call: PredictCall, resolved: Servable | None) -> _Prepared:
        """Admission (drain) and checks of one predict call; the caller must `_end` it
        whenever this returns (this ends a call it refuses itself).

        Plain methods rather than a context manager: this runs on every call, and a
        generator-based `with` costs more than the rest of the bookkeeping together."""
        started = time.perf_counter()
        self._enter()
        servable: Servable | None = None
        try:
            servable, signature, rows = self._prepare(call, resolved)
        except Exception as exc:
            self._end(call, servable, exc, started)
            raise
        return _Prepared(servable, signature, rows, list(call.output_filter) or None, started)

    def _end(
        self,
        call: PredictCall | KeysCall,
        servable: Servable | None,
        error: BaseException | None,
        started: float,
    ) -> None:
        """Leaves the in-flight count and records the call's status and latency."""
        if error is None:
            status = "OK"
        elif isinstance(error, asyncio.CancelledError):  # the caller went away (asyncio)
            status = "CANCELLED"
        else:
            status = error.code if isinstance(error, ServingError) else "INTERNAL"
        self._leave()
        self._record(call, servable, status, started)

    def _submit(self, call: PredictCall, run: _Prepared) -> Future[dict[str, np.ndarray]]:
        assert self.batcher is not None
        return self.batcher.submit(
            run.servable, run.signature, call.inputs, run.rows, run.wanted, call.deadline
        )

    def predict(self, call: PredictCall, resolved: Servable | None = None) -> PredictResult:
        """Runs one predict call to completion on this thread (via the batcher if on).

        `resolved`: the version `resolve(call.model)` returned, when the adapter already
        looked it up (REST); otherwise the call's model is resolved here, once.
        """
        run = self._begin(call, resolved)
        try:
            if self.batcher is None:
                outputs = run.servable.run(run.signature, call.inputs, run.wanted)
            else:
                outputs = self._submit(call, run).result()
        except BaseException as exc:
            self._end(call, run.servable, exc, run.started)
            raise
        self._end(call, run.servable, None, run.started)
        return run.result(outputs)

    def predict_keys(self, call: KeysCall) -> PredictResult | None:
        """The common call's short path: the same admission, deadline, version lookup and
        metrics as `predict`, then the version's `predict_keys` (a native version answers a
        few keys in one search, without building arrays or running the general checks).
        None, with nothing recorded, when there is a batcher (calls must merge) or the
        version does not answer this call that way: the caller then runs `predict`.
        Fast enough for an event loop (a few rows; `NativeServable.predict_keys`)."""
        if self.batcher is not None:
            return None
        started = time.perf_counter()
        self._enter()
        servable: Servable | None = None
        try:
            if call.deadline is not None and time.monotonic() > call.deadline:
                raise DeadlineExceeded("deadline expired before the request was computed")
            servable = self.resolve(call.model)
            short = getattr(servable, "predict_keys", None)
            answer = short(call.signature, call.keys, call.dtype, call.k) if short else None
        except BaseException as exc:
            self._end(call, servable, exc, started)
            raise
        if answer is None:
            self._leave()
            return None
        self._end(call, servable, None, started)
        name, outputs = answer
        return PredictResult(servable.name, servable.version, name, outputs)

    def runs_inline(self, run: _Prepared) -> bool:
        """Whether a call is cheaper to run on the event loop than to hand to a thread: no
        batcher, and a servable that says this call takes microseconds (`runs_quickly`:
        the native backend's small unfiltered searches; absent: never)."""
        quick = getattr(run.servable, "runs_quickly", None)
        return self.batcher is None and quick is not None and quick(run.signature, run.rows)

    async def predict_async(self, call: PredictCall, executor: Executor) -> PredictResult:
        """`predict` for an asyncio caller: the model runs on `executor` (or in the batcher),
        so the event loop only parses, checks and answers; a small native call runs on the
        loop itself, where a thread hand-off would cost more than the search."""
        run = self._begin(call, None)
        try:
            if self.runs_inline(run):
                outputs = run.servable.run(run.signature, call.inputs, run.wanted)
            elif self.batcher is None:
                job = functools.partial(run.servable.run, run.signature, call.inputs, run.wanted)
                outputs = await asyncio.get_running_loop().run_in_executor(executor, job)
            else:
                outputs = await asyncio.wrap_future(self._submit(call, run))
        except BaseException as exc:
            self._end(call, run.servable, exc, run.started)
            raise
        self._end(call, run.servable, None, run.started)
        return run.result(outputs)

    def _record(
        self, call: PredictCall | KeysCall, servable: Servable | None, status: str, started: float
    ) -> None:
        self.metrics.request(
            model=call.model.name,
            version=str(servable.version) if servable else "",
            signature=call.signature or DEFAULT_SIGNATURE,
            api=call.api,
            status=status,
            seconds=time.perf_counter() - started,
        )

    # --- metadata, status, reload ----------------------------------------------------
    def metadata(self, ref: ModelRef, fields: list[str]) -> MetadataResult:
        """Signature defs and manifest of the resolved version (TF Serving's field check)."""
        if not fields:
            raise InvalidArgument(
                "GetModelMetadataRequest must specify at least one metadata_field "
                f"(supported: {', '.join(METADATA_FIELDS)})"
            )
        for name in fields:
            if name not in METADATA_FIELDS:
                raise InvalidArgument(
                    f"Metadata field {name} is not supported "
                    f"(supported: {', '.join(METADATA_FIELDS)})"
                )
        servable = self.manager.resolve(ref.name, ref.version, ref.label)
        manifest = servable.manifest
        backend, reason = backend_of(servable)
        if manifest is not None and backend:
            # What runs this version, beside what it is (the manifest is the version's own).
            manifest = {**manifest, "serving_backend": {"backend": backend, "reason": reason}}
        return MetadataResult(servable.name, servable.version, servable.signature_defs, manifest)

    def status(self, ref: ModelRef) -> list[VersionRecord]:
        """The model's version states (one version when the ref names one)."""
        return self.manager.status(ref.name, ref.version, ref.label)

    def reload(self, model_server_config: Any) -> None:
        """Applies a new ModelServerConfig (HandleReloadConfigRequest); loads before returning."""
        try:
            self.manager.set_models(model_server_config)
        except ConfigError as exc:
            raise InvalidArgument(str(exc)) from exc

    def check_method(self, ref: ModelRef, signature_name: str, expected: str, kind: str) -> None:
        """Classify/Regress on a predict signature: TF Serving's INVALID_ARGUMENT."""
        servable = self.manager.resolve(ref.name, ref.version, ref.label)
        signature = servable.signature(signature_name)
        if signature.method_name != expected:
            raise InvalidArgument(
                f"Expected {kind} signature method_name to be {expected}. "
                f"Was: {signature.method_name}"
            )
        raise Unimplemented(f"{kind} is not implemented by scann-serve; use Predict")

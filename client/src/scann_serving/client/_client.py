"""`RetrievalClient`: the blocking client."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from scann_serving.client._base import BaseRetrievalClient, _Key
from scann_serving.client._channel import Stubs, sync_channel
from scann_serving.client._config import UNSET, TimeoutTypes
from scann_serving.client._errors import InvalidArgument, translate_rpc_errors
from scann_serving.client._filters import Restricts, Tokens
from scann_serving.client._protocol import parse_status
from scann_serving.client._types import ModelMetadata, ModelStatus, RetrievalResult
from scann_serving.client._validate import Exclusions, Queries


class RetrievalClient(BaseRetrievalClient):
    """Top-k retrieval from a ScaNN model served over TensorFlow Serving's gRPC API.

    Thread-safe; make one per process and share it. See `BaseRetrievalClient` for the
    constructor's arguments. Use as a context manager, or call `close()`.

    Example:
        >>> with RetrievalClient("localhost:8500", model="retrieval") as client:
        ...     result = client.retrieve(["42", "7"], k=10)
        ...     result.identifiers.shape
        (2, 10)
    """

    def __init__(self, target: str, *, model: str, **kwargs: Any) -> None:
        super().__init__(target, model=model, **kwargs)
        self._channel = sync_channel(self._target, self._tls, self._options)
        self._stubs = Stubs.on(self._channel)
        self._metadata_lock = threading.Lock()

    def retrieve(
        self,
        queries: Queries,
        k: int | None = None,
        *,
        version: int | None = None,
        label: str | None = None,
        exclude: Exclusions | None = None,
        allow: Tokens | None = None,
        deny: Tokens | None = None,
        where: Restricts | None = None,
        timeout: TimeoutTypes = UNSET,
    ) -> RetrievalResult:
        """The top-k candidates for raw query keys (e.g. user ids).

        Args:
            queries: One query key or a batch of them (str, bytes or int).
            k: Candidates per query, 1..max_k; `None` for the exported default k.
            version: Pin a model version (else the server's latest).
            label: Pin a version label such as "stable" (instead of `version`).
            exclude: Identifiers to leave out (already seen): one list for every query or
                one list per query. At most the exported k candidates come back.
            allow: Only candidates with these attribute values, e.g. `{"genre": ["Comedy",
                "Drama"]}`: any of the values within a namespace, every namespace named.
                Calls `retrieve_filtered` (k defaults to the exported k).
            deny: Never candidates with any of these values, e.g. `{"genre": ["Horror"]}`.
            where: Numeric restricts that must all hold, e.g. `"year>=1990"` or
                `["year>=1990", "year<2000"]` (a candidate without the value fails).
                When fewer than k candidates pass, the rows end with identifier "" and
                score -inf.
            timeout: Deadline in seconds for each RPC; `None` for none; default: the client's.

        Returns:
            `identifiers` (str `[batch, k]`) and `scores` (float32 `[batch, k]`).

        Raises:
            InvalidRequest: bad arguments (empty batch, k out of range), before any call.
            RpcError: the call failed; the subclass names the status (NotFound, ...).
        """
        key = self._key(version, label)
        meta = self._metadata(key, timeout)
        plan = self._plan_retrieve(meta, key, queries, k, exclude, allow, deny, where)
        return self._result(plan, self._call(self._stubs.predict, plan.request, timeout))

    def search(
        self,
        embeddings: Any,
        k: int | None = None,
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: TimeoutTypes = UNSET,
    ) -> RetrievalResult:
        """The top-k candidates for query embeddings computed by the caller.

        Args:
            embeddings: float array `[batch, dim]` (or one `[dim]` vector) of the model's dim.
            k: Candidates per query, at most the exported k; `None` for all of them.
            version: Pin a model version.
            label: Pin a version label.
            timeout: Deadline in seconds for each RPC; `None` for none; default: the client's.
        """
        key = self._key(version, label)
        meta = self._metadata(key, timeout)
        plan = self._plan_search(meta, key, embeddings, k)
        return self._result(plan, self._call(self._stubs.predict, plan.request, timeout))

    def metadata(
        self, *, version: int | None = None, label: str | None = None, timeout: TimeoutTypes = UNSET
    ) -> ModelMetadata:
        """The model's signatures, embedding dim and k bounds (fetched once, then cached)."""
        return self._metadata(self._key(version, label), timeout)

    def status(self, *, version: int | None = None, timeout: TimeoutTypes = UNSET) -> ModelStatus:
        """The state of the model's versions (ModelService.GetModelStatus)."""
        request = self._status_request(version)
        return parse_status(self._model, self._call(self._stubs.get_model_status, request, timeout))

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> RetrievalClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _metadata(self, key: _Key, timeout: TimeoutTypes) -> ModelMetadata:
        # One fetch at a time: concurrent first calls wait for it instead of repeating it.
        with self._metadata_lock:
            cached = self._cached_metadata(key)
            if cached is not None:
                return cached
            with_manifest, plain = self._metadata_requests(key)
            try:
                response = self._call(self._stubs.get_model_metadata, with_manifest, timeout)
            except InvalidArgument:  # TF Serving knows only "signature_def"
                response = self._call(self._stubs.get_model_metadata, plain, timeout)
            return self._remember_metadata(key, response)

    def _call(self, method: Any, request: Any, timeout: TimeoutTypes) -> Any:
        with translate_rpc_errors():
            return method(request, timeout=self._deadline(timeout), metadata=self._call_metadata)

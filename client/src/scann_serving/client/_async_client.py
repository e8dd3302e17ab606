"""`AsyncRetrievalClient`: the asyncio twin of `RetrievalClient` (grpc.aio)."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from scann_serving.client._base import BaseRetrievalClient, _Key
from scann_serving.client._channel import Stubs, aio_channel
from scann_serving.client._config import UNSET, TimeoutTypes
from scann_serving.client._errors import InvalidArgument, translate_rpc_errors
from scann_serving.client._filters import Restricts, Tokens
from scann_serving.client._protocol import parse_status
from scann_serving.client._types import ModelMetadata, ModelStatus, RetrievalResult
from scann_serving.client._validate import Exclusions, Queries


class AsyncRetrievalClient(BaseRetrievalClient):
    """The asyncio client: the same methods as `RetrievalClient`, awaited.

    Create it inside the event loop that uses it; `async with` it or `await close()`.

    Example:
        >>> async with AsyncRetrievalClient("localhost:8500", model="retrieval") as client:
        ...     result = await client.retrieve(["42"], k=10)
    """

    def __init__(self, target: str, *, model: str, **kwargs: Any) -> None:
        super().__init__(target, model=model, **kwargs)
        self._channel = aio_channel(self._target, self._tls, self._options)
        self._stubs = Stubs.on(self._channel)
        self._metadata_lock = asyncio.Lock()

    async def retrieve(
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
        """The top-k candidates for raw query keys; see `RetrievalClient.retrieve`."""
        key = self._key(version, label)
        meta = await self._metadata(key, timeout)
        plan = self._plan_retrieve(meta, key, queries, k, exclude, allow, deny, where)
        return self._result(plan, await self._call(self._stubs.predict, plan.request, timeout))

    async def search(
        self,
        embeddings: Any,
        k: int | None = None,
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: TimeoutTypes = UNSET,
    ) -> RetrievalResult:
        """The top-k candidates for query embeddings; see `RetrievalClient.search`."""
        key = self._key(version, label)
        meta = await self._metadata(key, timeout)
        plan = self._plan_search(meta, key, embeddings, k)
        return self._result(plan, await self._call(self._stubs.predict, plan.request, timeout))

    async def metadata(
        self, *, version: int | None = None, label: str | None = None, timeout: TimeoutTypes = UNSET
    ) -> ModelMetadata:
        """The model's signatures, embedding dim and k bounds (fetched once, then cached)."""
        return await self._metadata(self._key(version, label), timeout)

    async def status(
        self, *, version: int | None = None, timeout: TimeoutTypes = UNSET
    ) -> ModelStatus:
        """The state of the model's versions (ModelService.GetModelStatus)."""
        request = self._status_request(version)
        response = await self._call(self._stubs.get_model_status, request, timeout)
        return parse_status(self._model, response)

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> AsyncRetrievalClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _metadata(self, key: _Key, timeout: TimeoutTypes) -> ModelMetadata:
        # One fetch at a time: concurrent first calls wait for it instead of repeating it.
        async with self._metadata_lock:
            cached = self._cached_metadata(key)
            if cached is not None:
                return cached
            with_manifest, plain = self._metadata_requests(key)
            try:
                response = await self._call(self._stubs.get_model_metadata, with_manifest, timeout)
            except InvalidArgument:  # TF Serving knows only "signature_def"
                response = await self._call(self._stubs.get_model_metadata, plain, timeout)
            return self._remember_metadata(key, response)

    async def _call(self, method: Any, request: Any, timeout: TimeoutTypes) -> Any:
        with translate_rpc_errors():
            return await method(
                request, timeout=self._deadline(timeout), metadata=self._call_metadata
            )

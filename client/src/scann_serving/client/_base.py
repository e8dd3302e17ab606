"""`BaseRetrievalClient`: every step of a call except the I/O, shared by both clients.

The sync `RetrievalClient` and the asyncio `AsyncRetrievalClient` differ only in how they
send a request; choosing the signature, validating arguments, building the request,
reading the response and caching the metadata all happen here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scann_serving.client import _filters as filters
from scann_serving.client import _validate as check
from scann_serving.client._config import (
    DEFAULT_KEEPALIVE,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_METADATA_TTL,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    TLS,
    Keepalive,
    RetryPolicy,
    TimeoutTypes,
    Unset,
    channel_options,
)
from scann_serving.client._errors import InvalidRequest
from scann_serving.client._filters import Restricts, Tokens
from scann_serving.client._proto import tf_framework_pb2 as fw
from scann_serving.client._proto import tf_serving_pb2 as pb
from scann_serving.client._protocol import (
    MANIFEST_FIELD,
    SIGNATURE_DEF_FIELD,
    model_spec,
    parse_manifest,
    parse_metadata,
    parse_predict,
)
from scann_serving.client._tensors import (
    float32_tensor,
    int32_scalar,
    integer_tensor,
    string_matrix,
    string_tensor,
)
from scann_serving.client._types import ModelMetadata, RetrievalResult, Signature
from scann_serving.client._validate import Exclusions, Queries

# The signatures and tensor names of the retrieval contract (docs/ARCHITECTURE.md).
from scann_serving.client.contract import (
    ALLOW,
    DENY,
    EMBEDDING,
    EXCLUDE,
    NUMERIC,
    QUERY,
    RETRIEVE,
    RETRIEVE_FILTERED,
    RETRIEVE_WITH_EXCLUSIONS,
    SEARCH_EMBEDDING,
    SERVING_DEFAULT,
    K,
)

_USER_AGENT = "scann-serving-client/0.1"

_Key = tuple[int | None, str | None]


@dataclass(frozen=True)
class Plan:
    """A Predict request ready to send, and how to read its answer."""

    request: pb.PredictRequest
    signature: str
    cut: int | None = None


class BaseRetrievalClient:
    """Configuration, validation and message building shared by the sync and async clients.

    Args:
        target: gRPC target: `host:port`, or `dns:///svc.ns.svc.cluster.local:8500` to
            balance round-robin over every pod behind a Kubernetes headless Service.
        model: The served model's name.
        timeout: Default deadline per RPC in seconds; `None` for no deadline.
        tls: TLS / mTLS settings; `None` for a plaintext channel.
        retry: Retry policy for UNAVAILABLE (gRPC service config); `None` disables retries.
        keepalive: HTTP/2 keepalive settings; `None` for gRPC's defaults.
        max_message_bytes: Send and receive size limit; raise it for very large batch * k.
        load_balancing: gRPC load-balancing policy (`round_robin` or `pick_first`).
        metadata: Extra request headers sent with every call, e.g. `[("authorization", ...)]`.
        options: Extra gRPC channel arguments, appended to the client's own.
        metadata_ttl: Seconds the model metadata stays cached (a newly deployed version may
            change the dim or max_k); `None` caches it for the client's lifetime.
    """

    def __init__(
        self,
        target: str,
        *,
        model: str,
        timeout: float | None = DEFAULT_TIMEOUT,
        tls: TLS | None = None,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        keepalive: Keepalive | None = DEFAULT_KEEPALIVE,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        load_balancing: str = "round_robin",
        metadata: Sequence[tuple[str, str]] = (),
        options: Sequence[tuple[str, Any]] = (),
        metadata_ttl: float | None = DEFAULT_METADATA_TTL,
    ) -> None:
        if not target or not isinstance(target, str):
            raise InvalidRequest(f"target={target!r}: pass 'host:port' or 'dns:///host:port'")
        if not model or not isinstance(model, str):
            raise InvalidRequest(f"model={model!r}: pass the served model's name")
        if timeout is not None and timeout <= 0:
            raise InvalidRequest(f"timeout={timeout}: pass seconds > 0, or None for no deadline")
        self._target = target
        self._model = model
        self._timeout = timeout
        self._tls = tls
        self._call_metadata = tuple(metadata)
        self._options = channel_options(
            retry=retry,
            keepalive=keepalive,
            max_message_bytes=max_message_bytes,
            load_balancing=load_balancing,
            tls=tls,
            user_agent=_USER_AGENT,
        ) + list(options)
        self._metadata_ttl = metadata_ttl
        self._metadata_cache: dict[_Key, tuple[float, ModelMetadata]] = {}

    @property
    def target(self) -> str:
        """The gRPC target the client talks to."""
        return self._target

    @property
    def model(self) -> str:
        """The model the client queries."""
        return self._model

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._target!r}, model={self._model!r})"

    def _deadline(self, timeout: TimeoutTypes) -> float | None:
        if isinstance(timeout, Unset):
            return self._timeout
        if timeout is not None and timeout <= 0:
            raise InvalidRequest(f"timeout={timeout}: pass seconds > 0, or None for no deadline")
        return timeout

    @staticmethod
    def _key(version: int | None, label: str | None) -> _Key:
        if version is not None and label is not None:
            raise InvalidRequest("pass version or label, not both")
        if version is not None and (isinstance(version, bool) or version < 1):
            raise InvalidRequest(f"version={version!r}: versions are positive ints")
        return (version, label)

    def _cached_metadata(self, key: _Key) -> ModelMetadata | None:
        entry = self._metadata_cache.get(key)
        if entry is None:
            return None
        fetched, meta = entry
        if self._metadata_ttl is not None and time.monotonic() - fetched > self._metadata_ttl:
            return None
        return meta

    def _remember_metadata(self, key: _Key, response: pb.GetModelMetadataResponse) -> ModelMetadata:
        meta = parse_metadata(response, parse_manifest(response))
        self._metadata_cache[key] = (time.monotonic(), meta)
        return meta

    def _metadata_requests(self, key: _Key) -> list[pb.GetModelMetadataRequest]:
        """First with the export manifest (scann-serve), then without (TF Serving)."""
        spec = model_spec(self._model, version=key[0], label=key[1])
        return [
            pb.GetModelMetadataRequest(
                model_spec=spec, metadata_field=[SIGNATURE_DEF_FIELD, MANIFEST_FIELD]
            ),
            pb.GetModelMetadataRequest(model_spec=spec, metadata_field=[SIGNATURE_DEF_FIELD]),
        ]

    def _status_request(self, version: int | None) -> pb.GetModelStatusRequest:
        self._key(version, None)
        return pb.GetModelStatusRequest(model_spec=model_spec(self._model, version=version))

    def _predict(self, key: _Key, signature: str, inputs: dict[str, Any]) -> pb.PredictRequest:
        spec = model_spec(self._model, version=key[0], label=key[1], signature=signature)
        request = pb.PredictRequest(model_spec=spec)
        for name, tensor in inputs.items():
            request.inputs[name].CopyFrom(tensor)
        return request

    def _plan_retrieve(
        self,
        meta: ModelMetadata,
        key: _Key,
        queries: Queries,
        k: int | None,
        exclude: Exclusions | None,
        allow: Tokens | None = None,
        deny: Tokens | None = None,
        where: Restricts | None = None,
    ) -> Plan:
        if allow is not None or deny is not None or where is not None:
            if exclude is not None:
                raise InvalidRequest(
                    "exclude cannot be combined with allow/deny/where; pass the identifiers "
                    "to leave out as a deny namespace of the attributes, or filter afterwards"
                )
            return self._plan_filtered(meta, key, queries, k, allow, deny, where)
        if exclude is not None:
            sig = check.signature(meta, RETRIEVE_WITH_EXCLUSIONS)
            cut = None if k is None else check.check_cut(k, meta, sig.name)
            name, tensor, rows = self._query_input(meta, sig, queries)
            inputs = {
                name: tensor,
                check.input_name(sig, EXCLUDE, "DT_STRING", 2): string_matrix(
                    check.exclusion_rows(exclude, rows)
                ),
            }
            return Plan(self._predict(key, sig.name, inputs), sig.name, cut)
        if k is None:
            sig = check.signature(meta, SERVING_DEFAULT)
            name, tensor, _ = self._query_input(meta, sig, queries)
            return Plan(self._predict(key, sig.name, {name: tensor}), sig.name)
        sig = check.signature(meta, RETRIEVE)
        name, tensor, _ = self._query_input(meta, sig, queries)
        inputs = {
            name: tensor,
            check.input_name(sig, K, "DT_INT32", 0): int32_scalar(check.check_k(k, meta)),
        }
        return Plan(self._predict(key, sig.name, inputs), sig.name)

    def _plan_filtered(
        self,
        meta: ModelMetadata,
        key: _Key,
        queries: Queries,
        k: int | None,
        allow: Tokens | None,
        deny: Tokens | None,
        where: Restricts | None,
    ) -> Plan:
        sig = check.signature(meta, RETRIEVE_FILTERED)
        if k is None:
            if meta.default_k is None:
                raise InvalidRequest(
                    f"k=None: model {meta.model_name!r} declares no default k; pass k"
                )
            k = meta.default_k
        k = check.check_k(k, meta)
        name, tensor, rows = self._query_input(meta, sig, queries)
        # One filter for every query; [""] keeps an unused input a valid [batch, 1] matrix.
        columns = {
            ALLOW: filters.tokens(ALLOW, allow, meta),
            DENY: filters.tokens(DENY, deny, meta),
            NUMERIC: filters.restricts(where, meta),
        }
        inputs = {name: tensor, check.input_name(sig, K, "DT_INT32", 0): int32_scalar(k)}
        for input_key, values in columns.items():
            matrix = [list(values) or [""] for _ in range(rows)]
            inputs[check.input_name(sig, input_key, "DT_STRING", 2)] = string_matrix(matrix)
        return Plan(self._predict(key, sig.name, inputs), sig.name)

    @staticmethod
    def _query_input(
        meta: ModelMetadata, sig: Signature, queries: Queries
    ) -> tuple[str, fw.TensorProto, int]:
        """The query input's name, the keys as its tensor (strings, or integer ids when the
        model's query tower takes ids), and the number of queries."""
        spec = sig.inputs.get(QUERY)
        if spec is not None and spec.dtype in check.INTEGER_QUERY_DTYPES:
            ids = check.integer_keys(queries, spec.dtype, meta)
            return QUERY, integer_tensor(ids), len(ids)
        keys = check.query_keys(queries)
        return check.input_name(sig, QUERY, "DT_STRING", 1), string_tensor(keys), len(keys)

    def _plan_search(self, meta: ModelMetadata, key: _Key, embeddings: Any, k: int | None) -> Plan:
        sig = check.signature(meta, SEARCH_EMBEDDING)
        array = check.embedding_batch(embeddings, meta)
        cut = None if k is None else check.check_cut(k, meta, sig.name)
        inputs = {check.input_name(sig, EMBEDDING, "DT_FLOAT", 2): float32_tensor(array)}
        return Plan(self._predict(key, sig.name, inputs), sig.name, cut)

    def _result(self, plan: Plan, response: pb.PredictResponse) -> RetrievalResult:
        result = parse_predict(response, model=self._model, signature=plan.signature, k=plan.cut)
        if plan.cut is not None and result.k < plan.cut:
            raise InvalidRequest(
                f"k={plan.cut}: signature {plan.signature!r} returned only {result.k} "
                "candidates per query (the exported k); pass a smaller k"
            )
        return result

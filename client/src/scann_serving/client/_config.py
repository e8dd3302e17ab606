"""Small frozen configuration objects and the gRPC channel options they turn into.

Defaults are module constants. The retry policy is not a loop in the client: it is a gRPC
service config, so the channel itself retries UNAVAILABLE with exponential backoff (and
jitter), for the sync and the asyncio client alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

#: Seconds a call may take unless the client or the call says otherwise.
DEFAULT_TIMEOUT: Final = 10.0
#: Seconds a model's metadata (signatures, dim, max_k) stays cached.
DEFAULT_METADATA_TTL: Final = 300.0
#: Largest request/response in bytes. A response is about batch * k * (len(identifier) + 10)
#: bytes: 64 MiB holds e.g. a batch of 256 queries at k = 10,000 with 16-byte identifiers.
DEFAULT_MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
#: The gRPC services the retry policy covers (the services the client calls).
SERVICES: Final = ("tensorflow.serving.PredictionService", "tensorflow.serving.ModelService")


class Unset:
    """The type of `UNSET`: "not given", as opposed to `None` ("no deadline")."""

    _instance: Unset | None = None

    def __new__(cls) -> Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"


#: Pass-through default: `timeout=UNSET` means "use the client's timeout".
UNSET: Final = Unset()
TimeoutTypes = float | None | Unset


@dataclass(frozen=True)
class RetryPolicy:
    """Retries with exponential backoff, executed by gRPC from the service config.

    Attributes:
        max_attempts: Attempts in total, first one included (gRPC caps this at 5).
        initial_backoff: Seconds before the first retry (gRPC adds random jitter).
        max_backoff: Upper bound on the wait between attempts, in seconds.
        backoff_multiplier: Growth of the wait from one retry to the next.
        retryable_status_codes: gRPC status code names that are retried.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    backoff_multiplier: float = 2.0
    retryable_status_codes: tuple[str, ...] = ("UNAVAILABLE",)

    def __post_init__(self) -> None:
        if not 2 <= self.max_attempts <= 5:
            raise ValueError(
                f"max_attempts={self.max_attempts}: gRPC retries need 2..5 attempts; "
                "pass retry=None to disable retries"
            )
        if self.initial_backoff <= 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("need 0 < initial_backoff <= max_backoff (seconds)")

    def to_service_config(self) -> dict[str, Any]:
        """The `retryPolicy` object of a gRPC service config."""
        return {
            "maxAttempts": self.max_attempts,
            "initialBackoff": f"{self.initial_backoff}s",
            "maxBackoff": f"{self.max_backoff}s",
            "backoffMultiplier": self.backoff_multiplier,
            "retryableStatusCodes": list(self.retryable_status_codes),
        }


@dataclass(frozen=True)
class Keepalive:
    """HTTP/2 keepalive pings, so a dead connection (a killed pod) is noticed.

    The defaults stay above gRPC servers' default ping policy (no pings without calls),
    so a server does not answer with GOAWAY "too_many_pings".
    """

    time_ms: int = 60_000
    timeout_ms: int = 20_000
    permit_without_calls: bool = False


@dataclass(frozen=True)
class TLS:
    """TLS or mutual TLS (PEM bytes). No client certificate: TLS; with one: mTLS.

    Attributes:
        root_certificates: CA bundle that signed the server's certificate (`None`: the
            system roots gRPC ships with).
        certificate_chain: The client's certificate, for mTLS.
        private_key: The client certificate's key, for mTLS.
        server_name_override: The name to check the server certificate against, when it
            differs from the target's host (testing only).
    """

    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = field(default=None, repr=False)
    server_name_override: str | None = None

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("mTLS needs both certificate_chain and private_key (or neither)")

    @classmethod
    def from_files(
        cls,
        ca: str | Path | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        *,
        server_name_override: str | None = None,
    ) -> TLS:
        """Read the PEM files (CA bundle, client certificate, client key) into a `TLS`."""

        def read(path: str | Path | None) -> bytes | None:
            return None if path is None else Path(path).read_bytes()

        return cls(read(ca), read(cert), read(key), server_name_override)


#: The retry policy clients use unless told otherwise.
DEFAULT_RETRY: Final = RetryPolicy()
#: The keepalive clients use unless told otherwise.
DEFAULT_KEEPALIVE: Final = Keepalive()


def service_config(retry: RetryPolicy | None, load_balancing: str) -> str:
    """The JSON service config: load-balancing policy plus the retry policy."""
    config: dict[str, Any] = {"loadBalancingConfig": [{load_balancing: {}}]}
    if retry is not None:
        config["methodConfig"] = [
            {
                "name": [{"service": name} for name in SERVICES],
                "retryPolicy": retry.to_service_config(),
            }
        ]
    return json.dumps(config, sort_keys=True)


def channel_options(
    *,
    retry: RetryPolicy | None,
    keepalive: Keepalive | None,
    max_message_bytes: int,
    load_balancing: str,
    tls: TLS | None,
    user_agent: str,
) -> list[tuple[str, Any]]:
    """Every gRPC channel argument the client sets."""
    options: list[tuple[str, Any]] = [
        ("grpc.service_config", service_config(retry, load_balancing)),
        # The service config above is the one in force: do not take one from DNS TXT records.
        ("grpc.service_config_disable_resolution", 1),
        ("grpc.enable_retries", 0 if retry is None else 1),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.primary_user_agent", user_agent),
    ]
    if keepalive is not None:
        options += [
            ("grpc.keepalive_time_ms", keepalive.time_ms),
            ("grpc.keepalive_timeout_ms", keepalive.timeout_ms),
            ("grpc.keepalive_permit_without_calls", int(keepalive.permit_without_calls)),
        ]
    if tls is not None and tls.server_name_override:
        options.append(("grpc.ssl_target_name_override", tls.server_name_override))
    return options

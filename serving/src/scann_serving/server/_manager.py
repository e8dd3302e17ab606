"""The model manager: polls base paths, loads + warms versions, swaps them availability-first.

One background thread polls every `file_system_poll_wait_seconds`: it lists each model's
numeric version directories, picks the aspired ones by the version policy
(latest{N} / all / specific), loads and warms the new ones (newest first) and only then
unloads versions that are no longer aspired. A version that fails to load or warm is
recorded with its error (GetModelStatus shows it) and never replaces a good one.
Versions are built by a `ServableLoader` (TensorFlow SavedModels unless one is given),
so the manager itself never imports TensorFlow.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scann_serving.server._config import ModelsConfig, validate_model_server_config
from scann_serving.server._errors import InvalidArgument, NotFound
from scann_serving.server._metrics import Metrics
from scann_serving.server._preflight import PreflightError
from scann_serving.server._servable import LoadError, Servable, ServableLoader

log = logging.getLogger("scann_serving.server")


@dataclass
class VersionRecord:
    """What the manager knows about one version (state names as TF Serving's ModelVersionStatus)."""

    version: int
    state: str = "START"
    error_code: str = "OK"
    error_message: str = ""
    servable: Servable | None = None
    attempts: int = 0
    last_attempt: float = 0.0
    permanent_failure: bool = False


@dataclass
class _Model:
    config: Any  # tensorflow.serving.ModelConfig
    versions: dict[int, VersionRecord]


def aspired_versions(config: Any, found: list[int]) -> set[int]:
    """The versions the model's version policy wants out of the ones on disk."""
    policy = config.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return set(found)
    if choice == "specific":
        return set(found) & set(policy.specific.versions)
    count = policy.latest.num_versions if choice == "latest" and policy.latest.num_versions else 1
    return set(sorted(found)[-count:])


def list_versions(base_path: str) -> list[int] | None:
    """Numeric version directories under a base path (hidden staging dirs are skipped).

    None when the base path cannot be listed (missing, unreadable): a transient storage
    error must not unload what is serving, so that poll changes nothing.
    """
    try:
        entries = list(Path(base_path).iterdir())
    except OSError:
        return None
    return sorted(
        int(e.name) for e in entries if e.name.isdigit() and int(e.name) > 0 and e.is_dir()
    )


def settle_heap() -> None:
    """Collects garbage, then moves every surviving object out of the collector's reach
    (`gc.freeze`): called when the set of loaded versions changes.

    A loaded version is many long-lived objects (TensorFlow's hundreds of thousands); a
    full collection, which request garbage triggers every few thousand calls, walks them
    all. Frozen, they are skipped (on the 1M native version, server CPU per Predict at 16
    clients fell by about a quarter). Unfreezing first lets an unloaded version's reference
    cycles be collected.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def savedmodel_loader(max_request_batch_size: int) -> ServableLoader:
    """A loader of TensorFlow SavedModel versions (TensorFlow is imported on first use)."""

    def load(name: str, version: int, path: Path) -> Servable:
        from scann_serving.server._model import ServableVersion

        return ServableVersion(name, version, path, max_request_batch_size)

    return load


def backend_of(servable: Servable) -> tuple[str, str]:
    """(backend, reason) of a loaded servable; ("", "") for one that does not say (fakes)."""
    return getattr(servable, "backend", ""), getattr(servable, "backend_reason", "")


class ModelManager:
    """Owns every model's versions; thread-safe; knows nothing about gRPC or HTTP.

    Args:
        config: The models part of the server configuration (polling, retries, warmup).
        metrics: Where loads and unloads are counted.
        loader: Builds one version's servable; default: `--backend`'s (`_backend`).
    """

    def __init__(
        self, config: ModelsConfig, metrics: Metrics, *, loader: ServableLoader | None = None
    ) -> None:
        self._config = config
        self._metrics = metrics
        if loader is None:
            from scann_serving.server._backend import backend_loader

            loader = backend_loader(config.backend, config.max_request_batch_size)
        self._loader = loader
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._models: dict[str, _Model] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unlistable: set[str] = set()
        self.set_models(config.model_config, poll=False)

    # --- configuration -------------------------------------------------------------
    def set_models(self, model_server_config: Any, *, poll: bool = True) -> None:
        """Applies a ModelServerConfig: adds, removes and re-policies models, then polls."""
        validate_model_server_config(model_server_config, "model server config")
        wanted = {m.name: m for m in model_server_config.model_config_list.config}
        with self._lock:
            dropped = [self._models.pop(name) for name in list(self._models) if name not in wanted]
            for name, model_config in wanted.items():
                if name in self._models:
                    self._models[name].config = model_config
                else:
                    self._models[name] = _Model(model_config, {})
        for model in dropped:
            for record in model.versions.values():
                self._metrics.unloaded(model.config.name, record.version)
        if dropped:
            settle_heap()
        if poll:
            self.poll_once()

    # --- polling -------------------------------------------------------------------
    def start(self) -> None:
        """Starts the polling thread (its first poll loads the initial versions)."""
        self._thread = threading.Thread(target=self._run, name="model-manager", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops polling (in-flight loads finish in the background)."""
        self._stop.set()

    def _run(self) -> None:
        wait = max(self._config.file_system_poll_wait_seconds, 0)
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # the poller must survive anything a filesystem throws at it
                log.exception("model poll failed")
            if wait == 0 and self.all_ready():
                return  # TF Serving: a poll wait of 0 means load once, never re-poll
            self._stop.wait(wait or 1)

    def poll_once(self) -> None:
        """One pass over every model: load new aspired versions, then unload stale ones."""
        with self._poll_lock:
            with self._lock:
                models = list(self._models.items())
            for name, model in models:
                self._poll_model(name, model)

    def _poll_model(self, name: str, model: _Model) -> None:
        found = list_versions(model.config.base_path)
        if found is None:
            if name not in self._unlistable:  # once, not every poll
                log.warning(
                    "cannot list %s (model %s); keeping its versions", model.config.base_path, name
                )
                self._unlistable.add(name)
            return
        self._unlistable.discard(name)
        aspired = aspired_versions(model.config, found)
        for version in sorted(aspired, reverse=True):
            record = model.versions.get(version)
            if record is None or self._should_retry(record):
                self._load(name, model, version)
        with self._lock:
            available_aspired = any(
                r.state == "AVAILABLE" for v, r in model.versions.items() if v in aspired
            )
            stale = [
                r
                for v, r in model.versions.items()
                if r.state == "AVAILABLE"
                and v not in aspired
                and (available_aspired or not aspired)
            ]
            for record in stale:
                record.state, record.servable = "END", None
        for record in stale:
            log.info("unloaded model %s version %d", name, record.version)
            self._metrics.unloaded(name, record.version)
        if stale:
            settle_heap()

    def _should_retry(self, record: VersionRecord) -> bool:
        if record.state != "END" or record.permanent_failure:
            return False
        if record.error_code == "OK":  # unloaded earlier, aspired again (e.g. rollback): reload
            return True
        if record.attempts > self._config.max_num_load_retries:
            return False
        return (
            time.monotonic() - record.last_attempt >= self._config.load_retry_interval_micros / 1e6
        )

    def _load(self, name: str, model: _Model, version: int) -> None:
        with self._lock:
            record = model.versions.setdefault(version, VersionRecord(version))
            record.state, record.attempts = "LOADING", record.attempts + 1
            record.last_attempt = time.monotonic()
        path = Path(model.config.base_path) / str(version)
        started = time.monotonic()
        log.info("loading model %s version %d from %s", name, version, path)
        try:
            servable = self._loader(name, version, path)
            if self._config.enable_model_warmup:
                servable.warmup(self._config.num_request_iterations_for_warmup)
        except Exception as exc:
            self._failed(name, record, exc)
            return
        backend, reason = backend_of(servable)
        with self._lock:
            record.state, record.servable = "AVAILABLE", servable
            # The status message of an AVAILABLE version says which backend runs it and why.
            record.error_code, record.error_message = "OK", reason
        self._metrics.loaded(name, version, "success", time.monotonic() - started, backend)
        settle_heap()
        log.info(
            "model %s version %d is AVAILABLE (%.1fs)%s",
            name,
            version,
            time.monotonic() - started,
            f" on the {backend} backend ({reason})" if backend else "",
        )

    def _failed(self, name: str, record: VersionRecord, exc: Exception) -> None:
        preflight = isinstance(exc, PreflightError)
        code = "FAILED_PRECONDITION" if preflight else "UNKNOWN"
        message = (
            str(exc)
            if isinstance(exc, PreflightError | LoadError)
            else f"{type(exc).__name__}: {exc}"
        )
        with self._lock:
            record.state, record.servable = "END", None
            record.error_code, record.error_message = code, message
            record.permanent_failure = preflight
        self._metrics.loaded(name, record.version, "failure", 0.0)
        log.error("model %s version %d failed to load: %s", name, record.version, message)

    # --- queries ---------------------------------------------------------------------
    def resolve(self, name: str, version: int | None, label: str | None) -> Servable:
        """The servable a request's model_spec names; NotFound/InvalidArgument otherwise."""
        with self._lock:
            model = self._models.get(name)
            if model is None:
                raise NotFound(
                    f"Servable not found for request: Latest({name}): no model named "
                    f"{name!r} is configured; served models: {sorted(self._models)}"
                )
            if label:
                if label not in model.config.version_labels:
                    raise InvalidArgument(
                        f"Unrecognized servable version label: {label} "
                        f"(model {name!r} has {sorted(model.config.version_labels)})"
                    )
                version = int(model.config.version_labels[label])
            if version is not None:
                record = model.versions.get(version)
                if record is None or record.servable is None:
                    raise NotFound(f"Servable not found for request: Specific({name}, {version})")
                return record.servable
            best: VersionRecord | None = None  # the highest version with a servable
            for record in model.versions.values():
                if record.servable is not None and (best is None or record.version > best.version):
                    best = record
            if best is None or best.servable is None:
                raise NotFound(
                    f"Servable not found for request: Latest({name}): no version is available yet"
                )
            return best.servable

    def status(self, name: str, version: int | None, label: str | None) -> list[VersionRecord]:
        """Snapshots of the model's version records (one when a version or label is given)."""
        with self._lock:
            model = self._models.get(name)
            if model is None:
                raise NotFound(f"Could not find any versions of model {name}")
            if label:
                if label not in model.config.version_labels:
                    raise InvalidArgument(f"Unrecognized servable version label: {label}")
                version = int(model.config.version_labels[label])
            records = sorted(model.versions.values(), key=lambda r: -r.version)
            if version is not None:
                records = [r for r in records if r.version == version]
                if not records:
                    raise NotFound(f"Could not find version {version} of model {name}")
            if not records:
                raise NotFound(f"Could not find any versions of model {name}")
            return [
                VersionRecord(r.version, r.state, r.error_code, r.error_message) for r in records
            ]

    def all_ready(self) -> bool:
        """True when every configured model has at least one AVAILABLE (warmed) version."""
        with self._lock:
            return bool(self._models) and all(
                any(r.servable is not None for r in m.versions.values())
                for m in self._models.values()
            )

"""`--backend`: which implementation of `Servable` runs each version, and why.

- `native`: every version from its native bundle (`_native_model`); TensorFlow is never
  imported. A version without a bundle fails to load, saying how to get one.
- `tensorflow`: every version from its SavedModel (`_model`), as before bundles existed.
- `auto` (default): per version, native where the bundle serves every signature of the
  version, else TensorFlow; where TensorFlow is not installed (`pip install
  scann-serving-server` without the `[tensorflow]` extra), native whatever it covers.

The reason is one sentence, kept on the servable (`backend_reason`): the manager logs it
and shows it in GetModelStatus, the core adds it to the metadata, metrics label by backend.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scann_serving.server._bundle import BundleError, bundle_dir, read_info
from scann_serving.server._servable import LoadError, Servable, ServableLoader

AUTO, TENSORFLOW, NATIVE = "auto", "tensorflow", "native"


def tensorflow_installed() -> bool:
    """Whether the TensorFlow backend can run here (without importing TensorFlow)."""
    return importlib.util.find_spec("tensorflow") is not None


def choose(backend: str, path: Path, signatures: frozenset[str] | None = None) -> tuple[str, str]:
    """(backend, reason) for the version at `path` under `--backend=backend`.

    Args:
        backend: The flag's value.
        path: The version directory.
        signatures: What the version serves, when known; else the bundle's SignatureDefs.

    Raises:
        LoadError: The version cannot be served under this flag (the message says how).
    """
    if backend == TENSORFLOW:
        return TENSORFLOW, "--backend=tensorflow: the SavedModel runs every signature"
    try:
        info = read_info(bundle_dir(path))
    except BundleError as exc:
        if backend == NATIVE:
            raise LoadError(
                f"--backend=native: {exc}; re-export it with scann-export (which writes the "
                "bundle unless --no-native-bundle) or serve it with --backend=tensorflow"
            ) from exc
        if not tensorflow_installed():
            raise LoadError(
                f"--backend=auto: {exc}, and TensorFlow is not installed; re-export the version "
                "with scann-export, or install scann-serving-server[tensorflow]"
            ) from exc
        return TENSORFLOW, f"--backend=auto: {exc}; the SavedModel serves it"
    covered = ", ".join(info.signatures)
    if backend == NATIVE:
        return NATIVE, f"--backend=native: the native bundle serves {covered}"
    wanted = signatures if signatures is not None else _bundle_signatures(path)
    missing = sorted(wanted - set(info.signatures))
    if not missing:
        return NATIVE, f"--backend=auto: the native bundle serves every signature ({covered})"
    if not tensorflow_installed():
        return NATIVE, (
            f"--backend=auto: the native bundle serves {covered} but not {', '.join(missing)} "
            f"({_why_missing(info.tower)}) and TensorFlow is not installed"
        )
    return TENSORFLOW, (
        f"--backend=auto: the native bundle lacks {', '.join(missing)} "
        f"({_why_missing(info.tower)}); the SavedModel serves every signature"
    )


def _why_missing(tower: str | None) -> str:
    if tower is None:
        return "the query tower is not a lookup table"
    return "the bundle predates them; re-export the version to serve them natively"


def _bundle_signatures(path: Path) -> frozenset[str]:
    from scann_serving.server._bundle import read_signature_defs
    from scann_serving.server._pb import SignatureDefMap

    try:
        defs = SignatureDefMap.FromString(read_signature_defs(bundle_dir(path)))
    except Exception:  # unreadable: the native load reports it; here it only decides
        return frozenset()
    return frozenset(servable_signatures(defs.signature_def))


def servable_signatures(names: Any) -> list[str]:
    """The callable signatures among a SavedModel's SignatureDef keys (not `__saved_model_init_op`)."""
    return [name for name in names if not name.startswith("__")]


def backend_loader(
    backend: str,
    max_request_batch_size: int,
    *,
    on_tensorflow: Callable[[], None] | None = None,
) -> ServableLoader:
    """The manager's loader for `--backend=backend`: picks and builds each version's servable.

    `on_tensorflow` runs once, before the first TensorFlow version loads (thread pools must
    be configured before TensorFlow runs anything), so a server whose versions are all
    native never imports TensorFlow, whatever the flag.
    """
    started = threading.Lock()
    pending = [on_tensorflow] if on_tensorflow is not None else []

    def start_tensorflow() -> None:
        with started:
            while pending:
                pending.pop()()

    def load(name: str, version: int, path: Path) -> Servable:
        chosen, reason = choose(backend, path)
        if chosen == NATIVE:
            from scann_serving.server._native_model import NativeServable

            return NativeServable(name, version, path, max_request_batch_size, reason=reason)
        from scann_serving.server._model import ServableVersion

        start_tensorflow()
        servable = ServableVersion(name, version, path, max_request_batch_size)
        servable.backend_reason = reason
        return servable

    return load

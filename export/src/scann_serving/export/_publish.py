"""Atomic publication of a version directory under a model base path.

A version is built in a hidden staging directory next to the numeric ones (same
filesystem), fsynced, then renamed to its integer name. A numeric directory is therefore
always complete, and a crash mid-write leaves only a hidden `.staging-*` directory that
servers ignore and the next export removes.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scann_serving.export._manifest import ASSETS_EXTRA, MANIFEST_FILENAME, WARMUP_FILENAME

STAGING_PREFIX = ".staging-"
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many warmup records.


class VersionExistsError(FileExistsError):
    """The requested version directory exists; versions are never overwritten."""


class VerificationError(RuntimeError):
    """The export did not load or answer like the in-memory model in a fresh process.

    Raised by the `check` of `publish` (see `_verify`), so nothing was published. It lives
    here rather than in `_verify` because that module also runs as a script
    (`python -m scann_serving.export._verify`), which must not be imported by the package
    `__init__` first.
    """


def existing_versions(base_path: Path) -> list[int]:
    """The positive integer version directories under `base_path`, ascending."""
    if not base_path.is_dir():
        return []
    return sorted(
        int(p.name)
        for p in base_path.iterdir()
        if p.is_dir() and p.name.isdigit() and int(p.name) > 0
    )


def next_version(base_path: Path) -> int:
    """One more than the highest existing version (1 for an empty base path)."""
    versions = existing_versions(base_path)
    return versions[-1] + 1 if versions else 1


def publish(
    base_path: Path | str,
    write: Callable[[Path], None],
    *,
    version: int | None = None,
    manifest: dict[str, Any],
    warmup_requests: Sequence[Any] = (),
    check: Callable[[Path], None] | None = None,
) -> Path:
    """Writes a version with `write(staging_dir)`, adds assets.extra, and renames it in place.

    Args:
        base_path: The model base path (created if missing).
        write: Writes the SavedModel into the directory it is given.
        version: The version to publish; the next free integer when None.
        manifest: The manifest; its `version` is set here.
        warmup_requests: `tensorflow.serving.PredictRequest`s replayed before serving.
        check: Called with the complete staging directory before it is renamed; raising
            aborts the publish (the staging directory is removed, no version appears).

    Returns:
        The published version directory.

    Raises:
        VersionExistsError: `version` was given and already exists.
        ValueError: `version` is not a positive integer.
    """
    base = Path(base_path)
    base.mkdir(parents=True, exist_ok=True)
    if version is not None and (not isinstance(version, int) or version < 1):
        raise ValueError(f"--version {version!r} must be a positive integer")
    if version is not None and (base / str(version)).exists():
        raise VersionExistsError(
            f"{base / str(version)} exists; versions are never overwritten. "
            "Omit --version to publish the next one."
        )
    remove_stale_staging(base)
    staging = base / f"{STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    try:
        write(staging)
        _write_assets_extra(staging, manifest, warmup_requests)
        if check is not None:
            check(staging)
        _fsync_tree(staging)
        return _rename_into_place(staging, base, version, manifest)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def remove_stale_staging(base: Path) -> None:
    """Removes staging directories left by exports that died before publishing.

    A staging directory is named after its exporter's pid; one whose exporter is still
    running belongs to a concurrent export and is left alone.
    """
    for stale in base.glob(f"{STAGING_PREFIX}*"):
        if not _owner_alive(stale.name[len(STAGING_PREFIX) :].split("-", 1)[0]):
            shutil.rmtree(stale, ignore_errors=True)


def _owner_alive(pid_text: str) -> bool:
    if not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _rename_into_place(
    staging: Path, base: Path, version: int | None, manifest: dict[str, Any]
) -> Path:
    # The version is only known for sure at rename time: another exporter may publish
    # concurrently, so an implicit version retries with the next free number.
    for _ in range(100):
        chosen = version if version is not None else next_version(base)
        manifest["version"] = chosen
        _write_manifest(staging, manifest)
        target = base / str(chosen)
        if target.exists():
            if version is not None:
                raise VersionExistsError(f"{target} exists; versions are never overwritten")
            continue
        try:
            # rename(2) refuses to replace a non-empty directory, so a concurrent exporter
            # that won the race keeps its version and we retry with the next number.
            os.rename(staging, target)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or version is not None:
                raise
            continue
        _fsync_dir(base)
        return target
    raise RuntimeError(f"could not claim a free version number under {base}")


def _write_assets_extra(staging: Path, manifest: dict[str, Any], requests: Sequence[Any]) -> None:
    extra = staging / ASSETS_EXTRA
    extra.mkdir(parents=True, exist_ok=True)
    if len(requests) > MAX_WARMUP_RECORDS:
        raise ValueError(
            f"{len(requests)} warmup requests; TF Serving reads at most {MAX_WARMUP_RECORDS}"
        )
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    with tf.io.TFRecordWriter(str(extra / WARMUP_FILENAME)) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    manifest["warmup_records"] = len(requests)
    _write_manifest(staging, manifest)


def _write_manifest(staging: Path, manifest: dict[str, Any]) -> None:
    path = staging / ASSETS_EXTRA / MANIFEST_FILENAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=_json_default) + "\n")
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _fsync_tree(root: Path) -> None:
    for directory, _dirs, files in os.walk(root):
        for name in files:
            with open(os.path.join(directory, name), "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(Path(directory))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

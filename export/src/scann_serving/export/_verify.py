"""Verifying an export in a fresh process: load it, replay its warmup requests, compare.

The parent (`verify_in_fresh_process`) runs this module as a script on the version
directory. The child imports the ScaNN ops (unless told not to: that is how the tests show
TensorFlow's "Op type not registered 'Scann>...'" without them), loads the SavedModel,
replays `assets.extra/tf_serving_warmup_requests` through its signatures and writes the
results as JSON. The parent replays the same requests on the in-memory module and requires
the same identifiers (and scores within float tolerance).

Usage: python -m scann_serving.export._verify VERSION_DIR OUT.json [--without-scann-ops]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scann_serving.client.contract import IDENTIFIERS, SCORES, SERVING_DEFAULT
from scann_serving.export._manifest import ASSETS_EXTRA, WARMUP_FILENAME
from scann_serving.export._publish import VerificationError

Call = Callable[[str, dict[str, Any]], dict[str, Any]]


def replay_warmup(version_dir: Path, call: Call) -> list[dict[str, Any]]:
    """Runs every warmup PredictRequest through `call(signature, inputs)`.

    Returns one `{"signature", "identifiers", "scores"}` per request (identifiers decoded).
    """
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    results = []
    path = version_dir / ASSETS_EXTRA / WARMUP_FILENAME
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        signature = request.model_spec.signature_name or SERVING_DEFAULT
        inputs = {key: tf.constant(tf.make_ndarray(proto)) for key, proto in request.inputs.items()}
        outputs = call(signature, inputs)
        results.append(
            {
                "signature": signature,
                IDENTIFIERS: [[i.decode() for i in row] for row in outputs[IDENTIFIERS].numpy()],
                SCORES: outputs[SCORES].numpy().tolist(),
            }
        )
    return results


def verify_in_fresh_process(
    version_dir: Path,
    in_memory: Call,
    *,
    native_probe: tuple[np.ndarray, np.ndarray] | None = None,
    timeout: float = 1800.0,
) -> dict[str, Any]:
    """Loads `version_dir` in a new Python process and compares it with `in_memory`.

    Args:
        version_dir: The staged version.
        in_memory: Runs a signature on the in-memory module.
        native_probe: Held-out (keys, embeddings): the child then also checks the native
            bundle against the loaded SavedModel (`_verify_native`).
        timeout: Seconds the child may take.

    Returns:
        A summary for the manifest (requests replayed, load and replay time, `native`).

    Raises:
        VerificationError: The load failed, any request's identifiers differ, or the
            native bundle answers differently from the SavedModel.
    """
    child = run_child(version_dir, native_probe=native_probe, timeout=timeout)
    if "error" in child:
        raise VerificationError(f"{version_dir} did not load in a fresh process: {child['error']}")
    if "native_error" in child:
        raise VerificationError(
            f"{version_dir}: the native bundle does not answer like the SavedModel: "
            f"{child['native_error']}; nothing was published (export with --no-native-bundle "
            "to publish without it, and report the difference)"
        )
    expected = replay_warmup(version_dir, in_memory)
    _compare(expected, child["results"])
    summary = {
        "fresh_process": True,
        "requests_replayed": len(expected),
        "identical_identifiers": True,
        "load_seconds": round(child["load_seconds"], 3),
        "replay_seconds": round(child["replay_seconds"], 3),
    }
    if "native" in child:
        summary["native"] = child["native"]
    return summary


def run_child(
    version_dir: Path,
    *,
    scann_ops: bool = True,
    native_probe: tuple[np.ndarray, np.ndarray] | None = None,
    timeout: float = 1800.0,
) -> dict[str, Any]:
    """Runs this module in a subprocess on `version_dir` and returns its JSON report."""
    with tempfile.TemporaryDirectory(prefix="scann-verify-") as tmp:
        out = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "scann_serving.export._verify", str(version_dir), str(out)]
        if not scann_ops:
            command.append("--without-scann-ops")
        if native_probe is not None:
            from scann_serving.export._verify_native import write_probe

            write_probe(Path(tmp) / "probe", *native_probe)
            command += ["--native-probe", str(Path(tmp) / "probe")]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1"}
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
        if not out.is_file():
            raise VerificationError(
                f"the verification process exited with {proc.returncode} without a report:\n"
                f"{proc.stderr[-3000:]}"
            )
        report: dict[str, Any] = json.loads(out.read_text())
        return report


def _compare(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> None:
    if len(expected) != len(actual):
        raise VerificationError(
            f"{len(actual)} warmup results in the fresh process, {len(expected)} in memory"
        )
    for i, (want, got) in enumerate(zip(expected, actual, strict=True)):
        if want[IDENTIFIERS] != got[IDENTIFIERS]:
            raise VerificationError(
                f"warmup request {i} ({want['signature']}): the loaded model returned "
                f"{got[IDENTIFIERS][0][:5]}..., in memory {want[IDENTIFIERS][0][:5]}..."
            )
        if not np.allclose(want[SCORES], got[SCORES], rtol=1e-4, atol=1e-4):
            raise VerificationError(f"warmup request {i} ({want['signature']}): scores differ")


def _child_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Load a version in this process and replay its warmup."
    )
    parser.add_argument("version_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--without-scann-ops", action="store_true")
    parser.add_argument("--native-probe", type=Path)
    args = parser.parse_args(argv)
    import tensorflow as tf

    if not args.without_scann_ops:
        from scann.scann_ops.py import scann_ops  # noqa: F401  (registers the Scann>* ops)
    started = time.perf_counter()
    try:
        loaded = tf.saved_model.load(str(args.version_dir))
    except Exception as exc:  # the point is to report whatever TensorFlow says
        args.out.write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 2
    loaded_at = time.perf_counter()
    results = replay_warmup(args.version_dir, lambda sig, inputs: loaded.signatures[sig](**inputs))
    report: dict[str, Any] = {
        "results": results,
        "load_seconds": loaded_at - started,
        "replay_seconds": time.perf_counter() - loaded_at,
    }
    if args.native_probe is not None:
        report.update(_check_native(args.version_dir, loaded, args.native_probe))
    args.out.write_text(json.dumps(report))
    return 0


def _check_native(version_dir: Path, loaded: Any, probe: Path) -> dict[str, Any]:
    import tensorflow as tf
    from scann_serving.export._verify_native import BundleMismatch, as_outputs, check_bundle
    from scann_serving.server._bundle import BundleError

    def savedmodel(signature: str, inputs: dict[str, np.ndarray]) -> Any:
        tensors = {key: tf.constant(value) for key, value in inputs.items()}
        return as_outputs(loaded.signatures[signature](**tensors))

    started = time.perf_counter()
    try:
        block = check_bundle(version_dir, savedmodel, warmup_inputs(version_dir), probe)
    except (BundleMismatch, BundleError) as exc:
        return {"native_error": str(exc)}
    return {"native": {**block, "seconds": round(time.perf_counter() - started, 3)}}


def warmup_inputs(version_dir: Path) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The warmup requests as (signature, numpy inputs)."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    out = []
    path = version_dir / ASSETS_EXTRA / WARMUP_FILENAME
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
        out.append((request.model_spec.signature_name or SERVING_DEFAULT, inputs))
    return out


if __name__ == "__main__":
    sys.exit(_child_main())

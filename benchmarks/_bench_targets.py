"""The benchmark's targets and ratios, computed from whatever rows a run measured.

A row or configuration that failed (`{"failed": reason}`) or was not run leaves the ratios
that need it at None; the others are still computed. `normalize` reads results written
before the backends existed (`served[mode]`) as `served["tensorflow"][mode]`.
"""

from __future__ import annotations

from typing import Any

from _bench_served import DEFAULT_BACKEND, MODES, QUERIES_PER_REQUEST

CONCURRENCY = (1, 4, 16)
LATENCY_TARGET, THROUGHPUT_TARGET = 1.5, 0.25
#: Served configurations with batching (the throughput target counts the best of them).
BATCHING_MODES = tuple(name for name, (batching, _) in MODES.items() if batching)
#: Issue 13's targets for the native backend: (what, key, limit, the ratio must be at most
#: the limit). Keys are `by_backend["native"]`'s, or the top level's for the two ratios to
#: the TensorFlow backend. The p50 pair comes from one mode: the one closest to its no-op.
NATIVE_TARGETS = (
    ("h2load p50 vs the signature call", "p50_best_mode_vs_signature", 1.25, True),
    ("h2load p50 vs the no-op's", "p50_best_mode_vs_noop", 1.3, True),
    ("server CPU/Predict @16 vs the no-op's", "cpu_per_predict_vs_noop_16", 1.5, True),
    ("q/s @16 vs the no-op's", "qps_16_vs_noop_best_mode", 0.6, False),
    (
        f"{QUERIES_PER_REQUEST} queries/request rows/s vs raw search_batched",
        "rows64_fraction_of_raw_serial64",
        0.4,
        False,
    ),
    ("start to SERVING vs tensorflow", "native_start_vs_tensorflow", 1 / 3, True),
    ("RSS vs tensorflow", "native_rss_vs_tensorflow", 0.5, True),
)


def normalize(results: dict) -> dict:
    """`results` in the per-backend layout (older files: one backend, REST q/s as floats)."""
    served = results.get("served", {})
    if any(mode in served for mode in MODES):
        if "external" in served:
            results["external"] = served["external"]
        results["served"] = {DEFAULT_BACKEND: {m: served[m] for m in MODES if m in served}}
    for configs in results["served"].values():
        for cfg in configs.values():
            for c in CONCURRENCY:
                if f"rest_qps_{c}" in cfg and f"rest_{c}" not in cfg:
                    cfg[f"rest_{c}"] = {"qps": cfg[f"rest_qps_{c}"]}
    return results


def row(cfg: dict | None, key: str) -> dict | None:
    """One measured row of a configuration; None when missing or failed."""
    if not cfg or "failed" in cfg:
        return None
    data = cfg.get(key)
    return None if not isinstance(data, dict) or "failed" in data else data


def get(cfg: dict | None, key: str, field: str) -> float | None:
    """A number of one row (`get(cfg, "c_16", "qps")`), or None."""
    data = row(cfg, key)
    value = None if data is None else data.get(field)
    return None if value is None else float(value)


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing (or b is 0)."""
    return None if a is None or not b else a / b


def _best(values: list[float | None], high: bool = True) -> float | None:
    return _best_mode(dict(enumerate(values)), high)[0]


def _best_mode(by_mode: dict[Any, float | None], high: bool) -> tuple[float | None, Any]:
    """(the best ratio, the mode that gave it) over the modes that measured it."""
    present = {mode: v for mode, v in by_mode.items() if v is not None}
    if not present:
        return None, None
    mode = (max if high else min)(present, key=present.__getitem__)
    return present[mode], mode


def backend_ratios(results: dict, backend: str) -> dict[str, Any]:
    """Issue 13's ratios for one backend. Every ratio divides two rows of the same server
    (configuration); where a target takes the best mode, the mode is named beside it.
    The p50 pair (vs the signature call and vs the no-op) comes from plain and from the
    mode whose p50 is closest to its own no-op's."""
    ip, configs = results["in_process"], results["served"].get(backend, {})
    signature = ip["signature_call"]["p50_ms"]
    serial64 = ip.get("raw_scann_batched_serial_qps_by_size", {}).get(str(QUERIES_PER_REQUEST))
    plain = configs.get("plain")
    rows64 = [
        get(cfg, key, "rows_per_s") for cfg in configs.values() for key in ("grpc_64x16", "c_64x16")
    ]
    server = (plain or {}).get("server", {})
    p50_vs_noop = {
        mode: ratio(get(cfg, "c_single", "p50_ms"), get(cfg, "c_noop_single", "p50_ms"))
        for mode, cfg in configs.items()
    }
    p50_best, p50_mode = _best_mode(p50_vs_noop, high=False)
    cpu, cpu_mode = _best_mode(
        {
            mode: ratio(
                get(cfg, "c_16", "server_cpu_us_per_call"),
                get(cfg, "c_noop_16", "server_cpu_us_per_call"),
            )
            for mode, cfg in configs.items()
        },
        high=False,
    )
    qps, qps_mode = _best_mode(
        {
            mode: ratio(get(cfg, "c_16", "qps"), get(cfg, "c_noop_16", "qps"))
            for mode, cfg in configs.items()
        },
        high=True,
    )
    return {
        "p50_native_vs_signature": ratio(get(plain, "c_single", "p50_ms"), signature),
        "p50_native_vs_noop": p50_vs_noop.get("plain"),
        "p50_best_mode": p50_mode,
        "p50_best_mode_vs_noop": p50_best,
        "p50_best_mode_vs_signature": ratio(
            get(configs.get(p50_mode or ""), "c_single", "p50_ms"), signature
        ),
        "cpu_per_predict_vs_noop_16": cpu,
        "cpu_best_mode": cpu_mode,
        "qps_16_vs_noop_best_mode": qps,
        "qps_best_mode": qps_mode,
        "rows_per_s_64x16_best": _best(rows64),
        "rows64_fraction_of_raw_serial64": ratio(_best(rows64), serial64),
        "start_to_serving_s": server.get("start_to_serving_s"),
        "rss_mib": server.get("rss_mib"),
        "real_errors": real_errors(configs),
        "failed_rows": failed_rows(configs),
    }


def real_errors(configs: dict) -> int:
    """Real errors over every row of a backend's configurations."""
    return sum(
        int(data.get("real_errors", 0))
        for cfg in configs.values()
        if "failed" not in cfg
        for data in cfg.values()
        if isinstance(data, dict)
    )


def failed_rows(configs: dict) -> list[str]:
    """'mode' or 'mode/row' for every configuration or row that failed."""
    out = [mode for mode, cfg in configs.items() if "failed" in cfg]
    for mode, cfg in configs.items():
        if "failed" not in cfg:
            out += [f"{mode}/{k}" for k, v in cfg.items() if isinstance(v, dict) and "failed" in v]
    return out


def native_verdicts(t: dict) -> list[dict[str, Any]]:
    """Each of issue 13's native targets with its measured value and whether it is met
    (a ratio this run did not measure is not met); [] when the native backend did not run."""
    native = t.get("by_backend", {}).get("native")
    if native is None:
        return []
    out = []
    for what, key, limit, at_most in NATIVE_TARGETS:
        value = native.get(key, t.get(key))
        met = value is not None and (value <= limit if at_most else value >= limit)
        out.append({"target": what, "value": value, "limit": limit, "at_most": at_most, "met": met})
    return out


def targets(results: dict) -> dict:
    """Issue 3's targets on the TensorFlow backend (as before), and issue 13's ratios per
    backend (`by_backend`, plus native / tensorflow start and RSS when both ran).

    The primary figures use the official Python stub (latency), the Python load processes
    (throughput) and raw ScaNN's parallel batched call; the `_native` figures use h2load
    and the `_serial` ones ScaNN's one-thread `search_batched`.
    """
    results = normalize(results)
    ip, by_backend = results["in_process"], results["served"]
    configs: dict = by_backend.get(DEFAULT_BACKEND) or next(iter(by_backend.values()), {})
    plain = configs.get("plain")
    batched = [configs.get(m) for m in BATCHING_MODES]
    signature = ip["signature_call"]["p50_ms"]
    parallel = ip["raw_scann_batched_qps_by_size"]["1024"]
    serial = ip.get("raw_scann_batched_serial_qps")
    out: dict[str, Any] = {
        "latency_ratio": ratio(get(plain, "grpc_single", "p50_ms"), signature),
        "throughput_fraction": ratio(_best([get(c, "grpc_16", "qps") for c in batched]), parallel),
        "throughput_fraction_vs_raw_batch16": ratio(
            _best([get(c, "grpc_16", "qps") for c in batched]),
            ip["raw_scann_batched_qps_by_size"]["16"],
        ),
        "noop_latency_ratio": ratio(get(plain, "grpc_noop_single", "p50_ms"), signature),
        "noop_fraction": ratio(get(plain, "grpc_noop_16", "qps"), parallel),
        "latency_ratio_native": ratio(get(plain, "c_single", "p50_ms"), signature),
        "throughput_fraction_native": ratio(
            _best([get(c, "c_16", "qps") for c in batched]), parallel
        ),
        "noop_latency_ratio_native": ratio(get(plain, "c_noop_single", "p50_ms"), signature),
        "noop_fraction_native": ratio(get(plain, "c_noop_16", "qps"), parallel),
    }
    ext = results.get("external")
    if ext:  # another TF Serving API server (e.g. the TF Serving image), same version
        out["latency_ratio_external"] = ratio(
            _best([get(ext, "grpc_single", "p50_ms"), get(ext, "c_single", "p50_ms")], high=False),
            signature,
        )
        out["throughput_fraction_external"] = ratio(
            _best([get(ext, "grpc_16", "qps"), get(ext, "c_16", "qps")]), parallel
        )
    if serial:
        for key in [k for k in out if k.startswith(("throughput_fraction", "noop_fraction"))]:
            if not key.endswith("batch16"):
                out[f"{key}_serial"] = None if out[key] is None else out[key] * parallel / serial
    latency = _best([out["latency_ratio"], out["latency_ratio_native"]], high=False)
    throughput = _best([out["throughput_fraction"], out["throughput_fraction_native"]])
    out["latency_met"] = latency is not None and latency <= LATENCY_TARGET
    out["throughput_met"] = throughput is not None and throughput >= THROUGHPUT_TARGET
    out["by_backend"] = {b: backend_ratios(results, b) for b in by_backend}
    if DEFAULT_BACKEND in by_backend and "native" in by_backend:
        tf, native = out["by_backend"][DEFAULT_BACKEND], out["by_backend"]["native"]
        out["native_start_vs_tensorflow"] = ratio(
            native["start_to_serving_s"], tf["start_to_serving_s"]
        )
        out["native_rss_vs_tensorflow"] = ratio(native["rss_mib"], tf["rss_mib"])
    out["native_targets"] = native_verdicts(out)
    return out

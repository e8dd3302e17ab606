"""The benchmark's report: a markdown table per run, the servers' start and memory, and the
target lines. Every served row carries its backend and its real errors; a configuration or
row that failed is a row saying so, with its reason."""

from __future__ import annotations

from _bench_plot import plot
from _bench_served import MODES, QUERIES_PER_REQUEST
from _bench_targets import (
    CONCURRENCY,
    LATENCY_TARGET,
    THROUGHPUT_TARGET,
    get,
    native_verdicts,
    normalize,
    row,
    targets,
)

__all__ = ["plot", "summary", "table", "targets"]

HEADER = (
    "| backend | path | p50 ms | p99 ms | q/s @1 | q/s @4 | q/s @16 "
    "| µs CPU/call @16 server / client | real errors |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---|"
)
MODE_LABELS = {
    "plain": "served",
    "batching": "served + batching",
    "batching_asyncio": "served + batching, asyncio server",
    "asyncio": "served, asyncio server",
}


def _num(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _line(backend: str, path: str, cells: list[str]) -> str:
    return f"| {backend} | {path} | " + " | ".join(cells) + " |"


def _errors(cfg: dict, keys: list[str]) -> str:
    """The real errors of a row's runs, and which of them failed (with the first reason)."""
    failures = [(k, cfg[k]["failed"]) for k in keys if "failed" in (cfg.get(k) or {})]
    counted = [row(cfg, k) for k in keys]
    total = sum(int(d.get("real_errors", 0)) for d in counted if d)
    text = str(total) if any(d and "real_errors" in d for d in counted) else ""
    if failures:
        names = ", ".join(k for k, _ in failures)
        text += f" failed ({names}): {failures[0][1]}".replace("|", "/")
    return text.strip()


def _served(
    backend: str,
    cfg: dict,
    path: str,
    latency: str | None,
    loads: list[str | None],
    *,
    field: str = "qps",
) -> str:
    """One served row: latency from `latency`'s run, `field` of `loads` (one per column),
    CPU per call of the @16 run (server / client: the Python load's, "native" for h2load,
    "—" for REST's threads, which are not measured), real errors of them all."""
    lat = row(cfg, latency) if latency else None
    cells = [_num(lat and lat["p50_ms"], 3), _num(lat and lat["p99_ms"], 3)]
    cells += [_num(get(cfg, k, field)) if k else "" for k in loads]
    last = row(cfg, loads[-1]) if loads[-1] else None
    used = last.get("server_cpu_us_per_call") if last else None
    client_cpu = last.get("client_cpu_us_per_call") if last else None
    client = "native" if str(loads[-1]).startswith("c_") else "—"
    cpu = "" if used is None else f"{used:.0f} / " + (_num(client_cpu) or client)
    keys = [k for k in [latency, *loads] if k]
    errors = _errors(cfg, keys)
    if not any(cells) and not errors:  # not measured in this run (e.g. an older file)
        return ""
    return _line(backend, path, [*cells, cpu, errors])


def _configuration(backend: str, mode: str, cfg: dict) -> list[str]:
    label = MODE_LABELS.get(mode, mode)
    if "failed" in cfg:
        reason = str(cfg["failed"]).replace("|", "/")
        return [_line(backend, f"{label}: **failed**", ["", "", "", "", "", "", reason])]
    q = QUERIES_PER_REQUEST
    lines = [
        _served(backend, cfg, f"{label} gRPC, Python client", "grpc_single", _loads("grpc")),
        _served(backend, cfg, f"{label}, gRPC no-op floor (health Check)", "grpc_noop_single",
                [None, None, "grpc_noop_16"]),
        _served(backend, cfg, f"{label} gRPC, {q} queries/request, rows/s", None,
                [None, None, "grpc_64x16"], field="rows_per_s"),
        _served(backend, cfg, f"{label} REST", "rest_single", _loads("rest")),
    ]  # fmt: skip
    if "c_single" in cfg or "c_16" in cfg:
        lines += [
            _served(backend, cfg, f"{label} gRPC, native client (h2load)", "c_single",
                    _loads("c")),
            _served(backend, cfg, f"{label}, gRPC no-op floor, native client", "c_noop_single",
                    [None, None, "c_noop_16"]),
            _served(backend, cfg, f"{label} gRPC, {q} queries/request, rows/s, native client",
                    None, [None, None, "c_64x16"], field="rows_per_s"),
        ]  # fmt: skip
    return [line for line in lines if line]


def _loads(prefix: str) -> list[str | None]:
    return [f"{prefix}_{c}" for c in CONCURRENCY]


def _in_process(ip: dict) -> list[str]:
    blank = ["", "", "", "", ""]

    def lat(name: str, data: dict) -> str:
        return _line("—", name, [_num(data["p50_ms"], 3), _num(data["p99_ms"], 3), *blank])

    def rate(name: str, qps: float) -> str:
        return _line("—", name, ["", "", _num(qps), "", "", "", ""])

    lines = [
        lat("raw ScaNN (pybind), 1 query", ip["raw_scann_single"]),
        lat("SavedModel signature call, 1 query", ip["signature_call"]),
        lat("brute force (numpy), 1 query", ip["brute_force_single"]),
        rate("SavedModel signature, 16 keys/call (in process)", ip["signature_batch16_qps"]),
    ]
    for size, qps in ip["raw_scann_batched_qps_by_size"].items():
        lines.append(rate(f"raw ScaNN search_batched_parallel ({size} queries/call)", qps))
    serial = ip.get("raw_scann_batched_serial_qps_by_size") or (
        {"1024": ip["raw_scann_batched_serial_qps"]} if "raw_scann_batched_serial_qps" in ip else {}
    )
    for size, qps in serial.items():
        lines.append(rate(f"raw ScaNN search_batched, one thread ({size} queries/call)", qps))
    lines.append(rate("brute force batched (256 queries/call)", ip["brute_force_batched_qps"]))
    return lines


def servers_table(results: dict) -> str:
    """Each configuration's server: start to SERVING, RSS at SERVING and at its peak."""
    lines = [
        "| backend | configuration | start to SERVING s | RSS MiB at SERVING | peak RSS MiB |",
        "|---|---|---:|---:|---:|",
    ]
    for backend, configs in results["served"].items():
        for mode, cfg in configs.items():
            server = cfg.get("server") or {}
            peak = (server.get("after_load") or {}).get("peak_rss_mib")
            lines.append(
                f"| {backend} | {mode} | {_num(server.get('start_to_serving_s'), 1)} | "
                f"{_num(server.get('rss_mib'))} | {_num(peak)} |"
            )
    return "\n".join(lines)


def table(results: dict) -> str:
    """The markdown tables and the target lines."""
    results = normalize(results)
    lines = [HEADER, *_in_process(results["in_process"])]
    for backend, configs in results["served"].items():
        for mode in [m for m in MODES if m in configs]:
            lines += _configuration(backend, mode, configs[mode])
    ext = results.get("external")
    if ext:
        name = f"{ext.get('label', 'external server')} ({ext['target']})"
        if "failed" in ext:
            lines.append(_line("external", f"{name}: **failed**", [""] * 6 + [ext["failed"]]))
        else:
            lines.append(_served("external", ext, f"{name}, Python client", "grpc_single",
                                 _loads("grpc")))  # fmt: skip
        if "c_single" in ext:
            lines.append(_served("external", ext, f"{name}, native client", "c_single",
                                 _loads("c")))  # fmt: skip
    return "\n".join(lines) + "\n\n" + servers_table(results) + "\n\n" + summary(results)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _fractions(t: dict, key: str) -> str:
    """'6.1% / 13.0%': of raw parallel ScaNN / of one-thread ScaNN (1024 per call)."""
    return f"{_pct(t.get(key))} / {_pct(t.get(f'{key}_serial'))}"


def _pinning(results: dict) -> str:
    """How the served rows shared the CPUs (results from before pinning say nothing)."""
    if "pinning" not in results:
        return ""
    split = results["pinning"]
    if not split:
        return ", server and clients unpinned"
    cpus = ",".join(map(str, split["server_cpus"]))
    return f", server pinned to CPU {cpus} and clients to CPU {split['client_cpus'][0]}"


def summary(results: dict) -> str:
    """Index line, issue 3's targets (met or not), the floors, issue 13's ratios per backend
    and its native targets (met or not)."""
    results = normalize(results)
    t, index = results.get("targets") or targets(results), results["index"]
    lines = [
        f"{results['num_candidates']:,} x {results['dim']} candidates, {index['num_leaves']} "
        f"leaves, {index['num_leaves_to_search']} searched, "
        f"{index['num_reordering_candidates']} reordered: exported recall@10 = "
        f"{results['recall_at_10']:.3f} vs brute force; {results['cpus']} CPUs{_pinning(results)}; "
        f"load average {results.get('load_average', '?')} at start.",
        f"Target 1 (TensorFlow backend), served gRPC p50 <= {LATENCY_TARGET}x the signature "
        f"call: {_x(t['latency_ratio'])} with the Python stub, "
        f"{_x(t.get('latency_ratio_native'))} with h2load "
        f"({'met' if t['latency_met'] else 'NOT met'}).",
        f"Target 2, batched served q/s @16 >= {THROUGHPUT_TARGET:.0%} of raw batched ScaNN "
        f"(1024/call, parallel / one thread): {_fractions(t, 'throughput_fraction')} with "
        f"Python load processes, {_fractions(t, 'throughput_fraction_native')} with h2load "
        f"({'met' if t['throughput_met'] else 'NOT met'}).",
        f"Floor, a no-op call (health Check): {_x(t['noop_latency_ratio'])} the signature call "
        f"with the Python stub, {_x(t.get('noop_latency_ratio_native'))} with h2load; 16 no-op "
        f"clients reach {_fractions(t, 'noop_fraction')} with Python load processes, "
        f"{_fractions(t, 'noop_fraction_native')} with h2load.",
    ]
    for backend, r in t.get("by_backend", {}).items():
        lines.append(
            f"{backend}: h2load p50 {_x(r['p50_native_vs_signature'])} the signature call and "
            f"{_x(r['p50_native_vs_noop'])} the no-op's (plain), "
            f"{_x(r.get('p50_best_mode_vs_signature'))} and "
            f"{_x(r.get('p50_best_mode_vs_noop'))} ({r.get('p50_best_mode') or 'n/a'}); "
            f"server CPU/Predict @16 {_x(r['cpu_per_predict_vs_noop_16'])} the no-op's "
            f"({r.get('cpu_best_mode') or 'best mode'}); q/s @16 "
            f"{_pct(r['qps_16_vs_noop_best_mode'])} of the no-op's "
            f"({r.get('qps_best_mode') or 'best mode'}); "
            f"{QUERIES_PER_REQUEST} queries/request @16: {_num(r['rows_per_s_64x16_best'])} "
            f"rows/s = {_pct(r['rows64_fraction_of_raw_serial64'])} of raw search_batched at "
            f"{QUERIES_PER_REQUEST}/call; start to SERVING {_num(r['start_to_serving_s'], 1)} s, "
            f"RSS {_num(r['rss_mib'])} MiB; {r['real_errors']} real errors"
            + (f"; FAILED: {', '.join(r['failed_rows'])}" if r["failed_rows"] else "")
            + "."
        )
    if "native_start_vs_tensorflow" in t:
        lines.append(
            f"native / tensorflow: start to SERVING {_x(t['native_start_vs_tensorflow'])}, "
            f"RSS {_x(t['native_rss_vs_tensorflow'])}."
        )
    verdicts = native_verdicts(t)
    if verdicts:
        met = sum(v["met"] for v in verdicts)
        lines.append(
            f"Issue 13 (native backend), {met} of {len(verdicts)} targets met: "
            + "; ".join(
                f"{v['target']} {_x(v['value'])} "
                f"({'<=' if v['at_most'] else '>='} {v['limit']:.2f}, "
                f"{'met' if v['met'] else 'NOT met'})"
                for v in verdicts
            )
            + "."
        )
    if "latency_ratio_external" in t:
        ext = results["external"]
        lines.append(
            f"{ext.get('label', 'external server')} ({ext['target']}), best client: p50 = "
            f"{_x(t['latency_ratio_external'])} the signature call; q/s @16 = "
            f"{_fractions(t, 'throughput_fraction_external')} of raw batched ScaNN."
        )
    return "\n".join(lines)

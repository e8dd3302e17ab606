"""The benchmark's report: targets, a markdown table and a PNG chart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _bench_served import MODES

CONCURRENCY = (1, 4, 16)
LATENCY_TARGET, THROUGHPUT_TARGET = 1.5, 0.25
#: Served configurations with batching (the throughput target counts the best of them).
BATCHING_MODES = tuple(name for name, (batching, _) in MODES.items() if batching)


def targets(results: dict) -> dict:
    """Both targets as the issue defines them, plus the same ratios for reference points.

    The primary figures use the official Python stub (latency), the Python load processes
    (throughput) and raw ScaNN's parallel batched call; the `_native` figures use h2load
    and the `_serial` ones ScaNN's one-thread `search_batched` (when measured).
    """
    ip, served = results["in_process"], results["served"]
    plain = served["plain"]
    batched_modes = [served[m] for m in BATCHING_MODES if m in served]  # the best one counts
    batched = max(batched_modes, key=lambda d: d["grpc_qps_16"])
    signature_p50 = ip["signature_call"]["p50_ms"]
    parallel = ip["raw_scann_batched_qps_by_size"]["1024"]
    serial = ip.get("raw_scann_batched_serial_qps")
    out = {
        "latency_ratio": plain["grpc_single"]["p50_ms"] / signature_p50,
        "throughput_fraction": batched["grpc_qps_16"] / parallel,
        "throughput_fraction_vs_raw_batch16": batched["grpc_qps_16"]
        / ip["raw_scann_batched_qps_by_size"]["16"],
        "noop_latency_ratio": plain["grpc_noop_single"]["p50_ms"] / signature_p50,
        "noop_fraction": plain["grpc_noop_qps_16"] / parallel,
    }
    if "c_single" in plain and "c_16" in batched:
        out["latency_ratio_native"] = plain["c_single"]["p50_ms"] / signature_p50
        out["throughput_fraction_native"] = (
            max(d["c_16"]["qps"] for d in batched_modes if "c_16" in d) / parallel
        )
        out["noop_latency_ratio_native"] = plain["c_noop_single"]["p50_ms"] / signature_p50
        out["noop_fraction_native"] = plain["c_noop_16"]["qps"] / parallel
    ext = served.get("external")
    if ext:  # another TF Serving API server (e.g. the TF Serving image), same version
        best_single = min(ext["grpc_single"]["p50_ms"], ext.get("c_single", {}).get("p50_ms", 1e9))
        out["latency_ratio_external"] = best_single / signature_p50
        out["throughput_fraction_external"] = (
            max(ext["grpc_qps_16"], ext.get("c_16", {}).get("qps", 0)) / parallel
        )
    if serial:
        for key in [k for k in out if k.startswith(("throughput_fraction", "noop_fraction"))]:
            if not key.endswith("batch16"):
                out[f"{key}_serial"] = out[key] * parallel / serial
    out["latency_met"] = (
        min(out["latency_ratio"], out.get("latency_ratio_native", 1e9)) <= LATENCY_TARGET
    )
    out["throughput_met"] = (
        max(out["throughput_fraction"], out.get("throughput_fraction_native", 0))
        >= THROUGHPUT_TARGET
    )
    return out


def _row(name: str, lat: dict | None, qps: list[str], cpu: str = "") -> str:
    p50 = f"{lat['p50_ms']:.3f}" if lat else ""
    p99 = f"{lat['p99_ms']:.3f}" if lat else ""
    return f"| {name} | {p50} | {p99} | " + " | ".join(qps) + f" | {cpu} |"


def _cpu(data: dict) -> str:
    load = data.get("grpc_16")
    if not load or load.get("server_cpu_us_per_call") is None:
        return ""
    return f"{load['server_cpu_us_per_call']:.0f} / {load['client_cpu_us_per_call']:.0f}"


def _python_row(label: str, data: dict) -> str:
    """A configuration's row for the Python clients (stub latency, load-process q/s)."""
    return _row(
        label,
        data["grpc_single"],
        [f"{data[f'grpc_qps_{c}']:.0f}" for c in CONCURRENCY],
        _cpu(data),
    )


def _native_row(label: str, data: dict) -> list[str]:
    """The same configuration from h2load, when the run had it (server CPU when ours)."""
    if "c_single" not in data:
        return []
    used = data["c_16"].get("server_cpu_us_per_call")
    return [
        _row(
            label,
            data["c_single"],
            [f"{data[f'c_{c}']['qps']:.0f}" for c in CONCURRENCY],
            "" if used is None else f"{used:.0f} / native",
        )
    ]


def _noop_native_row(plain: dict) -> list[str]:
    if "c_noop_single" not in plain:
        return []
    noop, used = plain["c_noop_16"], plain["c_noop_16"].get("server_cpu_us_per_call")
    return [
        _row(
            "gRPC no-op floor, native client",
            plain["c_noop_single"],
            ["", "", f"{noop['qps']:.0f}"],
            "" if used is None else f"{used:.0f} / native",
        )
    ]


def _both_rows(label: str, native_label: str, data: dict | None) -> list[str]:
    return [_python_row(label, data), *_native_row(native_label, data)] if data else []


def table(results: dict) -> str:
    """The markdown table and the target lines."""
    ip, plain, batched = (
        results["in_process"],
        results["served"]["plain"],
        results["served"]["batching"],
    )
    raw = ip["raw_scann_batched_qps_by_size"]
    ext = results["served"].get("external")
    external = f"{ext.get('label', 'external server')} ({ext['target']})" if ext else ""
    blank = ["", "", ""]
    noop = plain["grpc_noop_16"]
    lines = [
        "| path | p50 ms | p99 ms | q/s @1 | q/s @4 | q/s @16 | µs CPU/call @16 server / client |",
        "|---|---:|---:|---:|---:|---:|---:|",
        _row("raw ScaNN (pybind), 1 query", ip["raw_scann_single"], blank),
        _row("SavedModel signature call, 1 query", ip["signature_call"], blank),
        _row("brute force (numpy), 1 query", ip["brute_force_single"], blank),
        _python_row("served gRPC, 1 client", plain),
        _python_row("served gRPC + batching", batched),
        *_native_row("served gRPC, native client (h2load)", plain),
        *_native_row("served gRPC + batching, native client", batched),
        *_noop_native_row(plain),
        *_both_rows(
            "served gRPC + batching, asyncio server",
            "served gRPC + batching, asyncio, native client",
            results["served"].get("batching_asyncio"),
        ),
        *_both_rows(f"{external}, 1 client", f"{external}, native client", ext),
        _row("served REST, 1 client", plain["rest_single"], blank),
        _row(
            "served REST (no batching / batching)",
            None,
            [f"{plain[f'rest_qps_{c}']:.0f} / {batched[f'rest_qps_{c}']:.0f}" for c in CONCURRENCY],
        ),
        _row(
            "gRPC no-op floor (health Check, same server)",
            plain["grpc_noop_single"],
            ["", "", f"{noop['qps']:.0f}"],
            f"{noop['server_cpu_us_per_call'] or 0:.0f} / {noop['client_cpu_us_per_call']:.0f}",
        ),
        _row(
            "SavedModel signature, 16 keys/call (in process)",
            None,
            [f"{ip['signature_batch16_qps']:.0f}", "", ""],
        ),
    ]
    for size, qps in raw.items():
        lines.append(_row(f"raw ScaNN batched ({size} queries/call)", None, [f"{qps:.0f}", "", ""]))
    if ip.get("raw_scann_batched_serial_qps"):
        serial = ip["raw_scann_batched_serial_qps"]
        lines.append(
            _row("raw ScaNN batched (1024/call, one thread)", None, [f"{serial:.0f}", "", ""])
        )
    lines.append(
        _row(
            "brute force batched (256 queries/call)",
            None,
            [f"{ip['brute_force_batched_qps']:.0f}", "", ""],
        )
    )
    return "\n".join(lines) + "\n\n" + summary(results)


def _fractions(t: dict, key: str) -> str:
    """'6.1% / 13.0%': of raw parallel ScaNN / of one-thread ScaNN (1024 per call)."""
    serial = t.get(f"{key}_serial")
    return f"{t[key]:.1%} / " + (f"{serial:.1%}" if serial is not None else "n/a")


def summary(results: dict) -> str:
    """Index line, both targets (met or not) and the floors that explain them."""
    t, index = results["targets"], results["index"]
    batched = results["served"]["batching"]
    batch = batched["grpc_16"].get("mean_batch_size") or 0
    native = "latency_ratio_native" in t
    lines = [
        f"{results['num_candidates']:,} x {results['dim']} candidates, {index['num_leaves']} "
        f"leaves, {index['num_leaves_to_search']} searched, "
        f"{index['num_reordering_candidates']} reordered: exported recall@10 = "
        f"{results['recall_at_10']:.3f} vs brute force; {results['cpus']} CPUs; load average "
        f"{results.get('load_average', '?')} at start.",
        f"Target 1, served gRPC p50 <= {LATENCY_TARGET}x the signature call: "
        f"{t['latency_ratio']:.2f}x with the Python stub"
        + (f", {t['latency_ratio_native']:.2f}x with h2load" if native else "")
        + f" ({'met' if t['latency_met'] else 'NOT met'}).",
        "Target 2, batched served q/s @16 >= 25% of raw batched ScaNN (1024/call, parallel "
        f"/ one thread): {_fractions(t, 'throughput_fraction')} with Python load processes"
        + (f", {_fractions(t, 'throughput_fraction_native')} with h2load" if native else "")
        + f" ({'met' if t['throughput_met'] else 'NOT met'}); mean batch formed @16: "
        f"{batch:.1f}.",
        f"Floor, a no-op call (health Check): {t['noop_latency_ratio']:.2f}x the signature call "
        "with the Python stub"
        + (f", {t['noop_latency_ratio_native']:.2f}x with h2load" if native else "")
        + f"; 16 no-op clients reach {_fractions(t, 'noop_fraction')} with Python load processes"
        + (f", {_fractions(t, 'noop_fraction_native')} with h2load" if native else "")
        + ".",
    ]
    if "latency_ratio_external" in t:
        ext = results["served"]["external"]
        lines.append(
            f"{ext.get('label', 'external server')} ({ext['target']}), best client: p50 = "
            f"{t['latency_ratio_external']:.2f}x the signature call; q/s @16 = "
            f"{_fractions(t, 'throughput_fraction_external')} of raw batched ScaNN."
        )
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """Two panels: single-client latency bars (p50/p99), throughput bars at 16 clients."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ip, plain, batched = (
        results["in_process"],
        results["served"]["plain"],
        results["served"]["batching"],
    )
    fig, (left, right) = plt.subplots(1, 2, figsize=(17, 5.5))
    names = ["raw ScaNN", "signature\ncall", "gRPC\nno-op", "gRPC", "gRPC\n+batching", "REST"]
    lats = [
        ip["raw_scann_single"],
        ip["signature_call"],
        plain["grpc_noop_single"],
        plain["grpc_single"],
        batched["grpc_single"],
        plain["rest_single"],
    ]
    if "c_single" in plain:  # the same calls from a native client (h2load)
        names += ["no-op\nh2load", "gRPC\nh2load"]
        lats += [plain["c_noop_single"], plain["c_single"]]
    x = np.arange(len(names))
    left.bar(x - 0.2, [v["p50_ms"] for v in lats], 0.4, label="p50")
    left.bar(x + 0.2, [v["p99_ms"] for v in lats], 0.4, label="p99")
    left.axhline(
        LATENCY_TARGET * ip["signature_call"]["p50_ms"],
        color="red",
        linestyle=":",
        label="target: 1.5x signature p50",
    )
    left.set_xticks(x, names, fontsize=8)
    left.set_ylabel("ms per query, 1 client")
    left.set_title("latency (lower is better)")
    left.legend(fontsize=8)
    _throughput_panel(right, ip, plain, batched, results["served"].get("batching_asyncio"))
    fig.suptitle(
        f"scann-serve, {results['num_candidates']:,} x {results['dim']} candidates, "
        f"recall@10 {results['recall_at_10']:.3f}, {results['cpus']} CPUs"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _throughput_panel(
    ax: object, ip: dict, plain: dict, batched: dict, asyncio_mode: dict | None
) -> None:
    raw = ip["raw_scann_batched_qps_by_size"]
    bars = [
        ("gRPC", plain["grpc_qps_16"], "C0"),
        ("gRPC\n+batching", batched["grpc_qps_16"], "C1"),
        ("REST\n+batching", batched["rest_qps_16"], "C2"),
        ("gRPC\nno-op", plain["grpc_noop_qps_16"], "gray"),
    ]
    if "c_16" in batched:
        bars += [
            ("+batching\nh2load", batched["c_16"]["qps"], "C1"),
            ("no-op\nh2load", plain["c_noop_16"]["qps"], "gray"),
        ]
    if "c_16" in (asyncio_mode or {}):
        bars.insert(-1, ("+batching\nasyncio\nh2load", asyncio_mode["c_16"]["qps"], "C6"))
    bars += [
        ("signature\n16/call", ip["signature_batch16_qps"], "C3"),
        ("raw ScaNN\n16/call", raw["16"], "C4"),
    ]
    if ip.get("raw_scann_batched_serial_qps"):
        bars.append(("raw 1024\n1 thread", ip["raw_scann_batched_serial_qps"], "C5"))
    bars.append(("raw ScaNN\n1024/call", raw["1024"], "C5"))
    x = np.arange(len(bars))
    ax.bar(x, [b[1] for b in bars], color=[b[2] for b in bars])  # type: ignore[attr-defined]
    for i, (_, value, _) in enumerate(bars):
        ax.text(i, value, f"{value:,.0f}", ha="center", va="bottom", fontsize=8)  # type: ignore[attr-defined]
    ax.axhline(  # type: ignore[attr-defined]
        THROUGHPUT_TARGET * raw["1024"], color="red", linestyle=":", label="25% of raw 1024/call"
    )
    if ip.get("raw_scann_batched_serial_qps"):
        ax.axhline(  # type: ignore[attr-defined]
            THROUGHPUT_TARGET * ip["raw_scann_batched_serial_qps"],
            color="red",
            linestyle="--",
            alpha=0.5,
            label="25% of raw 1024/call, 1 thread",
        )
    ax.set_xticks(x, [b[0] for b in bars], fontsize=7)  # type: ignore[attr-defined]
    ax.set_ylabel("queries / s (served: 16 clients; in process: 1 caller)")  # type: ignore[attr-defined]
    ax.set_title("throughput (higher is better)")  # type: ignore[attr-defined]
    ax.legend(fontsize=8)  # type: ignore[attr-defined]

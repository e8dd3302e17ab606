"""The benchmark's picture: single-client latency and throughput at 16 clients, per backend.

Bars for rows that failed or were not run are left out (their reasons are in the table).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from _bench_served import QUERIES_PER_REQUEST
from _bench_targets import LATENCY_TARGET, THROUGHPUT_TARGET, get, normalize, row

SHORT = {
    "plain": "",
    "batching": "\n+batching",
    "batching_asyncio": "\n+batch asyncio",
    "asyncio": "\nasyncio",
}


def _latency_bars(results: dict) -> list[tuple[str, dict]]:
    ip = results["in_process"]
    bars = [("raw ScaNN", ip["raw_scann_single"]), ("signature\ncall", ip["signature_call"])]
    for backend, configs in results["served"].items():
        plain = configs.get("plain")
        for key, name in [
            ("grpc_noop_single", "no-op"),
            ("grpc_single", "gRPC"),
            ("rest_single", "REST"),
            ("c_noop_single", "no-op\nh2load"),
            ("c_single", "gRPC\nh2load"),
        ]:
            data = row(plain, key)
            if data:
                bars.append((f"{backend}\n{name}", data))
    return bars


def _throughput_bars(results: dict) -> list[tuple[str, float, str]]:
    ip = results["in_process"]
    bars: list[tuple[str, float | None, str]] = []
    for i, (backend, configs) in enumerate(results["served"].items()):
        color = f"C{i}"
        for mode, cfg in configs.items():
            bars.append((f"{backend}{SHORT.get(mode, mode)}", get(cfg, "grpc_16", "qps"), color))
            bars.append(
                (f"{backend}{SHORT.get(mode, mode)}\nh2load", get(cfg, "c_16", "qps"), color)
            )
            bars.append(
                (
                    f"{backend}{SHORT.get(mode, mode)}\n{QUERIES_PER_REQUEST}/req rows",
                    get(cfg, "c_64x16", "rows_per_s") or get(cfg, "grpc_64x16", "rows_per_s"),
                    color,
                )
            )
        plain = configs.get("plain")
        bars.append((f"{backend}\nno-op h2load", get(plain, "c_noop_16", "qps"), "gray"))
    raw = ip["raw_scann_batched_qps_by_size"]
    serial = ip.get("raw_scann_batched_serial_qps_by_size", {})
    bars += [
        ("signature\n16/call", ip["signature_batch16_qps"], "C5"),
        ("raw ScaNN\n16/call", raw["16"], "C6"),
        (f"raw {QUERIES_PER_REQUEST}/call\n1 thread", serial.get(str(QUERIES_PER_REQUEST)), "C6"),
        ("raw 1024\n1 thread", ip.get("raw_scann_batched_serial_qps"), "C7"),
        ("raw ScaNN\n1024/call", raw["1024"], "C7"),
    ]
    return [(name, value, color) for name, value, color in bars if value is not None]


def plot(results: dict, path: Path) -> None:
    """Two panels: single-client latency bars (p50/p99), throughput bars at 16 clients."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = normalize(results)
    ip = results["in_process"]
    lats = _latency_bars(results)
    bars = _throughput_bars(results)
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(10 + 0.45 * (len(lats) + len(bars)), 6), width_ratios=[len(lats), len(bars)]
    )
    x = np.arange(len(lats))
    left.bar(x - 0.2, [v["p50_ms"] for _, v in lats], 0.4, label="p50")
    left.bar(x + 0.2, [v["p99_ms"] for _, v in lats], 0.4, label="p99")
    left.axhline(
        LATENCY_TARGET * ip["signature_call"]["p50_ms"],
        color="red",
        linestyle=":",
        label=f"target: {LATENCY_TARGET}x signature p50",
    )
    left.set_xticks(x, [name for name, _ in lats], fontsize=7)
    left.set_ylabel("ms per query, 1 client")
    left.set_title("latency (lower is better)")
    left.legend(fontsize=8)
    _throughput_panel(right, bars, ip)
    fig.suptitle(
        f"scann-serve, {results['num_candidates']:,} x {results['dim']} candidates, "
        f"recall@10 {results['recall_at_10']:.3f}, {results['cpus']} CPUs"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _throughput_panel(ax: Any, bars: list[tuple[str, float, str]], ip: dict) -> None:
    x = np.arange(len(bars))
    ax.bar(x, [b[1] for b in bars], color=[b[2] for b in bars])
    for i, (_, value, _) in enumerate(bars):
        ax.text(i, value, f"{value:,.0f}", ha="center", va="bottom", fontsize=6)
    raw = ip["raw_scann_batched_qps_by_size"]["1024"]
    ax.axhline(THROUGHPUT_TARGET * raw, color="red", linestyle=":", label="25% of raw 1024/call")
    ax.set_xticks(x, [b[0] for b in bars], fontsize=6)
    ax.set_ylabel("queries (rows) / s (served: 16 clients; in process: 1 caller)")
    ax.set_title("throughput (higher is better)")
    ax.legend(fontsize=8)

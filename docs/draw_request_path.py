"""Draws docs/request_path.png, the picture of the request path in docs/ARCHITECTURE.md.

Run from the repository root: `uv run --no-sync python docs/draw_request_path.py`.
The boxes repeat the ASCII diagram of the document; change both together.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

OUT = Path(__file__).with_name("request_path.png")
CLIENT, WIRE, SERVER, MODEL, DISK = "#dbeafe", "#f1f5f9", "#dcfce7", "#fef3c7", "#fde2e4"

# (x, y, width, height, colour, title, detail) in axes units (0..100).
BOXES = {
    "caller": (
        2,
        88,
        50,
        9,
        CLIENT,
        "caller: a service, or scann-query",
        "RetrievalClient or AsyncRetrievalClient:\n.retrieve(queries, k) / .search(embeddings, k)",
    ),
    "client": (
        2,
        71,
        50,
        13,
        CLIENT,
        "scann_serving.client (no TensorFlow)",
        "_base: metadata (cached: signature_def + scann_manifest),\n"
        "check k / dim / batch, build PredictRequest (contract names)\n"
        "_channel: deadline, retries on UNAVAILABLE, TLS, round_robin",
    ),
    "wire": (
        2,
        59,
        50,
        8,
        WIRE,
        "gRPC :8500  tensorflow.serving.PredictionService/Predict",
        "or REST :8501  POST /v1/models/NAME[/versions/N]:predict",
    ),
    "adapter": (
        2,
        43,
        50,
        12,
        SERVER,
        "scann-serve adapters (translate only)",
        "_grpc (threads) | _grpc_aio (asyncio) | _rest (HTTP/JSON)\n"
        "_wire: TensorProto / JSON <-> numpy PredictCall\n"
        "errors -> status at one seam (_errors.status_for)",
    ),
    "core": (
        2,
        26,
        50,
        13,
        SERVER,
        "ServingCore (no gRPC, no HTTP)",
        "admit (refuse while draining), deadline check,\n"
        "resolve model_spec -> version (ModelManager), validate inputs,\n"
        "run directly or through the Batcher; count metrics",
    ),
    "servable": (
        2,
        9,
        50,
        13,
        MODEL,
        "servable version (SavedModel + Scann ops)",
        "signature graph: query tower -> ScaNN search\n"
        "-> identifiers string [batch, k], scores float32 [batch, k]",
    ),
    "manager": (
        60,
        26,
        39,
        13,
        SERVER,
        "ModelManager (poll thread)",
        "list <base>/<N>/, apply version policy,\n"
        "preflight manifest, load, warm, then swap;\n"
        "old version stays until the new one is AVAILABLE",
    ),
    "disk": (
        60,
        59,
        39,
        15,
        DISK,
        "<model_base_path>/<version>/",
        "saved_model.pb, variables/\n"
        "assets.extra/tf_serving_warmup_requests\n"
        "assets.extra/scann_manifest.json\n"
        "(published atomically by scann-export)",
    ),
    "health": (
        60,
        9,
        39,
        13,
        SERVER,
        "beside every call",
        "grpc.health.v1: SERVING when every model is warm\n"
        "Prometheus metrics on the REST port\n"
        "SIGTERM: NOT_SERVING, drain, exit 0",
    ),
}

# (from, to, label, from side, to side)
ARROWS = [
    ("caller", "client", "", "bottom", "top"),
    ("client", "wire", "", "bottom", "top"),
    ("wire", "adapter", "", "bottom", "top"),
    ("adapter", "core", "PredictCall", "bottom", "top"),
    ("core", "servable", "run(signature, inputs)", "bottom", "top"),
    ("disk", "manager", "poll", "bottom", "top"),
    ("manager", "core", "resolve", "left", "right"),
]


def _anchor(box: tuple, side: str) -> tuple[float, float]:
    x, y, w, h = box[:4]
    return {
        "top": (x + w / 2, y + h),
        "bottom": (x + w / 2, y),
        "left": (x, y + h / 2),
        "right": (x + w, y + h / 2),
    }[side]


def main() -> None:
    """Writes the PNG next to this script."""
    fig, ax = plt.subplots(figsize=(12, 9))
    ax.set_xlim(0, 100)
    ax.set_ylim(5, 104)
    ax.axis("off")
    for x, y, w, h, colour, title, detail in BOXES.values():
        ax.add_patch(
            FancyBboxPatch(
                (x, y), w, h, boxstyle="round,pad=0.4", facecolor=colour, edgecolor="#334155"
            )
        )
        ax.text(x + 1, y + h - 1.2, title, fontsize=10.5, weight="bold", va="top")
        ax.text(x + 1, y + h - 4.2, detail, fontsize=8.5, va="top", family="monospace")
    for start, end, label, start_side, end_side in ARROWS:
        a, b = _anchor(BOXES[start], start_side), _anchor(BOXES[end], end_side)
        ax.add_patch(
            FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=16, lw=1.6, color="#334155")
        )
        if label and start_side == "left":  # a short horizontal arrow: label above it
            ax.text((a[0] + b[0]) / 2, a[1] + 1.2, label, fontsize=9, style="italic", ha="center")
        elif label:
            ax.text((a[0] + b[0]) / 2 + 1, (a[1] + b[1]) / 2, label, fontsize=9, style="italic")
    ax.text(
        50,
        103.5,
        "ScaNN Serving: the path of one request (answers travel back up the same way)",
        ha="center",
        va="top",
        fontsize=12,
        weight="bold",
    )
    fig.savefig(OUT, dpi=110, bbox_inches="tight")


if __name__ == "__main__":
    main()

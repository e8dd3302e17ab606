"""Plain-text tables for `scann-query`.

Columns are aligned by terminal width, not by `len`: CJK and emoji take two columns and
combining accents none, so a catalogue of `千と千尋の神隠し` and `Cafe\u0301` still lines up.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from scann_serving.client._types import ModelMetadata, ModelStatus, RetrievalResult


def display_width(text: str) -> int:
    """Columns `text` takes in a terminal (East Asian wide/fullwidth 2, combining 0)."""
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * max(0, width - display_width(text))
    return fill + text if right else text + fill


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [
        max([display_width(h)] + [display_width(r[i]) for r in rows]) for i, h in enumerate(header)
    ]

    def line(cells: Sequence[str]) -> str:
        padded = [
            _pad(c, w, i in right) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    return [line(header), *(line(r) for r in rows)]


def result_text(result: RetrievalResult, queries: Sequence[str]) -> str:
    """One table (rank, identifier, score) per query."""
    version = "?" if result.model_version is None else str(result.model_version)
    lines = [f"model {result.model_name}  version {version}  signature {result.signature_name}"]
    for query, row in zip(queries, result.rows(), strict=True):
        rows = [(str(rank), ident, f"{score:.4f}") for rank, (ident, score) in enumerate(row, 1)]
        lines += ["", f"query {query}", *_table(("rank", "identifier", "score"), rows, {0, 2})]
    return "\n".join(lines)


def status_text(status: ModelStatus) -> str:
    """A table of the model's versions and their states."""
    rows = [(str(v.version), v.state, v.error_code, v.error_message) for v in status.versions]
    header = ("version", "state", "status", "message")
    return "\n".join([f"model {status.model_name}", *_table(header, rows, {0})])


def metadata_text(meta: ModelMetadata) -> str:
    """The model's signatures with their inputs and outputs, and its k/dim bounds."""

    def unknown(value: int | None) -> str:
        return "?" if value is None else str(value)

    lines = [
        f"model {meta.model_name}  version {unknown(meta.model_version)}",
        f"embedding_dim {unknown(meta.embedding_dim)}  default_k {unknown(meta.default_k)}"
        f"  max_k {unknown(meta.max_k)}",
    ]
    rows = []
    # TF Serving also lists the SavedModel's internal "__saved_model_init_op"; not callable.
    for sig in (s for s in meta.signatures.values() if not s.name.startswith("__")):
        for side, specs in (("in", sig.inputs), ("out", sig.outputs)):
            for spec in specs.values():
                shape = (
                    "?" if spec.shape is None else str([-1 if d is None else d for d in spec.shape])
                )
                rows.append((sig.name, side, spec.name, spec.dtype, shape))
    header = ("signature", "", "tensor", "dtype", "shape")
    return "\n".join([*lines, "", *_table(header, rows, set())])

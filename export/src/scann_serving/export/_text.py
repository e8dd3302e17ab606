"""Text encodings at the export's edges: files in, TensorFlow string tensors out.

Inside the exporter every user key and candidate identifier is a Python `str`. Bytes are
decoded exactly once, where they are read (`decode_file`, `legacy_grouplens_text`,
`decode_value`), and encoded exactly once, as UTF-8, where they become string tensors
(`encode_utf8`). Decoding is always strict: an undecodable file is a `DataError` naming
the file, the line and the bytes, never a silent replacement.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from scann_serving.export._data import DataError

UTF8 = "utf-8"
#: What GroupLens ships ml-100k and ml-1m in (ISO-8859-1).
LATIN1 = "latin-1"


def encode_utf8(values: Iterable[Any]) -> np.ndarray:
    """Keys or identifiers as UTF-8 bytes, an object array (what a TF string tensor holds).

    `np.ndarray.astype(bytes)` would encode as ASCII and fail on the first accent.
    """
    return np.asarray([_text(v).encode(UTF8) for v in values] or [], dtype=object)


def _text(value: Any) -> str:
    if isinstance(value, bytes):  # already bytes on the way in: must be UTF-8 text
        return value.decode(UTF8)
    return str(value)


def decode_file(raw: bytes, encoding: str, where: str, fix: str) -> str:
    """`raw` decoded strictly with `encoding` (a UTF-8 byte-order mark is dropped).

    Raises:
        DataError: Naming `where`, the line and the offending bytes, and saying `fix`.
    """
    codec = "utf-8-sig" if _is_utf8(encoding) else encoding
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise undecodable(raw, exc, encoding, where, fix) from None
    except LookupError as exc:
        raise DataError(f"unknown text encoding {encoding!r}: {exc}; pass e.g. utf-8") from None


def locate_undecodable(raw: bytes, encoding: str, where: str, fix: str) -> DataError:
    """The `DataError` for `raw`, which a parser failed to decode with `encoding`.

    Parsers (pandas) report positions inside their own buffers; this decodes `raw` again
    to name the line in the file. Only called on the error path.
    """
    try:
        raw.decode("utf-8-sig" if _is_utf8(encoding) else encoding)
    except UnicodeDecodeError as exc:
        return undecodable(raw, exc, encoding, where, fix)
    return DataError(f"{where} is not valid {encoding} text; {fix}")


def undecodable(
    raw: bytes, exc: UnicodeDecodeError, encoding: str, where: str, fix: str
) -> DataError:
    """A `DataError` naming the line and the bytes at which `exc` stopped decoding `raw`."""
    line = raw.count(b"\n", 0, exc.start) + 1
    column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
    bad = raw[exc.start : max(exc.end, exc.start + 1)]
    return DataError(
        f"{where} line {line}, byte {column}: {bad!r} is not valid {encoding} ({exc.reason}); {fix}"
    )


def legacy_grouplens_text(raw: bytes) -> tuple[str, str]:
    """(text, encoding) of an ml-100k / ml-1m file: latin-1 as GroupLens ships it, or
    UTF-8 when the file decodes as UTF-8 (a copy someone re-saved), or "ascii" when both
    read it alike. Never fails: every byte sequence is latin-1, and latin-1 accents are
    almost never valid UTF-8."""
    if raw.isascii():
        return raw.decode("ascii"), "ascii"
    try:
        return raw.decode(UTF8), UTF8
    except UnicodeDecodeError:
        return raw.decode(LATIN1), LATIN1


def decode_value(value: Any, where: str) -> str:
    """One key or identifier as text: `bytes` (Parquet binary columns, `.npy` of bytes)
    must be UTF-8; anything else is converted with `str`.

    Raises:
        DataError: The bytes are not UTF-8; the message names `where` (file and row).
    """
    if not isinstance(value, bytes | np.bytes_):
        return str(value)
    try:
        return bytes(value).decode(UTF8)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{where}: {bytes(value)!r} is not valid UTF-8 ({exc.reason}); store keys "
            "and identifiers as UTF-8 strings"
        ) from None


def decode_values(values: Iterable[Any], where: str) -> np.ndarray:
    """`decode_value` over a column; an error names `where` and the row (1-based)."""
    out = [
        decode_value(v, f"{where} row {row}") if isinstance(v, bytes | np.bytes_) else str(v)
        for row, v in enumerate(values, 1)
    ]
    return np.asarray(out, dtype=object)


def split_lines(text: str) -> list[str]:
    """Lines split at '\\n' (a trailing '\\r' dropped) only.

    `str.splitlines` also splits at U+0085, U+2028, form feeds and more, which may sit
    inside a title (latin-1 byte 0x85 is U+0085) and would cut it in two.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _is_utf8(encoding: str) -> bool:
    return encoding.lower().replace("_", "-") in ("utf-8", "utf8", "utf-8-sig")


def read_text_table(path: Path, sep: str, encoding: str) -> Any:
    """A CSV/TSV file as strings, decoded strictly with `encoding` (a UTF-8 BOM is fine)."""
    import pandas as pd

    raw = path.read_bytes()
    fix = (
        f"save it as {encoding}, or pass the encoding it was written in (--encoding latin-1, "
        "--encoding cp1252, ...)"
    )
    try:
        return pd.read_csv(io.BytesIO(raw), sep=sep, dtype=str, encoding=encoding)
    except UnicodeDecodeError:
        raise locate_undecodable(raw, encoding, str(path), fix) from None
    except LookupError as exc:
        raise DataError(f"--encoding {encoding!r} is not a text encoding ({exc})") from None

"""The native bundle: a version's index, identifiers and lookup tower, readable without TensorFlow.

`scann-export` writes it beside the SavedModel (`write_bundle`) and verifies it against the
SavedModel before publishing; `scann-serve --backend=native` serves it (`read_bundle`).
Layout, under `<version>/assets.extra/native/`:

```
bundle.json                 format, search bands, tower kind, the signatures it covers, file list
signature_defs.pb           tensorflow.serving.SignatureDefMap: what GetModelMetadata reports
scann/                      ScaNN's own serialized searcher (scann_assets.pbtxt, relative paths)
candidates.bin + .offsets.npy       candidate identifiers: UTF-8 bytes + int64 offsets [n+1]
query_rows.npy              lookup towers: float32 [rows, dim], the tower's output per row
query_keys.bin + .offsets.npy       string towers: the vocabulary, key i -> row i
candidate_embeddings.npy    with attributes: float32 [n, dim], retrieve_filtered's exact path
```

With candidate attributes (`assets.extra/attributes/`, beside the bundle, read from there)
and a lookup tower, the bundle also serves `retrieve_filtered` (`_native_filter`);
`bundle.json`'s `filtered` block holds what the graph bakes in besides the search knobs.

Strings are stored as one byte blob plus offsets, not as pickled numpy object arrays: a
bundle is data, and loading one must never run code.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scann_serving.client.contract import (
    ASSETS_EXTRA,
    ATTRIBUTES_DIRNAME,
    RETRIEVE,
    RETRIEVE_FILTERED,
    RETRIEVE_WITH_EXCLUSIONS,
    SEARCH_EMBEDDING,
    SERVING_DEFAULT,
)
from scann_serving.server._attribute_files import AttributeIndex, read_layout
from scann_serving.server._native_filter import FilteredSearch, FilterSettings
from scann_serving.server._native_search import (
    TOWER_INTEGER,
    TOWER_STRING,
    NativeIndex,
    QueryTable,
    SearchBand,
    SearchSettings,
)

#: Format 2 stores the search-band table (`search_bands`); format 1 one knob pair, read as
#: one band tuned for the default k (what its SavedModel's graph does).
BUNDLE_FORMAT = 2
READABLE_FORMATS = (1, 2)
BUNDLE_DIRNAME = "native"
#: The bundle relative to a version directory.
BUNDLE_RELPATH = f"{ASSETS_EXTRA}/{BUNDLE_DIRNAME}"
METADATA_FILENAME = "bundle.json"
SIGNATURE_DEFS_FILENAME = "signature_defs.pb"
SCANN_DIRNAME = "scann"
#: The candidate identifiers' files (`candidates.bin`, `candidates.offsets.npy`).
CANDIDATES = "candidates"
#: The candidate embeddings `retrieve_filtered` scores exactly (bundles with attributes).
EMBEDDINGS_FILENAME = "candidate_embeddings.npy"
#: Signatures a bundle serves with a lookup tower; without one only `search_embedding`.
TABLE_SIGNATURES = (SERVING_DEFAULT, RETRIEVE, SEARCH_EMBEDDING, RETRIEVE_WITH_EXCLUSIONS)
EMBEDDING_SIGNATURES = (SEARCH_EMBEDDING,)


class BundleError(Exception):
    """The bundle is missing, damaged or of another format; the message names the file."""


@dataclass(frozen=True)
class BundleInfo:
    """What `bundle.json` says.

    Attributes:
        tower: `TOWER_STRING`, `TOWER_INTEGER` or None (no lookup tower: embeddings only).
        signatures: The signatures the bundle serves.
        settings: The search knobs.
        embedding_dim: The width of query and candidate embeddings.
    """

    tower: str | None
    signatures: tuple[str, ...]
    settings: SearchSettings
    embedding_dim: int


def bundle_dir(version_dir: Path) -> Path:
    """Where a version keeps its native bundle."""
    return version_dir / BUNDLE_RELPATH


def write_bundle(
    directory: Path,
    *,
    searcher: Any,
    identifiers: list[bytes],
    settings: SearchSettings,
    embedding_dim: int,
    signature_defs: bytes,
    table: QueryTable | None,
    filtered: tuple[FilterSettings, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Writes a bundle into `directory` (created) and returns its manifest block.

    Args:
        directory: The bundle directory (normally `bundle_dir(staging)`).
        searcher: A pybind ScaNN searcher holding the SavedModel's index.
        identifiers: Candidate identifiers, UTF-8 bytes, row-aligned with the index.
        settings: The SavedModel's search knobs.
        embedding_dim: The embedding width.
        signature_defs: A serialized `tensorflow.serving.SignatureDefMap` of the SavedModel.
        table: The query tower as a lookup table, or None.
        filtered: With candidate attributes: the filter's settings and the candidate
            embeddings (float32 `[n, dim]`); with a table the bundle then serves
            `retrieve_filtered` too, reading the attributes from `assets.extra/attributes/`.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SCANN_DIRNAME).mkdir()
    searcher.serialize(str(directory / SCANN_DIRNAME), relative_path=True)
    _write_strings(directory / CANDIDATES, identifiers)
    (directory / SIGNATURE_DEFS_FILENAME).write_bytes(signature_defs)
    meta: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "num_candidates": len(identifiers),
        "embedding_dim": embedding_dim,
        "default_k": settings.k,
        "max_k": settings.max_k,
        "search_bands": [band.to_dict() for band in settings.bands],
        "tower": None if table is None else table.kind,
        "signatures": list(TABLE_SIGNATURES if table is not None else EMBEDDING_SIGNATURES),
    }
    if filtered is not None and table is not None:
        knobs, embeddings = filtered
        np.save(directory / EMBEDDINGS_FILENAME, np.ascontiguousarray(embeddings, np.float32))
        meta["filtered"] = {
            "exact_max_passing": knobs.exact_max_passing,
            "num_leaves": knobs.num_leaves,
        }
        meta["signatures"].append(RETRIEVE_FILTERED)
    if table is not None:
        np.save(directory / "query_rows.npy", np.ascontiguousarray(table.rows, np.float32))
        if table.kind == TOWER_STRING:
            assert table.keys is not None
            _write_strings(directory / "query_keys", list(table.keys))
            meta["oov_row"] = table.oov_row
        else:
            meta["min_id"] = table.min_id
    (directory / METADATA_FILENAME).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return {
        "path": BUNDLE_RELPATH,
        **{key: meta[key] for key in ("format", "tower", "signatures")},
        "bytes": directory_bytes(directory),
    }


def read_info(directory: Path) -> BundleInfo:
    """Reads `bundle.json` (cheap: what `--backend=auto` decides on)."""
    path = directory / METADATA_FILENAME
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"{path} does not exist; the version has no native bundle") from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path} is not readable JSON ({exc}); re-export the version") from exc
    if meta.get("format") not in READABLE_FORMATS:
        raise BundleError(
            f"{path} has bundle format {meta.get('format')!r}, this server reads "
            f"{', '.join(map(str, READABLE_FORMATS))}; upgrade scann-serve or re-export the version"
        )
    try:
        return BundleInfo(
            tower=meta["tower"],
            signatures=tuple(meta["signatures"]),
            settings=SearchSettings(
                k=int(meta["default_k"]), max_k=int(meta["max_k"]), bands=_bands(meta)
            ),
            embedding_dim=int(meta["embedding_dim"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{path} lacks or mangles {exc}; re-export the version") from exc


def _bands(meta: dict[str, Any]) -> tuple[SearchBand, ...]:
    """The search-band table; a format-1 bundle's single knob pair is one band, tuned for
    the default k (the growth of its graph's filtered search starts there)."""
    if "search_bands" in meta:
        return tuple(SearchBand.from_dict(row) for row in meta["search_bands"])
    pair = SearchBand(
        int(meta["default_k"]), int(meta["leaves_to_search"]), int(meta["reordering"])
    )
    return (pair,)


def scann_pybind() -> Any:
    """ScaNN's pybind wrapper module, imported without running `scann/__init__.py`.

    That file imports TensorFlow whenever TensorFlow is installed (to offer ScaNN's TF ops),
    which would put TensorFlow's ~500 MiB into a native server wherever the full install
    is (the workspace, the full image). The pybind wrapper needs none of it, so when
    `scann` is not imported yet it is registered as a bare package of its directory;
    `scann.scann_ops.py.scann_ops` (the TF ops) still imports normally if a TensorFlow
    version needs it later.
    """
    if "scann" not in sys.modules:
        spec = importlib.util.find_spec("scann")
        if spec is None or not spec.submodule_search_locations:
            raise BundleError("ScaNN is not installed; pip install scann-serving-server")
        package = types.ModuleType("scann")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules.setdefault("scann", package)
    from scann.scann_ops.py import scann_ops_pybind

    return scann_ops_pybind


def read_bundle(directory: Path) -> NativeIndex:
    """Loads a bundle: ScaNN's searcher, the identifiers and the lookup tower (if any)."""
    scann_ops_pybind = scann_pybind()
    info = read_info(directory)
    meta = json.loads((directory / METADATA_FILENAME).read_text())
    try:
        searcher = scann_ops_pybind.load_searcher(
            str(directory / SCANN_DIRNAME), assets_backcompat_shim=False
        )
        identifiers = _read_strings(directory / CANDIDATES)
        table = None
        if info.tower is not None:
            rows = np.load(directory / "query_rows.npy", allow_pickle=False)
            if info.tower == TOWER_STRING:
                keys = {key: row for row, key in enumerate(_read_strings(directory / "query_keys"))}
                table = QueryTable(TOWER_STRING, rows, keys=keys, oov_row=int(meta["oov_row"]))
            elif info.tower == TOWER_INTEGER:
                table = QueryTable(TOWER_INTEGER, rows, min_id=int(meta["min_id"]))
            else:
                raise BundleError(f"unknown query tower kind {info.tower!r}")
        filtered = _read_filtered(directory, meta.get("filtered"))
    except BundleError:
        raise
    except Exception as exc:  # ScaNN and numpy raise many types; all mean a damaged bundle
        raise BundleError(
            f"{directory}: the native bundle did not load ({type(exc).__name__}: {exc}); "
            "re-export the version or serve it with --backend=tensorflow"
        ) from exc
    return NativeIndex(searcher, identifiers, info.settings, table, filtered)


def _read_filtered(directory: Path, block: dict[str, Any] | None) -> FilteredSearch | None:
    """`retrieve_filtered`'s state: the attributes beside the bundle and the embeddings."""
    if block is None:
        return None
    layout = directory.parent / ATTRIBUTES_DIRNAME
    if not layout.is_dir():
        raise BundleError(
            f"{directory}/{METADATA_FILENAME} serves retrieve_filtered but {layout} is missing; "
            "re-export the version"
        )
    settings = FilterSettings(int(block["exact_max_passing"]), int(block["num_leaves"]))
    embeddings = np.load(directory / EMBEDDINGS_FILENAME, allow_pickle=False)
    return FilteredSearch(AttributeIndex(read_layout(layout)), embeddings, settings)


def read_signature_defs(directory: Path) -> bytes:
    """The serialized `SignatureDefMap` the export stored."""
    return (directory / SIGNATURE_DEFS_FILENAME).read_bytes()


def directory_bytes(directory: Path) -> int:
    """Total size of the files under `directory`."""
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def _write_strings(prefix: Path, values: list[bytes]) -> None:
    offsets = np.zeros(len(values) + 1, np.int64)
    np.cumsum([len(value) for value in values], out=offsets[1:])
    prefix.with_suffix(".bin").write_bytes(b"".join(values))
    np.save(prefix.with_suffix(".offsets.npy"), offsets)


def _read_strings(prefix: Path) -> np.ndarray:
    blob = prefix.with_suffix(".bin").read_bytes()
    offsets = np.load(prefix.with_suffix(".offsets.npy"), allow_pickle=False).tolist()
    out = np.empty(len(offsets) - 1, dtype=object)
    out[:] = [blob[start:end] for start, end in itertools.pairwise(offsets)]
    return out

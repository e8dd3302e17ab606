"""The names every part of ScaNN Serving agrees on, written down once.

An exported version, the server that hosts it and the client that queries it meet on a
handful of strings: the signature names, the names of their input and output tensors,
and where a version keeps its warmup requests and its manifest. `scann-export` writes
them, `scann-serve` reads them and `scann_serving.client` sends them, so all three import
them from here. This module is plain Python (no TensorFlow, no gRPC) and lives in the
client distribution because that is the one package the other two may depend on; see
`docs/ARCHITECTURE.md`. Changing a value here changes the wire and on-disk contract:
versions exported before the change stop matching clients built after it.

    >>> from scann_serving.client import contract
    >>> contract.RETRIEVE, contract.K
    ('retrieve', 'k')
"""

from __future__ import annotations

from typing import Final

# --- signatures ---------------------------------------------------------------------
#: `query` -> the exported default k results.
SERVING_DEFAULT: Final = "serving_default"
#: `query`, `k` -> k results (1 <= k <= max_k).
RETRIEVE: Final = "retrieve"
#: `embedding` -> the exported default k results (for callers with their own query tower).
SEARCH_EMBEDDING: Final = "search_embedding"
#: `query`, `exclude` -> the exported default k results, none of them excluded.
RETRIEVE_WITH_EXCLUSIONS: Final = "retrieve_with_exclusions"
#: Every signature an exported version carries, in a fixed order.
SIGNATURE_NAMES: Final = (SERVING_DEFAULT, RETRIEVE, SEARCH_EMBEDDING, RETRIEVE_WITH_EXCLUSIONS)
#: `query`, `k`, `allow`, `deny`, `numeric` -> k results passing the filter, padded with
#: (b"", -inf) when fewer pass. Only in versions exported with candidate attributes.
RETRIEVE_FILTERED: Final = "retrieve_filtered"
#: Signatures a version carries only when its export had what they need.
OPTIONAL_SIGNATURE_NAMES: Final = (RETRIEVE_FILTERED,)

# --- inputs -------------------------------------------------------------------------
#: Raw query keys, string `[batch]` (the user id for the built-in two-tower model), or
#: int64 `[batch]` for a query tower over integer ids (the manifest's `query_key`).
QUERY: Final = "query"
#: Results per query, int32 scalar.
K: Final = "k"
#: Query embeddings, float32 `[batch, dim]`.
EMBEDDING: Final = "embedding"
#: Identifiers to leave out, string `[batch, n]`.
EXCLUDE: Final = "exclude"
#: Allowed attribute tokens, string `[batch, n]` of "namespace=value" ("" pads a row).
ALLOW: Final = "allow"
#: Denied attribute tokens, string `[batch, n]` of "namespace=value" ("" pads a row).
DENY: Final = "deny"
#: Numeric restricts, string `[batch, m]` such as "year>=1990" ("" pads a row).
NUMERIC: Final = "numeric"

# --- the filter grammar of `retrieve_filtered` ----------------------------------------
#: Separates a token's namespace from its value: "genre=Comedy".
TOKEN_SEPARATOR: Final = "="
#: The comparison operators of a numeric restrict, longest first (how they are matched).
NUMERIC_OPERATORS: Final = ("<=", ">=", "==", "!=", "<", ">")
#: One numeric restrict: a name, an operator, a finite decimal number ("year >= 1990").
NUMERIC_RESTRICT_PATTERN: Final = r"\s*([^\s<>=!]+)\s*(<=|>=|==|!=|<|>)\s*([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*"

# --- outputs (every signature) -----------------------------------------------------
#: Candidate identifiers, string `[batch, k]`, best first.
IDENTIFIERS: Final = "identifiers"
#: Their scores, float32 `[batch, k]` (dot product: higher is closer).
SCORES: Final = "scores"
#: The outputs of every signature, in the order results are read.
OUTPUT_NAMES: Final = (IDENTIFIERS, SCORES)

# --- files of a version directory (`<model_base_path>/<version>/`) -----------------
#: TF Serving's folder for files beside the SavedModel.
ASSETS_EXTRA: Final = "assets.extra"
#: The export manifest's file name inside `ASSETS_EXTRA`.
MANIFEST_FILENAME: Final = "scann_manifest.json"
#: TF Serving's warmup file name inside `ASSETS_EXTRA` (a TFRecord of PredictionLogs).
WARMUP_FILENAME: Final = "tf_serving_warmup_requests"
#: The manifest, relative to a version directory.
MANIFEST_PATH: Final = f"{ASSETS_EXTRA}/{MANIFEST_FILENAME}"
#: The warmup requests, relative to a version directory.
WARMUP_PATH: Final = f"{ASSETS_EXTRA}/{WARMUP_FILENAME}"
#: The candidate attribute table as plain files (numpy .npy + JSON), inside `ASSETS_EXTRA`.
ATTRIBUTES_DIRNAME: Final = "attributes"
#: The manifest key of the attribute schema (namespaces, token counts, numeric ranges).
ATTRIBUTES_MANIFEST_KEY: Final = "attributes"

# --- GetModelMetadata ---------------------------------------------------------------
#: TF Serving's metadata field (and REST key) for the SignatureDefs.
SIGNATURE_DEF_METADATA_FIELD: Final = "signature_def"
#: The metadata field scann-serve answers with the manifest (TF Serving rejects it).
MANIFEST_METADATA_FIELD: Final = "scann_manifest"

__all__ = [
    "ALLOW",
    "ASSETS_EXTRA",
    "ATTRIBUTES_DIRNAME",
    "ATTRIBUTES_MANIFEST_KEY",
    "DENY",
    "EMBEDDING",
    "EXCLUDE",
    "IDENTIFIERS",
    "MANIFEST_FILENAME",
    "MANIFEST_METADATA_FIELD",
    "MANIFEST_PATH",
    "NUMERIC",
    "NUMERIC_OPERATORS",
    "NUMERIC_RESTRICT_PATTERN",
    "OPTIONAL_SIGNATURE_NAMES",
    "OUTPUT_NAMES",
    "QUERY",
    "RETRIEVE",
    "RETRIEVE_FILTERED",
    "RETRIEVE_WITH_EXCLUSIONS",
    "SCORES",
    "SEARCH_EMBEDDING",
    "SERVING_DEFAULT",
    "SIGNATURE_DEF_METADATA_FIELD",
    "SIGNATURE_NAMES",
    "TOKEN_SEPARATOR",
    "WARMUP_FILENAME",
    "WARMUP_PATH",
    "K",
]

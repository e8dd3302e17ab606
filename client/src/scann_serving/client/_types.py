"""The typed values the client returns: retrieval results, model metadata, model status."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scann_serving.client.contract import QUERY, SERVING_DEFAULT


@dataclass(frozen=True, eq=False)
class RetrievalResult:
    """The top-k candidates for a batch of queries.

    Attributes:
        identifiers: Candidate identifiers, `str` array `[batch, k]`, best first.
        scores: Their scores, float32 array `[batch, k]` (higher is closer).
        model_name: The model that answered.
        model_version: The version that answered (`None` if the server did not say).
        signature_name: The signature that was called.
    """

    identifiers: np.ndarray
    scores: np.ndarray
    model_name: str
    model_version: int | None
    signature_name: str

    def __post_init__(self) -> None:
        for array in (self.identifiers, self.scores):
            array.flags.writeable = False

    def __len__(self) -> int:
        """The batch size (number of queries answered)."""
        return int(self.identifiers.shape[0])

    @property
    def k(self) -> int:
        """Candidates per query."""
        return int(self.identifiers.shape[1])

    def rows(self) -> Iterator[list[tuple[str, float]]]:
        """Per query, the `(identifier, score)` pairs, best first."""
        for ids, scores in zip(self.identifiers, self.scores, strict=True):
            yield [(str(i), float(s)) for i, s in zip(ids, scores, strict=True)]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (lists instead of arrays)."""
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "signature_name": self.signature_name,
            "identifiers": self.identifiers.tolist(),
            "scores": self.scores.tolist(),
        }


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature.

    Attributes:
        name: The key in the signature's inputs/outputs.
        dtype: TensorFlow dtype name, e.g. `"DT_STRING"`.
        shape: Dimensions (`None` for unknown ones), or `None` if even the rank is unknown.
    """

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None


@dataclass(frozen=True)
class Signature:
    """A served signature: its method name, inputs and outputs."""

    name: str
    method_name: str
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]


@dataclass(frozen=True)
class ModelMetadata:
    """What the client learned about a model from GetModelMetadata.

    Attributes:
        model_name: The model.
        model_version: The version that answered.
        signatures: The served signatures by name.
        embedding_dim: Width of `search_embedding`'s input (`None` if not declared).
        default_k: Candidates per query of `serving_default` (`None` if not declared).
        max_k: Largest k `retrieve` accepts (`None` when the server does not expose the
            export manifest; then the server alone checks k).
        manifest: The version's export manifest, if the server exposes it.
    """

    model_name: str
    model_version: int | None
    signatures: Mapping[str, Signature]
    embedding_dim: int | None = None
    default_k: int | None = None
    max_k: int | None = None
    manifest: Mapping[str, Any] = field(default_factory=dict)

    @property
    def query_dtype(self) -> str | None:
        """The dtype of `serving_default`'s `query` input: `"DT_STRING"` (raw keys), or
        `"DT_INT64"` when the model's query tower takes integer ids (`None` if not declared).
        `retrieve()` converts keys to it: ints and decimal strings both work for ids."""
        signature = self.signatures.get(SERVING_DEFAULT)
        spec = None if signature is None else signature.inputs.get(QUERY)
        return None if spec is None else spec.dtype

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (signatures with their inputs and outputs; no manifest)."""
        data = asdict(self)
        data.pop("manifest")
        return data


@dataclass(frozen=True)
class VersionStatus:
    """The state of one model version (GetModelStatus).

    Attributes:
        version: The version number.
        state: `"AVAILABLE"`, `"LOADING"`, `"START"`, `"UNLOADING"`, `"END"` or `"UNKNOWN"`.
        error_code: `"OK"` or the canonical error code name of a failed load.
        error_message: The failure's message; for an AVAILABLE version, empty from TF
            Serving and, from scann-serve, which backend runs it and why.
    """

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


@dataclass(frozen=True)
class ModelStatus:
    """The states of a model's versions."""

    model_name: str
    versions: tuple[VersionStatus, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @property
    def available(self) -> bool:
        """Whether at least one version is AVAILABLE."""
        return any(v.state == "AVAILABLE" for v in self.versions)

    @property
    def latest_available(self) -> int | None:
        """The highest AVAILABLE version, if any."""
        return max((v.version for v in self.versions if v.state == "AVAILABLE"), default=None)

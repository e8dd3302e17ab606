"""Option objects of the towers, kept free of TensorFlow so the CLI starts fast."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TrainingOptions:
    """Hyper-parameters of the built-in two-tower model (the TFRS tutorial's defaults)."""

    embedding_dim: int = 32
    epochs: int = 3
    batch_size: int = 8192
    learning_rate: float = 0.1
    seed: int = 42

    def validate(self) -> None:
        """Raises `ValueError` naming the option when a value cannot train."""
        for flag, value in (
            ("--embedding-dim", self.embedding_dim),
            ("--epochs", self.epochs),
            ("--batch-size", self.batch_size),
        ):
            if value < 1:
                raise ValueError(f"{flag} {value} must be a positive integer")
        if not self.learning_rate > 0:
            raise ValueError(f"--learning-rate {self.learning_rate} must be > 0")


@dataclass(frozen=True)
class OwnTowersOptions:
    """Where the user's towers are and how to read them.

    The query tower is a SavedModel directory, a Keras 3 `.keras` file or a Keras 3 model
    object (any backend); for the last two, `query_submodel` names the tower inside it (an
    attribute such as the KerasRS example's `user_embedding`, or a layer name; None: the
    whole model). Candidates come from `candidates` (`.npy` with `candidate_ids`, or
    Parquet), or from the Keras model's `Embedding` layer `candidate_layer`, whose row i
    is id i, named through `candidate_ids_map` (see `_ids_map`).

    Example (after the KerasRS example, in the same process)::

        OwnTowersOptions(model, query_submodel="user_embedding",
                         candidate_layer="candidate_embedding",
                         candidate_ids_map=Path("movies.tsv"))
    """

    query_model: Path | Any
    candidates: Path | None = None
    candidate_ids: Path | None = None
    signature: str = "serving_default"
    output: str | None = None
    id_column: str = "identifier"
    embedding_column: str = "embedding"
    query_submodel: str | None = None
    candidate_layer: str | None = None
    candidate_ids_map: Path | None = None
    keras_modules: tuple[str, ...] = ()

    @property
    def keras(self) -> bool:
        """Whether the query model is Keras 3 (a `.keras` file or a model object)."""
        return not isinstance(self.query_model, Path) or self.query_model.suffix == ".keras"

    def validate(self) -> None:
        """Raises `ValueError` naming the options that do not fit together."""
        if (self.candidates is None) == (self.candidate_layer is None):
            raise ValueError(
                "pass exactly one candidate source: --candidates FILE, or --candidate-layer "
                "NAME (an Embedding of a .keras --query-model)"
            )
        if not self.keras:
            for flag, value in (
                ("--query-submodel", self.query_submodel),
                ("--candidate-layer", self.candidate_layer),
                ("--keras-module", self.keras_modules or None),
            ):
                if value is not None:
                    raise ValueError(
                        f"{flag} needs a Keras 3 --query-model (a .keras file); "
                        f"{self.query_model} is a SavedModel directory"
                    )
        if self.candidate_ids_map is not None and self.candidate_layer is None:
            raise ValueError("--candidate-ids-map names the rows of --candidate-layer; pass both")

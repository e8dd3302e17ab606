"""Option objects of the towers, kept free of TensorFlow so the CLI starts fast."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
    """Where the user's towers are and how to read them."""

    query_model: Path
    candidates: Path
    candidate_ids: Path | None = None
    signature: str = "serving_default"
    output: str | None = None
    id_column: str = "identifier"
    embedding_column: str = "embedding"

"""`ExportConfig`: everything one export needs, shared by the pipeline, its steps and the CLI.

It lives below `_pipeline` and `_stages` (which both read it) and imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from scann_serving.export._index import IndexOptions
from scann_serving.export._options import OwnTowersOptions, TrainingOptions
from scann_serving.export._sources import DataOptions


@dataclass(frozen=True)
class ExportConfig:
    """Everything one export needs; the CLI flags map one-to-one onto these fields.

    Attributes:
        output: The model base path; the version is written under it.
        dataset: A `--dataset` spec; optional with `own_towers` (then used for evaluation).
        own_towers: Bring-your-own query tower and candidates instead of training.
        augment_candidates: Perturbed copies of the catalogue to add (benchmark scale).
        target_recall: Tune the search knobs per band of k to reach this recall at every k,
            fastest first. Without it (and without explicit search knobs) a tree index is
            tuned to 0.95 within `tuning_budget` (default 60 s).
        tuning_budget: Seconds the sweep may take (None: 60 s for the default tuning, no
            limit with `target_recall`).
        eval_queries: Held-out queries for recall, tuning and latency.
        verify: Load the version in a fresh process before publishing it.
        native_bundle: Write the TF-free native bundle (and verify it with the version).
        candidate_attributes: A CSV/TSV/Parquet table of candidate attributes (its id
            column is `candidate_id_column`); without it the dataset's own attributes
            (GroupLens genres and years, the synthetic ones) are used, if any.
        attributes: Whether to export attributes at all (`retrieve_filtered`).
    """

    output: Path
    dataset: str | None = "synthetic"
    model_name: str = "retrieval"
    version: int | None = None
    data: DataOptions = field(default_factory=DataOptions)
    training: TrainingOptions = field(default_factory=TrainingOptions)
    own_towers: OwnTowersOptions | None = None
    k: int = 10
    max_k: int = 100
    index: IndexOptions = field(default_factory=IndexOptions)
    target_recall: float | None = None
    tuning_budget: float | None = None
    augment_candidates: int = 0
    eval_queries: int = 1000
    latency_queries: int = 200
    verify: bool = True
    native_bundle: bool = True
    seed: int = 42
    candidate_attributes: Path | None = None
    candidate_id_column: str = "identifier"
    attributes: bool = True

    def validate(self) -> None:
        """Raises `ValueError` naming the option when the combination cannot work."""
        if self.dataset is None and self.own_towers is None:
            raise ValueError("pass --dataset, or --query-model with --candidates")
        if self.own_towers is not None:
            self.own_towers.validate()
        if not 1 <= self.k <= self.max_k:
            raise ValueError(f"need 1 <= -k ({self.k}) <= --max-k ({self.max_k})")
        if self.augment_candidates < 0:
            raise ValueError(f"--augment-candidates {self.augment_candidates} must be >= 0")
        if self.eval_queries < 1 or self.latency_queries < 1:
            raise ValueError("--eval-queries and --latency-queries must be positive")
        if self.candidate_attributes is not None and not self.attributes:
            raise ValueError("--candidate-attributes and --no-attributes contradict each other")
        if self.tuning_budget is not None and not self.tuning_budget > 0:
            raise ValueError(f"--tuning-budget {self.tuning_budget} must be > 0 seconds, e.g. 60")
        if self.version is not None and self.version < 1:
            raise ValueError(f"--version {self.version} must be a positive integer")

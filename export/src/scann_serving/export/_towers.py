"""The two towers: the TFRS tutorial's model trained here, or the user's own.

Either way the result is a `Towers`: a query model (string keys `[batch]` -> float32
`[batch, dim]`, saved into the export) and the candidate identifiers with their embeddings
(indexed by ScaNN).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
from scann_serving.export._data import Interactions
from scann_serving.export._options import TrainingOptions
from scann_serving.export._text import encode_utf8
from scann_serving.export._types import Progress, QueryKeySpec

EMBED_BATCH = 4096


@dataclass
class Towers:
    """A query tower and the candidate side it was trained (or exported) with.

    Attributes:
        query_model: Callable on the exported `query` input (string `[batch]`, or int64
            `[batch]` for a tower over integer ids) returning float `[batch, dim]`.
        identifiers: Candidate identifiers, string `[n]`.
        embeddings: Candidate embeddings, float32 `[n, dim]`, row-aligned with identifiers.
        training: What the manifest records about training (options, per-epoch loss).
        query_key: What the query tower takes (string keys unless it takes integer ids).
    """

    query_model: Any
    identifiers: np.ndarray
    embeddings: np.ndarray
    training: dict[str, Any] = field(default_factory=dict)
    query_key: QueryKeySpec = field(default_factory=QueryKeySpec)

    @property
    def embedding_dim(self) -> int:
        """The width shared by both towers."""
        return int(self.embeddings.shape[1])

    def embed_queries(self, queries: np.ndarray) -> np.ndarray:
        """Runs the query tower over raw keys in batches; float32 `[len(queries), dim]`.

        Raises:
            ValueError: A key is not an id of an integer query tower.
        """
        if self.query_key.integer:
            ids = self.query_key.parse(np.asarray(queries).tolist(), "--dataset query keys")
            return self._embed(ids)
        return self._embed(encode_utf8(queries))

    def embed_keys(self, keys: np.ndarray) -> np.ndarray:
        """Runs the query tower over keys already in the `query` dtype (UTF-8 bytes or int64)."""
        return self._embed(keys)

    def _embed(self, keys: np.ndarray) -> np.ndarray:
        parts = [
            np.asarray(self.query_model(tf.constant(keys[i : i + EMBED_BATCH])))
            for i in range(0, len(keys), EMBED_BATCH)
        ]
        if not parts:
            return np.zeros((0, self.embedding_dim), np.float32)
        return np.concatenate(parts).astype(np.float32)


def train_two_tower(
    data: Interactions, options: TrainingOptions | None = None, progress: Progress = print
) -> Towers:
    """Trains the TFRS tutorial's two-tower retrieval model on the training split.

    StringLookup + Embedding towers over the user vocabulary and the catalogue, a
    `tfrs.tasks.Retrieval` (in-batch softmax) loss, Adagrad. Top-k metrics are computed
    after training over the whole catalogue (`_evaluation`), not per batch.
    """
    options = options or TrainingOptions()
    options.validate()
    tf.keras.utils.set_random_seed(options.seed)
    user_model = _lookup_tower(data.users, options.embedding_dim)
    item_model = _lookup_tower(data.items, options.embedding_dim)
    model = _TwoTowerModel(user_model, item_model, tfrs.tasks.Retrieval())
    model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=options.learning_rate))
    train = tf.data.Dataset.from_tensor_slices(
        {"user_id": encode_utf8(data.train_users), "item": encode_utf8(data.train_items)}
    )
    train = train.shuffle(100_000, seed=options.seed).batch(options.batch_size).cache()
    progress(
        f"training the two-tower model: {len(data.train_users):,} interactions, "
        f"{len(data.users):,} users x {len(data.items):,} items, dim {options.embedding_dim}, "
        f"{options.epochs} epochs"
    )
    history = model.fit(train, epochs=options.epochs, verbose=0, callbacks=[_EpochLog(progress)])
    identifiers = np.asarray(data.items, dtype=object)
    towers = Towers(query_model=user_model, identifiers=identifiers, embeddings=np.zeros((0, 1)))
    towers.embeddings = _embed_items(item_model, identifiers)
    towers.training = {
        "model": "tfrs-two-tower",
        "options": asdict(options),
        "loss_per_epoch": [float(v) for v in history.history.get("loss", [])],
    }
    return towers


def _lookup_tower(vocabulary: np.ndarray, dim: int) -> Any:
    return tf.keras.Sequential(
        [
            tf.keras.layers.StringLookup(vocabulary=[str(v) for v in vocabulary], mask_token=None),
            tf.keras.layers.Embedding(len(vocabulary) + 1, dim),
        ]
    )


def _embed_items(item_model: Any, identifiers: np.ndarray) -> np.ndarray:
    encoded = encode_utf8(identifiers)
    parts = [
        np.asarray(item_model(tf.constant(encoded[i : i + EMBED_BATCH])))
        for i in range(0, len(encoded), EMBED_BATCH)
    ]
    return np.concatenate(parts).astype(np.float32)


class _TwoTowerModel(tfrs.Model):  # type: ignore[misc]
    """The tutorial's MovielensModel: loss = Retrieval(user tower, item tower)."""

    def __init__(self, user_model: Any, item_model: Any, task: Any) -> None:
        super().__init__()
        self.user_model = user_model
        self.item_model = item_model
        self.task = task

    def compute_loss(self, features: dict[str, Any], training: bool = False) -> Any:
        return self.task(self.user_model(features["user_id"]), self.item_model(features["item"]))


class _EpochLog(tf.keras.callbacks.Callback):  # type: ignore[misc]
    """A Keras callback printing one line per epoch (loss and time)."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress
        self.started = 0.0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        loss = (logs or {}).get("loss", float("nan"))
        elapsed = time.perf_counter() - self.started
        total = self.params.get("epochs", "?")
        self.progress(f"  epoch {epoch + 1}/{total}: loss {loss:,.1f} ({elapsed:.1f}s)")

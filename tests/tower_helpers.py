"""Own query towers saved as SavedModels, the way users write them (shared by test folders).

    from tower_helpers import VOCABULARY, keras3_lookup_tower, tf_lookup_tower

`keras3_lookup_tower` builds a Keras 3 StringLookup + Embedding model and saves it with
`model.export()` (endpoint `serve`); `tf_lookup_tower` writes a plain `tf.Module` around a
`tf.lookup.StaticHashTable` with `tf.saved_model.save` (signature `serving_default`), its
output optionally changed after the lookup. Each returns the directory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Keys with non-ASCII characters, spaces and one that differs from another only by case.
VOCABULARY = ["u1", "u2", "Ünïcödé", "用户-3", "a b", "emoji-😀", "Case", "case", "x"]
DIM = 8

#: What `tf_lookup_tower` does after the lookup.
#: - "affine": rows * 2 + 1 (a per-key deterministic op: still a table)
#: - "length": adds the key's length (reads the key beyond the lookup: not a table)
#: - "lower": lowercases the key before the lookup (not a table)
AFTER_LOOKUP = ("affine", "length", "lower")


def keras3_lookup_tower(
    path: Path,
    vocabulary: list[str] = VOCABULARY,
    *,
    num_oov_indices: int = 1,
    mask_token: str | None = None,
    dim: int = DIM,
    seed: int = 0,
) -> Path:
    """A Keras 3 `StringLookup -> Embedding` tower exported with `model.export(path)`."""
    import keras  # Keras 3, beside the tf_keras that TFRS uses

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(), dtype="string", name="user_id")
    lookup = keras.layers.StringLookup(
        vocabulary=vocabulary, num_oov_indices=num_oov_indices, mask_token=mask_token
    )
    rows = lookup.vocabulary_size()
    model = keras.Model(inputs, keras.layers.Embedding(rows, dim)(lookup(inputs)))
    model.export(str(path), verbose=False)
    return path


def tf_lookup_tower(
    path: Path, after: str, vocabulary: list[str] = VOCABULARY, *, dim: int = DIM
) -> Path:
    """A `tf.Module` tower (StaticHashTable -> gather) saved with `tf.saved_model.save`."""
    import tensorflow as tf

    if after not in AFTER_LOOKUP:
        raise ValueError(f"after={after!r}: pick one of {AFTER_LOOKUP}")
    module = tf.Module()
    init = tf.lookup.KeyValueTensorInitializer(
        tf.constant(vocabulary), tf.range(len(vocabulary), dtype=tf.int64)
    )
    module.table = tf.lookup.StaticHashTable(init, default_value=len(vocabulary))
    rng = np.random.default_rng(7)
    module.rows = tf.Variable(rng.standard_normal((len(vocabulary) + 1, dim)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="key")])
    def serve(key: tf.Tensor) -> dict[str, tf.Tensor]:
        looked_up = tf.strings.lower(key) if after == "lower" else key
        rows = tf.gather(module.rows, module.table.lookup(looked_up))
        if after == "affine":
            return {"embedding": rows * 2.0 + 1.0}
        if after == "length":
            length = tf.cast(tf.strings.length(key), tf.float32)[:, None]
            return {"embedding": rows + 0.01 * length}
        return {"embedding": rows}

    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return path

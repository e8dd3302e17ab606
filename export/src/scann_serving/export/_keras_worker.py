"""The Keras 3 step of an export, run in its own process on the TensorFlow backend.

`python -m scann_serving.export._keras_worker REQUEST.json` loads a `.keras` file (trained
on any backend: the file holds plain arrays), writes its query tower as a SavedModel with
Keras's own export (endpoint `serve`) and its candidate `Embedding` table as `.npy`, and
answers in `result.json`. Its own process because the exporter's process runs TFRS on
tf-keras, and a caller's Keras may be on JAX: the SavedModel must be plain TensorFlow.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scann_serving.export._data import DataError

TOWER_DIRNAME = "query_tower"
TABLE_FILENAME = "candidate_table.npy"
RESULT_FILENAME = "result.json"
ENDPOINT = "serve"


def import_module(spec: str) -> None:
    """Imports `--keras-module` (a module name, or a `.py` file) so that the classes it
    registers with `keras.saving.register_keras_serializable` can be deserialized."""
    path = Path(spec)
    if spec.endswith(".py"):
        if not path.is_file():
            raise DataError(f"--keras-module {spec}: no such file")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        module_spec.loader.exec_module(module)
        return
    try:
        importlib.import_module(spec)
    except ImportError as exc:
        raise DataError(
            f"--keras-module {spec}: cannot import it ({exc}); pass an importable module "
            "name or the path of a .py file"
        ) from exc


def run(request: dict[str, Any], out: Path) -> dict[str, Any]:
    """Writes the tower and the table for `request`; returns what `result.json` records."""
    import keras
    from scann_serving.export import _keras_models as km

    source = Path(request["source"])
    label = request.get("label") or str(source)
    for spec in request.get("modules", []):
        import_module(spec)
    query, candidate = request.get("query_submodel"), request.get("candidate_layer")
    try:
        model = keras.saving.load_model(source, compile=False, safe_mode=True)
    except Exception as exc:  # unknown or unrebuildable classes: read the weights alone
        tables = km.saved_tables(source)
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
        if query is None:
            raise DataError(f"--query-model {label} cannot be loaded ({reason})") from exc
        tower = km.table_tower(km.table_item(tables, query, km.QUERY_FLAG, label), query)
        table = (
            None
            if candidate is None
            else km.table_item(tables, candidate, "--candidate-layer", label)
        )
        loaded = {"loaded": "weights", "reason": reason}
    else:
        item = model if query is None else km.find_item(model, query, km.QUERY_FLAG, label)
        tower = km.as_tower(item, query or "", label)
        table = None
        if candidate is not None:
            found = km.find_item(model, candidate, km.CANDIDATE_FLAG, label)
            table = km.embedding_table(found, candidate, label)
        loaded = {"loaded": "model"}
    km.check_tower_input(tower, query or "", label)
    tower.export(str(out / TOWER_DIRNAME), format="tf_saved_model", verbose=False)
    if table is not None:
        import numpy as np

        np.save(out / TABLE_FILENAME, table)
    return loaded


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one request; a `DataError` becomes `{"error": message}` (exit status 3)."""
    request_path = Path((argv if argv is not None else sys.argv[1:])[0])
    request = json.loads(request_path.read_text(encoding="utf-8"))
    out = Path(request["out"])
    try:
        result = run(request, out)
        status = 0
    except DataError as exc:
        result, status = {"error": str(exc)}, 3
    (out / RESULT_FILENAME).write_text(json.dumps(result), encoding="utf-8")
    return status


if __name__ == "__main__":
    sys.exit(main())

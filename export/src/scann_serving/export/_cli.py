"""`scann-export`: flags become an `ExportConfig` here, in `main()`, and nowhere else."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from scann_serving.export._config import ExportConfig
from scann_serving.export._data import DataError, SyntheticSpec
from scann_serving.export._index import INDEX_KINDS, IndexOptions
from scann_serving.export._options import OwnTowersOptions, TrainingOptions
from scann_serving.export._pipeline import export_model
from scann_serving.export._publish import VerificationError, VersionExistsError
from scann_serving.export._report import summary
from scann_serving.export._sources import DATASET_HELP, DataOptions

EXIT_USAGE = 2
EXIT_VERIFY = 1


def parser() -> argparse.ArgumentParser:
    """The argument parser (flag names are part of the documented interface)."""
    p = argparse.ArgumentParser(
        prog="scann-export",
        description="Train (or load) a two-tower model, build a ScaNN index, evaluate it and "
        "publish it as the next version of a TF Serving model.",
    )
    p.add_argument(
        "--output", required=True, type=Path, help="model base path; versions go under it"
    )
    p.add_argument("--dataset", help=f"{DATASET_HELP} (default synthetic unless --query-model)")
    p.add_argument("--model-name", default="retrieval")
    p.add_argument(
        "--version", type=int, help="version to write (default: next integer; never overwrites)"
    )
    p.add_argument(
        "-k", "--k", type=int, default=10, help="results of serving_default (default 10)"
    )
    p.add_argument(
        "--max-k", type=int, default=100, help="largest k `retrieve` accepts (default 100)"
    )
    _data_flags(p.add_argument_group("data"))
    _training_flags(p.add_argument_group("built-in two-tower model (TFRS tutorial)"))
    _own_flags(p.add_argument_group("bring your own towers"))
    _index_flags(p.add_argument_group("index (defaults follow the catalogue size)"))
    m = p.add_argument_group("tuning and measurement")
    m.add_argument(
        "--target-recall",
        type=float,
        help="tune the search knobs per band of k (1, 10, 50, -k, --max-k) to reach this "
        "recall at every k served (default: 0.95 within --tuning-budget, unless "
        "--num-leaves-to-search or --num-reordering-candidates are given)",
    )
    m.add_argument(
        "--tuning-budget",
        type=float,
        metavar="SECONDS",
        help="time the tuning sweep may take; the best found is kept when it runs out "
        "(default 60 for the default tuning, none with --target-recall)",
    )
    m.add_argument(
        "--augment-candidates",
        type=int,
        default=0,
        metavar="N",
        help="add N perturbed copies of the catalogue (benchmark scale)",
    )
    m.add_argument(
        "--eval-queries", type=int, default=1000, help="held-out queries for recall/tuning"
    )
    m.add_argument("--latency-queries", type=int, default=200, help="queries timed one by one")
    m.add_argument("--no-verify", action="store_true", help="skip the fresh-process verification")
    m.add_argument(
        "--no-native-bundle",
        action="store_true",
        help="do not write assets.extra/native/ (the index, identifiers and lookup tower "
        "that scann-serve --backend=native serves without TensorFlow)",
    )
    return p


def _data_flags(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--user-column", default="user_id", help="interactions: the query key column")
    g.add_argument("--item-column", default="item_id", help="interactions: the candidate id column")
    g.add_argument(
        "--encoding",
        default="utf-8",
        help="interactions: text encoding of a CSV/TSV file (default utf-8; e.g. latin-1)",
    )
    g.add_argument("--test-fraction", type=float, default=0.2)
    g.add_argument("--synthetic-users", type=int, default=SyntheticSpec.num_users)
    g.add_argument("--synthetic-items", type=int, default=SyntheticSpec.num_items)
    g.add_argument("--synthetic-interactions", type=int, default=SyntheticSpec.num_interactions)
    g.add_argument("--tfds-data-dir", help="TFDS data directory for movielens/100k")
    g.add_argument(
        "--candidate-attributes",
        type=Path,
        metavar="PATH",
        help="CSV/TSV/Parquet of candidate attributes for retrieve_filtered: the id column "
        "(--candidate-id-column) plus one column per token namespace ('|'-separated values "
        "or lists) or numeric attribute (default: the dataset's own, e.g. genre and year)",
    )
    g.add_argument(
        "--no-attributes",
        action="store_true",
        help="export no attributes (and so no retrieve_filtered signature)",
    )


def _training_flags(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--embedding-dim", type=int, default=TrainingOptions.embedding_dim)
    g.add_argument("--epochs", type=int, default=TrainingOptions.epochs)
    g.add_argument("--batch-size", type=int, default=TrainingOptions.batch_size)
    g.add_argument("--learning-rate", type=float, default=TrainingOptions.learning_rate)
    g.add_argument("--seed", type=int, default=TrainingOptions.seed)


def _own_flags(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--query-model",
        type=Path,
        help="query-tower SavedModel (e.g. Keras model.export()): one string or int input; "
        "or a Keras 3 .keras file (any backend) with --query-submodel",
    )
    g.add_argument(
        "--query-submodel",
        metavar="NAME",
        help="with a .keras --query-model: the attribute or layer name of its query tower, an "
        "Embedding layer or a sub-model (e.g. user_embedding); default the whole model",
    )
    g.add_argument(
        "--keras-module",
        action="append",
        default=[],
        metavar="MODULE",
        help="module name or .py file defining the .keras file's registered custom classes "
        "(repeatable); without it such a file is read as weights: its Embedding tables",
    )
    g.add_argument(
        "--query-model-signature",
        default="serving_default",
        help="its signature (Keras 3 model.export() also writes 'serve')",
    )
    g.add_argument("--query-model-output", help="output key when the signature has several")
    g.add_argument(
        "--candidates", type=Path, help="candidate embeddings: .npy [n, dim] or .parquet"
    )
    g.add_argument(
        "--candidate-ids", type=Path, help="identifiers for .npy candidates (.npy or text)"
    )
    g.add_argument(
        "--candidate-layer",
        metavar="NAME",
        help="instead of --candidates: the .keras --query-model's candidate Embedding layer "
        "(row i is id i; e.g. candidate_embedding)",
    )
    g.add_argument(
        "--candidate-ids-map",
        type=Path,
        metavar="PATH",
        help="names of the --candidate-layer rows: id<TAB>identifier lines, or a .csv whose "
        "first two columns are id and identifier; rows it does not name are not candidates "
        "(default: every row, identified by its id)",
    )
    g.add_argument("--candidate-id-column", default="identifier")
    g.add_argument("--candidate-embedding-column", default="embedding")


def _index_flags(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--index",
        choices=INDEX_KINDS,
        default="auto",
        help="auto: brute force up to 5,000 candidates, else tree + AH + reordering",
    )
    g.add_argument("--num-leaves", type=int)
    g.add_argument("--num-leaves-to-search", type=int)
    g.add_argument("--num-reordering-candidates", type=int)
    g.add_argument("--dimensions-per-block", type=int)
    g.add_argument("--anisotropic-quantization-threshold", type=float)
    g.add_argument("--training-sample-size", type=int)
    g.add_argument(
        "--training-iterations", type=int, help="k-means iterations of the tree (default 12)"
    )


def config_from_args(args: argparse.Namespace) -> ExportConfig:
    """Turns parsed flags into an `ExportConfig`."""
    own = None
    if args.query_model is not None or args.candidates is not None or args.candidate_layer:
        if args.query_model is None:
            raise ValueError("bring-your-own towers need --query-model")
        own = OwnTowersOptions(
            query_model=args.query_model,
            candidates=args.candidates,
            candidate_ids=args.candidate_ids,
            signature=args.query_model_signature,
            output=args.query_model_output,
            id_column=args.candidate_id_column,
            embedding_column=args.candidate_embedding_column,
            query_submodel=args.query_submodel,
            candidate_layer=args.candidate_layer,
            candidate_ids_map=args.candidate_ids_map,
            keras_modules=tuple(args.keras_module),
        )
    synthetic = SyntheticSpec(
        args.synthetic_users, args.synthetic_items, args.synthetic_interactions
    )
    return ExportConfig(
        output=args.output,
        dataset=args.dataset if args.dataset or own else "synthetic",
        model_name=args.model_name,
        version=args.version,
        data=DataOptions(
            args.user_column,
            args.item_column,
            args.test_fraction,
            synthetic,
            args.tfds_data_dir,
            encoding=args.encoding,
        ),
        training=TrainingOptions(
            args.embedding_dim, args.epochs, args.batch_size, args.learning_rate, args.seed
        ),
        own_towers=own,
        k=args.k,
        max_k=args.max_k,
        index=IndexOptions(
            args.index,
            args.num_leaves,
            args.num_leaves_to_search,
            args.num_reordering_candidates,
            args.dimensions_per_block,
            args.anisotropic_quantization_threshold,
            args.training_sample_size,
            args.training_iterations,
        ),
        target_recall=args.target_recall,
        tuning_budget=args.tuning_budget,
        augment_candidates=args.augment_candidates,
        eval_queries=args.eval_queries,
        latency_queries=args.latency_queries,
        verify=not args.no_verify,
        native_bundle=not args.no_native_bundle,
        seed=args.seed,
        candidate_attributes=args.candidate_attributes,
        candidate_id_column=args.candidate_id_column,
        attributes=not args.no_attributes,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `scann-export` and `python -m scann_serving.export`."""
    args = parser().parse_args(argv)
    from scann_serving.client._quiet_tf import start_tensorflow

    start_tensorflow()  # no "failed call to cuInit" ERROR line on a machine without GPU
    try:
        config = config_from_args(args)
        result = export_model(config)
    except (DataError, ValueError, VersionExistsError) as exc:
        print(f"scann-export: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except VerificationError as exc:
        print(f"scann-export: verification failed, nothing was published: {exc}", file=sys.stderr)
        return EXIT_VERIFY
    print(summary(result.manifest, str(result.version_dir), result.seconds))
    return 0

"""The command's flags and errors, and atomic publish (the public surface: test_package_layout)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _export_support import tf_env
from scann_serving.export._cli import config_from_args, main, parser
from scann_serving.export._publish import STAGING_PREFIX, publish


def test_flags_map_onto_the_export_config(tmp_path: Path) -> None:
    args = parser().parse_args(
        ["--output", str(tmp_path), "--dataset", "ml-100k:/data/ml-100k.zip", "--version", "7",
         "-k", "5", "--max-k", "50", "--epochs", "2", "--embedding-dim", "64",
         "--learning-rate", "0.05", "--num-leaves", "300", "--num-leaves-to-search", "30",
         "--dimensions-per-block", "4", "--target-recall", "0.9", "--augment-candidates", "10",
         "--user-column", "uid", "--item-column", "iid", "--no-verify"]
    )  # fmt: skip
    config = config_from_args(args)
    assert (config.output, config.dataset, config.version) == (
        tmp_path,
        "ml-100k:/data/ml-100k.zip",
        7,
    )
    assert (config.k, config.max_k, config.target_recall, config.augment_candidates) == (
        5,
        50,
        0.9,
        10,
    )
    assert (
        config.training.epochs,
        config.training.embedding_dim,
        config.training.learning_rate,
    ) == (
        2,
        64,
        0.05,
    )
    assert (config.index.num_leaves, config.index.num_leaves_to_search) == (300, 30)
    assert config.index.dimensions_per_block == 4 and config.index.kind == "auto"
    assert (config.data.user_column, config.data.item_column) == ("uid", "iid")
    assert config.verify is False and config.own_towers is None


def test_dataset_defaults_to_synthetic_unless_own_towers(tmp_path: Path) -> None:
    assert config_from_args(parser().parse_args(["--output", str(tmp_path)])).dataset == "synthetic"
    own = parser().parse_args(
        ["--output", str(tmp_path), "--query-model", "q", "--candidates", "c.npy"]
    )
    assert config_from_args(own).dataset is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset", "nonsense"], "--dataset 'nonsense' is not one of"),
        (["--query-model", "q"], "exactly one candidate source: --candidates FILE"),
        (["--candidate-layer", "c"], "bring-your-own towers need --query-model"),
        (
            ["--query-model", "q", "--candidates", "c.npy", "--query-submodel", "u"],
            "--query-submodel needs a Keras 3 --query-model",
        ),
        (["-k", "20", "--max-k", "10"], "need 1 <= -k (20) <= --max-k (10)"),
        (["--dataset", "ml-100k:/no/such/dir"], "no such file or folder"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["--output", str(tmp_path / "m"), *argv]) == 2
    err = capsys.readouterr().err
    assert "scann-export: error: " in err and message in err
    assert not (tmp_path / "m" / "1").exists()


def test_help_starts_without_tensorflow() -> None:
    code = "import sys; import scann_serving.export._cli; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=tf_env())
    assert out.stdout.strip() == "False"


def _write(staging: Path) -> None:
    staging.mkdir(parents=True)
    (staging / "saved_model.pb").write_bytes(b"stand-in")


def test_a_failed_check_publishes_nothing(tmp_path: Path) -> None:
    def check(staging: Path) -> None:
        assert (staging / "assets.extra" / "scann_manifest.json").is_file()
        raise RuntimeError("the version does not load")

    with pytest.raises(RuntimeError, match="does not load"):
        publish(tmp_path, _write, manifest={}, check=check)
    assert list(tmp_path.iterdir()) == []


def test_stale_staging_of_dead_exporters_is_removed_live_ones_kept(tmp_path: Path) -> None:
    dead = tmp_path / f"{STAGING_PREFIX}999999999-abc"
    live = tmp_path / f"{STAGING_PREFIX}{os.getppid()}-def"
    dead.mkdir()
    live.mkdir()
    published = publish(tmp_path, _write, manifest={})
    assert published == tmp_path / "1"
    assert not dead.exists() and live.exists()
    assert (published / "assets.extra" / "scann_manifest.json").is_file()

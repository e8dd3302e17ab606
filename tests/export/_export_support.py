"""Helpers of the export tests: GroupLens-format files, fresh-process runs."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

#: Titles latin-1 can hold, as in ml-100k's u.item and ml-1m's movies.dat.
LATIN1_TITLES = ["Amélie (2001)", "Misérables, Les (1995)", "Fräulein Smilla (1997)"]
#: Titles of the UTF-8 CSV releases: commas (quoted), CJK, emoji, no year.
CSV_TITLES = [
    "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)",
    "千と千尋の神隠し (2001)",
    "Ça tourne 🎬 (2019)",
    "Black Mirror",
]


def tf_env() -> dict[str, str]:
    """Environment for subprocesses that import TensorFlow."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1"}


def run_python(code: str, *, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a fresh Python process (the way a server would load a model)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=tf_env(), timeout=timeout
    )


def write_ml_100k(folder: Path, *, users: int = 30, items: int = 40, ratings: int = 300) -> Path:
    """A GroupLens ml-100k release in miniature: tab-separated u.data, pipe-separated u.item
    (latin-1, like the real files), `ratings` lines."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    titles = [f"Movie {i} ({1950 + i})" for i in range(1, items + 1)]
    titles[: len(LATIN1_TITLES)] = LATIN1_TITLES  # non-ASCII titles, as in the real u.item
    item_lines = [
        f"{i}|{t}|01-Jan-1995||http://us.imdb.com/M/title-exact?x|0|0|1|0|0"
        for i, t in enumerate(titles, 1)
    ]
    (folder / "u.item").write_bytes(("\n".join(item_lines) + "\n").encode("latin-1"))
    data = [
        f"{rng.integers(1, users + 1)}\t{rng.integers(1, items + 1)}\t{rng.integers(1, 6)}\t88125{i:04d}"
        for i in range(ratings)
    ]
    (folder / "u.data").write_text("\n".join(data) + "\n")
    return folder


def write_ml_1m(folder: Path, *, users: int = 20, items: int = 30, ratings: int = 200) -> Path:
    """A GroupLens ml-1m release in miniature: '::'-separated ratings.dat and movies.dat."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    titles = [f"Film {i} ({1960 + i})" for i in range(1, items + 1)]
    titles[: len(LATIN1_TITLES)] = LATIN1_TITLES  # ml-1m's movies.dat is latin-1 too
    movies = [f"{i}::{t}::Drama|Comedy" for i, t in enumerate(titles, 1)]
    (folder / "movies.dat").write_bytes(("\n".join(movies) + "\n").encode("latin-1"))
    lines = [
        f"{rng.integers(1, users + 1)}::{rng.integers(1, items + 1)}::{rng.integers(1, 6)}::97830{i:04d}"
        for i in range(ratings)
    ]
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n")
    return folder


def zip_folder(folder: Path, archive: Path, prefix: str) -> Path:
    """Zips `folder` with members under `prefix/`, like GroupLens' ml-100k.zip."""
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(folder.iterdir()):
            out.write(path, f"{prefix}/{path.name}")
    return archive


def write_ml_latest(folder: Path, *, users: int = 25, items: int = 30, ratings: int = 250) -> Path:
    """A GroupLens CSV release (ml-20m, ml-25m, ml-latest) in miniature: UTF-8 `ratings.csv`
    (userId,movieId,rating,timestamp) and `movies.csv` (movieId,title,genres) with headers
    and quoted titles."""
    import csv
    import io

    rng = np.random.default_rng(2)
    folder.mkdir(parents=True, exist_ok=True)
    titles = [f"Picture, The {i} ({1970 + i})" for i in range(1, items + 1)]
    titles[: len(CSV_TITLES)] = CSV_TITLES
    movies = io.StringIO()
    writer = csv.writer(movies, lineterminator="\n")
    writer.writerow(["movieId", "title", "genres"])
    writer.writerows([10 * i, t, "Drama|Comedy"] for i, t in enumerate(titles, 1))
    (folder / "movies.csv").write_bytes(movies.getvalue().encode("utf-8"))
    lines = ["userId,movieId,rating,timestamp"] + [
        f"{rng.integers(1, users + 1)},{10 * rng.integers(1, items + 1)},4.5,11122{i:04d}"
        for i in range(ratings)
    ]
    (folder / "ratings.csv").write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    return folder

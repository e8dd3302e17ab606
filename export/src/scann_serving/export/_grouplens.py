"""GroupLens MovieLens releases (folder or .zip) as (user id, movie title) interactions.

Two file formats, as GroupLens publishes them:

- legacy, `ml-100k` (`u.data` tab-separated, `u.item` '|'-separated) and `ml-1m`
  (`ratings.dat`, `movies.dat`, '::'-separated): latin-1 text (a copy re-saved as UTF-8
  is recognised; see `legacy_grouplens_text`);
- CSV, `ml-20m`, `ml-25m`, `ml-32m`, `ml-latest`, `ml-latest-small` (`ratings.csv`:
  userId,movieId,...; `movies.csv`: movieId,title,genres, titles quoted when they hold a
  comma): UTF-8 text; undecodable bytes are a `DataError` naming the file and line.

Movie ids become their titles, release year included (`Toy Story (1995)`), as the TFRS
tutorial identifies candidates. Each title also gets the attributes the files carry: the
`genre` namespace (ml-100k's flags, the other releases' '|'-separated genres) and the
numeric `year` (ml-100k's release date, else the title's year).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scann_serving.export._attribute_sources import ml100k_movie_attributes, split_genres
from scann_serving.export._attributes import CandidateAttributes, grouplens_attributes
from scann_serving.export._data import DEFAULT_TEST_FRACTION, DataError, Interactions, from_pairs
from scann_serving.export._text import (
    UTF8,
    legacy_grouplens_text,
    locate_undecodable,
    split_lines,
)

DOWNLOADS = "https://files.grouplens.org/datasets/movielens/"
#: Columns read when a CSV file has them (movies.csv's genres).
_OPTIONAL_COLUMNS = ("genres",)


@dataclass(frozen=True)
class Release:
    """How one GroupLens release stores ratings and movies.

    Attributes:
        ratings, movies: File names (found at any depth in the folder or zip).
        ratings_sep, movies_sep: Field separators of the legacy formats (None: CSV).
    """

    ratings: str
    movies: str
    ratings_sep: str | None = None
    movies_sep: str | None = None

    @property
    def is_csv(self) -> bool:
        """Whether this is the newer CSV format (UTF-8, with a header row)."""
        return self.ratings_sep is None


_CSV = Release("ratings.csv", "movies.csv")
RELEASES: dict[str, Release] = {
    "ml-100k": Release("u.data", "u.item", "\t", "|"),
    "ml-1m": Release("ratings.dat", "movies.dat", "::", "::"),
    "ml-20m": _CSV,
    "ml-25m": _CSV,
    "ml-32m": _CSV,
    "ml-latest": _CSV,
    "ml-latest-small": _CSV,
}


def grouplens(
    kind: str, path: Path, *, test_fraction: float = DEFAULT_TEST_FRACTION
) -> Interactions:
    """Reads the GroupLens release `kind` (a key of `RELEASES`) from a folder or its .zip.

    Raises:
        DataError: Missing or empty files, malformed or undecodable lines, unknown movie ids.
    """
    release = RELEASES[kind]
    files = _Files(kind, path)
    read = _read_csv if release.is_csv else _read_legacy
    users, items, catalogue, encodings, attributes = read(files, release)
    return from_pairs(
        f"{kind}:{path}",
        users,
        items,
        catalogue=catalogue,
        test_fraction=test_fraction,
        details={"source": kind, "path": str(path), "encoding": encodings},
        attributes=attributes,
    )


_Read = tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, str], CandidateAttributes]


def _read_legacy(files: _Files, release: Release) -> _Read:
    assert release.ratings_sep is not None and release.movies_sep is not None
    movie_rows, movie_encoding = files.lines(release.movies)
    titles: dict[str, str] = {}
    # Per title (a title listed twice keeps its last line, as `titles` does).
    genres: dict[str, tuple[str, ...]] = {}
    years: dict[str, float] = {}
    for line_no, line in movie_rows:
        fields = line.split(release.movies_sep)
        if len(fields) < 2:
            raise DataError(
                f"{files.where(release.movies)} line {line_no}: expected "
                f"'id{release.movies_sep}title'"
            )
        titles[fields[0]] = fields[1]
        if release.movies == "u.item":
            genres[fields[1]], years[fields[1]] = ml100k_movie_attributes(fields)
        else:
            genres[fields[1]] = split_genres(fields[2]) if len(fields) > 2 else ()
            years[fields[1]] = float("nan")
    rating_rows, rating_encoding = files.lines(release.ratings)
    users, items = [], []
    sep = release.ratings_sep
    for line_no, line in rating_rows:
        fields = line.split(sep)
        if len(fields) < 2:
            raise DataError(
                f"{files.where(release.ratings)} line {line_no}: expected "
                f"'user{sep}item{sep}rating{sep}timestamp'"
            )
        if fields[1] not in titles:
            raise files.unknown_movie(release, line_no, fields[1])
        users.append(fields[0])
        items.append(titles[fields[1]])
    encodings = {release.movies: movie_encoding, release.ratings: rating_encoding}
    attributes = grouplens_attributes(
        list(genres), list(genres.values()), list(years.values()), source=files.kind
    )
    return _objects(users), _objects(items), _objects(titles.values()), encodings, attributes


def _read_csv(files: _Files, release: Release) -> _Read:
    movies = files.frame(release.movies, ("movieId", "title"))
    titles = dict(zip(movies["movieId"], movies["title"], strict=True))
    genre_column = movies["genres"] if "genres" in movies.columns else None
    genres = dict(
        zip(
            movies["title"],
            [split_genres(g) for g in genre_column]
            if genre_column is not None
            else [()] * len(movies),
            strict=True,
        )
    )
    ratings = files.frame(release.ratings, ("userId", "movieId"))
    items = ratings["movieId"].map(titles)
    unknown = np.flatnonzero(items.isna().to_numpy())
    if len(unknown):
        row = int(unknown[0])
        # Line numbers count the header (line 1); the index still counts blank lines.
        line = int(ratings.index[row]) + 2
        raise files.unknown_movie(release, line, str(ratings["movieId"].iloc[row]))
    encodings = {release.movies: UTF8, release.ratings: UTF8}
    users = ratings["userId"].to_numpy(dtype=object)
    attributes = grouplens_attributes(list(genres), list(genres.values()), source=files.kind)
    return users, items.to_numpy(dtype=object), _objects(titles.values()), encodings, attributes


def _objects(values: Any) -> np.ndarray:
    return np.asarray(list(values), dtype=object)


class _Files:
    """A GroupLens release as a folder or a zip; files are found by name at any depth."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind, self.path = kind, path
        if not path.exists():
            raise DataError(
                f"--dataset {kind}:{path}: no such file or folder; download {kind}.zip from "
                f"{DOWNLOADS} and pass the zip or its folder"
            )

    def where(self, name: str) -> str:
        return f"{self.path}:{name}" if self.path.is_file() else str(self._find_in_dir(name))

    def lines(self, name: str) -> tuple[list[tuple[int, str]], str]:
        """The non-blank lines of a legacy file with their numbers, and its encoding."""
        text, encoding = legacy_grouplens_text(self._read(name))
        rows = [(i, line) for i, line in enumerate(split_lines(text), 1) if line.strip()]
        if not rows:
            raise DataError(f"{self.where(name)} is empty; use a complete {self.kind} release")
        return rows, encoding

    def frame(self, name: str, columns: tuple[str, ...]) -> Any:
        """`columns` of a UTF-8 CSV file as strings, one row per line after the header."""
        import pandas as pd

        raw = self._read(name)
        fix = f"GroupLens {self.kind} files are UTF-8; re-download {self.kind}.zip"
        try:
            frame = pd.read_csv(
                io.BytesIO(raw),
                dtype=str,
                usecols=lambda column: column in (*columns, *_OPTIONAL_COLUMNS),
                encoding=UTF8,
                keep_default_na=False,  # a movie may be called "NaN" or "None"
                skip_blank_lines=False,  # keeps row i on line i + 2
            )
        except UnicodeDecodeError:
            raise locate_undecodable(raw, UTF8, self.where(name), fix) from None
        except (ValueError, pd.errors.ParserError) as exc:
            raise DataError(f"{self.where(name)} is not a CSV file ({exc}); {fix}") from None
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataError(
                f"{self.where(name)} has no column {missing[0]!r} (header: "
                f"{', '.join(frame.columns) or 'none'}); {fix}"
            )
        blank = (frame[list(columns)] == "").all(axis=1)
        frame = frame[~blank]
        partial = np.flatnonzero((frame[list(columns)] == "").any(axis=1).to_numpy())
        if len(partial):
            line = int(frame.index[partial[0]]) + 2
            raise DataError(
                f"{self.where(name)} line {line}: expected values for {', '.join(columns)}"
            )
        if frame.empty:
            raise DataError(f"{self.where(name)} is empty; use a complete {self.kind} release")
        return frame

    def unknown_movie(self, release: Release, line: int, movie: str) -> DataError:
        return DataError(
            f"{self.where(release.ratings)} line {line}: movie id {movie} is not in "
            f"{release.movies}; use the {release.movies} from the same GroupLens release"
        )

    def _read(self, name: str) -> bytes:
        if self.path.is_dir():
            return self._find_in_dir(name).read_bytes()
        try:
            with zipfile.ZipFile(self.path) as archive:
                members = [m for m in archive.namelist() if m.rsplit("/", 1)[-1] == name]
                if not members:
                    raise self._missing(name)
                return archive.read(sorted(members, key=len)[0])
        except zipfile.BadZipFile as exc:
            raise DataError(
                f"{self.path} is not a zip file; pass the {self.kind}.zip or its folder"
            ) from exc

    def _find_in_dir(self, name: str) -> Path:
        found = sorted(self.path.rglob(name), key=lambda p: len(p.parts))
        if not found:
            raise self._missing(name)
        return found[0]

    def _missing(self, name: str) -> DataError:
        release = RELEASES[self.kind]
        return DataError(
            f"--dataset {self.kind}:{self.path} has no {name}; a {self.kind} release "
            f"contains {release.ratings} and {release.movies}"
        )

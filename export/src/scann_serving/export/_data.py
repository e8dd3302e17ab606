"""Interaction data: the one shape every source is loaded into, and the built-in dataset.

Every `--dataset` ends as an `Interactions`: (user, item) pairs split into train and test,
the user vocabulary and the candidate catalogue (item identifiers; movie titles for the
MovieLens sources, as in the TFRS retrieval tutorial). Sources:

- ``synthetic`` (here): deterministic, MovieLens-shaped, with a planted low-rank taste
  structure so that a trained two-tower model measurably beats chance.
- ``movielens/100k``, ``ml-100k:PATH``, ``ml-1m:PATH``, ``interactions:PATH``: `_sources`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scann_serving.export._manifest import fingerprint

if TYPE_CHECKING:
    from scann_serving.export._attributes import CandidateAttributes

SPLIT_SEED = 42
DEFAULT_TEST_FRACTION = 0.2
SYNTHETIC_USERS = 1_000
SYNTHETIC_ITEMS = 1_700
SYNTHETIC_INTERACTIONS = 100_000
SYNTHETIC_RANK = 8
SYNTHETIC_SEED = 7

_ADJECTIVES = [
    "Silent",
    "Crimson",
    "Last",
    "Hidden",
    "Golden",
    "Broken",
    "Midnight",
    "Wild",
    "Distant",
    "Lost",
    "Electric",
    "Frozen",
    "Burning",
    "Secret",
    "Empty",
    "Iron",
    "Paper",
    "Velvet",
    "Hollow",
    "Bright",
    "Savage",
    "Gentle",
    "Quiet",
    "Endless",
    "Northern",
    "Lonely",
    "Sudden",
    "Glass",
    "Stolen",
    "Wandering",
    "Bitter",
    "Hungry",
    "Twisted",
    "Lucky",
    "Restless",
    "Falling",
    "Shadow",
    "Final",
    "Eternal",
    "Rising",
]
_NOUNS = [
    "River",
    "Garden",
    "Empire",
    "Highway",
    "Stranger",
    "Summer",
    "Harbor",
    "Promise",
    "Mirror",
    "Kingdom",
    "Orchard",
    "Detective",
    "Circus",
    "Horizon",
    "Letter",
    "Winter",
    "Island",
    "Machine",
    "Dancer",
    "Station",
    "Fortune",
    "Canyon",
    "Witness",
    "Lighthouse",
    "Season",
    "Frontier",
    "Signal",
    "Carnival",
    "Voyage",
    "Engine",
    "Ballad",
    "Tower",
    "Country",
    "Weekend",
    "Storm",
    "Orbit",
    "Legacy",
    "Desert",
    "Prophet",
    "Bridge",
    "Hunter",
    "Window",
    "Castle",
    "Planet",
    "Alibi",
]
#: Every NON_ASCII_EVERY-th title gets an original-language title and every
#: NON_ASCII_EVERY-th user key a name, as MovieLens writes "Amélie (Fabuleux destin
#: d'Amélie Poulain, Le) (2001)": real catalogues have accents, CJK and emoji.
NON_ASCII_EVERY = 8
#: Latin-1 accents, other scripts, CJK, a combining accent and 4-byte UTF-8 (emoji).
_ORIGINAL_TITLES = [
    "Le Fabuleux Destin d'Amélie Poulain",
    "千と千尋の神隠し",
    "Smultronstället",
    "Ζορμπάς",
    "Летят журавли",
    "괴물",
    "La vie rêvée des anges",
    "Cafe\u0301 de Flore",
    "Łódź nocą",
    "Ça tourne 🎬",
    "Señor Mañana",
    "花様年華",
    "Fräulein Müller",
    "🍿 Ünterwegs",
]
_USER_NAMES = ["zoë", "józef", "søren", "ñandú", "σοφία", "дмитрий", "さくら", "민준", "🦊"]


class DataError(ValueError):
    """A dataset could not be loaded; the message names the input and what to do."""


@dataclass(frozen=True)
class Interactions:
    """(user, item) interactions split into train/test, with vocabularies.

    Attributes:
        name: The `--dataset` spec it came from.
        train_users, train_items: Training pairs, string arrays `[n_train]`.
        test_users, test_items: Held-out pairs, string arrays `[n_test]`.
        users: The user vocabulary (query keys), unique strings.
        items: The candidate catalogue (identifiers), unique strings.
        details: Source description for the manifest (paths, columns, split).
        attributes: What the source says about its candidates (genres, year), or None.
    """

    name: str
    train_users: np.ndarray
    train_items: np.ndarray
    test_users: np.ndarray
    test_items: np.ndarray
    users: np.ndarray
    items: np.ndarray
    details: dict[str, Any] = field(default_factory=dict)
    attributes: CandidateAttributes | None = None

    @property
    def num_interactions(self) -> int:
        """Train plus test pairs."""
        return len(self.train_users) + len(self.test_users)

    def fingerprint(self) -> str:
        """A sha256 over the pairs and the catalogue (changes when the data changes)."""
        arrays = (self.train_users, self.train_items, self.test_users, self.test_items, self.items)
        return fingerprint("\x1f".join(map(str, a)).encode() for a in arrays)

    def summary(self) -> dict[str, Any]:
        """The manifest's `dataset` block."""
        return {
            "name": self.name,
            "num_users": len(self.users),
            "num_items": len(self.items),
            "num_train": len(self.train_users),
            "num_test": len(self.test_users),
            "fingerprint": self.fingerprint(),
            **self.details,
        }


def from_pairs(
    name: str,
    users: np.ndarray,
    items: np.ndarray,
    *,
    catalogue: np.ndarray | None = None,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = SPLIT_SEED,
    details: dict[str, Any] | None = None,
    attributes: CandidateAttributes | None = None,
) -> Interactions:
    """Shuffles pairs with `seed` and splits off `test_fraction` as the test split.

    Raises:
        DataError: No pairs, or a test fraction outside (0, 1).
    """
    users, items = _texts(users), _texts(items)
    if len(users) == 0:
        raise DataError(f"dataset {name!r} has no interactions; point it at a non-empty file")
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"--test-fraction {test_fraction} must be between 0 and 1 (e.g. 0.2)")
    order = np.random.default_rng(seed).permutation(len(users))
    n_train = max(1, min(len(users) - 1, round(len(users) * (1.0 - test_fraction))))
    train, test = order[:n_train], order[n_train:]
    pool = items if catalogue is None else np.concatenate([catalogue, items])
    return Interactions(
        name=name,
        train_users=users[train],
        train_items=items[train],
        test_users=users[test],
        test_items=items[test],
        users=_unique(users),
        items=_unique(pool),
        details={"split_seed": seed, "test_fraction": test_fraction, **(details or {})},
        attributes=attributes,
    )


def _texts(values: Any) -> np.ndarray:
    # An object array of `str`, not `astype(str)`: a fixed-width numpy unicode array takes
    # 4 bytes x the longest title for every row (gigabytes for ml-25m's 25M ratings).
    return np.fromiter((str(v) for v in values), dtype=object, count=len(values))


def _unique(values: np.ndarray) -> np.ndarray:
    # Code-point order, the order np.unique gives (the towers' vocabulary order).
    return np.asarray(sorted(set(map(str, values))), dtype=object)


@dataclass(frozen=True)
class SyntheticSpec:
    """Size of the built-in dataset (the defaults are MovieLens-100k's shape)."""

    num_users: int = SYNTHETIC_USERS
    num_items: int = SYNTHETIC_ITEMS
    num_interactions: int = SYNTHETIC_INTERACTIONS
    rank: int = SYNTHETIC_RANK
    seed: int = SYNTHETIC_SEED

    def validate(self) -> None:
        """Raises `DataError` when the sizes cannot make a dataset."""
        if min(self.num_users, self.num_items, self.rank) < 1:
            raise DataError("--synthetic-users/--synthetic-items must be positive")
        if not self.num_users <= self.num_interactions <= self.num_users * self.num_items // 2:
            raise DataError(
                f"--synthetic-interactions {self.num_interactions} must be between the number "
                f"of users ({self.num_users}) and half of users x items"
            )


def titles(num_items: int, rng: np.random.Generator) -> np.ndarray:
    """Unique movie-like titles: 'Adjective Noun (Year)', numbered past the word pairs;
    every `NON_ASCII_EVERY`-th one also names its original title: 'Adjective Noun
    (千と千尋の神隠し) (Year)'.

    The original title follows the first '(' so titles sort exactly as without it: the
    catalogue's order, hence training and every figure measured on it, stays the same.
    """
    pairs = [f"{a} {n}" for a in _ADJECTIVES for n in _NOUNS]
    order = rng.permutation(len(pairs))
    years = rng.integers(1930, 1999, size=num_items)
    out = []
    for i in range(num_items):
        base = pairs[order[i % len(pairs)]]
        sequel = f" {i // len(pairs) + 1}" if i >= len(pairs) else ""
        original = ""
        if i % NON_ASCII_EVERY == NON_ASCII_EVERY - 1:
            original = f"({_ORIGINAL_TITLES[(i // NON_ASCII_EVERY) % len(_ORIGINAL_TITLES)]}) "
        out.append(f"{base}{sequel} {original}({years[i]})")
    return np.asarray(out, dtype=object)


def user_key(user: int) -> str:
    """The query key of synthetic user `user` (1-based): its number, and for every
    `NON_ASCII_EVERY`-th user (7, 15, ...) a name after a '-', e.g. '7-さくら'.

    '-' sorts before every digit, so keys sort as the plain numbers do (see `titles`).
    """
    if user % NON_ASCII_EVERY != NON_ASCII_EVERY - 1:
        return str(user)
    return f"{user}-{_USER_NAMES[(user // NON_ASCII_EVERY) % len(_USER_NAMES)]}"


def synthetic(
    spec: SyntheticSpec | None = None, *, test_fraction: float = DEFAULT_TEST_FRACTION
) -> Interactions:
    """The built-in offline dataset, identical on every machine for the same `spec`.

    Users and items get unit vectors in a `rank`-dimensional taste space; each user
    interacts with a MovieLens-like heavy-tailed number of distinct items drawn (without
    replacement, Gumbel top-k) in proportion to exp(4 * taste affinity + popularity).
    """
    spec = spec or SyntheticSpec()
    spec.validate()
    rng = np.random.default_rng(spec.seed)
    user_taste = _unit(rng.standard_normal((spec.num_users, spec.rank)))
    item_taste = _unit(rng.standard_normal((spec.num_items, spec.rank)))
    popularity = rng.normal(0.0, 1.0, spec.num_items)
    counts = _activity(spec, rng)
    catalogue = titles(spec.num_items, rng)
    users: list[str] = []
    items: list[str] = []
    for u in range(spec.num_users):
        logits = 4.0 * item_taste @ user_taste[u] + popularity
        keys = logits + rng.gumbel(size=spec.num_items)
        chosen = np.argpartition(-keys, counts[u] - 1)[: counts[u]]
        users.extend([user_key(u + 1)] * len(chosen))
        items.extend(catalogue[chosen])
    details = {"generator": {"kind": "synthetic", **vars(spec)}}
    from scann_serving.export._attributes import synthetic_attributes

    return from_pairs(
        "synthetic",
        np.asarray(users, dtype=object),
        np.asarray(items, dtype=object),
        catalogue=catalogue,
        test_fraction=test_fraction,
        details=details,
        attributes=synthetic_attributes(catalogue, spec.seed),
    )


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _activity(spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    """Per-user interaction counts: log-normal, at least 1 (20 at full size), summing exactly."""
    floor = max(1, min(20, spec.num_interactions // (2 * spec.num_users)))
    cap = spec.num_items // 2
    weights = rng.lognormal(0.0, 0.9, spec.num_users)
    extra = spec.num_interactions - floor * spec.num_users
    counts = floor + np.floor(weights / weights.sum() * extra).astype(int)
    counts = np.minimum(counts, cap)
    # Hand out the rounding remainder one by one to users below the cap.
    short = spec.num_interactions - counts.sum()
    for u in rng.permutation(spec.num_users):
        if short <= 0:
            break
        room = min(cap - counts[u], short)
        counts[u] += room
        short -= room
    return counts

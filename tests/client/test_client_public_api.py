"""The public surface: `__all__` is exactly what the package exports, all documented."""

from __future__ import annotations

import inspect

import scann_serving.client as sc


def test_all_is_the_public_surface() -> None:
    public = {name for name in vars(sc) if not name.startswith("_")}
    public -= {"annotations"}
    assert set(sc.__all__) == public
    assert len(sc.__all__) == len(set(sc.__all__))


def test_every_public_name_is_documented() -> None:
    for name in sc.__all__:
        obj = getattr(sc, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), name
            for attr, member in vars(obj).items():
                if inspect.isfunction(member) and not attr.startswith("_"):
                    assert inspect.getdoc(member), f"{name}.{attr}"


def test_sync_and_async_clients_have_the_same_methods() -> None:
    def api(cls: type) -> dict[str, list[str]]:
        return {
            name: list(inspect.signature(member).parameters)
            for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_")
        }

    assert api(sc.RetrievalClient) == api(sc.AsyncRetrievalClient)
    assert set(api(sc.RetrievalClient)) == {"retrieve", "search", "metadata", "status", "close"}
    for name in ("retrieve", "search", "metadata", "status", "close"):
        assert inspect.iscoroutinefunction(getattr(sc.AsyncRetrievalClient, name))


def test_py_typed_marker_ships() -> None:
    from pathlib import Path

    assert (Path(sc.__file__).parent / "py.typed").exists()

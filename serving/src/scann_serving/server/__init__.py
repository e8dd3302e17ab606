"""scann_serving.server."""

__all__: list[str] = []

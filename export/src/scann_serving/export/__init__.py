"""scann_serving.export."""

__all__: list[str] = []

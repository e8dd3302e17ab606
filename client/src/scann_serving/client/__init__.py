"""scann_serving.client."""

__all__: list[str] = []

"""`python -m scann_serving.export` runs `scann-export`."""

from __future__ import annotations

import sys

from scann_serving.export._cli import main

if __name__ == "__main__":
    sys.exit(main())

# Two commands on a fresh machine: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export TF_CPP_MIN_LOG_LEVEL ?= 2
export TF_USE_LEGACY_KERAS := 1
DEMO_DIR ?= out/demo-models

.PHONY: install test lint format demo soak bench protos clean bases images image-test

# --compile-bytecode: the suite starts dozens of Python processes that import TensorFlow, and
# where PYTHONDONTWRITEBYTECODE is set (as on CI) each one would compile it again (20 s vs 6 s).
.venv/.installed: Makefile pyproject.toml uv.lock client/pyproject.toml export/pyproject.toml serving/pyproject.toml
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --all-packages --locked --compile-bytecode
	@touch $@

install: .venv/.installed

test: install
	$(UV) run --no-sync pytest -m "not slow and not image"

lint: install
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync mypy client/src export/src serving/src

format: install
	$(UV) run --no-sync ruff format .
	$(UV) run --no-sync ruff check --fix .

# The container images (BUILD.md): the FROM bases are pulled, or made here with debootstrap
# where no registry answers (cached: an image of that name is kept).
bases:
	bash docker/build_local_bases.sh

images: bases
	bash docker/build_images.sh

# The real images run as the Kubernetes bundle runs them (tests/images). Without podman or
# docker the tests skip with the reason instead of failing, so this target works anywhere.
image-test: install
	@if bash docker/container_engine.sh >/dev/null 2>&1; then $(MAKE) images; \
	  else echo "image-test: no container engine; tests/images will skip"; fi
	$(UV) run --no-sync pytest -m image tests/images

soak: install
	$(UV) run --no-sync pytest -m slow

demo: install
	$(UV) run --no-sync bash scripts/demo.sh $(DEMO_DIR)

protos: install
	$(UV) run --no-sync python client/scripts/generate_protos.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache

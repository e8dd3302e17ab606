# syntax=docker/dockerfile:1
# scann-serve-native: scann-serve without TensorFlow. Versions are served from their native
# bundle (assets.extra/native/, written by scann-export) with ScaNN's pybind searcher.
#
# Build from the repository root (see BUILD.md):
#   docker build -f docker/scann-serve-native.Dockerfile -t scann-serving/scann-serve-native:0.1.0 .
#
# The same server, entrypoint, user and ports as docker/scann-serve.Dockerfile; only the
# `[tensorflow]` extra is left out (`uv sync --package scann-serving-server`), so the image
# has no TensorFlow and `--backend=auto` (the default) serves every version natively. A
# version without a native bundle fails to load and says how to fix it.

ARG PYTHON_VERSION=3.11
ARG DEBIAN_RELEASE=bookworm
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# ---------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
# Dependencies first (cached while only the source changes), then the package itself.
COPY pyproject.toml uv.lock ./
COPY client/pyproject.toml client/pyproject.toml
COPY export/pyproject.toml export/pyproject.toml
COPY serving/pyproject.toml serving/pyproject.toml
RUN uv sync --frozen --no-dev --no-editable --package scann-serving-server \
      --no-install-workspace
COPY client client
COPY serving serving
# ScaNN's TensorFlow op library (23 MB) is loaded only through TensorFlow (scann/__init__.py
# imports it only when `import tensorflow` works); the pybind searcher is what serves here.
# The last line fails the build if TensorFlow came in after all (the image's one promise).
RUN uv sync --frozen --no-dev --no-editable --package scann-serving-server && \
    rm /opt/venv/lib/python*/site-packages/scann/scann_ops/cc/_scann_ops.so && \
    /opt/venv/bin/scann-serve --help >/dev/null && \
    ! /opt/venv/bin/python -c 'import tensorflow' 2>/dev/null

# ---------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS runtime
# Exactly the full image's first layer, so both images share it.
RUN apt-get update && \
    apt-get install -y --no-install-recommends tini=0.19.0-1+b3 && \
    rm -rf /var/lib/apt/lists/* && \
    groupadd --gid 10001 scann && \
    useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin scann && \
    mkdir -p /models && chown 10001:10001 /models

ARG PYTHON_VERSION
LABEL org.opencontainers.image.title="scann-serve-native" \
      org.opencontainers.image.description="ScaNN retrieval models behind TensorFlow Serving's gRPC and REST API, without TensorFlow" \
      org.opencontainers.image.version="0.1.0" \
      io.scann-serving.python.version="${PYTHON_VERSION}" \
      io.scann-serving.backend="native" \
      io.scann-serving.scann.version="1.4.2" \
      io.scann-serving.cpu-requirements="x86-64 avx2 fma"

COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 docker/serving_entrypoint.sh /usr/local/bin/scann_serve_entrypoint.sh
COPY --chmod=0755 docker/check_cpu.sh /usr/local/bin/check_cpu.sh

# Same contract as tensorflow/serving: gRPC 8500, REST 8501, MODEL_NAME under MODEL_BASE_PATH.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MODEL_BASE_PATH=/models \
    MODEL_NAME=model \
    SERVER_BINARY=scann-serve
EXPOSE 8500 8501
USER 10001:10001
# tini is PID 1: it forwards SIGTERM to scann-serve (which drains) and reaps zombies.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/scann_serve_entrypoint.sh"]

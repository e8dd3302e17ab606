# syntax=docker/dockerfile:1
# scann-serve: the TF-Serving-compatible Python server from serving/ (scann-serving-server).
#
# Build from the repository root (see BUILD.md):
#   docker build -f docker/scann-serve.Dockerfile -t scann-serving/scann-serve:0.1.0 .
#
# Only the server's dependencies are installed, exactly as locked in uv.lock
# (`uv sync --package scann-serving-server`): no exporter, no training stack, no dev tools.

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
# The full image keeps the TensorFlow backend: the server's `[tensorflow]` extra.
RUN uv sync --frozen --no-dev --no-editable --package scann-serving-server --extra tensorflow \
      --no-install-workspace
COPY client client
COPY serving serving
# TensorFlow's C++ headers (350 MB) are only for compiling custom ops; nothing here does.
RUN uv sync --frozen --no-dev --no-editable --package scann-serving-server --extra tensorflow && \
    rm -rf /opt/venv/lib/python*/site-packages/tensorflow/include && \
    /opt/venv/bin/scann-serve --help >/dev/null

# ---------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS runtime
# First, before anything that differs between the images, so both share this layer.
RUN apt-get update && \
    apt-get install -y --no-install-recommends tini=0.19.0-1+b3 && \
    rm -rf /var/lib/apt/lists/* && \
    groupadd --gid 10001 scann && \
    useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin scann && \
    mkdir -p /models && chown 10001:10001 /models

ARG PYTHON_VERSION
LABEL org.opencontainers.image.title="scann-serve" \
      org.opencontainers.image.description="ScaNN retrieval models behind TensorFlow Serving's gRPC and REST API" \
      org.opencontainers.image.version="0.1.0" \
      io.scann-serving.python.version="${PYTHON_VERSION}" \
      io.scann-serving.tensorflow.version="2.20" \
      io.scann-serving.scann.version="1.4.2" \
      io.scann-serving.cpu-requirements="x86-64 avx2 fma"

COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 docker/serving_entrypoint.sh /usr/local/bin/scann_serve_entrypoint.sh
COPY --chmod=0755 docker/check_cpu.sh /usr/local/bin/check_cpu.sh

# Same contract as tensorflow/serving: gRPC 8500, REST 8501, MODEL_NAME under MODEL_BASE_PATH.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    MODEL_BASE_PATH=/models \
    MODEL_NAME=model \
    SERVER_BINARY=scann-serve
EXPOSE 8500 8501
USER 10001:10001
# tini is PID 1: it forwards SIGTERM to scann-serve (which drains) and reaps zombies.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/scann_serve_entrypoint.sh"]

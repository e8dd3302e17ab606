# syntax=docker/dockerfile:1
# The export job: `scann-export` writing a new version under a mounted model base path.
#
# Build from the repository root (see BUILD.md):
#   docker build -f docker/export.Dockerfile -t scann-serving/scann-export:0.1.0 .
#
# Installs scann-serving-export exactly as locked in uv.lock (TensorFlow 2.20, ScaNN 1.4.2,
# tf-keras 2.20, tensorflow-recommenders): the graphs it writes need a server built at the
# same TensorFlow/ScaNN versions (see BUILD.md, "Pinned versions").

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
COPY pyproject.toml uv.lock ./
COPY client/pyproject.toml client/pyproject.toml
COPY export/pyproject.toml export/pyproject.toml
COPY serving/pyproject.toml serving/pyproject.toml
RUN uv sync --frozen --no-dev --no-editable --package scann-serving-export \
      --no-install-workspace
COPY client client
# The exporter writes and verifies the native bundle with the server's code
# (scann_serving.server._bundle): scann-serving-export depends on scann-serving-server.
COPY serving serving
COPY export export
# TensorFlow's C++ headers (350 MB) are only for compiling custom ops; nothing here does.
RUN uv sync --frozen --no-dev --no-editable --package scann-serving-export && \
    rm -rf /opt/venv/lib/python*/site-packages/tensorflow/include && \
    /opt/venv/bin/scann-export --help >/dev/null

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
LABEL org.opencontainers.image.title="scann-export" \
      org.opencontainers.image.description="Builds a ScaNN retrieval model and exports a TF Serving version" \
      org.opencontainers.image.version="0.1.0" \
      io.scann-serving.python.version="${PYTHON_VERSION}" \
      io.scann-serving.tensorflow.version="2.20" \
      io.scann-serving.scann.version="1.4.2" \
      io.scann-serving.cpu-requirements="x86-64 avx2 fma"

COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 docker/export_entrypoint.sh /usr/local/bin/export_entrypoint.sh
COPY --chmod=0755 docker/check_cpu.sh /usr/local/bin/check_cpu.sh

# HOME and MPLCONFIGDIR under /tmp: the root filesystem is read-only in Kubernetes and
# TensorFlow Datasets / matplotlib write caches under them.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    TF_USE_LEGACY_KERAS=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    MODEL_BASE_PATH=/models \
    MODEL_NAME=model \
    EXPORT_BINARY=scann-export
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/export_entrypoint.sh"]

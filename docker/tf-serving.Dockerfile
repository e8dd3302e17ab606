# syntax=docker/dockerfile:1
# TensorFlow Serving with the ScaNN 1.4.2 TensorFlow ops linked in.
# Not built by this project yet: checked against the real TF Serving 2.20.0 and ScaNN 1.4.2
# sources instead (BUILD.md, "What was checked against the real sources").
#
# Build from the repository root (see BUILD.md):
#   docker build -f docker/tf-serving.Dockerfile \
#     -t scann-serving/tf-serving-scann:2.20.0-scann1.4.2 .
#
# The versions move together: ScaNN 1.4.2's ops are written against TensorFlow 2.20's op
# and kernel API, TF Serving 2.20.x builds TensorFlow 2.20 from source, and the exporter
# (tensorflow==2.20.*, scann==1.4.2) writes the graphs this server must run.

ARG TF_SERVING_VERSION=2.20.0
# The commit tensorflow/serving's tag ${TF_SERVING_VERSION} names. The devel image's own
# /tensorflow-serving is whatever commit it was built from (Dockerfile.devel defaults to
# HEAD), so the build stage replaces it with this one.
ARG TF_SERVING_GIT_COMMIT=bc7e9d2b9a419294c4526e293c2df8727b0d3116
# sha256 of https://github.com/tensorflow/serving/archive/${TF_SERVING_GIT_COMMIT}.tar.gz
ARG TF_SERVING_SOURCE_SHA256=""
ARG TENSORFLOW_VERSION=2.20.0
# The TensorFlow commit that TF Serving commit's WORKSPACE builds (org_tensorflow).
ARG TENSORFLOW_GIT_COMMIT=72fbba3d20f4616d7312b5e2b7f79daf6e82f2fa
ARG SCANN_VERSION=1.4.2
# google-research commit whose scann/ directory is the ScaNN ${SCANN_VERSION} release
# (its scann/pyproject.toml declares version = "1.4.2"); link_scann_ops.sh refuses a tree
# that declares any other version.
ARG SCANN_GIT_COMMIT=634a79fb5b4b23237a81eac028d27b5d34a5dba4
# sha256 of https://github.com/google-research/google-research/archive/${SCANN_GIT_COMMIT}.tar.gz
ARG SCANN_SOURCE_SHA256=""
ARG RUNTIME_BASE_IMAGE=ubuntu:22.04

# ---------------------------------------------------------------------------------------
# Build stage: the official TF Serving devel image (source at /tensorflow-serving, Bazel).
FROM tensorflow/serving:${TF_SERVING_VERSION}-devel AS build
ARG TF_SERVING_VERSION
ARG TF_SERVING_GIT_COMMIT
ARG TF_SERVING_SOURCE_SHA256
ARG TENSORFLOW_VERSION
ARG TENSORFLOW_GIT_COMMIT
ARG SCANN_VERSION
ARG SCANN_GIT_COMMIT
ARG SCANN_SOURCE_SHA256
# ScaNN's kernels need AVX2+FMA (the runtime entrypoint checks the CPU has them).
ARG TF_SERVING_BUILD_OPTIONS="--config=release --copt=-mavx2 --copt=-mfma"
# e.g. "--local_ram_resources=HOST_RAM*.6 --jobs=8" on a small builder (see BUILD.md).
ARG TF_SERVING_BAZEL_OPTIONS=""
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# TF Serving at the pinned tag's commit, not whatever the devel image was built from; its
# WORKSPACE must build the pinned TensorFlow commit.
WORKDIR /tensorflow-serving
RUN if [[ ! "${TF_SERVING_GIT_COMMIT}" =~ ^[0-9a-f]{40}$ ]]; then \
      echo "TF_SERVING_GIT_COMMIT must be the 40-hex commit of tensorflow/serving's tag ${TF_SERVING_VERSION}" >&2; \
      exit 1; \
    fi && \
    curl -fsSL --retry 5 -o /tmp/serving.tar.gz \
      "https://github.com/tensorflow/serving/archive/${TF_SERVING_GIT_COMMIT}.tar.gz" && \
    if [[ -n "${TF_SERVING_SOURCE_SHA256}" ]]; then \
      echo "${TF_SERVING_SOURCE_SHA256}  /tmp/serving.tar.gz" | sha256sum -c -; \
    fi && \
    find . -mindepth 1 -delete && \
    tar -xzf /tmp/serving.tar.gz --strip-components=1 && \
    rm /tmp/serving.tar.gz && \
    if ! grep -q "git_commit = \"${TENSORFLOW_GIT_COMMIT}\"" WORKSPACE; then \
      echo "tensorflow/serving ${TF_SERVING_GIT_COMMIT} does not build TensorFlow ${TENSORFLOW_GIT_COMMIT}" >&2; \
      exit 1; \
    fi

WORKDIR /opt/scann-src
RUN if [[ ! "${SCANN_GIT_COMMIT}" =~ ^[0-9a-f]{40}$ ]]; then \
      echo "SCANN_GIT_COMMIT must be the 40-hex google-research commit of ScaNN ${SCANN_VERSION} (see BUILD.md)" >&2; \
      exit 1; \
    fi && \
    curl -fsSL --retry 5 -o /tmp/scann.tar.gz \
      "https://github.com/google-research/google-research/archive/${SCANN_GIT_COMMIT}.tar.gz" && \
    if [[ -n "${SCANN_SOURCE_SHA256}" ]]; then \
      echo "${SCANN_SOURCE_SHA256}  /tmp/scann.tar.gz" | sha256sum -c -; \
    fi && \
    tar -xzf /tmp/scann.tar.gz --strip-components=1 "google-research-${SCANN_GIT_COMMIT}/scann" && \
    rm /tmp/scann.tar.gz

COPY docker/link_scann_ops.sh /usr/local/bin/link_scann_ops.sh
RUN link_scann_ops.sh --serving-src /tensorflow-serving --scann-src /opt/scann-src/scann \
      --scann-version "${SCANN_VERSION}"

WORKDIR /tensorflow-serving
# Minutes, not hours: resolve every repository ScaNN's op library needs (the loading phase
# only, nothing compiles), and check the server reaches it through SUPPORTED_TENSORFLOW_OPS.
# A missing repository fails here with "no such package '@...'".
RUN bazel query --noshow_progress \
      "deps(@com_google_scann//scann/scann_ops/cc:scann_ops_static)" >/dev/null && \
    bazel query --noshow_progress \
      "somepath(//tensorflow_serving/model_servers:tensorflow_model_server, @com_google_scann//scann/scann_ops/cc:scann_ops_static)" | \
      tee /tmp/scann_path.txt && \
    grep -q "scann_ops_static" /tmp/scann_path.txt

# Word splitting of the option strings is intended.
# hadolint ignore=SC2086
RUN bazel build --color=yes --curses=no --verbose_failures ${TF_SERVING_BAZEL_OPTIONS} \
      ${TF_SERVING_BUILD_OPTIONS} //tensorflow_serving/model_servers:tensorflow_model_server && \
    install -m 0755 bazel-bin/tensorflow_serving/model_servers/tensorflow_model_server \
      /usr/local/bin/tensorflow_model_server && \
    bazel clean --expunge

# Fail the build, not the first deployment: the binary must carry the ScaNN op
# registrations and the pinned TensorFlow.
RUN for op in ScannSearch ScannSearchBatched ScannToTensors TensorsToScann; do \
      grep -qa "Scann>${op}" /usr/local/bin/tensorflow_model_server || \
        { echo "op Scann>${op} is not linked into tensorflow_model_server" >&2; exit 1; }; \
    done && \
    tensorflow_model_server --version | tee /tmp/version.txt && \
    grep -q "TensorFlow Library: ${TENSORFLOW_VERSION}" /tmp/version.txt

# ---------------------------------------------------------------------------------------
# Runtime stage: the binary, an init, CA certificates (for gs:// and s3:// model paths).
FROM ${RUNTIME_BASE_IMAGE} AS runtime
ARG TF_SERVING_VERSION
ARG TF_SERVING_GIT_COMMIT
ARG TENSORFLOW_VERSION
ARG SCANN_VERSION
ARG SCANN_GIT_COMMIT
LABEL org.opencontainers.image.title="tf-serving-scann" \
      org.opencontainers.image.description="TensorFlow Serving ${TF_SERVING_VERSION} with the ScaNN ${SCANN_VERSION} ops linked in" \
      org.opencontainers.image.version="${TF_SERVING_VERSION}-scann${SCANN_VERSION}" \
      io.scann-serving.tf-serving.version="${TF_SERVING_VERSION}" \
      io.scann-serving.tf-serving.git-commit="${TF_SERVING_GIT_COMMIT}" \
      io.scann-serving.tensorflow.version="${TENSORFLOW_VERSION}" \
      io.scann-serving.scann.version="${SCANN_VERSION}" \
      io.scann-serving.scann.git-commit="${SCANN_GIT_COMMIT}" \
      io.scann-serving.cpu-requirements="x86-64 avx2 fma"

# The distribution release is pinned by the base image tag; package versions follow its
# security updates.
# hadolint ignore=DL3008
RUN apt-get update && \
    apt-get install -y --no-install-recommends ca-certificates tini && \
    rm -rf /var/lib/apt/lists/* && \
    groupadd --gid 10001 scann && \
    useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin scann && \
    mkdir -p /models && chown 10001:10001 /models

COPY --from=build /usr/local/bin/tensorflow_model_server /usr/bin/tensorflow_model_server
COPY --chmod=0755 docker/serving_entrypoint.sh /usr/bin/tf_serving_entrypoint.sh
COPY --chmod=0755 docker/check_cpu.sh /usr/bin/check_cpu.sh

# The tensorflow/serving contract: gRPC 8500, REST 8501, MODEL_NAME under MODEL_BASE_PATH.
ENV MODEL_BASE_PATH=/models \
    MODEL_NAME=model \
    SERVER_BINARY=tensorflow_model_server
EXPOSE 8500 8501
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/bin/tf_serving_entrypoint.sh"]

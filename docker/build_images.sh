#!/usr/bin/env bash
# Build the scann-serve, scann-serve-native (no TensorFlow) and export images (the tags the
# overlays and BUILD.md use) with podman or docker, then print each image's size.
# `make images` runs this after docker/build_local_bases.sh has made sure the FROM bases exist.
#
# Usage: docker/build_images.sh [IMAGE...]     (default: scann-serve scann-serve-native export)
# Environment:
#   CONTAINER_ENGINE   podman or docker (default: docker/container_engine.sh)
#   IMAGE_TAG          default 0.1.0
#   BUILD_UV_CACHE     a uv cache directory to mount into podman builds (default: the host's
#                      `uv cache dir`); "" to download everything inside the build.
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname -- "${here}")"
engine="${CONTAINER_ENGINE:-$("${here}/container_engine.sh")}"
tag="${IMAGE_TAG:-0.1.0}"
declare -A names=(
  [scann-serve]=scann-serving/scann-serve
  [scann-serve-native]=scann-serving/scann-serve-native
  [export]=scann-serving/scann-export
)

build_args=()
if [[ "$(basename -- "${engine}")" == podman ]]; then
  # Mounting the host's uv cache at the build user's cache path lets `uv sync` link the
  # wheels the host already has instead of downloading ~1 GB per image; the mount is not
  # committed to any layer. (docker build has no --volume; it downloads.)
  cache="${BUILD_UV_CACHE-$(uv cache dir 2>/dev/null || true)}"
  if [[ -n "${cache}" ]]; then
    mkdir -p "${cache}"
    build_args+=(--volume "${cache}:/root/.cache/uv")
  fi
fi

images=("$@")
((${#images[@]})) || images=(scann-serve scann-serve-native export)
for image in "${images[@]}"; do
  if [[ -z "${names[${image}]:-}" ]]; then
    echo "build_images.sh: unknown image ${image}; choose from: ${!names[*]}" >&2
    exit 64
  fi
  echo "== building ${names[${image}]}:${tag} from docker/${image}.Dockerfile (${engine})"
  start=${SECONDS}
  ignore=()
  if [[ "$(basename -- "${engine}")" == podman ]]; then
    # docker (BuildKit) finds <Dockerfile>.dockerignore itself; podman 4 needs to be told.
    ignore=(--ignorefile "${here}/${image}.Dockerfile.dockerignore")
  fi
  "${engine}" build "${build_args[@]}" "${ignore[@]}" -f "${here}/${image}.Dockerfile" \
    -t "${names[${image}]}:${tag}" "${repo}"
  echo "== ${names[${image}]}:${tag} built in $((SECONDS - start)) s"
done

echo "== image sizes"
for image in "${images[@]}"; do
  size="$("${engine}" image inspect --format '{{.Size}}' "${names[${image}]}:${tag}")"
  awk -v n="${names[${image}]}:${tag}" -v s="${size}" 'BEGIN { printf "%-36s %8.2f GB\n", n, s / 1e9 }'
done
# The native image's target is a quarter of the full one (issue 13).
full="$("${engine}" image inspect --format '{{.Size}}' "${names[scann-serve]}:${tag}" 2>/dev/null || true)"
native="$("${engine}" image inspect --format '{{.Size}}' "${names[scann-serve-native]}:${tag}" 2>/dev/null || true)"
if [[ -n "${full}" && -n "${native}" ]]; then
  awk -v f="${full}" -v n="${native}" 'BEGIN { printf "scann-serve-native / scann-serve: %.2f\n", n / f }'
fi

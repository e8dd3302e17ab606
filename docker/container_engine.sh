#!/usr/bin/env bash
# Print the container engine the image targets use: $CONTAINER_ENGINE if set, else podman
# if installed, else docker if its daemon answers. Exit 1 (with the reason on stderr) if
# there is none, so `make images` stops with one sentence instead of a confusing error.
set -euo pipefail

if [[ -n "${CONTAINER_ENGINE:-}" ]]; then
  echo "${CONTAINER_ENGINE}"
  exit 0
fi
if command -v podman >/dev/null 2>&1; then
  echo podman
  exit 0
fi
# A docker client without a reachable daemon cannot build anything.
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  echo docker
  exit 0
fi
echo "no container engine: install podman (apt-get install podman runc; see BUILD.md," \
  "'make images') or start a docker daemon, or set CONTAINER_ENGINE." >&2
exit 1

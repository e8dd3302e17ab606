#!/usr/bin/env bash
# Entrypoint of the export-job image: writes one new version of $MODEL_NAME under the
# mounted model base path, the same $MODEL_BASE_PATH/$MODEL_NAME the servers poll.
#   MODEL_NAME       (default "model")
#   MODEL_BASE_PATH  (default "/models")
#   EXPORT_BINARY       the exporter to exec (default scann-export)
#   ENTRYPOINT_DRY_RUN  set to 1 to print the command line NUL-separated instead of running it
# Container arguments are appended (e.g. --dataset synthetic); a later --output wins.
set -euo pipefail

: "${MODEL_NAME:=model}"
: "${MODEL_BASE_PATH:=/models}"
: "${EXPORT_BINARY:=scann-export}"

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
"${here}/check_cpu.sh"

if [[ ! -d "${MODEL_BASE_PATH}" && "${ENTRYPOINT_DRY_RUN:-0}" != "1" ]]; then
  echo "ERROR: MODEL_BASE_PATH=${MODEL_BASE_PATH} does not exist; mount the model volume" \
    "there (docker run -v HOST_DIR:${MODEL_BASE_PATH}) or set MODEL_BASE_PATH." >&2
  exit 64 # EX_USAGE
fi

argv=(
  "${EXPORT_BINARY}"
  --output "${MODEL_BASE_PATH}/${MODEL_NAME}"
  --model-name "${MODEL_NAME}"
  "$@"
)

if [[ "${ENTRYPOINT_DRY_RUN:-0}" == "1" ]]; then
  printf '%s\0' "${argv[@]}"
  exit 0
fi
exec "${argv[@]}"

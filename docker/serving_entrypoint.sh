#!/usr/bin/env bash
# Entrypoint of both serving images (TF Serving + ScaNN, and scann-serve).
#
# It keeps the contract of the official tensorflow/serving image, so the two images are
# interchangeable and every tensorflow/serving recipe works unchanged:
#   MODEL_NAME       (default "model")    served model name
#   MODEL_BASE_PATH  (default "/models")  the model is read from $MODEL_BASE_PATH/$MODEL_NAME
#   gRPC on 8500, REST on 8501; any container arguments are appended verbatim, so a later
#   --port=... or --model_base_path=... overrides the default (both servers: last flag wins).
# Extra knobs (not in the official image):
#   SERVER_BINARY       the server to exec (each image sets it; default tensorflow_model_server)
#   ENTRYPOINT_DRY_RUN  set to 1 to print the command line NUL-separated instead of running it
set -euo pipefail

: "${MODEL_NAME:=model}"
: "${MODEL_BASE_PATH:=/models}"
: "${SERVER_BINARY:=tensorflow_model_server}"

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
"${here}/check_cpu.sh"

argv=(
  "${SERVER_BINARY}"
  --port=8500
  --rest_api_port=8501
  "--model_name=${MODEL_NAME}"
  "--model_base_path=${MODEL_BASE_PATH}/${MODEL_NAME}"
  "$@"
)

if [[ "${ENTRYPOINT_DRY_RUN:-0}" == "1" ]]; then
  printf '%s\0' "${argv[@]}"
  exit 0
fi
# exec: the server becomes the init's direct child and receives SIGTERM itself.
exec "${argv[@]}"

#!/usr/bin/env bash
# Smoke test: serve a freshly exported model with an image and query it with the client.
#
# Usage: docker/smoke_test.sh [--runner docker|local] [--image IMAGE] [--export-image IMAGE]
#                             [--model-dir DIR] [--model-name NAME] [--query KEY] [-k N]
#                             [--export-arg ARG]... [--timeout SECONDS]
#   --runner docker   (default) run --image (a serving image) and --export-image with Docker
#   --runner local    run docker/serving_entrypoint.sh with the locally installed scann-serve
#                     (SERVER_BINARY) and docker/export_entrypoint.sh: what `make test` does
#   --image           serving image (docker runner), e.g. scann-serving/scann-serve:0.1.0
#   --export-image    export image used to write a fresh model (docker runner)
#   --model-dir DIR   skip the export and serve the versions in DIR (DIR/<version>/), e.g.
#                     the output of `make demo` (out/demo-models)
#   --export-arg ARG  extra scann-export argument (repeat), e.g. --export-arg --epochs=1
#   --model-name      default: retrieval     --query  query key, default: 1     -k  default: 5
# Steps: export a new version -> start the server -> wait until the model is AVAILABLE
# (REST status) -> scann-query over gRPC and a REST :predict -> SIGTERM -> clean exit.
# Needs on the host: scann-query (pip install ./client) and python3.
set -euo pipefail

runner=docker image="" export_image="" model_dir="" model_name=retrieval query=1 k=5 timeout=180
export_args=()
here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"

die() {
  echo "smoke_test: $*" >&2
  exit 1
}
usage() {
  sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 64
}

while (($# > 0)); do
  case "$1" in
    --runner) runner="${2:?}" && shift 2 ;;
    --image) image="${2:?}" && shift 2 ;;
    --export-image) export_image="${2:?}" && shift 2 ;;
    --model-dir) model_dir="${2:?}" && shift 2 ;;
    --model-name) model_name="${2:?}" && shift 2 ;;
    --export-arg) export_args+=("${2:?}") && shift 2 ;;
    --query) query="${2:?}" && shift 2 ;;
    -k) k="${2:?}" && shift 2 ;;
    --timeout) timeout="${2:?}" && shift 2 ;;
    -h | --help) usage ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
case "${runner}" in
  docker) [[ -n "${image}" ]] || die "--runner docker needs --image (a serving image)" ;;
  local) ;;
  *) die "--runner must be docker or local, not '${runner}'" ;;
esac
command -v scann-query >/dev/null || die "scann-query not found; install the client (pip install ./client)"

work="$(mktemp -d)"
server_pid="" container=""
cleanup() {
  if [[ -n "${container}" ]]; then docker rm -f "${container}" >/dev/null 2>&1 || true; fi
  if [[ -n "${server_pid}" ]]; then kill -KILL "${server_pid}" 2>/dev/null || true; fi
  rm -rf "${work}"
}
trap cleanup EXIT

free_port() {
  "${PYTHON}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

export_model() {
  local base="${work}/models"
  mkdir -p "${base}"
  echo "smoke_test: exporting a fresh version of ${model_name} into ${base}"
  if [[ "${runner}" == docker ]]; then
    [[ -n "${export_image}" ]] || die "no --model-dir given: --export-image is needed to export one"
    docker run --rm --user "$(id -u):$(id -g)" -v "${base}:/models" -e "MODEL_NAME=${model_name}" \
      "${export_image}" --dataset synthetic "${export_args[@]}"
  else
    MODEL_BASE_PATH="${base}" MODEL_NAME="${model_name}" "${here}/export_entrypoint.sh" --dataset synthetic "${export_args[@]}"
  fi
  model_dir="${base}/${model_name}"
}

start_server() {
  grpc_port="$(free_port)" rest_port="$(free_port)"
  echo "smoke_test: starting ${image:-local scann-serve} (gRPC ${grpc_port}, REST ${rest_port})"
  if [[ "${runner}" == docker ]]; then
    container="scann-smoke-$$"
    docker run -d --name "${container}" -p "127.0.0.1:${grpc_port}:8500" \
      -p "127.0.0.1:${rest_port}:8501" -v "${model_dir}:/models/${model_name}:ro" \
      -e "MODEL_NAME=${model_name}" "${image}" >/dev/null
  else
    # The entrypoint serves $MODEL_BASE_PATH/$MODEL_NAME: link the model dir under that name.
    mkdir -p "${work}/serve"
    ln -s "${model_dir}" "${work}/serve/${model_name}"
    MODEL_BASE_PATH="${work}/serve" MODEL_NAME="${model_name}" SERVER_BINARY="${SERVER_BINARY:-scann-serve}" \
      "${here}/serving_entrypoint.sh" "--port=${grpc_port}" "--rest_api_port=${rest_port}" \
      >"${work}/server.log" 2>&1 &
    server_pid=$!
  fi
}

server_logs() {
  if [[ -n "${container}" ]]; then docker logs "${container}" 2>&1 | tail -n 40; else tail -n 40 "${work}/server.log"; fi
}

wait_available() {
  local deadline=$((SECONDS + timeout))
  until "${PYTHON}" - "${rest_port}" "${model_name}" <<'PY' 2>/dev/null; do
import json, sys, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/v1/models/{sys.argv[2]}"
states = [v["state"] for v in json.load(urllib.request.urlopen(url, timeout=2))["model_version_status"]]
sys.exit(0 if "AVAILABLE" in states else 1)
PY
    if [[ -n "${server_pid}" ]] && ! kill -0 "${server_pid}" 2>/dev/null; then
      server_logs >&2
      die "the server exited before the model became AVAILABLE"
    fi
    if ((SECONDS > deadline)); then
      server_logs >&2
      die "model ${model_name} not AVAILABLE after ${timeout}s"
    fi
    sleep 1
  done
}

query_model() {
  echo "smoke_test: scann-query --target 127.0.0.1:${grpc_port} --model ${model_name} --query ${query} -k ${k} --json"
  scann-query --target "127.0.0.1:${grpc_port}" --model "${model_name}" --query "${query}" -k "${k}" --json |
    tee "${work}/query.json"
  "${PYTHON}" -c 'import json, sys; json.load(open(sys.argv[1]))' "${work}/query.json" ||
    die "scann-query did not print JSON"
  "${PYTHON}" - "${rest_port}" "${model_name}" "${query}" <<'PY' || die "REST :predict failed"
import json, sys, urllib.request
port, name, query = sys.argv[1:]
body = json.dumps({"instances": [query]}).encode()
request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/{name}:predict", data=body)
predictions = json.load(urllib.request.urlopen(request, timeout=10))["predictions"]
assert len(predictions) == 1 and predictions[0]["identifiers"], predictions
print(f"smoke_test: REST :predict -> {predictions[0]['identifiers'][:3]}...")
PY
}

stop_server() {
  echo "smoke_test: SIGTERM"
  if [[ -n "${container}" ]]; then
    docker stop --time 60 "${container}" >/dev/null
    local code
    code="$(docker inspect --format '{{.State.ExitCode}}' "${container}")"
    if [[ "${code}" != 0 ]]; then
      server_logs >&2
      die "server exited with ${code} after SIGTERM"
    fi
  else
    kill -TERM "${server_pid}"
    local code=0
    wait "${server_pid}" || code=$?
    server_pid=""
    if ((code != 0)); then
      server_logs >&2
      die "server exited with ${code} after SIGTERM"
    fi
  fi
}

if [[ -z "${model_dir}" ]]; then
  export_model
fi
[[ -d "${model_dir}" ]] || die "--model-dir ${model_dir} does not exist"
model_dir="$(cd "${model_dir}" && pwd)"
start_server
wait_available
query_model
stop_server
echo "smoke_test: PASSED (${runner}${image:+ ${image}}, model ${model_name})"

#!/usr/bin/env bash
# The whole journey, offline: export the built-in dataset, serve it, query it, shut down.
#   scripts/demo.sh [MODEL_BASE_PATH]      (make demo runs it inside the workspace venv)
set -euo pipefail

BASE="${1:-out/demo-models}"
MODEL="${DEMO_MODEL_NAME:-retrieval}"
GRPC_PORT="${DEMO_GRPC_PORT:-8500}"
REST_PORT="${DEMO_REST_PORT:-8501}"
LOG="$(mktemp -t scann-serve-demo.XXXXXX.log)"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/4 export: train the two-tower model on the synthetic dataset, build and tune the index"
scann-export --dataset synthetic --output "$BASE" --model-name "$MODEL" --epochs "${DEMO_EPOCHS:-3}"

step "2/4 serve: scann-serve on gRPC :$GRPC_PORT and REST :$REST_PORT (log: $LOG)"
scann-serve --port "$GRPC_PORT" --rest_api_port "$REST_PORT" \
  --model_name "$MODEL" --model_base_path "$(cd "$BASE" && pwd)" >"$LOG" 2>&1 &
SERVER=$!
cleanup() { kill -TERM "$SERVER" 2>/dev/null || true; }
trap cleanup EXIT

step "3/4 query: wait for the model, then ask for the top items of a few users"
scann-query --target "localhost:$GRPC_PORT" --model "$MODEL" --wait 120 status
for user in 1 42 314; do
  echo "-- user $user"
  scann-query --target "localhost:$GRPC_PORT" --model "$MODEL" --query "$user" -k 5
done
echo "-- user 42, only comedies or dramas released in 1980 or later (retrieve_filtered)"
scann-query --target "localhost:$GRPC_PORT" --model "$MODEL" --query 42 -k 5 \
  --allow genre=Comedy genre=Drama --where "year>=1980"
echo "-- the same over REST"
python3 - "$REST_PORT" "$MODEL" <<'PY'
import json, sys, urllib.request
port, model = sys.argv[1], sys.argv[2]
body = json.dumps({"signature_name": "retrieve", "inputs": {"query": ["42"], "k": 3}}).encode()
req = urllib.request.Request(f"http://localhost:{port}/v1/models/{model}:predict", body)
print(json.dumps(json.load(urllib.request.urlopen(req, timeout=30)), indent=1))
PY

step "4/4 shut down: SIGTERM drains in-flight calls and exits 0"
trap - EXIT
kill -TERM "$SERVER"
if wait "$SERVER"; then echo "scann-serve exited cleanly"; else echo "scann-serve exited with $?" >&2; exit 1; fi

#!/usr/bin/env bash
# Link the ScaNN TensorFlow ops into a TF Serving source tree, the way TF Serving documents
# for custom ops (https://www.tensorflow.org/tfx/serving/custom_op): make the op library a
# Bazel target and add it to SUPPORTED_TENSORFLOW_OPS in tensorflow_serving/model_servers/BUILD,
# which is part of server_lib's deps, then `bazel build ...:tensorflow_model_server`.
#
# Usage: link_scann_ops.sh --serving-src DIR --scann-src DIR --scann-version X.Y.Z
#   --serving-src  TF Serving checkout (the devel image has it at /tensorflow-serving)
#   --scann-src    the scann/ directory of google-research at the ScaNN release commit
#   --scann-version  the release that commit must declare (refuses a mismatch: version skew)
# Idempotent: running it twice leaves the trees as after the first run.
set -euo pipefail

readonly SCANN_REPO="com_google_scann"
readonly SCANN_TARGET="@${SCANN_REPO}//scann/scann_ops/cc:scann_ops_static"

die() {
  echo "link_scann_ops: $*" >&2
  exit 1
}

usage() {
  sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 64
}

serving_src="" scann_src="" scann_version=""
while (($# > 0)); do
  case "$1" in
    --serving-src) serving_src="${2:?--serving-src needs a directory}" && shift 2 ;;
    --scann-src) scann_src="${2:?--scann-src needs a directory}" && shift 2 ;;
    --scann-version) scann_version="${2:?--scann-version needs a version}" && shift 2 ;;
    -h | --help) usage ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ -n "${serving_src}" && -n "${scann_src}" && -n "${scann_version}" ]] || usage

servers_build="${serving_src}/tensorflow_serving/model_servers/BUILD"
workspace="${serving_src}/WORKSPACE"
ops_build="${scann_src}/scann/scann_ops/cc/BUILD.bazel"
wrappers_build="${scann_src}/scann/oss_wrappers/BUILD.bazel"
for f in "${servers_build}" "${workspace}" "${ops_build}" "${wrappers_build}"; do
  [[ -f "${f}" ]] || die "${f} not found; is --serving-src a TF Serving checkout and --scann-src google-research's scann/ directory?"
done

check_scann_version() {
  # setup.py (older releases) or pyproject.toml must declare exactly the pinned release.
  local found
  found="$(grep -hoE '\bversion[[:space:]]*=[[:space:]]*"[^"]+"' \
    "${scann_src}/setup.py" "${scann_src}/pyproject.toml" 2>/dev/null | head -n1 |
    sed -E 's/.*"([^"]+)".*/\1/')" || true
  [[ "${found}" == "${scann_version}" ]] ||
    die "--scann-src declares ScaNN version '${found:-none}', expected ${scann_version}; use the google-research commit of the ${scann_version} release (SCANN_GIT_COMMIT, see BUILD.md)"
}

patch_scann_build_files() {
  # TF Serving builds TensorFlow from source, so ScaNN must depend on that TensorFlow
  # (@org_tensorflow) instead of the pip-installed one (@local_config_tf), and must not
  # need pybind11 (only the Python wheel uses it).
  sed -i \
    -e 's#"@local_config_tf//:libtensorflow_framework",#"@org_tensorflow//tensorflow/core:tensorflow_opensource",#' \
    -e '/"@local_config_tf\/\/:tf_header_lib",/d' \
    "${wrappers_build}"
  sed -i -e '/^load("@pybind11_bazel\/\/:build_defs.bzl"/d' -e '/^pybind_library(/,/^)/d' "${ops_build}"
  if ! grep -q 'name = "scann_ops_static"' "${ops_build}"; then
    cat >>"${ops_build}" <<'BUILD'

# Added by link_scann_ops.sh: the ScaNN op registrations and kernels as one static
# library, alwayslink so the registrations survive linking into tensorflow_model_server.
cc_library(
    name = "scann_ops_static",
    alwayslink = 1,
    deps = [
        ":scann_ops",
        ":scann_ops_kernels",
    ],
)
BUILD
  fi
}

register_scann_repository() {
  # local_repository needs a repository boundary marker; ScaNN's own WORKSPACE is fine.
  [[ -f "${scann_src}/WORKSPACE" || -f "${scann_src}/WORKSPACE.bazel" ]] || : >"${scann_src}/WORKSPACE"
  if ! grep -q "name = \"${SCANN_REPO}\"" "${workspace}"; then
    cat >>"${workspace}" <<WORKSPACE

# Added by link_scann_ops.sh: ScaNN ${scann_version} sources.
local_repository(
    name = "${SCANN_REPO}",
    path = "$(cd "${scann_src}" && pwd)",
)
WORKSPACE
  fi
}

add_supported_op() {
  grep -q "${SCANN_TARGET}" "${servers_build}" && return 0
  local n
  n="$(grep -c '^SUPPORTED_TENSORFLOW_OPS = ' "${servers_build}" || true)"
  [[ "${n}" == "1" ]] ||
    die "expected one 'SUPPORTED_TENSORFLOW_OPS = ' line in ${servers_build}, found ${n}; this TF Serving version keeps custom ops elsewhere, update link_scann_ops.sh"
  sed -i "s#^SUPPORTED_TENSORFLOW_OPS = #SUPPORTED_TENSORFLOW_OPS = [\"${SCANN_TARGET}\"] + #" "${servers_build}"
}

check_scann_version
patch_scann_build_files
register_scann_repository
add_supported_op
echo "link_scann_ops: ${SCANN_TARGET} linked into ${servers_build}"

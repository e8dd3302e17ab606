#!/usr/bin/env bash
# Link the ScaNN TensorFlow ops into a TF Serving source tree, the way TF Serving documents
# for custom ops (tensorflow_serving/g3doc/custom_op.md): make the op library a Bazel target
# and add it to SUPPORTED_TENSORFLOW_OPS in tensorflow_serving/model_servers/BUILD, which is
# part of server_lib's deps, then `bazel build ...:tensorflow_model_server`.
#
# Usage: link_scann_ops.sh --serving-src DIR --scann-src DIR --scann-version X.Y.Z
#   --serving-src  TF Serving checkout (the devel image has it at /tensorflow-serving)
#   --scann-src    the scann/ directory of google-research at the ScaNN release commit
#   --scann-version  the release that commit must declare (refuses a mismatch: version skew)
# Idempotent: running it twice leaves the trees as after the first run.
#
# Checked against tensorflow/serving 2.20.0 and ScaNN 1.4.2 (BUILD.md, "What was checked").
set -euo pipefail

readonly SCANN_REPO="com_google_scann"
readonly SCANN_TARGET="@${SCANN_REPO}//scann/scann_ops/cc:scann_ops_static"
# ScaNN's BUILD files name two repositories by their Bzlmod names. TF Serving builds from
# WORKSPACE with Bzlmod off and defines neither, so the ScaNN repository sees them mapped to
# these two, which this script defines.
readonly EIGEN_REPO="scann_eigen"
readonly CNPY_REPO="scann_cnpy"
readonly CNPY_REMOTE="https://github.com/sammymax/cnpy.git"
# The cnpy commit ScaNN 1.4.2 pins (MODULE.bazel); used when the tree names none.
readonly CNPY_DEFAULT_COMMIT="57184ee0db37cac383fc29175950747a46a8b512"
# What TF Serving's own in-tree op (experimental/.../remote_predict) and custom_op.md depend on.
readonly TF_FRAMEWORK="@org_tensorflow//tensorflow/core:framework"
readonly TF_LIB="@org_tensorflow//tensorflow/core:lib"
readonly MARKER="# Added by link_scann_ops.sh"

die() {
  echo "link_scann_ops: $*" >&2
  exit 1
}

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
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
for f in "${servers_build}" "${workspace}" "${ops_build}"; do
  [[ -f "${f}" ]] || die "${f} not found; is --serving-src a TF Serving checkout and --scann-src google-research's scann/ directory?"
done

scann_build_files() {
  find "${scann_src}/scann" -type f \( -name BUILD -o -name BUILD.bazel \) -print0
}

check_scann_version() {
  # ScaNN 1.4.x declares its version in pyproject.toml (`version = "1.4.2"`); only releases
  # without one (setup.py, `version="1.3.2"`) are read from setup.py.
  local manifest found=""
  if [[ -f "${scann_src}/pyproject.toml" ]]; then
    manifest="pyproject.toml"
    found="$(grep -m1 -E '^version[[:space:]]*=' "${scann_src}/${manifest}" || true)"
  elif [[ -f "${scann_src}/setup.py" ]]; then
    manifest="setup.py"
    found="$(grep -m1 -oE '\bversion[[:space:]]*=[[:space:]]*"[^"]+"' "${scann_src}/${manifest}" || true)"
  else
    die "${scann_src} has neither pyproject.toml nor setup.py; is --scann-src google-research's scann/ directory?"
  fi
  found="$(sed -nE 's/.*"([^"]+)".*/\1/p' <<<"${found}")"
  [[ "${found}" == "${scann_version}" ]] ||
    die "--scann-src ${manifest} declares ScaNN version '${found:-none}', expected ${scann_version}; use the google-research commit of the ${scann_version} release (SCANN_GIT_COMMIT, see BUILD.md)"
}

patch_scann_build_files() {
  # TF Serving builds TensorFlow from source, so ScaNN must depend on that TensorFlow
  # (@org_tensorflow) instead of the pip wheel's (@local_config_tf, made by ScaNN's
  # tf_configure), and must not need pybind11 (only the Python wheel uses it).
  scann_build_files | xargs -0 -r sed -i \
    -e "s#\"@local_config_tf//:libtensorflow_framework\"#\"${TF_FRAMEWORK}\"#g" \
    -e "s#\"@local_config_tf//:tf_header_lib\"#\"${TF_LIB}\"#g"
  local left
  left="$(scann_build_files | xargs -0 -r grep -l '@local_config_tf' || true)"
  [[ -z "${left}" ]] ||
    die "these ScaNN BUILD files name @local_config_tf targets other than libtensorflow_framework and tf_header_lib: ${left//$'\n'/ }; map them in link_scann_ops.sh"
  sed -i -e '/^load("@pybind11_bazel\/\/:build_defs.bzl"/d' -e '/^pybind_library(/,/^)/d' "${ops_build}"
  grep -q 'name = "scann_ops_static"' "${ops_build}" && return 0
  cat >>"${ops_build}" <<BUILD

${MARKER}: the ScaNN op registrations and kernels as one static
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
}

cnpy_commit() {
  # The cnpy commit the ScaNN tree itself pins (MODULE.bazel in 1.4.x, WORKSPACE before).
  local f commit=""
  for f in "${scann_src}/MODULE.bazel" "${scann_src}/WORKSPACE"; do
    [[ -f "${f}" ]] || continue
    commit="$(sed -n '/name[[:space:]]*=[[:space:]]*"cnpy"/,/^)/p' "${f}" | grep -oE '[0-9a-f]{40}' | head -n1 || true)"
    [[ -n "${commit}" ]] && break
  done
  echo "${commit:-${CNPY_DEFAULT_COMMIT}}"
}

write_eigen_alias_repo() {
  # TensorFlow's WORKSPACE provides Eigen as @eigen_archive (target eigen3); ScaNN's
  # threadpool names it "@eigen" (= @eigen//:eigen). A one-alias repository bridges the two,
  # so ScaNN compiles against the same Eigen as TensorFlow's kernels.
  local dir="$1"
  mkdir -p "${dir}"
  echo "workspace(name = \"${EIGEN_REPO}\")" >"${dir}/WORKSPACE"
  cat >"${dir}/BUILD.bazel" <<BUILD
${MARKER}: ScaNN's "@eigen" is TensorFlow's @eigen_archive.
alias(
    name = "eigen",
    actual = "@eigen_archive//:eigen3",
    visibility = ["//visibility:public"],
)
BUILD
}

register_scann_repository() {
  # local_repository needs a repository boundary marker; ScaNN's own WORKSPACE is fine.
  [[ -f "${scann_src}/WORKSPACE" || -f "${scann_src}/WORKSPACE.bazel" ]] || : >"${scann_src}/WORKSPACE"
  local eigen_dir
  eigen_dir="$(cd "${serving_src}" && pwd)/third_party/${EIGEN_REPO}"
  write_eigen_alias_repo "${eigen_dir}"
  grep -q "name = \"${SCANN_REPO}\"" "${workspace}" && return 0
  # Appended after TF's workspace macros, and defining only new names: TF's abseil, protobuf
  # and highway stay the only ones in the binary (BUILD.md says why).
  cat >>"${workspace}" <<WORKSPACE

${MARKER}: ScaNN ${scann_version} sources, and the two repositories
# its BUILD files name that TF Serving's WORKSPACE (Bzlmod off) does not define.
load("@bazel_tools//tools/build_defs/repo:git.bzl", scann_git_repository = "git_repository")

local_repository(
    name = "${EIGEN_REPO}",
    path = "${eigen_dir}",
)

# Fetched at build time (a pinned commit; the devel build downloads all its dependencies).
scann_git_repository(
    name = "${CNPY_REPO}",
    commit = "$(cnpy_commit)",
    remote = "${CNPY_REMOTE}",
)

local_repository(
    name = "${SCANN_REPO}",
    path = "$(cd "${scann_src}" && pwd)",
    repo_mapping = {
        "@cnpy": "@${CNPY_REPO}",
        "@eigen": "@${EIGEN_REPO}",
    },
)
WORKSPACE
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

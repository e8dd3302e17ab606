#!/usr/bin/env bash
# Make the base images that docker/scann-serve.Dockerfile and docker/export.Dockerfile name
# in their FROM lines, on a machine that cannot pull them (no registry, air-gapped builds).
#
#   python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE}  a Debian root filesystem from debootstrap
#                                                    (same release, its python3 of the same
#                                                    minor version), imported under that name
#   ghcr.io/astral-sh/uv:${UV_VERSION}               the uv binary from PyPI's uv wheel of the
#                                                    same version, in an otherwise empty image
#
# The names and versions are read from the Dockerfiles' ARG defaults, so the Dockerfiles stay
# unchanged and build the same way on a machine that can pull the official images.
# For each base, in order: an image of that name already present is kept (a cache: delete it
# to rebuild); else the official image is pulled; only if that fails is the base made here.
#
# Usage: docker/build_local_bases.sh [--ca-bundle FILE] [--no-pull] [--force]
#   --ca-bundle FILE  add FILE (PEM, one or more certificates) to the local Python base's
#                     trust store and point SSL_CERT_FILE at it, for sites whose TLS goes
#                     through their own CA. Default: $SSL_CERT_FILE when that file exists.
#   --no-ca-bundle    add none.
#   --no-pull         do not try the registry (air-gapped; saves the pull timeout).
#   --force           remake the local bases even if images of those names exist.
# Environment: CONTAINER_ENGINE (default: docker/container_engine.sh), PULL_TIMEOUT_S (60),
#   DEBIAN_MIRROR (http://deb.debian.org/debian). Needs root (debootstrap, chroot).
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
ca_bundle="${SSL_CERT_FILE:-}"
pull=1
force=0
while (($#)); do
  case "$1" in
    --ca-bundle) ca_bundle="$2"; shift 2 ;;
    --no-ca-bundle) ca_bundle=""; shift ;;
    --no-pull) pull=0; shift ;;
    --force) force=1; shift ;;
    *) echo "build_local_bases.sh: unknown argument $1 (see the usage at the top of $0)" >&2; exit 64 ;;
  esac
done
if [[ -n "${ca_bundle}" && ! -r "${ca_bundle}" ]]; then
  echo "build_local_bases.sh: --ca-bundle ${ca_bundle} is not a readable file;" \
    "pass a PEM file or --no-ca-bundle." >&2
  exit 64
fi
engine="${CONTAINER_ENGINE:-$("${here}/container_engine.sh")}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

# The one ARG default the Dockerfiles share; refuse if they disagree, since one base could
# not serve both.
arg_default() {
  local name="$1" value="" file v
  for file in "${here}/scann-serve.Dockerfile" "${here}/export.Dockerfile"; do
    v="$(sed -n "s/^ARG ${name}=//p" "${file}")"
    if [[ -z "${v}" || (-n "${value}" && "${v}" != "${value}") ]]; then
      echo "build_local_bases.sh: ARG ${name} default missing or different in ${file}" >&2
      exit 1
    fi
    value="${v}"
  done
  echo "${value}"
}
python_version="$(arg_default PYTHON_VERSION)"
debian_release="$(arg_default DEBIAN_RELEASE)"
uv_version="$(arg_default UV_VERSION)"
# Fully qualified, as an engine resolves the Dockerfiles' short name `python:...`.
python_image="docker.io/library/python:${python_version}-slim-${debian_release}"
uv_image="ghcr.io/astral-sh/uv:${uv_version}"

have_image() { "${engine}" image inspect "$1" >/dev/null 2>&1; }

# 0 when the image is present (kept, or pulled now); 1 when it has to be made here.
present_or_pulled() {
  local image="$1"
  if ((!force)) && have_image "${image}"; then
    echo "== ${image}: present, kept (--force remakes local bases)"
    return 0
  fi
  if ((force)) && have_image "${image}" \
    && [[ "$("${engine}" image inspect --format '{{ index .Config.Labels "io.scann-serving.local-base" }}' "${image}")" != "true" ]]; then
    echo "== ${image}: the official image is present; --force remakes only local bases"
    return 0
  fi
  if ((pull)) && timeout "${PULL_TIMEOUT_S:-60}" "${engine}" pull -q "${image}" >/dev/null 2>&1; then
    echo "== ${image}: pulled (official)"
    return 0
  fi
  return 1
}

workdir="$(mktemp -d)"
trap 'rm -rf "${workdir}"' EXIT

make_python_base() {
  local rootfs="${workdir}/rootfs" got
  echo "== ${python_image}: making it locally (debootstrap ${debian_release}, ~1-2 min)"
  if [[ "$(id -u)" != 0 ]] || ! command -v debootstrap >/dev/null 2>&1; then
    echo "build_local_bases.sh: making ${python_image} needs root and debootstrap" \
      "(apt-get install debootstrap), or registry access to pull it." >&2
    exit 1
  fi
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "${debian_release}" "${rootfs}" "${mirror}" >"${workdir}/debootstrap.log" 2>&1 \
    || { tail -20 "${workdir}/debootstrap.log" >&2; exit 1; }
  got="$(chroot "${rootfs}" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  if [[ "${got}" != "${python_version}" ]]; then
    echo "build_local_bases.sh: Debian ${debian_release} has Python ${got}, the Dockerfiles" \
      "ask for ${python_version}; change PYTHON_VERSION or DEBIAN_RELEASE together." >&2
    exit 1
  fi
  # The same package sources as the official image, so apt-get in a build sees the same
  # (security-updated) package versions.
  rm -f "${rootfs}/etc/apt/sources.list"
  cat >"${rootfs}/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: ${mirror}
Suites: ${debian_release} ${debian_release}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: ${debian_release}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # Like the official image: apt keeps no package caches (*.bin, ~80 MB) or downloaded
  # .debs, so `apt-get install` in a Dockerfile leaves only what it installed in the layer.
  cat >"${rootfs}/etc/apt/apt.conf.d/90-image-no-cache" <<'EOF'
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
EOF
  if [[ -n "${ca_bundle}" ]]; then
    cp "${ca_bundle}" "${rootfs}/usr/local/share/ca-certificates/site-ca-bundle.crt"
    chroot "${rootfs}" update-ca-certificates >/dev/null 2>&1
  fi
  # The official image's `python`/`python3` live in /usr/local/bin; give the same names.
  ln -sf /usr/bin/python3 "${rootfs}/usr/local/bin/python3"
  ln -sf /usr/bin/python3 "${rootfs}/usr/local/bin/python"
  rm -rf "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/var/cache/apt/*.bin \
    "${rootfs}"/var/cache/apt/archives/*.deb "${rootfs}"/usr/share/doc/* \
    "${rootfs}"/usr/share/man/* "${rootfs}"/var/log/*.log
  # SSL_CERT_FILE: uv and pip read it, so downloads in a build trust the site CA too.
  tar -C "${rootfs}" --numeric-owner -c . | "${engine}" import \
    --change "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV LANG=C.UTF-8" \
    --change "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
    --change "LABEL io.scann-serving.local-base=true" \
    --change "LABEL io.scann-serving.local-base.source=debootstrap-${debian_release}-python${got}" \
    --change 'CMD ["python3"]' \
    - "${python_image}" >/dev/null
  echo "== ${python_image}: made locally (Debian ${debian_release}, Python ${got})"
}

make_uv_base() {
  local wheel_dir="${workdir}/uv-wheel" tree="${workdir}/uv-tree"
  echo "== ${uv_image}: making it locally from PyPI's uv==${uv_version} wheel"
  mkdir -p "${wheel_dir}" "${tree}"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "${wheel_dir}" "uv==${uv_version}"
  python3 - "${wheel_dir}" "${tree}" <<'EOF'
import pathlib, sys, zipfile

wheel = next(pathlib.Path(sys.argv[1]).glob("uv-*.whl"))
with zipfile.ZipFile(wheel) as zf:
    for name in zf.namelist():
        # The wheel carries the binaries as <dist>.data/scripts/{uv,uvx}.
        if "/scripts/" in name and name.rsplit("/", 1)[1] in ("uv", "uvx"):
            target = pathlib.Path(sys.argv[2]) / name.rsplit("/", 1)[1]
            target.write_bytes(zf.read(name))
            target.chmod(0o755)
EOF
  "${tree}/uv" --version >/dev/null
  tar -C "${tree}" --numeric-owner -c uv uvx | "${engine}" import \
    --change "LABEL io.scann-serving.local-base=true" \
    --change "LABEL io.scann-serving.local-base.source=pypi-uv-${uv_version}" \
    --change 'ENTRYPOINT ["/uv"]' \
    - "${uv_image}" >/dev/null
  echo "== ${uv_image}: made locally"
}

present_or_pulled "${uv_image}" || make_uv_base
present_or_pulled "${python_image}" || make_python_base

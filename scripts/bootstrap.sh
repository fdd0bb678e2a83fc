#!/usr/bin/env bash
# Set up bootserver on a fresh Debian 12 machine (as root), then serve or test.
#
#   scripts/bootstrap.sh serve [SERVE OPTIONS...]   install what serving needs, then serve ./profiles
#   scripts/bootstrap.sh test  [PYTEST OPTIONS...]  install everything, start PostgreSQL, run the tests
#   scripts/bootstrap.sh install                    install everything (serve + test), nothing else
#
# serve installs the Debian packages in scripts/apt-serve.txt and a virtualenv in .venv with the
# package alone; test and install add scripts/apt-packages.txt (QEMU, OVMF, PostgreSQL, Chromium,
# ...) and the test dependencies. serve unpacks the arm64 GRUB of scripts/arm64-serve.txt into
# /opt/bootserver-arm64; test and install add scripts/arm64-packages.txt (the lab builds its arm64
# test OS, real Ignition included, from them). Safe to run again: it only
# installs what is missing. BOOTSTRAP_PLAN=1 prints what an action would install and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
action=${1:-install}
[ $# -gt 0 ] && shift

need_root() {
  if [ "$(id -u)" != 0 ]; then echo "bootstrap: run as root (apt packages, network namespaces)" >&2; exit 2; fi
}

apt_list() {  # the packages named in the given list files, without comments
  cat "$@" | grep -v '^\s*#' | grep -v '^\s*$' | sort -u
}

install_apt() {
  mapfile -t pkgs < <(apt_list "$@")
  if [ -n "${BOOTSTRAP_PLAN:-}" ]; then echo "apt: ${pkgs[*]}"; return; fi
  local missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
    apt-get update -q
    # tftpd-hpa is only a benchmark/test peer: keep its service from starting on the host
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    rm -f /usr/sbin/policy-rc.d
  fi
}

# arm64 machines: Debian's arm64 GRUB (and the lab's arm64 test OS) come from arm64 packages that
# an amd64 host cannot install, so they are downloaded and unpacked into ARM64_ROOT.
ARM64_ROOT=/opt/bootserver-arm64
install_arm64() {  # $@: the arm64 list files (serve's first); a tree that already holds them is kept
  mapfile -t pkgs < <(cat "$@" | sed -e 's/#.*//' -e 's/\s//g' | grep -v '^$')
  if [ -n "${BOOTSTRAP_PLAN:-}" ]; then echo "arm64: ${pkgs[*]}"; return; fi
  local have; have=$(cat "$ARM64_ROOT/.packages" 2>/dev/null || true)
  if [[ "$have" == "${pkgs[*]}" || "$have" == "${pkgs[*]} "* ]]; then return; fi  # serve after test: kept
  if ! dpkg --print-foreign-architectures | grep -qx arm64 || ! apt-cache show grub-efi-arm64-signed:arm64 >/dev/null 2>&1; then
    echo "bootstrap: adding the arm64 architecture to apt (for apt-get download only)" >&2
    dpkg --add-architecture arm64
    apt-get update -q
  fi
  local tmp; tmp=$(mktemp -d); chmod 755 "$tmp"; chown _apt "$tmp" 2>/dev/null || true  # apt downloads as _apt
  local wanted=("${pkgs[@]/%/:arm64}")
  for p in "${pkgs[@]}"; do  # a metapackage's versioned dependency (linux-image-arm64 -> linux-image-6.1...)
    wanted+=($(apt-cache depends "$p:arm64" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\).*/\1/p'))
  done
  echo "bootstrap: downloading arm64 packages: ${wanted[*]}" >&2
  (cd "$tmp" && apt-get download -q "${wanted[@]}")
  rm -rf "$ARM64_ROOT.new" && mkdir -p "$ARM64_ROOT.new"
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$ARM64_ROOT.new"; done
  echo "${pkgs[*]}" > "$ARM64_ROOT.new/.packages"
  rm -rf "$ARM64_ROOT" && mv "$ARM64_ROOT.new" "$ARM64_ROOT" && rm -rf "$tmp"
}

install_venv() {  # $1: the pip spec ('.' to serve, '.[test]' to test)
  if [ -n "${BOOTSTRAP_PLAN:-}" ]; then echo "pip: $1"; return; fi
  if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv .venv
  fi
  .venv/bin/pip install -q --disable-pip-version-check -e "$1"
}

SERVE=scripts/apt-serve.txt
ALL="scripts/apt-serve.txt scripts/apt-packages.txt"
ARM64_SERVE=scripts/arm64-serve.txt
ARM64_ALL="scripts/arm64-serve.txt scripts/arm64-packages.txt"

case "$action" in
  install)
    need_root; install_apt $ALL; install_arm64 $ARM64_ALL; install_venv '.[test]' ;;
  serve)
    need_root; install_apt $SERVE; install_arm64 $ARM64_SERVE; install_venv '.'
    [ -n "${BOOTSTRAP_PLAN:-}" ] && exit 0
    exec .venv/bin/bootserver serve "$@" ;;
  test)
    need_root; install_apt $ALL; install_arm64 $ARM64_ALL; install_venv '.[test]'
    [ -n "${BOOTSTRAP_PLAN:-}" ] && exit 0
    if [ -x scripts/start-postgres.sh ]; then
      BOOTSERVER_TEST_PG_URL=$(scripts/start-postgres.sh)
      export BOOTSERVER_TEST_PG_URL
    fi
    exec .venv/bin/pytest "$@" ;;
  *)
    echo "usage: scripts/bootstrap.sh install | serve [OPTIONS] | test [PYTEST OPTIONS]" >&2; exit 2 ;;
esac

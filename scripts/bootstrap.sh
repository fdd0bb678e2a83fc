#!/usr/bin/env bash
# Set up bootserver on a fresh Debian 12 machine (as root), then serve or test.
#
#   scripts/bootstrap.sh serve [SERVE OPTIONS...]   install what serving needs, then serve ./profiles
#   scripts/bootstrap.sh test  [PYTEST OPTIONS...]  install everything, start PostgreSQL, run the tests
#   scripts/bootstrap.sh install                    install everything (serve + test), nothing else
#
# serve installs the Debian packages in scripts/apt-serve.txt and a virtualenv in .venv with the
# package alone; test and install add scripts/apt-packages.txt (QEMU, OVMF, PostgreSQL, Chromium,
# ...) and the test dependencies. Safe to run again: it only installs what is missing.
# BOOTSTRAP_PLAN=1 prints what an action would install (apt packages, pip spec) and stops.
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

install_venv() {  # $1: the pip spec ('.' to serve, '.[test]' to test)
  if [ -n "${BOOTSTRAP_PLAN:-}" ]; then echo "pip: $1"; return; fi
  if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv .venv
  fi
  .venv/bin/pip install -q --disable-pip-version-check -e "$1"
}

SERVE=scripts/apt-serve.txt
ALL="scripts/apt-serve.txt scripts/apt-packages.txt"

case "$action" in
  install)
    need_root; install_apt $ALL; install_venv '.[test]' ;;
  serve)
    need_root; install_apt $SERVE; install_venv '.'
    [ -n "${BOOTSTRAP_PLAN:-}" ] && exit 0
    exec .venv/bin/bootserver serve "$@" ;;
  test)
    need_root; install_apt $ALL; install_venv '.[test]'
    [ -n "${BOOTSTRAP_PLAN:-}" ] && exit 0
    if [ -x scripts/start-postgres.sh ]; then
      BOOTSERVER_TEST_PG_URL=$(scripts/start-postgres.sh)
      export BOOTSERVER_TEST_PG_URL
    fi
    exec .venv/bin/pytest "$@" ;;
  *)
    echo "usage: scripts/bootstrap.sh install | serve [OPTIONS] | test [PYTEST OPTIONS]" >&2; exit 2 ;;
esac

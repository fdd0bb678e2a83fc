#!/usr/bin/env bash
# Set up bootserver on a fresh Debian 12 machine (as root), then serve or test.
#
#   scripts/bootstrap.sh serve [SERVE OPTIONS...]   install, then run the server on ./profiles
#   scripts/bootstrap.sh test  [PYTEST OPTIONS...]  install, start PostgreSQL, run the whole test suite
#   scripts/bootstrap.sh install                    install only
#
# Installs the Debian packages in scripts/apt-packages.txt and a virtualenv in .venv with the
# package and its test dependencies. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
action=${1:-install}
[ $# -gt 0 ] && shift

need_root() {
  if [ "$(id -u)" != 0 ]; then echo "bootstrap: run as root (apt packages, network namespaces)" >&2; exit 2; fi
}

install_apt() {
  mapfile -t pkgs < <(grep -v '^\s*#' scripts/apt-packages.txt | grep -v '^\s*$')
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

install_venv() {
  if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv .venv
  fi
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
}

case "$action" in
  install)
    need_root; install_apt; install_venv ;;
  serve)
    need_root; install_apt; install_venv
    exec .venv/bin/bootserver serve "$@" ;;
  test)
    need_root; install_apt; install_venv
    if [ -x scripts/start-postgres.sh ]; then
      BOOTSERVER_TEST_PG_URL=$(scripts/start-postgres.sh)
      export BOOTSERVER_TEST_PG_URL
    fi
    exec .venv/bin/pytest "$@" ;;
  *)
    echo "usage: scripts/bootstrap.sh install | serve [OPTIONS] | test [PYTEST OPTIONS]" >&2; exit 2 ;;
esac

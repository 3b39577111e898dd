#!/usr/bin/env bash
# Installs what the authority's PostgreSQL tests and benchmark need on a fresh Debian machine:
# the PostgreSQL server binaries (initdb, pg_ctl, postgres in /usr/lib/postgresql/<version>/bin)
# and openssl (the tests check certificates with it). The tests start their own private server
# (scripts/temp-postgres.ts); the cluster Debian's package may create is stopped and not used.
# Run as root, non-interactive. Idempotent.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "ci-postgres: must run as root (it installs Debian packages)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive

have_initdb() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }

if ! have_initdb || ! command -v openssl >/dev/null; then
  apt-get update -qq
  # Do not start the packaged cluster: the tests bring their own server.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -qq --no-install-recommends postgresql openssl >/dev/null
fi

if ! have_initdb; then
  echo "ci-postgres: postgresql is installed but no /usr/lib/postgresql/*/bin/initdb was found" >&2
  exit 1
fi
# initdb refuses root; the tests run it as this user (created by the package), or as nobody.
id postgres >/dev/null 2>&1 || echo "ci-postgres: note: no postgres user; the tests will use nobody"
echo "ci-postgres: $(ls -d /usr/lib/postgresql/*/bin | tail -1) ready"

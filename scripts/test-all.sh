#!/usr/bin/env bash
# Runs every kasane test on a Debian machine: installs what the tests need (Debian packages when
# run as root, npm packages from package-lock.json), builds, then runs the whole suite.
# This is the README's test command; CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(iproute2 iputils-ping nftables openssl tcpdump iperf3 python3 strongswan-pki softhsm2)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${DEBIAN_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "test-all: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # PostgreSQL server binaries for the authority's PostgreSQL suite (the tests start their own server).
  bash scripts/ci-postgres.sh
else
  echo "test-all: not root: skipping Debian packages (${DEBIAN_PACKAGES[*]} postgresql); tests that need root or them will skip"
fi

npm ci --no-audit --no-fund
npm test

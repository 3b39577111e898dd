#!/usr/bin/env bash
# The machine set-up that `npm install` and `kasane demo` need, for the README's first command:
#
#   bash scripts/setup.sh && npm install && npx kasane demo
#
# Checks that the running Node.js is a supported LTS line, and installs the Debian packages for the
# native builds (python3, make, g++) and the demo (iproute2, iputils-ping, nftables) when run as root. Not
# as root, it says in one line what to install and exits 1 before doing anything.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/debian-packages.sh
source scripts/debian-packages.sh

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup: Node.js with npm is not installed; install a Node.js LTS line: $(sed -n 's/.*"node": "\(.*\)".*/\1/p' package.json | head -1)" >&2
  exit 1
fi
node scripts/supported-node.mjs
ensure_debian_packages setup "${KASANE_BUILD_PACKAGES[@]}" "${KASANE_DEMO_PACKAGES[@]}"
echo "setup: ready (node $(node --version)); next: npm install"

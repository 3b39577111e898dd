#!/usr/bin/env bash
# Runs every kasane test on a Debian machine: installs what the tests need (Debian packages when
# run as root, npm packages from package-lock.json), builds, then runs the whole suite.
# This is the README's test command; CI (.ci/run) runs exactly this.
#
# Node.js: the tests run on the machine's node when it is a supported LTS line (package.json
# "engines"); otherwise on the newest supported line, taken from the npm registry (the
# node-linux-<arch> package: node and its headers) into .cache/node/. KASANE_TEST_NODE=<major>
# runs them on that line instead, whatever the machine has.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/debian-packages.sh
source scripts/debian-packages.sh

# Beyond the build and the demo: captures, traffic, certificate checks, the PKCS#11 token, the
# strongSwan interop's pki tool, the fresh-Debian install test, what node's own binaries link, and
# the browser the web console's tests drive (Debian's Chromium; playwright-core never downloads one).
TEST_PACKAGES=(openssl tcpdump iperf3 strongswan-pki softhsm2 debootstrap libatomic1 chromium)
ALL_PACKAGES=("${KASANE_BUILD_PACKAGES[@]}" "${KASANE_DEMO_PACKAGES[@]}" "${TEST_PACKAGES[@]}")

if [ "$(id -u)" = 0 ]; then
  ensure_debian_packages test-all "${ALL_PACKAGES[@]}"
  # PostgreSQL server binaries for the authority's PostgreSQL suite (the tests start their own server).
  bash scripts/ci-postgres.sh
else
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ALL_PACKAGES+=(postgresql)
  ensure_debian_packages test-all "${ALL_PACKAGES[@]}"
  echo "test-all: not root: the tests that need root (network namespaces, TUN devices) will skip"
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "test-all: Node.js with npm is not installed; install a Node.js LTS line: $(sed -n 's/.*"node": "\(.*\)".*/\1/p' package.json | head -1)" >&2
  exit 1
fi

# A supported node on PATH (with its headers as npm's nodedir), from the npm registry if need be.
use_node_line() {
  local line=$1 arch version dir tmp
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64) arch=arm64 ;;
    *) echo "test-all: no node-linux package for $(uname -m)" >&2; exit 1 ;;
  esac
  version=$(npm view "node-linux-$arch@$line" version --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const n=(v)=>v.split(".").map(Number);console.log([].concat(JSON.parse(s)).sort((a,b)=>n(a)[0]-n(b)[0]||n(a)[1]-n(b)[1]||n(a)[2]-n(b)[2]).pop())})')
  dir="$PWD/.cache/node/$version"
  if [ ! -x "$dir/bin/node" ] || [ ! -f "$dir/include/node/node_version.h" ]; then
    echo "test-all: fetching node $version (node-linux-$arch) from the npm registry"
    tmp=$(mktemp -d)
    npm pack --silent --pack-destination "$tmp" "node-linux-$arch@$version" >/dev/null
    mkdir -p "$tmp/node"
    tar -xzf "$tmp"/node-linux-"$arch"-*.tgz -C "$tmp/node" --strip-components=1
    [ -f "$tmp/node/include/node/node_version.h" ] || { echo "test-all: node-linux-$arch@$version has no include/node" >&2; exit 1; }
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    mv "$tmp/node" "$dir"
    rm -rf "$tmp"
  fi
  export PATH="$dir/bin:$PATH"
  # Native builds against this node's headers, whatever nodedir npm is configured with.
  export npm_config_nodedir="$dir"
}

if [ -n "${KASANE_TEST_NODE:-}" ]; then
  use_node_line "$KASANE_TEST_NODE"
elif ! node scripts/supported-node.mjs 2>/dev/null; then
  echo "test-all: this machine's node $(node --version) is not a supported line ($(node scripts/supported-node.mjs --lines))"
  use_node_line "$(node scripts/supported-node.mjs --newest)"
fi
node scripts/supported-node.mjs
echo "test-all: testing on node $(node --version) with npm $(npm --version)"

npm ci --no-audit --no-fund
npm test

# Sourced by scripts/setup.sh and scripts/test-all.sh: the Debian packages kasane needs, and the
# one way both install them.
#
# ensure_debian_packages WHO PACKAGE...
#   As root: installs the missing ones with apt-get (non-interactive, no recommends).
#   Otherwise: prints, on one line, the command that installs the missing ones, and exits 1.

# What `npm install` needs to build the native parts (kasane's fast path, pkcs11js, and
# better-sqlite3's build step) and what `kasane demo` runs (nftables: the gateways' forwarding guard).
KASANE_BUILD_PACKAGES=(python3 make g++)
KASANE_DEMO_PACKAGES=(iproute2 iputils-ping nftables)

missing_debian_packages() {
  local p
  for p in "$@"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || printf '%s\n' "$p"
  done
}

ensure_debian_packages() {
  local who=$1
  shift
  if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    echo "$who: not a Debian system: make sure the equivalents of these Debian packages are installed: $*" >&2
    return 0
  fi
  local missing
  mapfile -t missing < <(missing_debian_packages "$@")
  [ ${#missing[@]} -gt 0 ] || return 0
  if [ "$(id -u)" != 0 ]; then
    echo "$who: missing Debian packages; as root, run: apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "$who: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

#!/usr/bin/env bash
# A newcomer's machine, built for real: a fresh Debian root (debootstrap --variant=minbase, from this
# machine's own Debian mirror) with only git and Node.js added the usual way (the official
# linux-<arch> build of node unpacked in /usr/local, with the npm it ships), a clone of this
# repository, and a command run in it as root. Used by test/install/fresh-debian.test.ts.
#
#   bash test/install/fresh-debian.sh SUITE NODE_LINE COMMAND
#     SUITE      a Debian codename (bookworm, trixie)
#     NODE_LINE  a Node.js major line (22, 24, 26): its newest release from the npm registry
#     COMMAND    run as root in the clone (/srv/kasane), after two checks as an unprivileged user
#                (setup.sh and test-all.sh must each refuse with one line naming what to install)
#
# The root is built and used inside a private mount namespace and PID namespace (unshare), on a
# tmpfs of that namespace: the root, every mount in it (proc, sys, dev, run, and the network
# namespaces the demo makes) and every process started in it end with it, whatever happens. The
# work directory on the host (node, npm, a bare clone) is removed on exit, never across a mount
# point. KASANE_DEBIAN_MIRROR overrides the mirror taken from /etc/apt.
set -euo pipefail

log() { echo "fresh-debian[${SUITE:-?}]: $*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# ---- inside the namespaces: build the root, add git and node, run the checks and COMMAND ----
if [ "${1:-}" = --inside ]; then
  shift
  SUITE=$1 ROOT=$2 MIRROR=$3 WORK=$4 COMMAND=$5
  t0=$SECONDS
  # The root lives in memory, in this namespace: it goes with it, with no tree to delete (and, as
  # on a real machine, / is a mount point, which `ip netns exec` and `ip -n` need).
  mkdir -p "$ROOT"
  mount -t tmpfs -o mode=0755,size=6g tmpfs "$ROOT"
  log "debootstrap --variant=minbase $SUITE from $MIRROR"
  debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
    die "debootstrap: $(tail -5 "$WORK/debootstrap.log"; tail -5 "$ROOT/debootstrap/debootstrap.log" 2>/dev/null)"
  log "debootstrap done in $((SECONDS - t0)) s"

  mount -t proc proc "$ROOT/proc"
  mount -t sysfs sysfs "$ROOT/sys"
  mount --rbind /dev "$ROOT/dev" # /dev/net/tun for the gateways
  mount -t tmpfs tmpfs "$ROOT/run" # /run/netns for the demo's namespaces
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  # This machine's way out to the registries: its CA for TLS interception, if it has one.
  ca_env=()
  if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
    cp "$NODE_EXTRA_CA_CERTS" "$ROOT/etc/host-extra-ca.crt"
    ca_env=(NODE_EXTRA_CA_CERTS=/etc/host-extra-ca.crt)
  fi
  proxy_env=()
  for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY npm_config_registry; do
    [ -z "${!v:-}" ] || proxy_env+=("$v=${!v}")
  done
  env_root=(/usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${ca_env[@]}" "${proxy_env[@]}")
  env_nobody=(/usr/bin/env -i HOME=/tmp LANG=C.UTF-8 TERM=dumb PATH=/usr/local/bin:/usr/bin:/bin "${ca_env[@]}" "${proxy_env[@]}")

  t1=$SECONDS
  # git, as a newcomer would install it; node as the official build is installed (unpacked in
  # /usr/local) plus the one library that build links and minbase lacks (NodeSource's package
  # depends on it too).
  chroot "$ROOT" "${env_root[@]}" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git libatomic1 >/dev/null' ||
    die "apt-get install git libatomic1"
  tar -xzf "$WORK/node.tgz" -C "$ROOT/usr/local" --strip-components=1 package/bin package/include package/share
  mkdir -p "$ROOT/usr/local/lib/node_modules/npm"
  tar -xzf "$WORK/npm.tgz" -C "$ROOT/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$ROOT/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$ROOT/usr/local/bin/npx"
  mkdir -p "$ROOT/var/tmp/src"
  mount --bind "$WORK/kasane.git" "$ROOT/var/tmp/src"
  chroot "$ROOT" "${env_root[@]}" git clone -q /var/tmp/src /srv/kasane || die "git clone"
  log "git $(chroot "$ROOT" git --version | cut -d' ' -f3), node $(chroot "$ROOT" "${env_root[@]}" node --version), npm $(chroot "$ROOT" "${env_root[@]}" npm --version), clone of $(chroot "$ROOT" git -C /srv/kasane rev-parse --short HEAD) ready in $((SECONDS - t1)) s"

  # Not root: each command names what to install, in one line, and does nothing else.
  for script in setup.sh test-all.sh; do
    set +e
    out=$(chroot --userspec=nobody:nogroup "$ROOT" "${env_nobody[@]}" sh -c "cd /srv/kasane && bash scripts/$script" 2>&1)
    rc=$?
    set -e
    log "as nobody, scripts/$script said: $out"
    [ $rc -ne 0 ] || die "scripts/$script as nobody on a fresh machine exited 0"
    [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || die "scripts/$script as nobody said more than one line"
    case "$out" in *"apt-get install -y --no-install-recommends "*g++*iputils-ping*) ;; *) die "scripts/$script as nobody did not name the packages to install" ;; esac
  done
  [ ! -e "$ROOT/srv/kasane/node_modules" ] && [ ! -e "$ROOT/srv/kasane/.cache" ] || die "a refusing script left files behind"

  t2=$SECONDS
  log "as root in /srv/kasane: $COMMAND"
  set +e
  chroot "$ROOT" "${env_root[@]}" bash -c "cd /srv/kasane && $COMMAND"
  rc=$?
  set -e
  log "the command exited $rc after $((SECONDS - t2)) s (whole run $((SECONDS - t0)) s)"
  exit $rc
fi

# ---- on the host: fetch node and npm, clone, then run the part above in private namespaces ----
[ $# -eq 3 ] || { echo "usage: $0 SUITE NODE_LINE COMMAND" >&2; exit 2; }
SUITE=$1 LINE=$2 COMMAND=$3
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, namespaces)"
for c in debootstrap unshare chroot git npm node; do command -v "$c" >/dev/null || die "$c not found"; done
REPO=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)

# This machine's Debian mirror: the first deb source (one-line or deb822) for its own release.
host_mirror() {
  local codename
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  {
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed -n "s/^deb\s\+\(\[[^]]*\]\s\+\)\?\(\S\+\)\s\+$codename\s.*/\2/p"
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      awk -v c="$codename" '
        /^[[:space:]]*$/ { if (deb && suite && uri) print uri; deb = suite = 0; uri = ""; next }
        /^Types:/ { deb = ($0 ~ /[[:space:]]deb([[:space:]]|$)/) }
        /^URIs:/ { uri = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == c) suite = 1 }
        END { if (deb && suite && uri) print uri }' "$f"
    done
  }
}
MIRROR=${KASANE_DEBIAN_MIRROR:-$(host_mirror)}
MIRROR=${MIRROR%%$'\n'*}
[ -n "$MIRROR" ] || die "no Debian mirror found in /etc/apt (set KASANE_DEBIAN_MIRROR)"

case "$(uname -m)" in
  x86_64) ARCH=x64 ;;
  aarch64) ARCH=arm64 ;;
  *) die "no node-linux package for $(uname -m)" ;;
esac

WORK=$(mktemp -d /var/tmp/kasane-fresh-debian.XXXXXX)
ROOT="$WORK/root"
child=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    kill -KILL "$child" 2>/dev/null || true # unshare --kill-child takes the namespaces' init with it
    wait "$child" 2>/dev/null || true
  fi
  # The mounts lived in the private namespace; if one ever shows up here, leave the tree alone.
  if grep -q " $WORK[/ ]" /proc/self/mountinfo; then
    log "mounts remain under $WORK; not removing it"
  else
    rm -rf --one-file-system "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 143' INT TERM

t0=$SECONDS
NODE_VERSION=$(npm view "node-linux-$ARCH@$LINE" version --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const n=(v)=>v.split(".").map(Number);console.log([].concat(JSON.parse(s)).sort((a,b)=>n(a)[0]-n(b)[0]||n(a)[1]-n(b)[1]||n(a)[2]-n(b)[2]).pop())})')
npm pack --silent --pack-destination "$WORK" "node-linux-$ARCH@$NODE_VERSION" >/dev/null
mv "$WORK/node-linux-$ARCH-$NODE_VERSION.tgz" "$WORK/node.tgz"
# The npm that this node release ships with (its changelog names the latest npm upgrade first).
tar -xzf "$WORK/node.tgz" -C "$WORK" package/CHANGELOG.md
NPM_VERSION=$(grep -m1 -o 'upgrade npm to [0-9][0-9.]*[0-9]' "$WORK/package/CHANGELOG.md" | awk '{print $4}')
[ -n "$NPM_VERSION" ] || die "no npm version in the changelog of node $NODE_VERSION"
npm pack --silent --pack-destination "$WORK" "npm@$NPM_VERSION" >/dev/null
mv "$WORK/npm-$NPM_VERSION.tgz" "$WORK/npm.tgz"
git clone -q --bare --no-local "$REPO" "$WORK/kasane.git"
log "node $NODE_VERSION with npm $NPM_VERSION fetched, repository cloned ($(git -C "$WORK/kasane.git" rev-parse --short HEAD)) in $((SECONDS - t0)) s"

unshare --mount --pid --fork --kill-child --propagation private -- bash "$0" --inside "$SUITE" "$ROOT" "$MIRROR" "$WORK" "$COMMAND" &
child=$!
set +e
wait "$child"
rc=$?
set -e
child=
log "done in $((SECONDS - t0)) s"
exit $rc

#!/usr/bin/env bash
# Builds strongSwan's `acert` plugin (attribute-certificate validation: turns a verified permit's
# `group` values into groups that `remote.groups` can require) for the strongSwan that Debian
# installed. Debian ships strongSwan 5.9.8 without that plugin; this builds only the plugin, from
# the source of exactly the installed version, and charon loads it with LD_PRELOAD (the plugin
# loader finds `acert_plugin_create` by dlsym) and `acert` in `charon.load`.
#
#   bash scripts/strongswan-acert.sh        # prints the path of libstrongswan-acert.so
#
# As root it installs what the interop tests need (strongSwan's charon, swanctl, pki, plugins, and
# a compiler). The Debian source is fetched through a private apt state with `deb-src` twins of the
# system's own Debian sources: the system's apt configuration is never changed. The result is
# cached in .cache/strongswan-acert/<version>/ (git-ignored); a second run only prints the path.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PACKAGES=(strongswan-charon strongswan-swanctl strongswan-pki libcharon-extra-plugins libstrongswan-standard-plugins libstrongswan-extra-plugins build-essential pkg-config dpkg-dev)

say() { echo "strongswan-acert: $*" >&2; }
die() { say "$*"; exit 1; }

missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing Debian packages (${missing[*]}); run as root to install them"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

VERSION=$(dpkg-query -W -f='${Version}' libstrongswan)
UPSTREAM=${VERSION%%-*}
CACHE="$ROOT/.cache/strongswan-acert/$VERSION"
SO="$CACHE/libstrongswan-acert.so"
if [ -f "$SO" ]; then
  echo "$SO"
  exit 0
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
APT="$WORK/apt"
mkdir -p "$APT/sources.list.d" "$APT/lists/partial" "$APT/cache/archives/partial"
# deb-src twins of the system's sources, in both formats apt reads: deb822 stanzas
# (sources.list.d/*.sources) and one-line entries (sources.list, sources.list.d/*.list; a stock
# Debian 12 has only the one-line /etc/apt/sources.list).
shopt -s nullglob
for f in /etc/apt/sources.list.d/*.sources; do sed 's/^Types:.*/Types: deb-src/' "$f" >"$APT/sources.list.d/$(basename "$f")"; done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  if [ -f "$f" ]; then sed -n 's/^[[:space:]]*deb\([[:space:]]\)/deb-src\1/p' "$f"; fi
done >"$APT/sources.list.d/one-line-deb-src.list"
[ -s "$APT/sources.list.d/one-line-deb-src.list" ] || rm "$APT/sources.list.d/one-line-deb-src.list"
derived=("$APT"/sources.list.d/*)
[ ${#derived[@]} -gt 0 ] || die "no apt sources (deb lines in /etc/apt/sources.list or sources.list.d/*.list, or deb822 sources.list.d/*.sources) to derive deb-src entries from"
APT_OPTS=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$APT/sources.list.d" -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache" -o "APT::Sandbox::User=root")
say "fetching the Debian source of strongswan $VERSION"
# A source without a deb-src twin on its server (a third-party repository) is an error for
# `update` but no obstacle to fetching strongSwan's source from Debian.
apt-get "${APT_OPTS[@]}" update -qq >/dev/null 2>"$WORK/update.log" || say "apt-get update (deb-src): $(tail -1 "$WORK/update.log")"
# The plugin is built from the upstream tarball, which every Debian revision of one upstream
# version shares. A mirror may lack the exact revision's source (a security update's files can be
# missing there); any revision of the same upstream version then gives the same tarball.
fetched=""
for v in "$VERSION" $(apt-cache "${APT_OPTS[@]}" showsrc strongswan 2>/dev/null | sed -n 's/^Version: //p' | grep "^$UPSTREAM-" | grep -vx "$VERSION"); do
  if (cd "$WORK" && apt-get "${APT_OPTS[@]}" source --download-only -qq "strongswan=$v" >/dev/null 2>&1); then fetched=$v; break; fi
  say "the source of strongswan $v is not on the mirror; trying another revision of $UPSTREAM"
done
[ -n "$fetched" ] || die "no Debian source of strongswan $UPSTREAM could be fetched"
TARBALL=$(ls "$WORK"/strongswan_"$UPSTREAM".orig.tar.* 2>/dev/null | grep -v '\.asc$' | head -1)
[ -n "$TARBALL" ] || die "apt-get source did not fetch strongswan_$UPSTREAM.orig.tar.*"
tar -xf "$TARBALL" -C "$WORK"
SRC="$WORK/strongswan-$UPSTREAM"
[ -d "$SRC" ] || die "unexpected tarball layout: no $SRC"

say "building the acert plugin (configure --disable-defaults --enable-acert)"
(cd "$SRC" && ./configure -q --disable-defaults --enable-acert >"$WORK/configure.log" 2>&1) || die "configure failed: $(tail -5 "$WORK/configure.log")"
make -s -C "$SRC/src/libstrongswan/plugins/acert" >"$WORK/make.log" 2>&1 || die "make failed: $(tail -5 "$WORK/make.log")"
BUILT="$SRC/src/libstrongswan/plugins/acert/.libs/libstrongswan-acert.so"
[ -f "$BUILT" ] || die "no $BUILT after make"
mkdir -p "$CACHE"
cp "$BUILT" "$SO.tmp"
mv "$SO.tmp" "$SO"
echo "$SO"

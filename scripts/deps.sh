#!/bin/sh
# Install the Debian packages byold needs to build, test and run, when missing.
# Usage: scripts/deps.sh [--check]   (--check: only report what is missing, exit 1 if any)
set -eu
PKGS="build-essential pkg-config libopenblas-dev zlib1g-dev libinih-dev libcjson-dev
libcmocka-dev libuv1-dev libprotobuf-c-dev protobuf-c-compiler libsqlite3-dev sqlite3
libsodium-dev libsystemd-dev dataset-fashion-mnist python3
scdoc systemd-container
iproute2 nftables
clang libclang-rt-dev"
missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	exit 0
fi
if [ "${1:-}" = "--check" ]; then
	echo "deps: missing packages:$missing" >&2
	exit 1
fi
echo "deps: installing$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null

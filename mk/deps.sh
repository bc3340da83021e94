#!/bin/sh
# deps.sh: install the Debian packages disagg needs to build and test.
# Idempotent and silent when everything is present; needs root only when
# something is missing.
set -u

PKGS="gcc make pkg-config libzmq3-dev libczmq-dev libfabric-dev libinih-dev
libncurses-dev libmsgpack-dev libcmocka-dev libxxhash-dev libsystemd-dev tmux clang libclang-rt-14-dev
valgrind mandoc procps iproute2 python3
python3-dev libdlpack-dev python3-torch python3-numpy python3-zmq python3-msgpack
python3-pytest libmicrohttpd-dev prometheus xxhash"

missing=""
for p in $PKGS; do
	s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)
	case "$s" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "disagg: missing Debian packages:$missing" >&2
	echo "disagg: run 'make deps' as root, or: sudo apt-get install$missing" >&2
	exit 1
fi

echo "disagg: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# An old or empty package list makes install fail: refresh once, then retry.
apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 || {
	apt-get update -qq &&
	apt-get install -y -qq --no-install-recommends $missing
} || {
	echo "disagg: apt-get could not install:$missing" >&2
	exit 1
}

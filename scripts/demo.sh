#!/usr/bin/env bash
# make demo: an IPv6-only host running bih-nfq lets unmodified IPv4-only
# programs (getent, curl -4, ping -4) reach an IPv6-only server by name.
# Everything happens in network namespaces this script creates and removes.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "make demo builds network namespaces: run it as root (sudo make demo)." >&2
	exit 1
fi
missing=()
for c in ip nft unbound curl ping getent; do
	command -v "$c" >/dev/null || missing+=("$c")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "make demo needs: ${missing[*]}" >&2
	echo "  apt-get install -y iproute2 nftables unbound curl iputils-ping libc-bin" >&2
	exit 1
fi

export LAB=${LAB:-bihdemo}
export LAB_STATE=${LAB_STATE:-/run/$LAB}
BIN=${BIN:-bin/bih-nfq}
[ -x "$BIN" ] || go build -o "$BIN" ./cmd/bih-nfq
HOST="ip netns exec $LAB-host"
daemon=""

cleanup() {
	if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
		kill -TERM "$daemon" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
	fi
	tests/lab/lab.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@" 2>&1 | sed 's/^/  /'; }

tests/lab/lab.sh down >/dev/null 2>&1 || true
step "Building the lab: host (IPv6 only) — router — server (IPv6 only, DNS + web)"
tests/lab/lab.sh up

step "The host has no IPv4 connectivity, only IPv6"
show $HOST ip -4 route
show $HOST ip -6 -br addr show dev eth0
show $HOST getent ahostsv4 web.test || true

step "Starting bih-nfq on the host with its defaults"
mkdir -p "$LAB_STATE/demo"
$HOST "$BIN" run --state-dir "$LAB_STATE/demo/state" --status-socket "$LAB_STATE/demo/status.sock" \
	--metrics off >"$LAB_STATE/demo/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 1 100); do
	if $HOST "$BIN" status --socket "$LAB_STATE/demo/status.sock" --json 2>/dev/null | grep -q '"state":"running"'; then
		break
	fi
	if ! kill -0 "$daemon" 2>/dev/null; then
		echo "bih-nfq exited:" >&2
		cat "$LAB_STATE/demo/daemon.log" >&2
		exit 1
	fi
	sleep 0.1
done
sed 's/^/  /' "$LAB_STATE/demo/daemon.log"

step "An IPv4-only lookup now gets a pool address mapped to the server's IPv6 address"
show $HOST getent ahostsv4 web.test
step "curl -4 reaches the IPv6-only web server by name"
show $HOST curl -4 -sS -m 10 http://web.test/
step "ping -4 too"
show $HOST ping -4 -c 3 -W 2 web.test
step "Reverse lookup of the pool address"
show $HOST getent hosts "$($HOST getent ahostsv4 web.test | awk 'NR==1 {print $1}')"
step "A dual-stack name keeps its real A record"
show $HOST getent ahostsv4 dual.test
step "bih-nfq status"
show $HOST "$BIN" status --socket "$LAB_STATE/demo/status.sock" --mappings

step "Stopping bih-nfq: it removes its rules, link and addresses"
kill -TERM "$daemon"
wait "$daemon" || true
daemon=""
show $HOST nft list tables
show $HOST ip -br link
echo
echo "Done; the lab is removed on exit."

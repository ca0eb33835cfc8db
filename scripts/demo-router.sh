#!/usr/bin/env bash
# make demo-router: bih-nfq on a router is the bump for two IPv4-only LAN
# hosts: each reaches the IPv6-only server by name, with an IPv6 address of
# its own. Everything happens in network namespaces this script creates and
# removes.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "make demo-router builds network namespaces: run it as root." >&2
	exit 1
fi
missing=()
for c in ip nft unbound curl ping getent dig traceroute; do
	command -v "$c" >/dev/null || missing+=("$c")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "make demo-router needs: ${missing[*]}" >&2
	echo "  apt-get install -y iproute2 nftables unbound curl iputils-ping libc-bin dnsutils traceroute" >&2
	exit 1
fi

export LAB=${LAB:-bihrdemo} LAB_LAN=1
export LAB_STATE=${LAB_STATE:-/run/$LAB}
BIN=${BIN:-bin/bih-nfq}
[ -x "$BIN" ] || go build -o "$BIN" ./cmd/bih-nfq
RTR="ip netns exec $LAB-host"
LAN1="ip netns exec $LAB-lan1"
LAN2="ip netns exec $LAB-lan2"
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
step "Building the lab: lan1, lan2 (IPv4 only) — router (IPv6-only uplink) — IPv6 router — server"
tests/lab/lab.sh up

mkdir -p "$LAB_STATE/demo"
cat >"$LAB_STATE/demo/router.yaml" <<'YAML'
mode: router
router:
  lan: [lan1, lan2]
  prefix: 2001:db8:1:0:0:64::/96      # inside the uplink's /64: proxy NDP
translation:
  map: ["172.21.95.253=2001:db8:2::35"]  # the server's resolver, as lan2 knows it
pool:
  requester-share: 0.05
YAML
step "The router's config"
sed 's/^/  /' "$LAB_STATE/demo/router.yaml"

step "Starting bih-nfq on the router"
$RTR "$BIN" run --config "$LAB_STATE/demo/router.yaml" --state-dir "$LAB_STATE/demo/state" \
	--status-socket "$LAB_STATE/demo/status.sock" --metrics off >"$LAB_STATE/demo/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 1 100); do
	if $RTR "$BIN" status --socket "$LAB_STATE/demo/status.sock" --json 2>/dev/null | grep -q '"state":"running"'; then
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

step "lan1 resolves through the router's resolver, lan2 asks the server's resolver directly"
show $LAN1 cat /etc/resolv.conf
show $LAN1 getent ahostsv4 web.test
show $LAN2 cat /etc/resolv.conf
show $LAN2 getent ahostsv4 web.test
step "Both reach the IPv6-only web server, which sees each from its own IPv6 address"
show $LAN1 curl -sS -m 10 http://web.test/
show $LAN2 curl -sS -m 10 http://web.test/
step "traceroute -4 shows the router, the IPv6 router and the server"
show $LAN1 traceroute -4 -n -q 1 -w 2 -m 6 web.test
step "The router's own IPv6 traffic is untouched"
show $RTR curl -6 -sS -m 10 "http://[2001:db8:2::2]/"
step "bih-nfq status"
show $RTR "$BIN" status --socket "$LAB_STATE/demo/status.sock"

step "Stopping bih-nfq: rules, routes and proxy NDP entries go"
kill -TERM "$daemon"
wait "$daemon" || true
daemon=""
show $RTR nft list tables
show $RTR ip -6 neigh show proxy
echo
echo "Done; the lab is removed on exit."

#!/usr/bin/env bash
# make demo-router: bih-nfq on a router is the bump for two IPv4-only LAN
# hosts: each reaches the IPv6-only server by name, with an IPv6 address of
# its own. Everything happens in network namespaces this script creates and
# removes.
set -euo pipefail
cd "$(dirname "$0")/.."

export LAB_LAN=1
. scripts/demo-lib.sh
demo_init demo-router bihrdemo "iproute2 nftables unbound curl iputils-ping libc-bin dnsutils traceroute" \
	ip nft unbound curl ping getent dig traceroute
RTR="ip netns exec $LAB-host"
LAN1="ip netns exec $LAB-lan1"
LAN2="ip netns exec $LAB-lan2"

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
demo_start_daemon "$RTR" --config "$LAB_STATE/demo/router.yaml"

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
demo_stop_daemon
show $RTR nft list tables
show $RTR ip -6 neigh show proxy
echo
echo "Done; the lab is removed on exit."

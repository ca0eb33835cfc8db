#!/usr/bin/env bash
# make demo: an IPv6-only host running bih-nfq lets unmodified IPv4-only
# programs (getent, curl -4, ping -4) reach an IPv6-only server by name.
# Everything happens in network namespaces this script creates and removes.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/demo-lib.sh
demo_init demo bihdemo "iproute2 nftables unbound curl iputils-ping libc-bin" ip nft unbound curl ping getent
HOST="ip netns exec $LAB-host"

step "Building the lab: host (IPv6 only) — router — server (IPv6 only, DNS + web)"
tests/lab/lab.sh up

step "The host has no IPv4 connectivity, only IPv6"
show $HOST ip -4 route
show $HOST ip -6 -br addr show dev eth0
show $HOST getent ahostsv4 web.test || true

step "Starting bih-nfq on the host with its defaults"
demo_start_daemon "$HOST"

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
demo_stop_daemon
show $HOST nft list tables
show $HOST ip -br link
echo
echo "Done; the lab is removed on exit."

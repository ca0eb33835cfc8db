#!/usr/bin/env bash
# The benchmark topology: the same three namespaces as tests/lab/lab.sh, but
# plain — every link at MTU 1500 and no MSS games — so that native IPv6, TAYGA
# and bih-nfq are measured on identical links. Traffic stays between the
# namespaces this script creates.
#
#   host (IPv6-only uplink) ── rtr (IPv6 router) ── srv (IPv6-only)
#   2001:db8:1::2/64            2001:db8:1::1 / 2001:db8:2::1    2001:db8:2::2/64
#
# srv runs unbound (zone "test.": web.test AAAA 2001:db8:2::2) and iperf3 -s.
#
# usage: topology.sh up|down|status      (BENCH_NET=name, default bihbench;
#                                         BENCH_NET_STATE=dir, default /run/$BENCH_NET)
set -euo pipefail

NAME=${BENCH_NET:-bihbench}
STATE=${BENCH_NET_STATE:-/run/$NAME}
H=$NAME-host R=$NAME-rtr S=$NAME-srv
HOST6=2001:db8:1::2 RTR6A=2001:db8:1::1 RTR6B=2001:db8:2::1 SRV6=2001:db8:2::2
MTU=1500

die() { echo "topology: $*" >&2; exit 1; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

write_unbound_conf() {
	cat >"$STATE/unbound.conf" <<EOC
server:
	interface: $SRV6
	port: 53
	do-ip4: no
	do-ip6: yes
	access-control: ::/0 allow
	username: ""
	chroot: ""
	directory: "$STATE"
	pidfile: "$STATE/unbound.pid"
	use-syslog: no
	logfile: "$STATE/unbound.log"
	do-daemonize: yes
	num-threads: 1
	local-zone: "test." static
	local-data: "test. 300 IN SOA ns.test. admin.test. 1 3600 600 86400 60"
	local-data: "test. 300 IN NS ns.test."
	local-data: "ns.test. 300 IN AAAA $SRV6"
	local-data: "web.test. 3600 IN AAAA $SRV6"
EOC
}

up() {
	[ "$(id -u)" = 0 ] || die "needs root"
	for ns in $H $R $S; do
		ip netns list | grep -qw "$ns" && die "namespace $ns exists (topology.sh down first)"
	done
	mkdir -p "$STATE"
	for ns in $H $R $S; do
		ip netns add "$ns"
		nsx "$ns" ip link set lo up
		nsx "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
	done
	ip link add h0 netns "$H" type veth peer name r0 netns "$R"
	ip link add r1 netns "$R" type veth peer name s0 netns "$S"
	nsx "$H" ip link set h0 name eth0
	nsx "$S" ip link set s0 name eth0
	for l in "$H eth0" "$R r0" "$R r1" "$S eth0"; do
		set -- $l
		nsx "$1" ip link set "$2" mtu $MTU
	done
	nsx "$H" ip -6 addr add $HOST6/64 dev eth0 nodad
	nsx "$R" ip -6 addr add $RTR6A/64 dev r0 nodad
	nsx "$R" ip -6 addr add $RTR6B/64 dev r1 nodad
	nsx "$S" ip -6 addr add $SRV6/64 dev eth0 nodad
	for l in "$H eth0" "$R r0" "$R r1" "$S eth0"; do
		set -- $l
		nsx "$1" ip link set "$2" up
	done
	nsx "$R" sysctl -qw net.ipv6.conf.all.forwarding=1
	nsx "$H" ip -6 route add default via $RTR6A dev eth0
	nsx "$S" ip -6 route add default via $RTR6B dev eth0

	mkdir -p "/etc/netns/$H"
	echo "nameserver $SRV6" >"/etc/netns/$H/resolv.conf"

	write_unbound_conf
	nsx "$S" unbound -c "$STATE/unbound.conf" || die "unbound failed: $(cat "$STATE/unbound.log" 2>/dev/null)"
	nsx "$S" iperf3 -s -D -B $SRV6 --pidfile "$STATE/iperf3.pid" >/dev/null
	for _ in $(seq 1 50); do
		if nsx "$H" ping -6 -c1 -W1 -q $SRV6 >/dev/null 2>&1 && [ -s "$STATE/iperf3.pid" ]; then
			return 0
		fi
		sleep 0.1
	done
	die "topology did not come up (no ping to $SRV6 or no iperf3 server)"
}

kill_pidfile() {
	local f=$1 pid
	[ -f "$f" ] || return 0
	pid=$(tr -dc 0-9 <"$f")
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

down() {
	for f in iperf3 unbound; do kill_pidfile "$STATE/$f.pid"; done
	for ns in $H $R $S; do ip netns del "$ns" 2>/dev/null || true; done
	rm -rf "/etc/netns/$H" "$STATE"
}

status() {
	for ns in $H $R $S; do
		echo "== $ns"
		nsx "$ns" ip -br addr 2>/dev/null || echo "(absent)"
	done
}

case ${1:-} in
up) up ;;
down) down ;;
status) status ;;
*) die "usage: topology.sh up|down|status" ;;
esac

#!/usr/bin/env bash
# The namespace lab shared by `make demo`, the end-to-end tests and the
# benchmarks. Traffic stays between the namespaces it creates.
#
#   host (IPv6-only uplink) ── rtr (IPv6 router) ──[MTU 1280]── srv (IPv6-only)
#   2001:db8:1::2/64            2001:db8:1::1 / 2001:db8:2::1    2001:db8:2::2/64
#
# srv runs unbound (zone "test.": web, www → web, dual-stack dual, alt on
# 2001:db8:2::3 which nothing answers), a web server (labserver) and iperf3 -s.
# srv advertises TCP MSS 1440 although its link is 1280, so segments the host
# sends toward it are too big for rtr's 1280 link: rtr answers with ICMPv6
# Packet Too Big, which is how the lab exercises path MTU discovery through
# the translator. LAB_MTU=1500 gives the plain topology instead (every link
# at 1500, no MSS trick), on which the benchmarks measure.
#
# usage: lab.sh up|down|status      (LAB=name selects the lab, default bihlab)
#        lab.sh exec host|rtr|srv CMD...
set -euo pipefail

LAB=${LAB:-bihlab}
STATE=${LAB_STATE:-/run/$LAB}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
H=$LAB-host R=$LAB-rtr S=$LAB-srv
MTU=${LAB_MTU:-1280} # of the rtr–srv link

# Addresses (documentation prefix, RFC 3849; never routed outside the lab).
HOST6=2001:db8:1::2 RTR6A=2001:db8:1::1 RTR6B=2001:db8:2::1 SRV6=2001:db8:2::2
# A dual-stack name's real A record (TEST-NET-1, RFC 5737).
DUAL4=192.0.2.80

die() { echo "lab: $*" >&2; exit 1; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

write_unbound_conf() {
	cat >"$STATE/unbound.conf" <<EOF
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
	local-data: "web.test. 300 IN AAAA $SRV6"
	local-data: "dual.test. 300 IN AAAA $SRV6"
	local-data: "dual.test. 300 IN A $DUAL4"
	local-data: "www.test. 300 IN CNAME web.test."
	local-data: "alt.test. 300 IN AAAA 2001:db8:2::3"
	local-data-ptr: "$SRV6 web.test."
EOF
}

up() {
	[ "$(id -u)" = 0 ] || die "needs root"
	ip netns list | grep -qw "$H" && die "lab $LAB already up (lab.sh down first)"
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
	case $MTU in
	1280 | 1500) ;;
	*) die "LAB_MTU=$MTU: 1280 (default) or 1500" ;;
	esac
	nsx "$R" ip link set r1 mtu "$MTU"
	nsx "$S" ip link set eth0 mtu "$MTU"
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
	if [ "$MTU" = 1280 ]; then
		nsx "$S" ip -6 route add default via $RTR6B dev eth0 advmss 1440
	else
		nsx "$S" ip -6 route add default via $RTR6B dev eth0
	fi

	# The host resolves through the server's resolver, over IPv6 only.
	mkdir -p "/etc/netns/$H"
	echo "nameserver $SRV6" >"/etc/netns/$H/resolv.conf"

	write_unbound_conf
	nsx "$S" unbound -c "$STATE/unbound.conf" || die "unbound failed: $(cat "$STATE/unbound.log" 2>/dev/null)"
	local srv_bin=${LABSERVER:-$STATE/labserver}
	if [ ! -x "$srv_bin" ]; then
		(cd "$ROOT" && go build -o "$STATE/labserver" ./tests/labserver)
		srv_bin=$STATE/labserver
	fi
	# Not through nsx: a backgrounded function is a subshell, and $! would
	# name it instead of the server (ip netns exec execs into it).
	ip netns exec "$S" "$srv_bin" -listen "[$SRV6]:80" -udp "[$SRV6]:7" >"$STATE/labserver.log" 2>&1 &
	echo $! >"$STATE/labserver.pid"
	if command -v iperf3 >/dev/null; then
		nsx "$S" iperf3 -s -D -B $SRV6 --pidfile "$STATE/iperf3.pid" >/dev/null
	fi
	wait_ready
}

wait_ready() {
	for _ in $(seq 1 50); do
		if nsx "$H" ping -6 -c1 -W1 -q $SRV6 >/dev/null 2>&1 &&
			nsx "$H" curl -s -m 2 -o /dev/null "http://[$SRV6]/"; then
			return 0
		fi
		sleep 0.1
	done
	die "lab did not come up (ping or HTTP to $SRV6 failed)"
}

kill_pidfile() {
	local f=$1
	[ -f "$f" ] || return 0
	local pid
	pid=$(cat "$f")
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

down() {
	for f in labserver iperf3 unbound; do kill_pidfile "$STATE/$f.pid"; done
	for ns in $H $R $S; do ip netns del "$ns" 2>/dev/null || true; done
	rm -rf "/etc/netns/$H"
	rm -rf "$STATE"
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
exec)
	shift
	[ $# -ge 2 ] || die "usage: lab.sh exec host|rtr|srv CMD..."
	which=$1
	shift
	case $which in host) ns=$H ;; rtr) ns=$R ;; srv) ns=$S ;; *) die "no namespace $which" ;; esac
	exec ip netns exec "$ns" "$@"
	;;
*) die "usage: lab.sh up|down|status|exec" ;;
esac

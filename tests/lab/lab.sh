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
# LAB_LAN=1 adds the router-mode topology: host becomes a router (forwarding
# on) for two IPv4-only LAN hosts, each on its own LAN link, with a resolver
# of its own (unbound on the LAN addresses, forwarding to srv over IPv6):
#
#   lan1 192.168.1.10/24 ── host "lan1" 192.168.1.1/24
#   lan2 192.168.2.10/24 ── host "lan2" 192.168.2.1/24
#
# lan1 resolves through the router's resolver; lan2 asks srv's resolver
# directly, at the IPv4 address $UPSTREAM4, which the router's config maps
# to srv's resolver address $SRV6DNS (RFC 7757).
#
# usage: lab.sh up|down|status      (LAB=name selects the lab, default bihlab)
#        lab.sh exec host|rtr|srv|lan1|lan2 CMD...
set -euo pipefail

LAB=${LAB:-bihlab}
STATE=${LAB_STATE:-/run/$LAB}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
H=$LAB-host R=$LAB-rtr S=$LAB-srv L1=$LAB-lan1 L2=$LAB-lan2
MTU=${LAB_MTU:-1280} # of the rtr–srv link
LAN=${LAB_LAN:-0}
# srv's resolver as the LAN hosts see it: the end of the secondary pool.
UPSTREAM4=172.21.95.253
FLOOD=200

# Addresses (documentation prefix, RFC 3849; never routed outside the lab).
HOST6=2001:db8:1::2 RTR6A=2001:db8:1::1 RTR6B=2001:db8:2::1 SRV6=2001:db8:2::2
# srv's resolver also listens on an address of its own, which the LAN hosts
# reach through translation (router mode).
SRV6DNS=2001:db8:2::35
# A dual-stack name's real A record (TEST-NET-1, RFC 5737).
DUAL4=192.0.2.80

die() { echo "lab: $*" >&2; exit 1; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

write_unbound_conf() {
	cat >"$STATE/unbound.conf" <<EOF
server:
	interface: $SRV6
	interface: $SRV6DNS
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
	nsx "$S" ip -6 addr add $SRV6DNS/64 dev eth0 nodad
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
	if [ "$LAN" = 1 ]; then
		# AAAA-only names f1.test … f$FLOOD.test on distinct addresses, for
		# the per-host pool limits.
		local n
		for n in $(seq 1 $FLOOD); do
			printf '\tlocal-data: "f%d.test. 300 IN AAAA 2001:db8:2::1:%x"\n' "$n" "$n"
		done >>"$STATE/unbound.conf"
	fi
	nsx "$S" unbound -c "$STATE/unbound.conf" || die "unbound failed: $(cat "$STATE/unbound.log" 2>/dev/null)"
	if [ "$LAN" = 1 ]; then lan_up; fi
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

# lan_up makes host the router of two IPv4-only LAN hosts.
lan_up() {
	local i ns
	for i in 1 2; do
		ns=$LAB-lan$i
		ip netns add "$ns"
		nsx "$ns" ip link set lo up
		ip link add "lan$i" netns "$H" type veth peer name eth0 netns "$ns"
		nsx "$H" ip addr add "192.168.$i.1/24" dev "lan$i"
		nsx "$H" ip link set "lan$i" up
		nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
		nsx "$ns" ip addr add "192.168.$i.10/24" dev eth0
		nsx "$ns" ip link set eth0 up
		nsx "$ns" ip route add default via "192.168.$i.1"
		mkdir -p "/etc/netns/$ns"
	done
	echo "nameserver 192.168.1.1" >"/etc/netns/$L1/resolv.conf"
	echo "nameserver $UPSTREAM4" >"/etc/netns/$L2/resolv.conf"
	nsx "$H" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	cat >"$STATE/unbound-router.conf" <<EOF
server:
	interface: 192.168.1.1
	interface: 192.168.2.1
	port: 53
	do-ip6: yes
	access-control: 192.168.0.0/16 allow
	username: ""
	chroot: ""
	directory: "$STATE"
	pidfile: "$STATE/unbound-router.pid"
	use-syslog: no
	logfile: "$STATE/unbound-router.log"
	do-daemonize: yes
	num-threads: 1
	domain-insecure: "test."
	local-zone: "test." nodefault
	local-zone: "8.b.d.0.1.0.0.2.ip6.arpa." nodefault
forward-zone:
	name: "."
	forward-addr: $SRV6
EOF
	nsx "$H" unbound -c "$STATE/unbound-router.conf" || die "router unbound failed: $(cat "$STATE/unbound-router.log" 2>/dev/null)"
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
	for f in labserver iperf3 unbound unbound-router; do kill_pidfile "$STATE/$f.pid"; done
	for ns in $H $R $S $L1 $L2; do ip netns del "$ns" 2>/dev/null || true; done
	rm -rf "/etc/netns/$H" "/etc/netns/$L1" "/etc/netns/$L2"
	rm -rf "$STATE"
}

status() {
	for ns in $H $R $S $L1 $L2; do
		ip netns list | grep -qw "$ns" || continue
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
	[ $# -ge 2 ] || die "usage: lab.sh exec host|rtr|srv|lan1|lan2 CMD..."
	which=$1
	shift
	case $which in host) ns=$H ;; rtr) ns=$R ;; srv) ns=$S ;; lan1) ns=$L1 ;; lan2) ns=$L2 ;; *) die "no namespace $which" ;; esac
	exec ip netns exec "$ns" "$@"
	;;
*) die "usage: lab.sh up|down|status|exec" ;;
esac

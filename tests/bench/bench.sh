#!/usr/bin/env bash
# make bench: native IPv6, TAYGA and bih-nfq measured in one run on the same
# namespace topology (tests/lab/lab.sh with LAB_MTU=1500: host — rtr — srv,
# every link at MTU 1500). Traffic stays between the namespaces this script creates; they,
# and every process it starts, are removed on exit and on Ctrl-C.
#
# Per path, BENCH_RUNS runs (default 3) of:
#   TCP bulk host→srv and srv→host      iperf3 -t BENCH_TIME [-R]
#   64-byte UDP at a fixed offered rate  iperf3 -u -l 64 -b (BENCH_UDP_PPS × 512 bit)
#   and at a saturating one              the same with BENCH_UDP_SAT_PPS
#   RTT                                  ping -c 20 -i 0.05
# plus, for the translators, CPU time (utime+stime of the process) per GB
# moved and peak RSS (VmHWM). bih-nfq starts with BENCH_MAPPINGS mappings
# preloaded into its pool journal (default 8188: both default /20 pools full).
#
# Outputs: tests/bench/results/{results.md,results.json,results.png,raw/}
# and tests/bench/RESULTS.md (latest table). See tests/bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

RUNS=${BENCH_RUNS:-3}
T=${BENCH_TIME:-5}
UDP_PPS=${BENCH_UDP_PPS:-100000}
# Above what the native path delivers here: each path shows its capacity.
UDP_SAT_PPS=${BENCH_UDP_SAT_PPS:-200000}
UDP_LEN=64
MAPPINGS=${BENCH_MAPPINGS:-8188}
START_LIMIT=${BENCH_START_LIMIT:-300} # seconds allowed for bih-nfq to start
BIN=${BIN:-bin/bih-nfq}
OUT=tests/bench/results
RAW=$OUT/raw
export BENCH_NET=${BENCH_NET:-bihbench}
export BENCH_NET_STATE=${BENCH_NET_STATE:-/run/$BENCH_NET}
# The topology is the lab's, with every link at 1500.
topology() { LAB=$BENCH_NET LAB_STATE=$BENCH_NET_STATE LAB_MTU=1500 tests/lab/lab.sh "$@"; }
H=$BENCH_NET-host R=$BENCH_NET-rtr S=$BENCH_NET-srv
SRV6=2001:db8:2::2
POOL4=10.170.160.1 # the server's pool address, for both translators
SRC4=172.21.112.1  # the host's IPv4 source, for both translators
# TAYGA: its own addresses and the host's IPv6 address for SRC4, in the host /64.
TAYGA4=192.168.255.1 TAYGA6=2001:db8:1::64:1 TAYGA_SRC6=2001:db8:1::64:2

die() { echo "bench: $*" >&2; exit 1; }
log() { printf '\033[1m== %s\033[0m\n' "$*"; }
hx() { ip netns exec "$H" "$@"; }

[ "$(id -u)" = 0 ] || die "make bench builds network namespaces: run it as root"
missing=()
for c in ip iperf3 tayga ping unbound nft go timeout; do
	command -v "$c" >/dev/null || missing+=("$c")
done
[ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]} (apt-get install -y iproute2 iperf3 tayga iputils-ping unbound nftables)"
[[ $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 && $RUNS -le 20 ]] || die "BENCH_RUNS must be 1..20"
[[ $T =~ ^[0-9]+$ && $T -ge 1 && $T -le 60 ]] || die "BENCH_TIME must be 1..60 seconds"
[[ $UDP_PPS =~ ^[0-9]+$ && $UDP_PPS -ge 1000 ]] || die "BENCH_UDP_PPS must be a number ≥ 1000"
[[ $UDP_SAT_PPS =~ ^[0-9]+$ && $UDP_SAT_PPS -ge 1000 ]] || die "BENCH_UDP_SAT_PPS must be a number ≥ 1000"
[ -x "$BIN" ] || die "$BIN missing (make build)"
UDP_BPS=$((UDP_PPS * UDP_LEN * 8))
UDP_SAT_BPS=$((UDP_SAT_PPS * UDP_LEN * 8))

WORK=$(mktemp -d /tmp/bihbench.XXXXXX)
tayga_pid="" daemon_pid="" topo_up=""
started=$(date +%s)

. tests/bench/lib.sh

cleanup() {
	stop_child
	stop_pid "$daemon_pid"
	stop_pid "$tayga_pid"
	if [ -n "$topo_up" ]; then
		topology down >/dev/null 2>&1 || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Tools first, so that a build failure does not cost a measurement run.
go build -o "$WORK/preload" ./tests/bench/preload
go build -o "$WORK/chart" ./tests/bench/chart

rm -rf "$RAW"
mkdir -p "$RAW"

log "Topology: host — rtr — srv, MTU 1500 everywhere"
topology up
topo_up=1

# ---- helpers ---------------------------------------------------------------

cpu_ticks() { # utime+stime of PID, in clock ticks (fields 14 and 15 of stat)
	# Fields are counted after the parenthesised command name, which may hold spaces.
	[ -r "/proc/$1/stat" ] || die "the translator (PID $1) exited during the tests"
	sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

vm_kb() { # vm_kb PID VmHWM|VmRSS
	awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"
}

# record_offloads NAME: the offload settings of every topology link, plus
# (separately) the translator's own device.
record_offloads() {
	local name=$1 f=$RAW/offloads/$1.txt
	mkdir -p "$RAW/offloads"
	: >"$f"
	local l
	for l in "$H eth0" "$R r0" "$R r1" "$S eth0"; do
		set -- $l
		echo "## $1 $2" >>"$f"
		if command -v ethtool >/dev/null; then
			ip netns exec "$1" ethtool -k "$2" >>"$f" 2>&1 || true
		fi
		ip netns exec "$1" ip -d link show dev "$2" |
			grep -oE '(mtu|gso_max_size|gso_max_segs|tso_max_size|tso_max_segs|gro_max_size|gso_ipv4_max_size|gro_ipv4_max_size|numtxqueues|numrxqueues) [0-9]+' >>"$f" || true
	done
}

record_tun() { # record_tun NAME DEV
	local f=$RAW/offloads/$1-$2.txt
	{
		echo "## $H $2 (translator device, not compared)"
		if command -v ethtool >/dev/null; then hx ethtool -k "$2" 2>&1 || true; fi
		hx ip -d link show dev "$2" || true
	} >"$f"
}

# measure PATH DST PID: RUNS runs of every test against DST; PID (may be
# empty) is the translator process whose CPU time and memory are read.
measure() {
	local path=$1 dst=$2 pid=$3 fam=-6 r d
	[[ $dst == *.* ]] && fam=-4
	# Warm-up: neighbour discovery, mappings, caches (not measured).
	run timeout 10 ip netns exec "$H" ping "$fam" -c 3 -i 0.05 -W 1 -w 5 -q "$dst" >/dev/null 2>&1 || true
	for r in $(seq 1 "$RUNS"); do
		d=$RAW/$path/run$r
		mkdir -p "$d"
		log "$path: run $r/$RUNS"
		local c0 c1 c2 c3 c4 c5
		[ -z "$pid" ] || c0=$(cpu_ticks "$pid")
		run timeout $((T + 30)) ip netns exec "$H" iperf3 "$fam" -c "$dst" -t "$T" -J >"$d/tcp_up.json" || echo "bench: iperf3 TCP up failed (run $r)" >&2
		[ -z "$pid" ] || c1=$(cpu_ticks "$pid")
		run timeout $((T + 30)) ip netns exec "$H" iperf3 "$fam" -c "$dst" -t "$T" -R -J >"$d/tcp_down.json" || echo "bench: iperf3 TCP down failed (run $r)" >&2
		[ -z "$pid" ] || c2=$(cpu_ticks "$pid")
		if [ -n "$pid" ]; then
			{
				echo "tcp_hwm_kb=$(vm_kb "$pid" VmHWM)"
				echo "tcp_rss_kb=$(vm_kb "$pid" VmRSS)"
			} >"$d/proc.env"
		fi
		run timeout $((T + 30)) ip netns exec "$H" iperf3 "$fam" -c "$dst" -t "$T" -u -l "$UDP_LEN" -b "$UDP_BPS" -J >"$d/udp.json" || echo "bench: iperf3 UDP failed (run $r)" >&2
		[ -z "$pid" ] || c3=$(cpu_ticks "$pid")
		run timeout 15 ip netns exec "$H" ping "$fam" -c 20 -i 0.05 -W 1 -w 10 "$dst" >"$d/ping.txt" 2>&1 || echo "bench: ping incomplete (run $r)" >&2
		[ -z "$pid" ] || c4=$(cpu_ticks "$pid")
		run timeout $((T + 30)) ip netns exec "$H" iperf3 "$fam" -c "$dst" -t "$T" -u -l "$UDP_LEN" -b "$UDP_SAT_BPS" -J >"$d/udp_sat.json" || echo "bench: iperf3 UDP at the saturating rate failed (run $r)" >&2
		[ -z "$pid" ] || c5=$(cpu_ticks "$pid")
		if [ -n "$pid" ]; then
			{
				echo "tcp_up_ticks=$((c1 - c0))"
				echo "tcp_down_ticks=$((c2 - c1))"
				echo "udp_ticks=$((c3 - c2))"
				echo "ping_ticks=$((c4 - c3))"
				echo "udp_sat_ticks=$((c5 - c4))"
				echo "hwm_kb=$(vm_kb "$pid" VmHWM)"
			} >>"$d/proc.env"
		fi
	done
	if [ -n "$pid" ]; then
		{
			echo "hwm_kb=$(vm_kb "$pid" VmHWM)"
			echo "rss_kb=$(vm_kb "$pid" VmRSS)"
		} >"$RAW/$path/proc.env"
	fi
}

# ---- run --------------------------------------------------------------------

{
	echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "kernel=$(uname -r)"
	echo "cpus=$(nproc)"
	echo "cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
	echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
	echo "clk_tck=$(getconf CLK_TCK)"
	echo "iperf3=$(iperf3 --version | head -1)"
	echo "tayga=$(dpkg-query -W -f '${Version}' tayga 2>/dev/null || echo unknown)"
	echo "bihnfq=$("$BIN" version 2>/dev/null | awk 'NR == 1 { print $NF }')"
	echo "runs=$RUNS"
	echo "duration_s=$T"
	echo "udp_offered_pps=$UDP_PPS"
	echo "udp_len=$UDP_LEN"
	echo "udp_offered_bps=$UDP_BPS"
	echo "udp_sat_offered_pps=$UDP_SAT_PPS"
	echo "udp_sat_offered_bps=$UDP_SAT_BPS"
	echo "mappings_preloaded=$MAPPINGS"
	echo "offload_tool=$(command -v ethtool >/dev/null && echo 'ethtool -k + ip -d link' || echo 'ip -d link')"
} >"$RAW/meta.env"

# (a) native IPv6: no translation.
log "native IPv6 (iperf3 -6 to $SRV6)"
record_offloads native
measure native "$SRV6" ""

# (b) TAYGA in the host namespace, host-based: the IPv4 source SRC4 lives on
# its TUN device, POOL4 is routed into it, and explicit maps translate
# POOL4 ↔ the server and SRC4 ↔ TAYGA_SRC6, an address of the host's /64 that
# is routed to the TUN device (the host answers neighbour discovery for it).
log "TAYGA (map $POOL4 ↔ $SRV6, $SRC4 ↔ $TAYGA_SRC6)"
cat >"$WORK/tayga.conf" <<EOF
tun-device nat64
ipv4-addr $TAYGA4
ipv6-addr $TAYGA6
map $POOL4 $SRV6
map $SRC4 $TAYGA_SRC6
EOF
timeout 10 ip netns exec "$H" tayga -c "$WORK/tayga.conf" --mktun >/dev/null
# Same IPv4 MTU as bih-nfq's link: uplink MTU − 20.
hx ip link set nat64 mtu 1480 up
hx ip addr add $SRC4/32 dev nat64
hx ip route add $POOL4/32 dev nat64
hx ip route add $TAYGA4/32 dev nat64
hx ip -6 route add $TAYGA6/128 dev nat64
hx ip -6 route add $TAYGA_SRC6/128 dev nat64
hx sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv6.conf.eth0.proxy_ndp=1
hx ip -6 neigh add proxy $TAYGA6 dev eth0
hx ip -6 neigh add proxy $TAYGA_SRC6 dev eth0
ip netns exec "$H" tayga -c "$WORK/tayga.conf" --nodetach >"$WORK/tayga.log" 2>&1 &
tayga_pid=$!
sleep 0.3
kill -0 "$tayga_pid" 2>/dev/null || die "tayga exited: $(cat "$WORK/tayga.log")"
record_offloads tayga
record_tun tayga nat64
measure tayga "$POOL4" "$tayga_pid"
stop_pid "$tayga_pid"
tayga_pid=""
hx ip link del nat64 2>/dev/null || true
hx ip -6 neigh del proxy $TAYGA6 dev eth0 2>/dev/null || true
hx ip -6 neigh del proxy $TAYGA_SRC6 dev eth0 2>/dev/null || true
hx sysctl -qw net.ipv6.conf.all.forwarding=0 net.ipv6.conf.eth0.proxy_ndp=0

# (c) bih-nfq with its defaults, its pool journal preloaded.
log "bih-nfq (defaults, $MAPPINGS mappings preloaded)"
state=$WORK/bih-state sock=$WORK/bih.sock
"$WORK/preload" -state-dir "$state" -n "$MAPPINGS" -first4 $POOL4 -first6 $SRV6 -requester $SRC4
t0=$(date +%s.%N)
ip netns exec "$H" "$BIN" run --state-dir "$state" --status-socket "$sock" --metrics off >"$RAW/bihnfq-daemon.log" 2>&1 &
daemon_pid=$!
ok=""
for _ in $(seq 1 $((START_LIMIT * 10))); do
	if timeout 5 ip netns exec "$H" "$BIN" status --socket "$sock" --json 2>/dev/null | grep -q '"state":"running"'; then
		ok=1
		break
	fi
	kill -0 "$daemon_pid" 2>/dev/null || die "bih-nfq exited: $(cat "$RAW/bihnfq-daemon.log")"
	sleep 0.1
done
[ -n "$ok" ] || die "bih-nfq not running after ${START_LIMIT}s"
t1=$(date +%s.%N)
{
	echo "bihnfq_startup_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
	echo "bihnfq_start_hwm_kb=$(vm_kb "$daemon_pid" VmHWM)"
	echo "bihnfq_start_rss_kb=$(vm_kb "$daemon_pid" VmRSS)"
} >>"$RAW/meta.env"
timeout 10 ip netns exec "$H" "$BIN" status --socket "$sock" --json >"$RAW/bihnfq-status-before.json"
got=$(timeout 20 ip netns exec "$H" getent ahostsv4 web.test | awk 'NR == 1 { print $1 }' || true)
[ "$got" = "$POOL4" ] || die "getent ahostsv4 web.test gave '$got', want $POOL4 (the preloaded mapping)"
record_offloads bihnfq
record_tun bihnfq bih0
measure bihnfq "$POOL4" "$daemon_pid"
timeout 10 ip netns exec "$H" "$BIN" status --socket "$sock" --json >"$RAW/bihnfq-status-after.json" || true
stop_pid "$daemon_pid"
daemon_pid=""

# Offload settings must be the same for every path.
if cmp -s "$RAW/offloads/native.txt" "$RAW/offloads/tayga.txt" &&
	cmp -s "$RAW/offloads/native.txt" "$RAW/offloads/bihnfq.txt"; then
	echo "offloads_identical=yes" >>"$RAW/meta.env"
else
	echo "offloads_identical=no" >>"$RAW/meta.env"
	echo "bench: WARNING: offload settings differ between paths (see $RAW/offloads/)" >&2
fi
echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/meta.env"
echo "elapsed_s=$(($(date +%s) - started))" >>"$RAW/meta.env"

topology down >/dev/null 2>&1 || true
topo_up=""

# DNS (tests/bench/dns.sh): its own lab, once this one is gone; the chart
# step folds $RAW/dns into the results.
log "DNS: dnsperf against the resolver, stub mode, intercept mode and Unbound dns64"
if ! BENCH_DNS_RAW=$RAW/dns BENCH_DNS_NET=${BENCH_DNS_NET:-${BENCH_NET}dns} BENCH_DNS_NO_TABLE=1 BIN=$BIN run tests/bench/dns.sh; then
	echo "bench: the DNS benchmark failed (see above)" >&2
fi

log "Results"
"$WORK/chart" -raw "$RAW" -out "$OUT" -results-md tests/bench/RESULTS.md
cat "$OUT/results.md"
echo
echo "bench: $OUT/results.{md,json,png}, tests/bench/RESULTS.md ($(($(date +%s) - started)) s)"

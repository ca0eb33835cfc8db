#!/usr/bin/env bash
# The DNS part of make bench: dnsperf against (a) the resolver directly,
# (b) bih-nfq's ENR in stub mode, (c) the bih-nfq daemon intercepting the
# queries (its defaults), over a mix of A queries for A-only, dual-stack and
# AAAA-only names, all answered from the resolver's memory; then synthesized
# answers only: Unbound's dns64 module (AAAA for A-only names) against the
# stub (A for AAAA-only names).
#
# The lab is tests/lab/lab.sh with LAB_MTU=1500 under its own name
# (BENCH_DNS_NET, default bihdns), so it never collides with bench.sh's lab;
# traffic stays between its namespaces, which, with every process this script
# starts, are removed on exit and on Ctrl-C.
#
# Raw output goes to BENCH_DNS_RAW (default tests/bench/results/raw/dns);
# bench.sh's chart step folds it into results.md, results.json and RESULTS.md.
# Run alone, the script prints the DNS table itself (tests/bench/chart -dns).
# See tests/bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${BENCH_RUNS:-3}
T=${BENCH_DNS_TIME:-10}       # seconds per dnsperf run
NAMES=${BENCH_DNS_NAMES:-100} # names of each kind
CLIENTS=${BENCH_DNS_CLIENTS:-8}
OUTSTANDING=${BENCH_DNS_OUTSTANDING:-64}
BIN=${BIN:-bin/bih-nfq}
RAW=${BENCH_DNS_RAW:-tests/bench/results/raw/dns}
NET=${BENCH_DNS_NET:-bihdns}
NET_STATE=/run/$NET
topology() { LAB=$NET LAB_STATE=$NET_STATE LAB_MTU=1500 tests/lab/lab.sh "$@"; }
H=$NET-host S=$NET-srv
RESOLVER=2001:db8:2::53     # the benchmark's resolver, beside the lab's own
# The stub and unbound's dns64 listen on ::1: dnsperf resolves its -s with
# AI_ADDRCONFIG, which refuses IPv4 in a namespace that has no IPv4 address
# but loopback. The stub's code path is the same as on 127.0.0.35.
STUB=::1 STUB_PORT=53
DNS64=::1 DNS64_PORT=5364
ZONE=bench.test

die() { echo "dns bench: $*" >&2; exit 1; }
log() { printf '\033[1m== dns: %s\033[0m\n' "$*"; }

[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
missing=()
for c in ip dnsperf dig unbound nft go timeout; do
	command -v "$c" >/dev/null || missing+=("$c")
done
[ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]} (apt-get install -y dnsperf bind9-dnsutils unbound nftables iproute2)"
[[ $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 && $RUNS -le 20 ]] || die "BENCH_RUNS must be 1..20"
[[ $T =~ ^[0-9]+$ && $T -ge 1 && $T -le 120 ]] || die "BENCH_DNS_TIME must be 1..120 seconds"
[[ $NAMES =~ ^[0-9]+$ && $NAMES -ge 1 && $NAMES -le 250 ]] || die "BENCH_DNS_NAMES must be 1..250"
[ -x "$BIN" ] || die "$BIN missing (make build)"

WORK=$(mktemp -d /tmp/bihdns.XXXXXX)
pids=() topo_up=""

. tests/bench/lib.sh

cleanup() {
	stop_child
	local p
	for p in "${pids[@]}"; do stop_pid "$p"; done
	if [ -n "$topo_up" ]; then
		topology down >/dev/null 2>&1 || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o "$WORK/chart" ./tests/bench/chart

rm -rf "$RAW"
mkdir -p "$RAW"
RAW_ABS=$(cd "$RAW" && pwd)

log "lab $NET (host — rtr — srv, MTU 1500)"
ip netns list | grep -qw "$H" && die "lab $NET is up already (LAB=$NET tests/lab/lab.sh down, or set BENCH_DNS_NET)"
topology up >/dev/null
topo_up=1

# ---- the resolver: unbound on srv, the zone in memory ------------------------

ip netns exec "$S" ip -6 addr add $RESOLVER/64 dev eth0 nodad
{
	cat <<EOF
server:
	interface: $RESOLVER
	port: 53
	do-ip4: no
	do-ip6: yes
	access-control: ::/0 allow
	username: ""
	chroot: ""
	directory: "$WORK"
	pidfile: ""
	use-syslog: no
	logfile: "$RAW_ABS/resolver.log"
	do-daemonize: no
	num-threads: $(nproc)
	so-reuseport: yes
	local-zone: "$ZONE." static
	local-data: "$ZONE. 3600 IN SOA ns.$ZONE. admin.$ZONE. 1 3600 600 86400 3600"
	local-data: "$ZONE. 3600 IN NS ns.$ZONE."
	local-data: "ns.$ZONE. 3600 IN AAAA $RESOLVER"
EOF
	for i in $(seq 1 "$NAMES"); do
		echo "	local-data: \"a$i.$ZONE. 3600 IN A 198.51.100.$i\""
		echo "	local-data: \"dual$i.$ZONE. 3600 IN A 203.0.113.$i\""
		printf '\tlocal-data: "dual%d.%s. 3600 IN AAAA 2001:db8:3::%x"\n' "$i" "$ZONE" "$i"
		printf '\tlocal-data: "v6-%d.%s. 3600 IN AAAA 2001:db8:4::%x"\n' "$i" "$ZONE" "$i"
	done
} >"$WORK/resolver.conf"
ip netns exec "$S" unbound -d -c "$WORK/resolver.conf" >"$WORK/resolver.out" 2>&1 &
resolver_pid=$!
pids+=("$resolver_pid")

# Unbound's dns64 module, in the host namespace like the stub, forwarding to
# the same resolver (RFC 6147 with the well-known prefix, RFC 6052).
cat >"$WORK/dns64.conf" <<EOF
server:
	interface: $DNS64
	port: $DNS64_PORT
	do-ip4: yes
	do-ip6: yes
	access-control: ::1/128 allow
	username: ""
	chroot: ""
	directory: "$WORK"
	pidfile: ""
	use-syslog: no
	logfile: "$RAW_ABS/dns64.log"
	do-daemonize: no
	num-threads: $(nproc)
	so-reuseport: yes
	module-config: "dns64 iterator"
	dns64-prefix: 64:ff9b::/96
	do-not-query-localhost: no
	# Unbound serves test. itself by default (RFC 6761); ask the resolver.
	local-zone: "test." nodefault
forward-zone:
	name: "$ZONE."
	forward-addr: $RESOLVER
EOF
ip netns exec "$H" unbound -d -c "$WORK/dns64.conf" >"$WORK/dns64.out" 2>&1 &
dns64_pid=$!
pids+=("$dns64_pid")

# Query files: the mix (an IPv4-only application asks A for every kind of
# name) and the synthesized-only sets.
: >"$WORK/mix.txt" : >"$WORK/synth-a.txt" : >"$WORK/synth-aaaa.txt"
for i in $(seq 1 "$NAMES"); do
	printf 'a%d.%s A\ndual%d.%s A\nv6-%d.%s A\n' "$i" $ZONE "$i" $ZONE "$i" $ZONE >>"$WORK/mix.txt"
	echo "v6-$i.$ZONE A" >>"$WORK/synth-a.txt"
	echo "a$i.$ZONE AAAA" >>"$WORK/synth-aaaa.txt"
done
cp "$WORK"/*.txt "$WORK/resolver.conf" "$WORK/dns64.conf" "$RAW/"

# wait_dns ADDR PORT NAME TYPE: up to 10 s for a server to answer.
wait_dns() {
	for _ in $(seq 1 100); do
		if timeout 2 ip netns exec "$H" dig +time=1 +tries=1 +short -p "$2" "@$1" "$3" "$4" 2>/dev/null | grep -q .; then
			return 0
		fi
		sleep 0.1
	done
	die "no answer from $1 port $2 for $3 $4"
}
wait_dns $RESOLVER 53 "a1.$ZONE" A

# family ADDR: dnsperf's -f option (without it, an IPv4 server in a
# namespace with no IPv4 route is asked as ::ffff:a.b.c.d, and fails).
family() { [[ $1 == *:* ]] && echo inet6 || echo inet; }

cpu_ticks() { # utime+stime of PID in clock ticks (fields 14 and 15 of stat)
	sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'
}

# dnsperf_run NAME ADDR PORT FILE RUN PID: one bounded dnsperf run; the
# latency of every query is kept (-v) for the percentiles, and the CPU time
# the server process PID spent during the run.
dnsperf_run() {
	local name=$1 addr=$2 port=$3 file=$4 r=$5 pid=$6
	local d=$RAW/$name c0 c1
	mkdir -p "$d"
	c0=$(cpu_ticks "$pid")
	run timeout $((T + 30)) ip netns exec "$H" dnsperf -f "$(family "$addr")" -s "$addr" -p "$port" -d "$file" -l "$T" \
		-c "$CLIENTS" -q "$OUTSTANDING" -t 2 -v >"$WORK/v.txt" 2>"$d/run$r.err" || echo "dns bench: dnsperf $name run $r failed" >&2
	# -v prints one line per answered query, its latency last; the summary
	# (from "Statistics:") is kept whole.
	c1=$(cpu_ticks "$pid")
	echo "server_cpu_ticks=$((${c1:-0} - ${c0:-0}))" >"$d/run$r.env"
	awk '/^> / { print $NF > "'"$d/run$r.lat"'"; next } { print }' "$WORK/v.txt" >"$d/run$r.txt"
}

# warm NAME ADDR PORT FILE: a short unmeasured run (fills caches, makes
# the mappings), kept apart.
warm() {
	local name=$1 addr=$2 port=$3 file=$4
	run timeout 30 ip netns exec "$H" dnsperf -f "$(family "$addr")" -s "$addr" -p "$port" -d "$file" -l 3 \
		-c "$CLIENTS" -q "$OUTSTANDING" -t 2 >>"$RAW/$name-warmup.txt" 2>&1 || true
}

# start_stub RUN: the daemon in stub mode (dns.mode: stub), forwarding to
# the resolver; the host's DNS is not queued in this mode.
start_stub() {
	local sock=$WORK/stub.sock
	cat >"$WORK/stub.yaml" <<EOF
dns:
  mode: stub
  stub-listen: "[$STUB]:$STUB_PORT"
  stub-upstreams: ["[$RESOLVER]:53"]
EOF
	if [ -n "${BENCH_DNS_PROFILE:-}" ]; then
		export BIH_NFQ_CPUPROFILE=$RAW_ABS/stub-run$1.pprof BIH_NFQ_CPUPROFILE_AFTER=4s
		export BIH_NFQ_CPUPROFILE_FOR=$((2 * T))s
	fi
	ip netns exec "$H" "$BIN" run --config "$WORK/stub.yaml" --state-dir "$WORK/stub-state" --status-socket "$sock" \
		--metrics off >>"$RAW/stub.log" 2>&1 &
	stub_pid=$!
	pids+=("$stub_pid")
	wait_dns $STUB $STUB_PORT "v6-1.$ZONE" A
	unset BIH_NFQ_CPUPROFILE BIH_NFQ_CPUPROFILE_AFTER BIH_NFQ_CPUPROFILE_FOR
}

start_daemon() {
	sock=$WORK/bih.sock
	if [ -n "${BENCH_DNS_PROFILE:-}" ]; then
		# The daemon's own profile window (cmd/bih-nfq/pprof.go): the
		# measured run, after the warm-up.
		export BIH_NFQ_CPUPROFILE=$RAW_ABS/intercept-run$1.pprof BIH_NFQ_CPUPROFILE_AFTER=4s
		export BIH_NFQ_CPUPROFILE_FOR=$((T - 1))s
	fi
	ip netns exec "$H" "$BIN" run --state-dir "$WORK/bih-state" --status-socket "$sock" --metrics off >>"$RAW/daemon.log" 2>&1 &
	daemon_pid=$!
	pids+=("$daemon_pid")
	local ok=""
	for _ in $(seq 1 300); do
		if timeout 5 ip netns exec "$H" "$BIN" status --socket "$sock" --json 2>/dev/null | grep -q '"state":"running"'; then
			ok=1
			break
		fi
		kill -0 "$daemon_pid" 2>/dev/null || die "bih-nfq exited: $(cat "$RAW/daemon.log")"
		sleep 0.1
	done
	[ -n "$ok" ] || die "bih-nfq not running after 30 s"
	local got
	got=$(timeout 5 ip netns exec "$H" dig +short @$RESOLVER "v6-1.$ZONE" A || true)
	[[ $got == 10.* || $got == 172.* ]] || die "intercept mode gave '$got' for v6-1.$ZONE A, want a pool address"
}

{
	echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "kernel=$(uname -r)"
	echo "cpus=$(nproc)"
	echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
	echo "dnsperf=$(dnsperf -h 2>&1 | awk '/^Version/ { print $2 }')"
	echo "unbound=$(unbound -V 2>/dev/null | awk 'NR == 1 { print $2 }')"
	echo "bihnfq=$("$BIN" version 2>/dev/null | awk 'NR == 1 { print $NF }')"
	echo "runs=$RUNS"
	echo "duration_s=$T"
	echo "names_per_kind=$NAMES"
	echo "clients=$CLIENTS"
	echo "outstanding=$OUTSTANDING"
	echo "resolver_threads=$(nproc)"
	echo "clk_tck=$(getconf CLK_TCK)"
} >"$RAW/meta.env"

wait_dns $DNS64 $DNS64_PORT "a1.$ZONE" AAAA
warm direct $RESOLVER 53 "$WORK/mix.txt"
warm synth-dns64 $DNS64 $DNS64_PORT "$WORK/synth-aaaa.txt"

# Rounds: every case once per round, so that a ratio compares runs made
# minutes, not a quarter of an hour, apart. The stub and the daemon never
# run together (the daemon would queue the stub's traffic), so each is
# started for its part of the round, and warmed up again.
for r in $(seq 1 "$RUNS"); do
	log "round $r/$RUNS: the resolver directly"
	dnsperf_run direct $RESOLVER 53 "$WORK/mix.txt" "$r" "$resolver_pid"

	log "round $r/$RUNS: stub mode (bih-nfq run, dns.mode stub, on [$STUB]:$STUB_PORT), mix and synthesized only"
	start_stub "$r"
	warm stub $STUB $STUB_PORT "$WORK/mix.txt"
	dnsperf_run stub $STUB $STUB_PORT "$WORK/mix.txt" "$r" "$stub_pid"
	dnsperf_run synth-stub $STUB $STUB_PORT "$WORK/synth-a.txt" "$r" "$stub_pid"
	echo "stub_hwm_kb_run$r=$(awk '/^VmHWM:/ { print $2 }' "/proc/$stub_pid/status" 2>/dev/null || echo 0)" >>"$RAW/meta.env"
	[ "$r" != 1 ] || timeout 5 ip netns exec "$H" dig +short -p $STUB_PORT @$STUB "v6-1.$ZONE" A >"$RAW/stub-sample.txt" 2>&1 || true
	stop_pid "$stub_pid"

	log "round $r/$RUNS: Unbound dns64, synthesized only"
	dnsperf_run synth-dns64 $DNS64 $DNS64_PORT "$WORK/synth-aaaa.txt" "$r" "$dns64_pid"
	[ "$r" != 1 ] || timeout 5 ip netns exec "$H" dig +short -p $DNS64_PORT @$DNS64 "a1.$ZONE" AAAA >"$RAW/dns64-sample.txt" 2>&1 || true

	log "round $r/$RUNS: intercept mode (bih-nfq run, defaults)"
	start_daemon "$r"
	warm intercept $RESOLVER 53 "$WORK/mix.txt"
	dnsperf_run intercept $RESOLVER 53 "$WORK/mix.txt" "$r" "$daemon_pid"
	timeout 10 ip netns exec "$H" "$BIN" status --socket "$sock" --json >"$RAW/daemon-status-run$r.json" || true
	stop_pid "$daemon_pid"
done

echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/meta.env"
topology down >/dev/null 2>&1 || true
topo_up=""

if [ -z "${BENCH_DNS_NO_TABLE:-}" ]; then
	"$WORK/chart" -dns "$RAW"
fi

#!/usr/bin/env bash
# Interim `make demo`: replay the bundled sample capture through the
# translator, offline, and show the packets before and after with tshark,
# plus one verdict per input packet.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "demo-replay: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "go is not installed (https://go.dev/dl/)"
command -v tshark >/dev/null 2>&1 ||
	die "tshark is not installed; on Debian/Ubuntu: sudo apt-get install tshark"

sample=testdata/demo/sample.pcap
[[ -r $sample ]] || die "missing $sample"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The mappings the ENR and the pool would have made: the application's IPv4
# source and the pool address of the IPv6-only server.
maps=(--map 172.21.112.1/32=2001:db8:b1a5::1/128 --map 10.170.160.1/32=2001:db8:ca5a::80/128)

# tshark without its "running as root" notice; a real failure still shows.
summary() {
	if ! tshark -n -r "$1" 2>"$work/tshark.err"; then
		cat "$work/tshark.err" >&2
		die "tshark could not read $1"
	fi
}

echo "==> building bih-nfq"
go build -o "$work/bih-nfq" ./cmd/bih-nfq

echo
echo "==> before: $sample (Linux cooked capture as tcpdump -i any writes it: the app's IPv4 on bih0, the server's IPv6 on eth0)"
summary "$sample"

echo
echo "==> bih-nfq replay ${maps[*]} --verdicts verdicts.jsonl $sample out.pcap"
"$work/bih-nfq" replay "${maps[@]}" --verdicts "$work/verdicts.jsonl" "$sample" "$work/out.pcap"

echo
echo "==> verdicts (index = input frame number - 1; outputs = frame numbers - 1 in out.pcap)"
cat "$work/verdicts.jsonl"

echo
echo "==> after: out.pcap (LINKTYPE_RAW, what the daemon would emit)"
if [[ $(stat -c %s "$work/out.pcap") -le 24 ]]; then
	echo "(no packets: nothing was translated)"
else
	summary "$work/out.pcap"
	echo
	echo "==> tshark's checksum validation on out.pcap (lists only bad packets)"
	bad=$(tshark -n -r "$work/out.pcap" -o ip.check_checksum:TRUE -o tcp.check_checksum:TRUE \
		-o udp.check_checksum:TRUE -Y '_ws.malformed || _ws.expert.severity == "Error" ||
		icmp.checksum.status == "Bad" || icmpv6.checksum.status == "Bad"' 2>"$work/tshark.err") ||
		{ cat "$work/tshark.err" >&2; die "tshark failed"; }
	if [[ -z $bad ]]; then
		echo "all checksums good, no malformed packets"
	else
		echo "$bad"
	fi
fi

# Shared by scripts/demo.sh and scripts/demo-router.sh (sourced, not run):
# checks, the lab's cleanup, output helpers and the daemon's start.
#
#   demo_init TARGET LAB_NAME PACKAGES COMMAND...   root, commands, lab variables
#   demo_start_daemon NS_CMD [run flags...]         bih-nfq run, waits for "running"

demo_init() {
	local target=$1 lab=$2 pkgs=$3
	shift 3
	if [ "$(id -u)" != 0 ]; then
		echo "make $target builds network namespaces: run it as root (sudo make $target)." >&2
		exit 1
	fi
	local missing=() c
	for c in "$@"; do
		command -v "$c" >/dev/null || missing+=("$c")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "make $target needs: ${missing[*]}" >&2
		echo "  apt-get install -y $pkgs" >&2
		exit 1
	fi
	export LAB=${LAB:-$lab}
	export LAB_STATE=${LAB_STATE:-/run/$LAB}
	BIN=${BIN:-bin/bih-nfq}
	[ -x "$BIN" ] || go build -o "$BIN" ./cmd/bih-nfq
	daemon=""
	trap demo_cleanup EXIT
	trap 'exit 130' INT TERM
	tests/lab/lab.sh down >/dev/null 2>&1 || true
}

demo_cleanup() {
	if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
		kill -TERM "$daemon" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
	fi
	tests/lab/lab.sh down >/dev/null 2>&1 || true
}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@" 2>&1 | sed 's/^/  /'; }

# demo_start_daemon NS_CMD [flags]: bih-nfq run in the namespace NS_CMD
# ("ip netns exec NAME") with state under $LAB_STATE/demo; sets $daemon.
demo_start_daemon() {
	local ns=$1
	shift
	mkdir -p "$LAB_STATE/demo"
	$ns "$BIN" run "$@" --state-dir "$LAB_STATE/demo/state" --status-socket "$LAB_STATE/demo/status.sock" \
		--metrics off >"$LAB_STATE/demo/daemon.log" 2>&1 &
	daemon=$!
	for _ in $(seq 1 100); do
		if $ns "$BIN" status --socket "$LAB_STATE/demo/status.sock" --json 2>/dev/null | grep -q '"state":"running"'; then
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
}

# demo_stop_daemon: SIGTERM and wait; the daemon removes what it added.
demo_stop_daemon() {
	kill -TERM "$daemon"
	wait "$daemon" || true
	daemon=""
}

# Shared by bench.sh and dns.sh (sourced): background test commands that
# Ctrl-C interrupts at once, and stopping the processes the scripts start.

child=""

# run CMD...: run a test command in the background and wait for it, so that
# Ctrl-C is acted on at once (the INT trap runs as soon as `wait` returns)
# instead of after the command ends.
run() {
	"$@" &
	child=$!
	local rc=0
	wait "$child" || rc=$?
	child=""
	return $rc
}

stop_pid() { # stop_pid PID: TERM, up to 10 s, then KILL
	local pid=$1
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
}

# stop_child: the command run was waiting for, when interrupted. It is
# usually a `timeout` wrapper, which leads its own process group (itself and
# the test command): the group goes as a whole if TERM is not enough.
stop_child() {
	if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
		kill -TERM "$child" 2>/dev/null || true
		for _ in $(seq 1 20); do kill -0 "$child" 2>/dev/null || break; sleep 0.1; done
		kill -KILL -- "-$child" 2>/dev/null || true
	fi
}

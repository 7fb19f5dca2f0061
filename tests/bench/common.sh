# shellcheck shell=bash
# common.sh - what the benchmark scripts share; sourced, never run.
#
# bench_init NAME: a work directory in /tmp (removed at exit unless
# EF_BENCH_KEEP=1), RESULTS_DIR (default BUILD_DIR/bench-results/NAME-TIME),
# PIDS (processes to stop at exit, by PID, with SIGTERM) and the traps.
# Needs PY and BUILD_DIR set by the caller.

bench_init() {
    BENCH_NAME=$1
    WORK=$(mktemp -d "/tmp/ef-bench-$BENCH_NAME.XXXXXX")
    RESULTS_DIR=${RESULTS_DIR:-$BUILD_DIR/bench-results/$BENCH_NAME-$(date -u +%Y%m%dT%H%M%SZ)}
    mkdir -p "$RESULTS_DIR"
    PIDS=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

# Stops exactly the processes the script started and has not yet waited
# for (PIDS, in order), then removes the work directory.
bench_cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ ${EF_BENCH_KEEP:-0} == 1 ]]; then
        echo "bench_$BENCH_NAME: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# json_get FIELD < JSON: prints one top-level field.
json_get() {
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# shell_join ARGS...: one command line, quoted so that it can be pasted.
shell_join() {
    "$PY" -c 'import shlex, sys; print(shlex.join(sys.argv[1:]))' "$@"
}

# wait_http URL: waits up to 10 s for URL to answer at all.
wait_http() {
    for _ in $(seq 100); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    return 1
}

# cpu_ticks PID: user + system CPU time the process has used, in clock ticks
# (the fields after the command name in /proc/PID/stat: utime is the 12th).
cpu_ticks() {
    sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

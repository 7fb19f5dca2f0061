# shellcheck shell=bash
# common.sh - what the benchmark scripts share; sourced, never run.
#
# bench_init NAME: a work directory in /tmp (removed at exit unless
# EF_BENCH_KEEP=1), RESULTS_DIR (default BUILD_DIR/bench-results/NAME-TIME),
# PIDS (processes to stop at exit, by PID, with SIGTERM) and the traps.
# Needs PY and BUILD_DIR set by the caller. The checks (bench_need_*) and
# bench_build_warn may run before it; the helpers that die call the
# caller's die MESSAGE.

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

# bench_need_bins FILE...: dies unless every FILE is executable (a program
# of the build directory).
bench_need_bins() {
    local f
    for f in "$@"; do
        [[ -x $f ]] || die "missing $f (build BUILD_DIR first)"
    done
}

# bench_need_tools TOOL...: dies unless every TOOL is installed, and PY.
bench_need_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool is not installed"
    done
    [[ -x $PY ]] || die "$PY is needed for free ports and JSON"
}

# bench_build_warn WHAT: sets BUILD_TYPE and SANITIZE from BUILD_DIR's
# CMake cache and warns on stderr (WHAT: which figures then mean little)
# unless it is a Release build without sanitizers.
bench_build_warn() {
    local name
    name=$(basename "$0" .sh)
    BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)
    SANITIZE=$(sed -n 's/^EF_SANITIZE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)
    [[ $BUILD_TYPE == Release ]] || echo "$name: WARNING: $BUILD_DIR is a '$BUILD_TYPE' build, not Release" >&2
    [[ $SANITIZE != ON ]] || echo "$name: WARNING: $BUILD_DIR has sanitizers on: $1" >&2
}

# bench_forget PID: a process that has been waited for is no longer ours
# to kill: drops PID from PIDS.
bench_forget() {
    local keep=() pid
    for pid in "${PIDS[@]}"; do
        [[ $pid == "$1" ]] || keep+=("$pid")
    done
    PIDS=("${keep[@]}")
}

# bench_stop PID: SIGTERM, wait, and bench_forget it.
bench_stop() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    bench_forget "$1"
}

# bench_broker DIR [LINE...]: mosquitto on a free loopback port, anonymous,
# with the extra configuration LINEs (max_queued_messages 1000, ...); its
# mosquitto.conf and mosquitto.log in DIR. Sets MQTT_PORT, MQTT_URL and
# BROKER_PID (also in PIDS).
bench_broker() {
    local dir=$1
    shift
    MQTT_PORT=$(free_port)
    MQTT_URL=mqtt://127.0.0.1:$MQTT_PORT
    {
        printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$MQTT_PORT"
        (($# == 0)) || printf '%s\n' "$@"
    } >"$dir/mosquitto.conf"
    mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
    BROKER_PID=$!
    PIDS+=("$BROKER_PID")
}

# bench_server DIR [ARG...]: `edgefleet-server init` with its data in
# DIR/data, then `serve` (EF_LOG_LEVEL=warn, log in DIR/server.log) on a
# free loopback port with the broker at MQTT_URL and the extra serve ARGs;
# waits until /healthz answers. Sets ADMIN (the admin token), HTTP_PORT,
# SERVER_URL, SERVER_CMD (the serve command line) and SERVER_PID (also in
# PIDS). Needs SERVER_BIN and MQTT_URL (bench_broker).
# shellcheck disable=SC2034,SC2153 # sets variables for the caller, reads its SERVER_BIN
bench_server() {
    local dir=$1
    shift
    "$SERVER_BIN" init --data-dir "$dir/data" >"$dir/init.out" 2>&1 || {
        cat "$dir/init.out" >&2
        die "edgefleet-server init failed"
    }
    ADMIN=$(tail -n 1 "$dir/init.out")
    HTTP_PORT=$(free_port)
    SERVER_URL=http://127.0.0.1:$HTTP_PORT
    SERVER_CMD=("$SERVER_BIN" serve --data-dir "$dir/data" --listen "127.0.0.1:$HTTP_PORT"
        --mqtt "$MQTT_URL" "$@")
    EF_LOG_LEVEL=warn "${SERVER_CMD[@]}" >"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_http "$SERVER_URL/healthz" || {
        tail -n 20 "$dir/server.log" >&2
        die "edgefleet-server did not start"
    }
}

# bench_wait_mqtt: waits up to 10 s for the server's /healthz to report
# its broker connection ("mqtt": "connected"); 1 if it never does.
bench_wait_mqtt() {
    for _ in $(seq 100); do
        [[ $(curl -sf "$SERVER_URL/healthz" | json_get mqtt 2>/dev/null) == connected ]] && return 0
        sleep 0.1
    done
    return 1
}

#!/usr/bin/env bash
# bench_ingest.sh - telemetry ingest throughput: windows the server persists
# per second against the rate a plain MQTT subscriber drains the same stream,
# in the same run (issue 5, "Measure").
#
# usage: tests/bench/bench_ingest.sh BUILD_DIR [WINDOWS=20000] [DEVICES=50] [RATE=0]
#
# Starts mosquitto (max_queued_messages as deploy/mosquitto/mosquitto.conf
# sets it) and edgefleet-server on free loopback ports with a temporary data
# directory, enrolls DEVICES devices (ingest-000 ..), then runs
# ef-bench-ingest-load once with the publisher at QoS 0 (as agents publish)
# and once at QoS 1: it publishes WINDOWS valid windows with every monitoring
# key (about 600 bytes) round-robin over the devices, at RATE windows/s (0: as
# fast as it can), while a libmosquitto subscriber of the same topics (QoS 0,
# as the server subscribes) counts them. Reported per run: windows/s stored by
# the server (edgefleet_telemetry_windows_stored_total), windows/s drained by
# the subscriber, their ratio, and rows lost (published - stored). The last
# line of output is one JSON object with the QoS 0 figures
# {"ingest_ratio", "ingest_rows_lost", "ingest_server_per_s",
#  "ingest_subscriber_per_s", ...} for tests/bench/run.sh.
#
# Environment: RESULTS_DIR (default BUILD_DIR/bench-results/ingest-TIMESTAMP),
# EF_BENCH_KEEP=1 keeps the temporary directory, MAX_QUEUED (broker
# max_queued_messages, default: deploy/mosquitto/mosquitto.conf's), PERF=1
# records a perf profile with call graphs of the server during each run
# (RESULTS_DIR/perf-qosN.data, report per thread and symbol in
# perf-qosN.txt). Build BUILD_DIR as Release without
# sanitizers. Not a ctest test: the figures depend on the machine.
set -euo pipefail

die() {
    echo "bench_ingest: $*" >&2
    exit 1
}

[[ $# -ge 1 && $# -le 4 ]] || die "usage: $0 BUILD_DIR [WINDOWS=20000] [DEVICES=50] [RATE=0]"
BUILD_DIR=$(cd "$1" && pwd) || die "no build directory: $1"
WINDOWS=${2:-20000}
DEVICES=${3:-50}
RATE=${4:-0}
DEPLOY_CONF=$(dirname "${BASH_SOURCE[0]}")/../../deploy/mosquitto/mosquitto.conf
MAX_QUEUED=${MAX_QUEUED:-$(awk '$1 == "max_queued_messages" { print $2 }' "$DEPLOY_CONF")}
[[ $MAX_QUEUED =~ ^[0-9]+$ ]] || die "no max_queued_messages in $DEPLOY_CONF (set MAX_QUEUED)"
PY=/usr/bin/python3
PREFIX=ingest-

SERVER_BIN=$BUILD_DIR/bin/edgefleet-server
LOAD_BIN=$BUILD_DIR/test-bin/ef-bench-ingest-load
for f in "$SERVER_BIN" "$LOAD_BIN"; do
    [[ -x $f ]] || die "missing $f (build BUILD_DIR first)"
done
for tool in mosquitto curl; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
[[ -x $PY ]] || die "$PY is needed for free ports and JSON"

# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bench_init ingest

# ---- broker and server --------------------------------------------------
MQTT_PORT=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages %s\n' \
    "$MQTT_PORT" "$MAX_QUEUED" >"$WORK/mosquitto.conf"
mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
PIDS+=($!)

"$SERVER_BIN" init --data-dir "$WORK/data" >"$WORK/init.out" 2>&1 || {
    cat "$WORK/init.out" >&2
    die "edgefleet-server init failed"
}
ADMIN=$(tail -n 1 "$WORK/init.out")

HTTP_PORT=$(free_port)
SERVER_URL=http://127.0.0.1:$HTTP_PORT
SERVER_CMD=("$SERVER_BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$HTTP_PORT"
    --mqtt "mqtt://127.0.0.1:$MQTT_PORT")
EF_LOG_LEVEL=warn "${SERVER_CMD[@]}" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
wait_http "$SERVER_URL/healthz" || {
    cat "$WORK/server.log" >&2
    die "edgefleet-server did not start"
}
for _ in $(seq 100); do
    [[ $(curl -sf "$SERVER_URL/healthz" | json_get mqtt 2>/dev/null) == connected ]] && break
    sleep 0.1
done

# ---- the devices ----------------------------------------------------------
ENROLL=$(curl -sf -X POST -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d "{\"uses\":$DEVICES}" "$SERVER_URL/api/v1/enroll-tokens" | json_get token) ||
    die "cannot create an enrollment token"
for i in $(seq 0 $((DEVICES - 1))); do
    id=$(printf '%s%03d' "$PREFIX" "$i")
    curl -sf -o /dev/null -X POST -H "Authorization: Bearer $ENROLL" \
        -H 'Content-Type: application/json' -d "{\"device_id\":\"$id\"}" \
        "$SERVER_URL/api/v1/enroll" || die "cannot enroll $id"
done

# ---- the runs -------------------------------------------------------------
for qos in 1 0; do
    echo "bench_ingest: QoS $qos, $WINDOWS windows over $DEVICES devices" >&2
    ticks=$(cpu_ticks "$SERVER_PID")
    PERF_PID=
    if [[ ${PERF:-0} == 1 ]]; then
        perf record -g -F 2000 -p "$SERVER_PID" -o "$RESULTS_DIR/perf-qos$qos.data" \
            >"$WORK/perf-qos$qos.log" 2>&1 &
        PERF_PID=$!
        sleep 1
    fi
    "$LOAD_BIN" "$MQTT_PORT" "$HTTP_PORT" "$PREFIX" "$DEVICES" "$WINDOWS" "$qos" "$RATE" \
        >"$RESULTS_DIR/qos$qos.txt" || die "ef-bench-ingest-load failed (QoS $qos)"
    if [[ -n $PERF_PID ]]; then
        kill -INT "$PERF_PID"
        wait "$PERF_PID" || true
        perf report -i "$RESULTS_DIR/perf-qos$qos.data" --no-children --sort comm,dso,symbol \
            -g none --stdio 2>/dev/null | head -n 80 >"$RESULTS_DIR/perf-qos$qos.txt" || true
    fi
    echo "server CPU: $(($(cpu_ticks "$SERVER_PID") - ticks)) ticks" >>"$RESULTS_DIR/qos$qos.txt"
    echo "== QoS $qos" && sed '$d' "$RESULTS_DIR/qos$qos.txt" | grep -v '^{' || true
    tail -n 2 "$RESULTS_DIR/qos$qos.txt" | head -n 1 >"$RESULTS_DIR/qos$qos.json"
done
echo "broker max_queued_messages $MAX_QUEUED; load: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min); results in $RESULTS_DIR"
echo "QoS 1: $(cat "$RESULTS_DIR/qos1.json")"
cat "$RESULTS_DIR/qos0.json"

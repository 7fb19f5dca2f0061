#!/usr/bin/env bash
# bench_checkin.sh - device check-in throughput: edgefleet-server's 304 path
# against a bare libmicrohttpd hello-world, in the same run.
#
# usage: tests/bench/bench_checkin.sh BUILD_DIR [DURATION_S=10] [CONNECTIONS=64] [THREADS=2]
#
# Starts mosquitto and edgefleet-server (serve --threads $SERVER_THREADS) on
# free loopback ports with a temporary data directory, pushes a tiny model,
# enrolls device bench-1 and assigns the model to it, then measures
#   GET /api/v1/devices/bench-1/desired  with the device token and
#   If-None-Match: <the current ETag>   (the 304 path a polling device takes)
# with wrk, alternately against the server and against ef-bench-hello-mhd (the
# same libmicrohttpd daemon configuration, answering a fixed 304), ROUNDS
# times each. It prints requests/s, latency and CPU per request of every run,
# the medians and the ratio server/hello (goal >= 0.8), and proves with the
# server's edgefleet_desired_not_modified_total counter that wrk hit the 304
# path. Not a ctest test: the figures depend on the machine.
#
# THREADS is wrk's -t. Environment: SERVER_THREADS (default 2, HTTP threads of
# both servers), ROUNDS (default 2), WARMUP_S (default 2, per server, not
# counted), RESULTS_DIR (default BUILD_DIR/bench-results/checkin-TIMESTAMP),
# EF_BENCH_KEEP=1 keeps the temporary directory. Build BUILD_DIR as Release
# without sanitizers: the figures are meant for the optimised build.
set -euo pipefail

die() {
    echo "bench_checkin: $*" >&2
    exit 1
}

[[ $# -ge 1 && $# -le 4 ]] || die "usage: $0 BUILD_DIR [DURATION_S=10] [CONNECTIONS=64] [THREADS=2]"
BUILD_DIR=$(cd "$1" && pwd) || die "no build directory: $1"
DURATION=${2:-10}
CONNECTIONS=${3:-64}
WRK_THREADS=${4:-2}
SERVER_THREADS=${SERVER_THREADS:-2}
ROUNDS=${ROUNDS:-2}
WARMUP_S=${WARMUP_S:-2}
PY=/usr/bin/python3
DATASET=/usr/share/doc/libfann-dev/examples/datasets/thyroid.train
DEVICE=bench-1

SERVER_BIN=$BUILD_DIR/bin/edgefleet-server
CLI_BIN=$BUILD_DIR/bin/edgefleet
TRAIN_BIN=$BUILD_DIR/test-bin/ef-train-fixture
HELLO_BIN=$BUILD_DIR/test-bin/ef-bench-hello-mhd

# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bench_need_bins "$SERVER_BIN" "$CLI_BIN" "$TRAIN_BIN" "$HELLO_BIN"
bench_need_tools wrk mosquitto curl
[[ -r $DATASET ]] || die "missing $DATASET (libfann-dev examples)"
bench_init checkin

# metric NAME: the value of one counter at the server's /metrics.
metric() {
    curl -sf "$SERVER_URL/metrics" | awk -v n="$1" '$1 == n { v = $2 } END { print v == "" ? "NA" : v }'
}

# ---- broker and server --------------------------------------------------
bench_broker "$WORK"
# 304s are logged at debug anyway; warn keeps the set-up's info lines out too.
bench_server "$WORK" --threads "$SERVER_THREADS"

# ---- a model, a device, an assignment -----------------------------------
"$TRAIN_BIN" "$DATASET" "$WORK/thyroid.net" 4 5 >/dev/null
"$CLI_BIN" --server "$SERVER_URL" --token "$ADMIN" --json model push thyroid "$WORK/thyroid.net" \
    >"$WORK/push.json" || die "model push failed"

ENROLL=$(curl -sf -X POST -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d '{"uses":1}' "$SERVER_URL/api/v1/enroll-tokens" | json_get token) ||
    die "cannot create an enrollment token"
DEVTOKEN=$(curl -sf -X POST -H "Authorization: Bearer $ENROLL" -H 'Content-Type: application/json' \
    -d "{\"device_id\":\"$DEVICE\"}" "$SERVER_URL/api/v1/enroll" | json_get device_token) ||
    die "cannot enroll $DEVICE"
"$CLI_BIN" --server "$SERVER_URL" --token "$ADMIN" assign thyroid@1 --device "$DEVICE" \
    >"$WORK/assign.out" || die "assign failed"

PATH_DESIRED=/api/v1/devices/$DEVICE/desired
ETAG=$(curl -sf -D - -o /dev/null -H "Authorization: Bearer $DEVTOKEN" "$SERVER_URL$PATH_DESIRED" |
    tr -d '\r' | awk 'tolower($1) == "etag:" { print $2 }')
[[ -n $ETAG ]] || die "GET $PATH_DESIRED sent no ETag"
STATUS=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $DEVTOKEN" \
    -H "If-None-Match: $ETAG" "$SERVER_URL$PATH_DESIRED")
[[ $STATUS == 304 ]] || die "GET $PATH_DESIRED with If-None-Match answered $STATUS, not 304"

# ---- the baseline -------------------------------------------------------
HELLO_PORT=$(free_port)
HELLO_URL=http://127.0.0.1:$HELLO_PORT
HELLO_CMD=("$HELLO_BIN" "$HELLO_PORT" "$SERVER_THREADS")
"${HELLO_CMD[@]}" >"$WORK/hello.log" 2>&1 &
HELLO_PID=$!
PIDS+=("$HELLO_PID")
wait_http "$HELLO_URL/" || die "ef-bench-hello-mhd did not start"

# ---- the runs -----------------------------------------------------------
# wrk_cmd TARGET_URL DURATION: the identical wrk command line for both.
wrk_cmd() {
    WRK=(wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d "${2}s" --latency
        -H "Authorization: Bearer $DEVTOKEN" -H "If-None-Match: $ETAG" "$1$PATH_DESIRED")
}

for target in server hello; do
    url=$SERVER_URL
    [[ $target == hello ]] && url=$HELLO_URL
    wrk_cmd "$url" "$WARMUP_S"
    "${WRK[@]}" >"$RESULTS_DIR/warmup-$target.txt"
done

NM_BEFORE=$(metric edgefleet_desired_not_modified_total)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$ROUNDS"); do
    for target in server hello; do
        url=$SERVER_URL pid=$SERVER_PID
        [[ $target == hello ]] && url=$HELLO_URL pid=$HELLO_PID
        wrk_cmd "$url" "$DURATION"
        echo "bench_checkin: round $round/$ROUNDS $target (${DURATION}s)" >&2
        ticks=$(cpu_ticks "$pid")
        "${WRK[@]}" >"$RESULTS_DIR/run$round-$target.txt"
        echo $(($(cpu_ticks "$pid") - ticks)) >"$RESULTS_DIR/run$round-$target.cputicks"
    done
done
NM_AFTER=$(metric edgefleet_desired_not_modified_total)

wrk_cmd "URL" "$DURATION"
WRK_SHOWN=$(shell_join "${WRK[@]}")
WRK_SHOWN=${WRK_SHOWN//$DEVTOKEN/DEVTOKEN}
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
"$PY" - "$RESULTS_DIR" "$ROUNDS" "$NM_BEFORE" "$NM_AFTER" "$(getconf CLK_TCK)" <<'EOF' | tee "$RESULTS_DIR/report.txt"
import os, re, statistics, sys

results, rounds = sys.argv[1], int(sys.argv[2])
nm_before, nm_after = sys.argv[3], sys.argv[4]
clk_tck = int(sys.argv[5])
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}

def parse(path):
    text = open(path).read()
    run = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
           "requests": int(re.search(r"(\d+) requests in", text).group(1)),
           "errors": 0}
    for pct in ("50", "90", "99"):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % pct, text, re.M)
        run["p" + pct] = float(m.group(1)) * UNIT[m.group(2)]
    ticks = int(open(path[:-len(".txt")] + ".cputicks").read())
    run["cpu_us"] = 1e6 * ticks / clk_tck / run["requests"] if run["requests"] else 0.0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        run["errors"] += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        run["errors"] += sum(int(x) for x in m.groups())
    return run

runs = {t: [parse(os.path.join(results, "run%d-%s.txt" % (r, t))) for r in range(1, rounds + 1)]
        for t in ("server", "hello")}
print("check-in GET /api/v1/devices/bench-1/desired with If-None-Match (304 path)")
print("%-7s %5s %12s %9s %9s %9s %10s %7s" % ("target", "round", "requests/s", "p50 ms",
                                              "p90 ms", "p99 ms", "cpu us/req", "errors"))
for r in range(rounds):
    for t in ("server", "hello"):
        x = runs[t][r]
        print("%-7s %5d %12.0f %9.2f %9.2f %9.2f %10.1f %7d" % (
            t, r + 1, x["rps"], x["p50"], x["p90"], x["p99"], x["cpu_us"], x["errors"]))
med = {t: statistics.median(x["rps"] for x in runs[t]) for t in runs}
p99 = {t: statistics.median(x["p99"] for x in runs[t]) for t in runs}
print("median requests/s: server %.0f, hello %.0f" % (med["server"], med["hello"]))
print("median p99 latency: server %.2f ms, hello %.2f ms" % (p99["server"], p99["hello"]))
ratio = med["server"] / med["hello"]
print("ratio server/hello: %.2f (goal >= 0.80: %s)" % (ratio, "met" if ratio >= 0.8 else "NOT met"))
cpu = {t: statistics.median(x["cpu_us"] for x in runs[t]) for t in runs}
if cpu["server"] > 0:
    print("median CPU per request (process user+system): server %.1f us, hello %.1f us; "
          "hello/server %.2f" % (cpu["server"], cpu["hello"], cpu["hello"] / cpu["server"]))
sent = sum(x["requests"] for x in runs["server"])
if "NA" in (nm_before, nm_after):
    print("304 check: WARNING: /metrics has no edgefleet_desired_not_modified_total")
else:
    delta = int(float(nm_after)) - int(float(nm_before))
    print("304 check: edgefleet_desired_not_modified_total rose by %d; wrk completed %d requests "
          "against the server (%.1f%%)" % (delta, sent, 100.0 * delta / sent if sent else 0.0))
bad = sum(x["errors"] for t in runs for x in runs[t])
if bad:
    print("WARNING: %d non-3xx responses or socket errors; see the raw wrk outputs" % bad)
EOF
cat <<EOF | tee -a "$RESULTS_DIR/report.txt"
commands:
  mosquitto -c CONF            (listener $MQTT_PORT 127.0.0.1, allow_anonymous true)
  EF_LOG_LEVEL=warn $(shell_join "${SERVER_CMD[@]}")
  $(shell_join "${HELLO_CMD[@]}")
  ${WRK_SHOWN}   (URL = $SERVER_URL or $HELLO_URL)
  order: a ${WARMUP_S}s warm-up of each, then server, hello, repeated $ROUNDS times; machine: $(nproc) cores, $(uname -sr)
  load average (1, 5, 15 min) before the runs: $LOAD_BEFORE; after: $LOAD_AFTER
raw wrk outputs: $RESULTS_DIR
EOF

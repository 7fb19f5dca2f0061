#!/usr/bin/env bash
# bench_rollout.sh - rollouts at scale: how long a real fleet of
# edgefleet-agents on this machine takes from `edgefleet rollout start` to
# 100 % committed, and what one tick of the rollout engine costs over a ring
# of 10,000 devices.
#
# usage: tests/bench/bench_rollout.sh BUILD_DIR [AGENTS="20 50 100"]
#
# Fleet part. Starts mosquitto and `edgefleet-server serve` (default engine
# tick, 1000 ms; EF_LOG_LEVEL=warn) on free loopback ports with a temporary
# data directory, makes ring "bench" (selector site=bench) and one
# enrollment token for every agent. For each count N of AGENTS, in
# increasing order, it starts agents until N run (`edgefleet-agent ...
# --tag site=bench --trial-seconds TRIAL_S --metrics-interval 60
# --poll-interval 300`, so assignments arrive by MQTT push), waits until all
# are enrolled, assigns the current version to the ring (`edgefleet assign
# thyroid@V --ring bench`) and waits until every device committed it. Then
# it pushes a new version (a network trained with another seed), creates a
# single-ring rollout with the default policy (`edgefleet rollout create
# thyroid@V+1 --rings bench`), takes the wall clock and starts it
# (`edgefleet rollout start ID`), and polls GET /api/v1/rollouts/ID every
# 50 ms until the rollout succeeded. Measured, from the start:
#   server_all   the first poll whose ring counts show N committed (the
#                server's view; the engine tick does not gate it)
#   succeeded    the rollout's finished_at (the next engine tick after that)
#   agents       from the agents' own logs (same clock): when each logged
#                deploy_state notified and committed for the version; the
#                p50, p90 and max over the fleet (the trial window, TRIAL_S,
#                is part of every commit)
# and the server's CPU time over the rollout, the agents' memory (VmRSS and
# Pss from /proc/PID/smaps_rollup; Pss shares the libraries fairly) after
# the previous version committed, and the load average.
#
# Engine part. Runs ef-bench-engine-tick (tests/bench/engine_tick.c) with
# --devices ENGINE_DEVICES --ticks ENGINE_TICKS for each --windows count in
# ENGINE_WINDOWS.
#
# Environment: TRIAL_S (1), ENGINE_DEVICES (10000), ENGINE_TICKS (50),
# ENGINE_WINDOWS ("0 10"), SKIP_FLEET=1, SKIP_ENGINE=1, RESULTS_DIR (default
# BUILD_DIR/bench-results/rollout-TIMESTAMP), EF_BENCH_KEEP=1 keeps the
# temporary directory. Build BUILD_DIR as Release without sanitizers. Every
# process the script starts is stopped by its PID when it exits.
set -euo pipefail

die() {
    echo "bench_rollout: $*" >&2
    exit 1
}

[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 BUILD_DIR [AGENTS=\"20 50 100\"]"
BUILD_DIR=$(cd "$1" && pwd) || die "no build directory: $1"
AGENTS=${2:-20 50 100}
TRIAL_S=${TRIAL_S:-1}
ENGINE_DEVICES=${ENGINE_DEVICES:-10000}
ENGINE_TICKS=${ENGINE_TICKS:-50}
ENGINE_WINDOWS=${ENGINE_WINDOWS:-0 10}
PY=/usr/bin/python3
DATASETS=/usr/share/doc/libfann-dev/examples/datasets
TRAIN_DATA=$DATASETS/thyroid.train
TEST_DATA=$DATASETS/thyroid.test

SERVER_BIN=$BUILD_DIR/bin/edgefleet-server
CLI_BIN=$BUILD_DIR/bin/edgefleet
AGENT_BIN=$BUILD_DIR/bin/edgefleet-agent
TRAIN_BIN=$BUILD_DIR/test-bin/ef-train-fixture
TICK_BIN=$BUILD_DIR/test-bin/ef-bench-engine-tick

# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bench_need_bins "$SERVER_BIN" "$CLI_BIN" "$AGENT_BIN" "$TRAIN_BIN" "$TICK_BIN"
bench_need_tools mosquitto curl
[[ -r $TRAIN_DATA && -r $TEST_DATA ]] || die "missing $DATASETS (libfann-dev examples)"
prev=0
for n in $AGENTS; do
    if ! [[ $n =~ ^[1-9][0-9]*$ ]] || ((n <= prev)); then
        die "AGENTS must be increasing counts, not '$AGENTS'"
    fi
    prev=$n
done
bench_build_warn "times and RSS mean little"
bench_init rollout
REPORT=$RESULTS_DIR/report.txt

say() {
    echo "$*" | tee -a "$REPORT"
}

: >"$REPORT"
say "bench_rollout $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores, $(uname -sr), build $BUILD_DIR ($BUILD_TYPE)"
say "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- the fleet ------------------------------------------------------------
if [[ ${SKIP_FLEET:-0} != 1 ]]; then
    bench_broker "$WORK" "max_connections -1"
    bench_server "$WORK"
    export EDGEFLEET_SERVER=$SERVER_URL EDGEFLEET_TOKEN=$ADMIN

    "$CLI_BIN" ring create bench --selector site=bench >/dev/null || die "ring create failed"
    ENROLL=$("$CLI_BIN" --json enroll-token create --uses 100000 | json_get token) ||
        die "cannot create an enrollment token"

    VERSION=0
    # push_version: trains a small network with a new seed and pushes it.
    push_version() {
        local seed=$((VERSION + 1))
        "$TRAIN_BIN" "$TRAIN_DATA" "$WORK/thyroid-s$seed.net" 8 20 "$seed" >/dev/null ||
            die "ef-train-fixture failed"
        VERSION=$("$CLI_BIN" --json model push thyroid "$WORK/thyroid-s$seed.net" --data "$TEST_DATA" |
            json_get version) || die "model push failed"
    }
    push_version

    AGENT_COMMON=(--server "$SERVER_URL" --mqtt "$MQTT_URL" --tag site=bench
        --trial-seconds "$TRIAL_S" --metrics-interval 60 --poll-interval 300)
    AGENT_PIDS=()
    started=0

    # The measurement of one rollout: starts it, polls it, reads the agent
    # logs; prints one JSON object.
    cat >"$WORK/measure.py" <<'EOF'
import datetime, glob, json, os, re, statistics, sys, time, urllib.request

url, token, rid, n, version, logs, out = sys.argv[1:8]
rid, n, version = int(rid), int(n), int(version)

def call(method, path):
    req = urllib.request.Request(url + path, method=method,
                                 headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)

def ts(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()

t0 = time.time()
call("POST", f"/api/v1/rollouts/{rid}/start")
t_start_ack = time.time()
server_all = None
polls = 0
while True:
    doc = call("GET", f"/api/v1/rollouts/{rid}")
    polls += 1
    now = time.time()
    ring = doc["rings"][0]
    if server_all is None and ring["counts"]["committed"] >= n:
        server_all = now
    if doc["state"] in ("succeeded", "failed", "aborted", "rolled_back", "paused"):
        break
    if now - t0 > 1800:
        sys.exit("rollout did not end within 30 minutes")
    time.sleep(0.05)
if doc["state"] != "succeeded":
    sys.exit(f"rollout ended {doc['state']}: {doc['reason']}")
notified, committed = [], []
pat = re.compile(r"^ts=(\S+) .*event=deploy_state .*version=%d state=(notified|committed) " % version)
for path in glob.glob(os.path.join(logs, "*.log")):
    got = {}
    for line in open(path, errors="replace"):
        m = pat.match(line)
        if m and m.group(2) not in got:
            got[m.group(2)] = ts(m.group(1)) - t0
    if "notified" in got:
        notified.append(got["notified"])
    if "committed" in got:
        committed.append(got["committed"])
def q(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p * (len(v) - 1))))] if v else None
res = {
    "agents": n, "rollout": rid, "version": version,
    "start_ack_s": round(t_start_ack - t0, 3),
    "server_all_committed_s": round(server_all - t0, 3),
    "succeeded_s": round(ts(doc["finished_at"]) - t0, 3),
    "ring_devices": ring["devices"], "ring_committed": ring["counts"]["committed"],
    "agents_notified": len(notified), "agents_committed": len(committed),
    "notified_p50_s": q(notified, 0.5), "notified_max_s": q(notified, 1.0),
    "committed_p50_s": q(committed, 0.5), "committed_p90_s": q(committed, 0.9),
    "committed_max_s": q(committed, 1.0), "polls": polls,
}
res = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items()}
json.dump(res, open(out, "w"))
print(json.dumps(res))
EOF

    # wait_ring N VERSION TIMEOUT: until N devices of ring bench exist and
    # (with VERSION) have it committed.
    cat >"$WORK/wait_ring.py" <<'EOF'
import json, sys, time, urllib.request
url, token, n, version, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
deadline = time.time() + timeout
last = None
while time.time() < deadline:
    req = urllib.request.Request(url + "/api/v1/devices?ring=bench",
                                 headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=30) as r:
        devs = json.load(r)["devices"]
    if version == 0:
        ok = len(devs)
    else:
        ok = sum(1 for d in devs if (d.get("slots") or {}).get("production", {}).get("version") == version
                 and d["slots"]["production"].get("state") == "committed")
    last = (len(devs), ok)
    if len(devs) >= n and ok >= n:
        sys.exit(0)
    time.sleep(0.5)
sys.exit(f"ring bench: {last} (devices, ok) after {timeout}s, wanted {n}")
EOF

    for n in $AGENTS; do
        while ((started < n)); do
            started=$((started + 1))
            id=$(printf 'bench-%04d' "$started")
            "$AGENT_BIN" "${AGENT_COMMON[@]}" --data-dir "$WORK/agents/$id" --device-id "$id" \
                --enroll-token "$ENROLL" >"$WORK/agent-logs-$id.log" 2>&1 &
            AGENT_PIDS+=($!)
            PIDS+=($!)
        done
        mkdir -p "$WORK/logs-$n"
        "$PY" "$WORK/wait_ring.py" "$SERVER_URL" "$ADMIN" "$n" 0 120 || die "agents did not enroll"
        "$CLI_BIN" assign "thyroid@$VERSION" --ring bench >/dev/null || die "assign failed"
        "$PY" "$WORK/wait_ring.py" "$SERVER_URL" "$ADMIN" "$n" "$VERSION" 300 ||
            die "thyroid@$VERSION was not committed everywhere"
        sleep 2
        # Memory after the previous version committed.
        mem=$("$PY" - "${AGENT_PIDS[@]}" <<'EOF'
import sys
rss, pss = [], []
for pid in sys.argv[1:]:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            rss.append(int(line.split()[1]))
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Pss:"):
            pss.append(int(line.split()[1]))
print(f"rss_mean_kb={sum(rss)//len(rss)} rss_max_kb={max(rss)} pss_mean_kb={sum(pss)//len(pss)} "
      f"pss_total_mb={sum(pss)//1024}")
EOF
)
        server_rss=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$SERVER_PID/status")
        push_version
        rid=$("$CLI_BIN" --json rollout create "thyroid@$VERSION" --rings bench | json_get id) ||
            die "rollout create failed"
        for f in "$WORK"/agent-logs-*.log; do
            ln -sf "$f" "$WORK/logs-$n/"
        done
        load=$(cut -d' ' -f1-3 /proc/loadavg)
        cpu0=$(cpu_ticks "$SERVER_PID")
        result=$("$PY" "$WORK/measure.py" "$SERVER_URL" "$ADMIN" "$rid" "$n" "$VERSION" \
            "$WORK/logs-$n" "$RESULTS_DIR/fleet-$n.json") || die "the rollout of $n agents failed"
        cpu1=$(cpu_ticks "$SERVER_PID")
        say ""
        say "fleet of $n agents: rollout $rid of thyroid@$VERSION (ring bench, default policy, trial ${TRIAL_S}s)"
        say "  $result"
        say "  server CPU during the rollout: $(((cpu1 - cpu0) * 1000 / $(getconf CLK_TCK))) ms; server VmRSS ${server_rss} kB"
        say "  agents after commit: $mem; load average before: $load"
    done
    say ""
    say "fleet commands:"
    say "  $(shell_join env EF_LOG_LEVEL=warn "${SERVER_CMD[@]}")"
    say "  $(shell_join "$AGENT_BIN" "${AGENT_COMMON[@]}" --data-dir DIR --device-id bench-NNNN --enroll-token TOKEN)"
    say "  edgefleet rollout create thyroid@V --rings bench; edgefleet rollout start ID"
fi

# ---- the engine tick ------------------------------------------------------
if [[ ${SKIP_ENGINE:-0} != 1 ]]; then
    for w in $ENGINE_WINDOWS; do
        cmd=("$TICK_BIN" --devices "$ENGINE_DEVICES" --ticks "$ENGINE_TICKS" --windows "$w" --dir "$WORK")
        say ""
        say "engine tick: $(shell_join "${cmd[@]}")"
        "${cmd[@]}" | tee "$RESULTS_DIR/engine-w$w.txt" >>"$REPORT" || die "ef-bench-engine-tick failed"
        grep -v '^{' "$RESULTS_DIR/engine-w$w.txt"
    done
fi
say ""
say "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench_rollout: results in $RESULTS_DIR" >&2

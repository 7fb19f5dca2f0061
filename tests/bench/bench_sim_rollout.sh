#!/usr/bin/env bash
# bench_sim_rollout.sh - rollout convergence for fleets of simulated devices
# (edgefleet-sim: the agent's own modules, thousands of devices in one
# process), and the server's memory while it carries them.
#
# usage: tests/bench/bench_sim_rollout.sh BUILD_DIR [COUNTS="1000 5000 10000"]
#
# For each count N, on a fresh broker and server (so that no count inherits
# the devices of another): starts mosquitto (anonymous listener, no
# persistence, max_connections -1) and `edgefleet-server serve`
# (EF_LOG_LEVEL=warn) on free loopback ports, creates ring "bench" (selector
# site=sim) and one enrollment token with N uses, pushes thyroid@1 and
# thyroid@2 (two networks trained with ef-train-fixture, seeds 1 and 2, with
# golden vectors from thyroid.test), and starts
#   edgefleet-sim --devices N --tag site=sim --trial-seconds TRIAL_S
#       --metrics-interval 60 --poll-interval 300 --infer-rate INFER_RATE
#       --data-dir (tmpfs) --status-interval 1
# (split over as few processes as the file-descriptor hard limit allows:
# about 3 descriptors per device, so 2 processes for 10,000 devices under a
# hard limit of 20,000). It waits until the sims report N enrolled and connected (enroll_s), assigns
# thyroid@1 to the ring (`edgefleet assign thyroid@1 --ring bench`) and waits
# until the sim reports N committed on it (assign_s), reads the server's
# VmRSS (idle with N devices), creates a one-ring rollout of thyroid@2 with
# the default policy, takes the wall clock and starts it, and polls
# GET /api/v1/rollouts/ID every 100 ms until it succeeded. Reported, from
# the start: rollout_s (the rollout's finished_at), server_all_s (the first
# poll whose ring shows N committed), sim_all_s (the sim's first status line
# with N devices committed on thyroid@2, same clock), the server's and the
# sims' CPU time during the rollout, the server's VmRSS / VmHWM after it, and
# the devices committed at each second (committed_timeline, from the sims).
#
# The broker's per-client queue (max_queued_messages, mosquitto's default
# 1000) is raised to BROKER_QUEUE: a rollout over 10,000 devices sends the
# server's client about 70,000 reports within seconds, and with the default
# the broker drops most of the burst (see docs/benchmarks.md).
#
# Environment: TRIAL_S (1), INFER_RATE (0.1), SIM_HTTP_CONNS (4),
# SIM_HTTP_GROUP (100),
# TIMEOUT_S (900, per phase), BROKER_QUEUE (100000), PERF_RECORD=1 (perf
# record -g of the server during each rollout, into RESULTS_DIR), RESULTS_DIR (default
# BUILD_DIR/bench-results/sim-rollout-TIMESTAMP), EF_BENCH_KEEP=1. The last
# line on stdout is one JSON object with every figure. Build BUILD_DIR as
# Release without sanitizers. Every process the script starts is stopped by
# its PID when it exits.
set -euo pipefail

die() {
    echo "bench_sim_rollout: $*" >&2
    exit 1
}

[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 BUILD_DIR [COUNTS=\"1000 5000 10000\"]"
BUILD_DIR=$(cd "$1" && pwd) || die "no build directory: $1"
COUNTS=${2:-1000 5000 10000}
TRIAL_S=${TRIAL_S:-1}
INFER_RATE=${INFER_RATE:-0.1}
SIM_HTTP_CONNS=${SIM_HTTP_CONNS:-4}
SIM_HTTP_GROUP=${SIM_HTTP_GROUP:-100}
TIMEOUT_S=${TIMEOUT_S:-900}
BROKER_QUEUE=${BROKER_QUEUE:-100000}
PY=/usr/bin/python3
DATASETS=/usr/share/doc/libfann-dev/examples/datasets

SERVER_BIN=$BUILD_DIR/bin/edgefleet-server
CLI_BIN=$BUILD_DIR/bin/edgefleet
SIM_BIN=$BUILD_DIR/test-bin/edgefleet-sim
TRAIN_BIN=$BUILD_DIR/test-bin/ef-train-fixture

# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bench_need_bins "$SERVER_BIN" "$CLI_BIN" "$SIM_BIN" "$TRAIN_BIN"
bench_need_tools mosquitto curl
[[ -r $DATASETS/thyroid.train ]] || die "missing $DATASETS (libfann-dev examples)"
for n in $COUNTS; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "COUNTS must be device counts, not '$COUNTS'"
done
bench_init sim-rollout
REPORT=$RESULTS_DIR/report.txt
: >"$REPORT"
say() {
    echo "$*" | tee -a "$REPORT" >&2
}
# The devices' directories go to tmpfs when there is one: thousands of
# fsync'd state files on a disk measure the disk.
SIM_BASE=$WORK
if [[ -d /dev/shm && -w /dev/shm ]]; then
    SIM_BASE=$(mktemp -d /dev/shm/ef-bench-sim.XXXXXX)
    trap 'bench_cleanup; rm -rf "$SIM_BASE"' EXIT
fi

say "bench_sim_rollout $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores, $(uname -sr), build $BUILD_DIR"
"$TRAIN_BIN" "$DATASETS/thyroid.train" "$WORK/v1.net" 8 20 1 >/dev/null || die "ef-train-fixture failed"
"$TRAIN_BIN" "$DATASETS/thyroid.train" "$WORK/v2.net" 8 20 2 >/dev/null || die "ef-train-fixture failed"

# sim_procs N: edgefleet-sim processes for N devices: each needs about three
# file descriptors per device (edgefleet-sim --help), and may raise its limit
# only up to the hard limit.
sim_procs() {
    local hard per
    hard=$(ulimit -Hn)
    [[ $hard == unlimited ]] && hard=1048576
    per=$(((hard - 500) * 100 / 306))
    ((per > 0)) || die "the file-descriptor hard limit ($hard) is too low for edgefleet-sim"
    echo $(((${1} + per - 1) / per))
}

cat >"$WORK/measure.py" <<'EOF'
# measure.py URL TOKEN CLI SERVER_PID N TIMEOUT OUT SIM_OUT:PID:DEVICES...: the
# phases of one count, the fleet being one or more edgefleet-sim processes.
import json, os, subprocess, sys, time, urllib.request

url, token, cli, server_pid, n, timeout, out = sys.argv[1:8]
sims = [(p, int(pid), int(k)) for p, pid, k in (a.split(":") for a in sys.argv[8:])]
n, timeout = int(n), float(timeout)
env = dict(os.environ, EDGEFLEET_SERVER=url, EDGEFLEET_TOKEN=token)

def call(method, path):
    req = urllib.request.Request(url + path, method=method,
                                 headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)

def status_lines(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.startswith("{")]

def alive(pid):
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

def wait_sim(pred, what):
    """Waits until every sim process printed a status line for which
    pred(line, its device count) holds; returns the latest such first line."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        firsts = []
        for path, pid, k in sims:
            if not alive(pid):
                sys.exit(f"edgefleet-sim {pid} exited while waiting for {what}")
            hit = [l for l in status_lines(path) if l["event"] == "status" and pred(l, k)]
            if hit:
                firsts.append(hit[0])
        if len(firsts) == len(sims):
            return max(firsts, key=lambda l: l["unix_ms"])
        time.sleep(0.2)
    sys.exit(f"{what}: not reached within {timeout}s; last: "
             f"{[status_lines(p)[-1:] for p, _, _ in sims]}")

def proc_status(key):
    for l in open(f"/proc/{server_pid}/status"):
        if l.startswith(key + ":"):
            return int(l.split()[1])

def cpu_s(pid=server_pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def sims_cpu_s():
    return sum(cpu_s(pid) for _, pid, _ in sims)

def run_cli(*args):
    p = subprocess.run([cli, "--json", *args], env=env, capture_output=True, text=True,
                       timeout=timeout)
    if p.returncode != 0:
        sys.exit(f"edgefleet {' '.join(args)}: {p.stderr}")
    return json.loads(p.stdout) if p.stdout.strip().startswith(("{", "[")) else p.stdout

def timeline(t0):
    """Devices committed on thyroid@2 (all sims) at each second after t0."""
    per = {}
    for path, _, _ in sims:
        for l in status_lines(path):
            if l["event"] == "status" and l["unix_ms"] / 1e3 >= t0:
                sec = int(l["unix_ms"] / 1e3 - t0)
                per.setdefault(sec, {})[path] = l["committed"].get("thyroid@2", 0)
    return [[sec, sum(v.values())] for sec, v in sorted(per.items()) if len(v) == len(sims)]

res = {"devices": n}
t0 = time.time()
wait_sim(lambda s, k: s["enrolled"] >= k and s["connected"] >= k, "every device enrolled and connected")
res["enroll_s"] = round(time.time() - t0, 2)

t0 = time.time()
run_cli("assign", "thyroid@1", "--ring", "bench")
wait_sim(lambda s, k: s["committed"].get("thyroid@1", 0) >= k and s["unix_ms"] / 1e3 >= t0,
         "thyroid@1 committed everywhere")
res["assign_s"] = round(time.time() - t0, 2)
time.sleep(2)
res["server_rss_idle_kb"] = proc_status("VmRSS")

ro = run_cli("rollout", "create", "thyroid@2", "--rings", "bench")
perf = None
if os.environ.get("PERF_RECORD") == "1":
    perf = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", server_pid, "-o",
                             out[:-len(".json")] + ".perf.data"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
c0, s0 = cpu_s(), sims_cpu_s()
t0 = time.time()
call("POST", f"/api/v1/rollouts/{ro['id']}/start")
server_all = None
polls = 0
while True:
    doc = call("GET", f"/api/v1/rollouts/{ro['id']}")
    polls += 1
    now = time.time()
    if server_all is None and doc["rings"][0]["counts"]["committed"] >= n:
        server_all = now
    if doc["state"] not in ("draft", "running"):
        break
    if now - t0 > timeout:
        sys.exit(f"rollout still {doc['state']} after {timeout}s: {doc['rings'][0]['counts']}")
    time.sleep(0.1)
if doc["state"] != "succeeded":
    sys.exit(f"rollout ended {doc['state']}: {doc['reason']}")
c1, s1 = cpu_s(), sims_cpu_s()
if perf:
    perf.send_signal(2)
    perf.wait()
first_all = wait_sim(lambda s, k: s["committed"].get("thyroid@2", 0) >= k,
                     "thyroid@2 committed everywhere")
fin = doc["finished_at"]
import datetime
fin_ts = datetime.datetime.strptime(fin, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
    tzinfo=datetime.timezone.utc).timestamp()
res.update({
    "rollout": ro["id"],
    "rollout_s": round(fin_ts - t0, 2),
    "server_all_s": round(server_all - t0, 2) if server_all else None,
    "sim_all_s": round(first_all["unix_ms"] / 1e3 - t0, 2),
    "polls": polls,
    "server_cpu_s": round(c1 - c0, 2),
    "sims_cpu_s": round(s1 - s0, 2),
    "committed_timeline": timeline(t0),
    "server_rss_kb": proc_status("VmRSS"),
    "server_hwm_kb": proc_status("VmHWM"),
    "load_avg": open("/proc/loadavg").read().split()[:3],
})
json.dump(res, open(out, "w"))
print(json.dumps(res))
EOF

SUMMARY=()
for n in $COUNTS; do
    dir=$WORK/n$n
    mkdir -p "$dir"
    bench_broker "$dir" "max_connections -1" "persistence false" "max_queued_messages $BROKER_QUEUE"
    bench_server "$dir"
    export EDGEFLEET_SERVER=$SERVER_URL EDGEFLEET_TOKEN=$ADMIN
    "$CLI_BIN" ring create bench --selector site=sim >/dev/null || die "ring create failed"
    ENROLL=$("$CLI_BIN" --json enroll-token create --uses "$n" | json_get token) || die "enroll-token create failed"
    for v in 1 2; do
        "$CLI_BIN" --json model push thyroid "$WORK/v$v.net" --data "$DATASETS/thyroid.test" >/dev/null ||
            die "model push failed"
    done
    # As few processes as the file-descriptor limit allows (see sim_procs).
    procs=$(sim_procs "$n")
    SIM_PIDS=()
    SIMS=()
    first=1
    for ((p = 0; p < procs; p++)); do
        k=$(((n - first + 1) / (procs - p)))
        SIM_CMD=("$SIM_BIN" --devices "$k" --first "$first" --server "$SERVER_URL" --mqtt "$MQTT_URL"
            --tag site=sim --trial-seconds "$TRIAL_S" --metrics-interval 60 --poll-interval 300
            --infer-rate "$INFER_RATE" --http-connections "$SIM_HTTP_CONNS" --http-group "$SIM_HTTP_GROUP"
            --data-dir "$SIM_BASE/n$n" --status-interval 1)
        "${SIM_CMD[@]}" --enroll-token "$ENROLL" >"$dir/sim$p.out" 2>"$dir/sim$p.err" &
        SIM_PIDS+=($!)
        PIDS+=($!)
        SIMS+=("$dir/sim$p.out:$!:$k")
        first=$((first + k))
    done
    say ""
    say "fleet of $n simulated devices in $procs edgefleet-sim process(es)"
    if ! line=$("$PY" "$WORK/measure.py" "$SERVER_URL" "$ADMIN" "$CLI_BIN" "$SERVER_PID" \
        "$n" "$TIMEOUT_S" "$RESULTS_DIR/n$n.json" "${SIMS[@]}"); then
        tail -n 3 "$dir"/sim*.out "$dir"/sim*.err "$dir/server.log" >&2 || true
        die "the measurement of $n devices failed"
    fi
    say "  $line"
    for pid in "${SIM_PIDS[@]}"; do
        say "  edgefleet-sim $pid: VmRSS $(awk '$1 == "VmRSS:" { print $2 }' "/proc/$pid/status") kB"
        bench_stop "$pid"
    done
    bench_stop "$SERVER_PID"
    bench_stop "$BROKER_PID"
    rm -rf "${SIM_BASE:?}/n$n"
    SUMMARY+=("$RESULTS_DIR/n$n.json")
done
say ""
say "commands:"
say "  mosquitto -c CONF   (listener PORT 127.0.0.1, allow_anonymous true, max_connections -1, persistence false, max_queued_messages $BROKER_QUEUE)"
say "  $(shell_join env EF_LOG_LEVEL=warn "${SERVER_CMD[@]}")"
say "  $(shell_join "${SIM_CMD[@]}") --enroll-token TOKEN"
say "  edgefleet assign thyroid@1 --ring bench; edgefleet rollout create thyroid@2 --rings bench; POST /api/v1/rollouts/ID/start"
"$PY" - "${SUMMARY[@]}" <<'EOF'
import json, sys
out = {}
for path in sys.argv[1:]:
    r = json.load(open(path))
    out[str(r["devices"])] = r
print(json.dumps({"sim_rollout": out}))
EOF

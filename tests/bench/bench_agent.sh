#!/usr/bin/env bash
# bench_agent.sh - edgefleet-agent on one device: binary size, memory idle
# and under load, inference requests/s through its Unix socket against
# fann_run in-process, and the latency and failures of a hot swap.
#
# usage: tests/bench/bench_agent.sh BUILD_DIR [DURATION_S=5] [ROUNDS=3]
#
# Starts mosquitto and edgefleet-server on free loopback ports with a
# temporary data directory, trains two thyroid networks with ef-train-fixture
# (seeds 1 and 2), pushes them as thyroid@1 and thyroid@2 (with --data, so
# that their manifests carry golden vectors for the self-test), enrolls one
# edgefleet-agent (--metrics-interval 60), assigns thyroid@1 and waits until
# the server shows it committed (the agent's trial window, 30 s by default,
# has to pass). Then it measures:
#   size   the agent stripped (strip -o a copy) and not, the two backend
#          modules, and the shared libraries the agent maps;
#   idle   VmRSS and Pss (/proc/PID/smaps_rollup) after IDLE_S seconds idle,
#          with the mappings that hold the memory (smaps-idle.txt);
#   load   ROUNDS rounds of: ef-bench-fann-inproc (fann_run on the same net
#          and input, in-process), then ef-bench-infer-load with each
#          CONNECTIONSxWINDOW of LOADS, DURATION_S each after a 1 s warm-up;
#          requests/s, latency, the agent's CPU per request, and the peak
#          RSS during the runs (VmHWM, reset with clear_refs before them);
#   swap   infer-load (SWAP_LOAD) steady for SWAP_STEADY_S seconds, then a
#          mark and `edgefleet assign thyroid@2 --device bench-agent`, then
#          SWAP_AFTER_S more seconds: steady p99 and max against the longest
#          latency after the assignment and around the moment the answers
#          switched models, and the failed requests (goal 0). SWAPS > 1
#          swaps back and forth (2, 1, 2, ...), each once the previous
#          version has been committed.
# It prints a report and the exact commands, and keeps the raw outputs in
# RESULTS_DIR. Not a ctest test: the figures depend on the machine.
#
# Environment: LOADS (default "1x1 4x1 1x16 4x16"), SWAP_LOAD (default 4x1),
# IDLE_S (5), SWAP_STEADY_S (5), SWAP_AFTER_S (5), SWAPS (1), TRIAL_S (passed as
# --trial-seconds when set; the agent's default is 30), RESULTS_DIR (default
# BUILD_DIR/bench-results/agent-TIMESTAMP), EF_BENCH_KEEP=1 keeps the
# temporary directory. Build BUILD_DIR as Release without sanitizers.
set -euo pipefail

die() {
    echo "bench_agent: $*" >&2
    exit 1
}

[[ $# -ge 1 && $# -le 3 ]] || die "usage: $0 BUILD_DIR [DURATION_S=5] [ROUNDS=3]"
BUILD_DIR=$(cd "$1" && pwd) || die "no build directory: $1"
DURATION=${2:-5}
ROUNDS=${3:-3}
LOADS=${LOADS:-1x1 4x1 1x16 4x16}
SWAP_LOAD=${SWAP_LOAD:-4x1}
IDLE_S=${IDLE_S:-5}
SWAP_STEADY_S=${SWAP_STEADY_S:-5}
SWAP_AFTER_S=${SWAP_AFTER_S:-5}
SWAPS=${SWAPS:-1}
PY=/usr/bin/python3
DATASETS=/usr/share/doc/libfann-dev/examples/datasets
TRAIN_DATA=$DATASETS/thyroid.train
TEST_DATA=$DATASETS/thyroid.test
DEVICE=bench-agent

SERVER_BIN=$BUILD_DIR/bin/edgefleet-server
CLI_BIN=$BUILD_DIR/bin/edgefleet
AGENT_BIN=$BUILD_DIR/bin/edgefleet-agent
BACKEND_DIR=$BUILD_DIR/lib/edgefleet
TRAIN_BIN=$BUILD_DIR/test-bin/ef-train-fixture
LOAD_BIN=$BUILD_DIR/test-bin/ef-bench-infer-load
INPROC_BIN=$BUILD_DIR/test-bin/ef-bench-fann-inproc

# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bench_need_bins "$SERVER_BIN" "$CLI_BIN" "$AGENT_BIN" "$TRAIN_BIN" "$LOAD_BIN" "$INPROC_BIN"
for f in "$BACKEND_DIR/edgefleet-backend-fann.so" "$BACKEND_DIR/edgefleet-backend-fann-fixed.so"; do
    [[ -r $f ]] || die "missing $f (build BUILD_DIR first)"
done
bench_need_tools mosquitto curl strip
[[ -r $TRAIN_DATA && -r $TEST_DATA ]] || die "missing $DATASETS (libfann-dev examples)"
for load in $LOADS $SWAP_LOAD; do
    [[ $load =~ ^[0-9]+x[0-9]+$ ]] || die "a load is CONNECTIONSxWINDOW, not $load"
done
bench_build_warn "sizes and RSS mean nothing"
bench_init agent

# status_kb PID FIELD: a kB field of /proc/PID/status (VmRSS, VmHWM, ...).
status_kb() {
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# rollup_kb PID FIELD: a kB field of /proc/PID/smaps_rollup (Rss, Pss, ...).
rollup_kb() {
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/smaps_rollup"
}

# reset_hwm PID: VmHWM starts again from the current RSS (Linux >= 4.0).
reset_hwm() {
    echo 5 >"/proc/$1/clear_refs" 2>/dev/null || echo "bench_agent: WARNING: cannot reset VmHWM" >&2
}

# memory NAME: one line of memory figures of the agent into memory.txt.
memory() {
    echo "$1 vmrss_kb=$(status_kb "$AGENT_PID" VmRSS) vmhwm_kb=$(status_kb "$AGENT_PID" VmHWM)" \
        "pss_kb=$(rollup_kb "$AGENT_PID" Pss) pss_anon_kb=$(rollup_kb "$AGENT_PID" Pss_Anon)" \
        "pss_file_kb=$(rollup_kb "$AGENT_PID" Pss_File) private_dirty_kb=$(rollup_kb "$AGENT_PID" Private_Dirty)" \
        "uss_kb=$(($(rollup_kb "$AGENT_PID" Private_Clean) + $(rollup_kb "$AGENT_PID" Private_Dirty)))" \
        "threads=$(status_kb "$AGENT_PID" Threads)" \
        >>"$RESULTS_DIR/memory.txt"
}

# smaps_by_file PID OUT: the process's Rss, Pss and private dirty memory per
# mapped file (anonymous mappings, heap and stacks by name), largest first.
smaps_by_file() {
    "$PY" - "$1" >"$2" <<'EOF'
import collections, re, sys
agg = collections.OrderedDict()
cur = None
for line in open("/proc/%s/smaps" % sys.argv[1]):
    if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
        parts = line.split()
        cur = agg.setdefault(parts[5] if len(parts) > 5 else "[anonymous]",
                             collections.Counter())
    else:
        key, _, value = line.partition(":")
        if key in ("Size", "Rss", "Pss", "Private_Dirty", "Private_Clean", "Shared_Clean"):
            cur[key] += int(value.split()[0])
tot = collections.Counter()
for c in agg.values():
    tot.update(c)
print("%8s %8s %8s %8s %8s  %s" % ("Rss kB", "Pss kB", "PrivDty", "PrivCln", "Size kB", "mapping"))
for name, c in sorted(agg.items(), key=lambda kv: -kv[1]["Rss"]):
    print("%8d %8d %8d %8d %8d  %s" % (c["Rss"], c["Pss"], c["Private_Dirty"],
                                        c["Private_Clean"], c["Size"], name))
print("%8d %8d %8d %8d %8d  %s" % (tot["Rss"], tot["Pss"], tot["Private_Dirty"],
                                    tot["Private_Clean"], tot["Size"], "total"))
EOF
}

# ---- broker and server --------------------------------------------------
bench_broker "$WORK"
bench_server "$WORK"
# The admin token stays in the environment, out of the process list.
export EDGEFLEET_SERVER=$SERVER_URL EDGEFLEET_TOKEN=$ADMIN

# ---- two versions of a model --------------------------------------------
for v in 1 2; do
    "$TRAIN_BIN" "$TRAIN_DATA" "$WORK/thyroid-v$v.net" 8 50 "$v" >/dev/null ||
        die "ef-train-fixture failed"
    "$CLI_BIN" --json model push thyroid "$WORK/thyroid-v$v.net" --data "$TEST_DATA" \
        >"$WORK/push-v$v.json" || die "model push of version $v failed"
    [[ $(json_get version <"$WORK/push-v$v.json") == "$v" ]] || die "the push did not make thyroid@$v"
done

# ---- one agent ------------------------------------------------------------
ENROLL=$("$CLI_BIN" --json enroll-token create | json_get token) || die "cannot create an enrollment token"
AGENT_CMD=("$AGENT_BIN" --server "$SERVER_URL" --mqtt "$MQTT_URL"
    --data-dir "$WORK/agent" --device-id "$DEVICE" --metrics-interval 60)
[[ -z ${TRIAL_S:-} ]] || AGENT_CMD+=(--trial-seconds "$TRIAL_S")
"${AGENT_CMD[@]}" --enroll-token "$ENROLL" >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!
PIDS+=("$AGENT_PID")
SOCKET=$WORK/agent/infer.sock

# device_state: "VERSION STATE" of the production slot as the device reported it.
device_state() {
    "$CLI_BIN" --json device show "$DEVICE" 2>/dev/null | "$PY" -c '
import json, sys
try:
    p = json.load(sys.stdin)["reported"]["production"]
    print(p["version"], p["state"])
except Exception:
    print("- -")'
}

# wait_committed VERSION TIMEOUT_S
wait_committed() {
    local deadline=$((SECONDS + $2)) state
    while ((SECONDS < deadline)); do
        kill -0 "$AGENT_PID" 2>/dev/null || {
            cat "$WORK/agent.log" >&2
            die "edgefleet-agent exited"
        }
        state=$(device_state)
        [[ $state == "$1 committed" ]] && return 0
        [[ $state == "$1 failed" || $state == "$1 rolled_back" ]] && break
        sleep 0.5
    done
    tail -n 20 "$WORK/agent.log" >&2
    die "thyroid@$1 was not committed on $DEVICE (last reported: ${state:-none})"
}

for _ in $(seq 100); do
    [[ -S $SOCKET ]] && break
    sleep 0.1
done
[[ -S $SOCKET ]] || die "the agent opened no socket at $SOCKET"
echo "bench_agent: assigning thyroid@1, waiting for the trial to commit it" >&2
for _ in $(seq 50); do
    "$CLI_BIN" assign thyroid@1 --device "$DEVICE" >"$WORK/assign-v1.out" 2>&1 && break
    sleep 0.2 # the agent may still be enrolling
done
wait_committed 1 $((${TRIAL_S:-30} + 60))
"$AGENT_BIN" infer --socket "$SOCKET" "$("$PY" -c '
import sys
with open(sys.argv[1]) as f:
    n_in = int(f.readline().split()[1])
    print("[" + ", ".join(f.readline().split()[:n_in]) + "]")' "$TRAIN_DATA")" \
    >"$RESULTS_DIR/agent-answer.json" || die "the agent does not answer on $SOCKET"

# ---- size -----------------------------------------------------------------
strip -o "$WORK/edgefleet-agent.stripped" "$AGENT_BIN"
for m in fann fann-fixed; do
    strip -o "$WORK/backend-$m.stripped" "$BACKEND_DIR/edgefleet-backend-$m.so"
done
filesize() { stat -c %s "$1"; }
{
    echo "agent $(filesize "$AGENT_BIN") $(filesize "$WORK/edgefleet-agent.stripped")"
    for m in fann fann-fixed; do
        echo "backend-$m $(filesize "$BACKEND_DIR/edgefleet-backend-$m.so") $(filesize "$WORK/backend-$m.stripped")"
    done
    # The shared libraries the running agent maps (backends' libfann included).
    libs=0 n=0
    while read -r lib; do
        case $lib in "$BUILD_DIR"/*) continue ;; esac
        libs=$((libs + $(filesize "$lib"))) n=$((n + 1))
    done < <(awk '$6 ~ /\.so/ { print $6 }' "/proc/$AGENT_PID/maps" | sort -u)
    echo "shared-libs $n $libs"
} >"$RESULTS_DIR/size.txt"
size "$WORK/edgefleet-agent.stripped" >"$RESULTS_DIR/size-sections.txt" 2>/dev/null || true

# ---- idle -----------------------------------------------------------------
sleep "$IDLE_S"
memory idle
smaps_by_file "$AGENT_PID" "$RESULTS_DIR/smaps-idle.txt"

# ---- load: inference through the socket against fann_run in-process -------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
LOAD_COMMON=(--socket "$SOCKET" --data "$TRAIN_DATA" --duration "$DURATION" --warmup 1 --timeline-ms 1000)
INPROC_CMD=("$INPROC_BIN" "$WORK/thyroid-v1.net" --data "$TRAIN_DATA" --duration "$DURATION" --warmup 1)
reset_hwm "$AGENT_PID"
: >"$RESULTS_DIR/rss-samples.txt"
for round in $(seq "$ROUNDS"); do
    echo "bench_agent: round $round/$ROUNDS: fann_inproc, then $LOADS (${DURATION}s each)" >&2
    "${INPROC_CMD[@]}" >"$RESULTS_DIR/run$round-inproc.json"
    for load in $LOADS; do
        conns=${load%x*} window=${load#*x}
        ticks=$(cpu_ticks "$AGENT_PID")
        "$LOAD_BIN" "${LOAD_COMMON[@]}" --connections "$conns" --window "$window" \
            >"$RESULTS_DIR/run$round-load-$load.json" 2>"$RESULTS_DIR/run$round-load-$load.err" &
        pid=$!
        PIDS+=("$pid")
        while kill -0 "$pid" 2>/dev/null; do
            echo "$round $load $(status_kb "$AGENT_PID" VmRSS)" >>"$RESULTS_DIR/rss-samples.txt"
            sleep 0.25
        done
        wait "$pid" || die "infer-load $load failed: $(cat "$RESULTS_DIR/run$round-load-$load.err")"
        bench_forget "$pid"
        # Ticks include the 1 s warm-up: the CPU per request uses the
        # requests answered in it as well (answered + warm-up rate).
        echo $(($(cpu_ticks "$AGENT_PID") - ticks)) >"$RESULTS_DIR/run$round-load-$load.cputicks"
    done
done
memory load
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
sleep "$IDLE_S"
memory idle-after-load

# ---- swap under load ---------------------------------------------------------
# Swap i goes to thyroid@2 when i is odd and back to thyroid@1 when even;
# each starts once the previous one has been committed (its trial is over).
conns=${SWAP_LOAD%x*} window=${SWAP_LOAD#*x}
from=1
for i in $(seq "$SWAPS"); do
    to=$((3 - from))
    if ((i > 1)); then
        echo "bench_agent: waiting for thyroid@$from to be committed before swap $i" >&2
        wait_committed "$from" $((${TRIAL_S:-30} + 60))
    fi
    echo "bench_agent: swap $i/$SWAPS: ${SWAP_STEADY_S}s steady, assign thyroid@$to, ${SWAP_AFTER_S}s more" >&2
    reset_hwm "$AGENT_PID"
    SWAP_CMD=("$LOAD_BIN" --socket "$SOCKET" --data "$TRAIN_DATA" --connections "$conns" --window "$window"
        --warmup 1 --stop-on-usr1 --expect "thyroid@$from,thyroid@$to" --timeline-ms 100)
    "${SWAP_CMD[@]}" >"$RESULTS_DIR/swap$i.json" 2>"$RESULTS_DIR/swap$i.err" &
    SWAP_PID=$!
    PIDS+=("$SWAP_PID")
    sleep "$((1 + SWAP_STEADY_S))"
    kill -USR2 "$SWAP_PID"
    ASSIGN_CMD=("$CLI_BIN" assign "thyroid@$to" --device "$DEVICE")
    "${ASSIGN_CMD[@]}" >"$WORK/assign-swap$i.out" 2>&1 || die "assign thyroid@$to failed"
    sleep "$SWAP_AFTER_S"
    kill -USR1 "$SWAP_PID"
    wait "$SWAP_PID" || die "infer-load (swap $i) failed: $(cat "$RESULTS_DIR/swap$i.err")"
    bench_forget "$SWAP_PID"
    memory "swap$i"
    # The agent's log from this swap's accepted assignment on.
    awk '/event=assignment_accepted/ { n = NR } { line[NR] = $0 }
         END { for (i = n; n && i <= NR; i++) print line[i] }' "$WORK/agent.log" |
        grep -E 'event=(assignment_accepted|deploy_state|deploy_swap|deploy_commit)' \
            >"$RESULTS_DIR/swap$i-agent-log.txt" || true
    from=$to
done
cp "$WORK/agent.log" "$RESULTS_DIR/agent.log"

# ---- the report ----------------------------------------------------------------
"$PY" - "$RESULTS_DIR" "$ROUNDS" "$(getconf CLK_TCK)" "$LOADS" "$SWAPS" <<'EOF' | tee "$RESULTS_DIR/report.txt"
import json, os, re, statistics, sys
from datetime import datetime

res, rounds, clk, loads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split()
swaps = int(sys.argv[5])
med = statistics.median
kib = lambda kb: "%.1f MiB" % (kb / 1024.0)

size = {l.split()[0]: [int(x) for x in l.split()[1:]] for l in open(os.path.join(res, "size.txt"))}
print("size")
print("  edgefleet-agent: %d bytes stripped (%d as built)" % (size["agent"][1], size["agent"][0]))
for m in ("fann", "fann-fixed"):
    s = size["backend-" + m]
    print("  edgefleet-backend-%s.so: %d bytes stripped (%d as built)" % (m, s[1], s[0]))
total = size["agent"][1] + size["backend-fann"][1] + size["backend-fann-fixed"][1]
print("  agent + both backends, stripped: %d bytes (%.0f KiB)" % (total, total / 1024.0))
print("  shared libraries mapped by the running agent: %d files, %.1f MiB on disk"
      % (size["shared-libs"][0], size["shared-libs"][1] / 1048576.0))

mem = {}
for line in open(os.path.join(res, "memory.txt")):
    name, *kv = line.split()
    mem[name] = {k: int(v) for k, v in (x.split("=") for x in kv)}
print("memory (goal: under 4 MiB idle)")
print("  %-28s %9s %9s %9s %9s %9s %7s" % ("", "VmRSS", "VmHWM", "Pss", "USS", "PrivDirty", "threads"))
labels = {"idle": "idle (v1 committed)", "load": "after the load runs",
          "idle-after-load": "idle again after the load"}
labels.update(("swap%d" % i, "after swap %d (2 models)" % i) for i in range(1, swaps + 1))
for name in labels:
    m = mem[name]
    print("  %-28s %9s %9s %9s %9s %9s %7d" % (labels[name], kib(m["vmrss_kb"]), kib(m["vmhwm_kb"]),
          kib(m["pss_kb"]), kib(m["uss_kb"]), kib(m["private_dirty_kb"]), m["threads"]))
print("  (VmHWM: peak since the reset before the load runs, resp. before the swap; Pss shares"
      " library pages with every process mapping them, so it depends on what else runs;"
      " USS = Private_Clean + Private_Dirty, what the agent alone holds)")
samples = [int(l.split()[2]) for l in open(os.path.join(res, "rss-samples.txt")) if l.split()[2:]]
if samples:
    print("  VmRSS sampled every 0.25 s during the load runs: max %s, median %s" % (kib(max(samples)), kib(med(samples))))
idle = mem["idle"]
print("  idle goal < 4 MiB: VmRSS %s, Pss %s" % ("met" if idle["vmrss_kb"] < 4096 else "NOT met",
                                              "met" if idle["pss_kb"] < 4096 else "NOT met"))

inproc = [json.load(open(os.path.join(res, "run%d-inproc.json" % r))) for r in range(1, rounds + 1)]
inproc_rps = med(x["runs_per_s"] for x in inproc)
print("inference requests/s: local socket (ef-bench-infer-load) against fann_run in-process")
answer = json.load(open(os.path.join(res, "agent-answer.json")))
same = len(answer["output"]) == len(inproc[0]["output"]) and all(
    abs(a - b) <= 1e-6 * max(1.0, abs(b)) for a, b in zip(answer["output"], inproc[0]["output"]))
print("  same input, same output: agent %s, fann_run %s: %s" % (
    json.dumps(answer["output"]), json.dumps(inproc[0]["output"]), "yes" if same else "NO"))
print("  fann_inproc: %s runs/s (median of %d), %.0f ns per run"
      % (" / ".join("%.0f" % x["runs_per_s"] for x in inproc), rounds, med(x["ns_per_run"] for x in inproc)))
print("  %-6s %-28s %9s %8s %8s %9s %9s %8s %7s" % ("load", "requests/s (each round)", "median",
      "p50 us", "p99 us", "max us", "agent us", "ratio", "failed"))
for load in loads:
    runs = []
    for r in range(1, rounds + 1):
        d = json.load(open(os.path.join(res, "run%d-load-%s.json" % (r, load))))
        ticks = int(open(os.path.join(res, "run%d-load-%s.cputicks" % (r, load))).read())
        # The ticks cover the warm-up too: count its answers at the measured rate.
        reqs = d["answered"] + d["requests_per_s"] * d["warmup_s"]
        d["agent_us"] = 1e6 * ticks / clk / reqs if reqs else 0
        runs.append(d)
    rps = med(x["requests_per_s"] for x in runs)
    print("  %-6s %-28s %9.0f %8.1f %8.1f %9.1f %9.1f %8.4f %7d" % (
        load, " / ".join("%.0f" % x["requests_per_s"] for x in runs), rps,
        med(x["latency"]["p50_us"] for x in runs), med(x["latency"]["p99_us"] for x in runs),
        med(x["latency"]["max_us"] for x in runs), med(x["agent_us"] for x in runs),
        rps / inproc_rps, sum(x["failed"] + x["failures"]["lost"] for x in runs)))
print("  (load = connections x requests in flight per connection; agent us = the agent's CPU"
      " per request; ratio = median requests/s / median fann_run runs/s)")

def agent_steps(path):
    """Milliseconds from the accepted assignment to each later step, from the agent's log."""
    stamps = {}
    for line in open(path).read().splitlines():
        m = re.search(r"ts=(\S+) .*event=(\w+)(?: .*state=([\w-]+))?", line)
        if m:
            stamps.setdefault(m.group(3) or m.group(2),
                              datetime.fromisoformat(m.group(1).replace("Z", "+00:00")))
    if "assignment_accepted" not in stamps:
        return ""
    t0 = stamps["assignment_accepted"]
    return ", ".join("%s +%.0f" % (k, (v - t0).total_seconds() * 1000)
                     for k, v in sorted(stamps.items(), key=lambda kv: kv[1]) if k != "assignment_accepted")

summary = []
for i in range(1, swaps + 1):
    s = json.load(open(os.path.join(res, "swap%d.json" % i)))
    print("swap %d: %s -> %s under load (%d connections x %d in flight)" % (
        i, s["model_a"], s["model_b"], s["connections"], s["window"]))
    bm, am = s.get("before_mark"), s.get("after_mark")
    if not bm or not am:
        print("  WARNING: no mark recorded")
        continue
    mark = s["mark_ms"]
    first = min((x["t_ms"] for x in s["switches"] if x["to"] == s["model_b"]), default=None)
    fails = s["failed"] + s["failures"]["lost"]
    print("  steady (%.1f s before the assign): %d answers, p50 %.1f us, p99 %.1f us, max %.1f us"
          % (mark / 1000.0, bm["answers"], bm["p50_us"], bm["p99_us"], bm["max_us"]))
    print("  after the assign (%.1f s): %d answers, p50 %.1f us, p99 %.1f us, max %.1f us"
          % (s["seconds"] - mark / 1000.0, am["answers"], am["p50_us"], am["p99_us"], am["max_us"]))
    # The longest latency of each whole second of the steady part: how long
    # the longest request of an ordinary second is on this machine.
    per_s = {}
    for t in s["timeline"]:
        if t[0] + s["timeline_ms"] <= mark:
            per_s[t[0] // 1000] = max(per_s.get(t[0] // 1000, 0.0), t[3])
    steady_s = sorted(per_s.values())
    if steady_s:
        print("  longest latency of each steady second: median %.1f us, worst %.1f us (%d seconds)"
              % (med(steady_s), steady_s[-1], len(steady_s)))
    row = {"fails": fails, "p99": bm["p99_us"], "steady_max": bm["max_us"],
           "steady_s_med": med(steady_s) if steady_s else 0.0, "after_max": am["max_us"]}
    if first is not None:
        width = s["timeline_ms"]
        around = max((t[3] for t in s["timeline"] if first - 500 <= t[0] + width and t[0] <= first + 500),
                     default=0.0)
        row.update(switch_ms=first - mark, around=around)
        print("  answers switched models %.0f ms after the assign; on all %d connections: %s" % (
            first - mark, s["connections"],
            "yes" if s["switch_count"] >= s["connections"] else "NO (%d)" % s["switch_count"]))
        print("  longest latency within +-500 ms of the switch: %.1f us = %.1f x steady p99, %.2f x the"
              " median longest of a steady second" % (around, around / bm["p99_us"] if bm["p99_us"] else 0,
              around / row["steady_s_med"] if row["steady_s_med"] else 0))
        print("  longest latency after the assign: %.1f us = %.1f x steady p99"
              % (am["max_us"], am["max_us"] / bm["p99_us"] if bm["p99_us"] else 0))
        print("  timeline (ms from the assign: answers/max us per %d ms):" % width)
        rows = [t for t in s["timeline"] if mark - 1000 <= t[0] <= first + 1000]
        for k in range(0, len(rows), 6):
            print("    " + "  ".join("%+5.0f: %5d/%7.1f" % (t[0] - mark, t[1], t[3]) for t in rows[k:k + 6]))
    else:
        print("  WARNING: no answer came from %s" % s["model_b"])
    print("  failed requests: %d (errors %s, bad answers %d, unexpected model %d, lost %d) of %d; goal 0: %s"
          % (fails, json.dumps(s["failures"]["errors"]), s["failures"]["bad_answers"],
             s["failures"]["unexpected_model"], s["failures"]["lost"], s["answered"],
             "met" if fails == 0 else "NOT met"))
    print("  answers by model: %s; switches: %d" % (json.dumps(s["models"]), s["switch_count"]))
    steps = agent_steps(os.path.join(res, "swap%d-agent-log.txt" % i))
    if steps:
        print("  agent log, ms from the accepted assignment: %s" % steps)
    summary.append(row)
done = [r for r in summary if "around" in r]
if done:
    print("swaps: %d; failed requests in all: %d; median over the swaps: switch %.0f ms after the assign,"
          " longest latency around it %.1f us against steady p99 %.1f us (%.1f x) and the median longest"
          " of a steady second %.1f us" % (len(summary), sum(r["fails"] for r in summary),
          med(r["switch_ms"] for r in done), med(r["around"] for r in done), med(r["p99"] for r in done),
          med(r["around"] / r["p99"] for r in done if r["p99"]), med(r["steady_s_med"] for r in done)))
EOF
AGENT_SHOWN=$(shell_join "${AGENT_CMD[@]}")
cat <<EOF | tee -a "$RESULTS_DIR/report.txt"
commands:
  mosquitto -c CONF            (listener $MQTT_PORT 127.0.0.1, allow_anonymous true)
  EF_LOG_LEVEL=warn $(shell_join "${SERVER_CMD[@]}")
  $(shell_join "$TRAIN_BIN" "$TRAIN_DATA" "$WORK/thyroid-v1.net" 8 50 1)    (v2: seed 2)
  $(shell_join "$CLI_BIN" --json model push thyroid "$WORK/thyroid-v1.net" --data "$TEST_DATA")
  $AGENT_SHOWN --enroll-token ENROLLTOKEN
  $(shell_join "$CLI_BIN" assign thyroid@1 --device "$DEVICE")   then wait for committed
  strip -o COPY $AGENT_BIN;  /proc/PID/status VmRSS/VmHWM, /proc/PID/smaps_rollup Pss after ${IDLE_S}s idle
  $(shell_join "${INPROC_CMD[@]}")
  $(shell_join "$LOAD_BIN" "${LOAD_COMMON[@]}") --connections C --window W   for C x W in: $LOADS
  $(shell_join "${SWAP_CMD[@]}")   (the last of $SWAPS swaps)
    then after 1+${SWAP_STEADY_S}s: kill -USR2 (mark); $(shell_join "${ASSIGN_CMD[@]}"); after ${SWAP_AFTER_S}s: kill -USR1 (stop)
  order: $ROUNDS rounds of fann_inproc then each load, then $SWAPS swap(s); machine: $(nproc) cores, $(uname -sr)
  load average (1, 5, 15 min) before the load runs: $LOAD_BEFORE; after: $LOAD_AFTER
raw outputs: $RESULTS_DIR
EOF

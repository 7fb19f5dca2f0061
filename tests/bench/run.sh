#!/usr/bin/env bash
# run.sh - every benchmark of the project, one after the other, into one
# table: build/bench/results.md and build/bench/results.json.
#
# usage: tests/bench/run.sh [--quick] [--build-dir DIR] [--out DIR]
#
# Builds a Release tree without sanitizers (default build/bench-build; only
# the targets the benchmarks run), then runs
#   bench_checkin.sh      check-in 304 path vs bare libmicrohttpd  -> checkin_ratio
#   bench_ingest.sh       telemetry ingest vs a plain subscriber    -> ingest_ratio (when present)
#   bench_agent.sh        agent size, idle RSS, inference, swap      -> agent_rss_idle_kb, swap_failed
#   bench_rollout.sh      rollout of real agents + engine tick       -> rollout_agents_s, engine_tick_ms
#   bench_sim_rollout.sh  rollouts of 1k/5k/10k simulated devices    -> rollout_1k_s, rollout_5k_s,
#                         and the server's RSS carrying them            rollout_10k_s, server_rss_10k_mb
# Each runs with its own results directory under OUT/raw/; one that fails is
# reported as failed (its keys null) and the others still run. --quick
# shortens every run (fewer seconds, one round, one swap, one fleet of 20
# agents, ten engine ticks) to finish within ten minutes on two cores, once
# the tree is built. Every figure's meaning: docs/benchmarks.md.
#
# Environment: EF_BENCH_SKIP="checkin agent ..." skips benchmarks by name;
# the variables of each script pass through (TRIAL_S, ROUNDS, ...).
set -euo pipefail

die() {
    echo "bench/run: $*" >&2
    exit 1
}

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
QUICK=0
BUILD_DIR=$SRC/build/bench-build
OUT=$SRC/build/bench
while [[ $# -gt 0 ]]; do
    case $1 in
    --quick) QUICK=1 ;;
    --build-dir) BUILD_DIR=${2:?}; shift ;;
    --out) OUT=${2:?}; shift ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done
BENCH=$SRC/tests/bench
PY=/usr/bin/python3
[[ -x $PY ]] || die "$PY is needed"
mkdir -p "$OUT/raw"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
LOG=$OUT/run-$STAMP.log
: >"$LOG"
T_ALL=$(date +%s)

say() {
    echo "bench/run: $*" | tee -a "$LOG" >&2
}

# ---- build ----------------------------------------------------------------
say "building Release in $BUILD_DIR"
t0=$(date +%s)
cmake -S "$SRC" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DEF_SANITIZE=OFF -DEF_TESTS=ON \
    >>"$LOG" 2>&1 || die "cmake configure failed (see $LOG)"
TARGETS=(edgefleet-server edgefleet edgefleet-agent edgefleet-sim ef-train-fixture)
# Every benchmark tool (ef-bench-*), whoever added it.
while read -r t; do
    TARGETS+=("$t")
done < <(cmake --build "$BUILD_DIR" --target help 2>/dev/null | sed -n 's/^\.\.\. \(ef-bench-[A-Za-z0-9_-]*\).*/\1/p')
cmake --build "$BUILD_DIR" -j"$(nproc)" --target "${TARGETS[@]}" >>"$LOG" 2>&1 ||
    die "the Release build failed (see $LOG)"
BUILD_S=$(($(date +%s) - t0))
say "built in ${BUILD_S}s: ${TARGETS[*]}"

# ---- the benchmarks -------------------------------------------------------
declare -A STATUS SECONDS_TAKEN RESDIR
# run NAME ENV... -- COMMAND...: runs one benchmark with RESULTS_DIR under
# OUT/raw, its output in OUT/raw/NAME.log; never stops the others.
run() {
    local name=$1 rc=0 t
    shift
    if [[ " ${EF_BENCH_SKIP:-} " == *" $name "* ]]; then
        STATUS[$name]=skipped
        return
    fi
    RESDIR[$name]=$OUT/raw/$name-$STAMP
    say "$name: $*"
    t=$(date +%s)
    env RESULTS_DIR="${RESDIR[$name]}" "$@" >"$OUT/raw/$name.log" 2>&1 || rc=$?
    SECONDS_TAKEN[$name]=$(($(date +%s) - t))
    if ((rc == 0)); then
        STATUS[$name]=ok
    else
        STATUS[$name]="failed (exit $rc)"
        tail -n 5 "$OUT/raw/$name.log" | sed 's/^/    /' | tee -a "$LOG" >&2
    fi
    say "$name: ${STATUS[$name]} in ${SECONDS_TAKEN[$name]}s"
}

if ((QUICK)); then
    run checkin env ROUNDS=1 WARMUP_S=1 "$BENCH/bench_checkin.sh" "$BUILD_DIR" 3
    if [[ -x $BENCH/bench_ingest.sh ]]; then
        run ingest "$BENCH/bench_ingest.sh" "$BUILD_DIR" 5000
    fi
    run agent env ROUNDS=1 SWAPS=1 LOADS=4x1 IDLE_S=3 TRIAL_S=3 SWAP_STEADY_S=2 SWAP_AFTER_S=2 \
        "$BENCH/bench_agent.sh" "$BUILD_DIR" 2
    run rollout env ENGINE_TICKS=10 ENGINE_WINDOWS=0 "$BENCH/bench_rollout.sh" "$BUILD_DIR" 20
    run sim_rollout env TIMEOUT_S=240 "$BENCH/bench_sim_rollout.sh" "$BUILD_DIR" "1000 5000 10000"
else
    run checkin "$BENCH/bench_checkin.sh" "$BUILD_DIR"
    if [[ -x $BENCH/bench_ingest.sh ]]; then
        run ingest "$BENCH/bench_ingest.sh" "$BUILD_DIR"
    fi
    run agent env SWAPS=3 "$BENCH/bench_agent.sh" "$BUILD_DIR"
    run rollout "$BENCH/bench_rollout.sh" "$BUILD_DIR"
    run sim_rollout "$BENCH/bench_sim_rollout.sh" "$BUILD_DIR" "1000 5000 10000"
fi

# ---- the table ------------------------------------------------------------
state_json() {
    local name
    for name in checkin ingest agent rollout sim_rollout; do
        printf '%s\t%s\t%s\t%s\n' "$name" "${STATUS[$name]:-absent}" "${SECONDS_TAKEN[$name]:-}" \
            "${RESDIR[$name]:-}"
    done
}
state_json >"$OUT/raw/status-$STAMP.tsv"
"$PY" - "$OUT" "$STAMP" "$QUICK" "$BUILD_DIR" "$BUILD_S" "$(($(date +%s) - T_ALL))" <<'EOF'
import glob, json, os, platform, re, statistics, sys, time

out, stamp, quick, build_dir, build_s, total_s = sys.argv[1:7]
status = {}
for line in open(os.path.join(out, "raw", f"status-{stamp}.tsv")):
    name, st, secs, res = (line.rstrip("\n").split("\t") + ["", "", ""])[:4]
    status[name] = {"status": st, "seconds": int(secs) if secs else None, "results": res or None}

def read(path):
    try:
        return open(path, errors="replace").read()
    except OSError:
        return ""

def log(name):
    return read(os.path.join(out, "raw", f"{name}.log"))

def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None

r = {}
# check-in: "ratio server/hello: 0.44 (...)" in report.txt
res = status.get("checkin", {}).get("results") or ""
m = re.search(r"ratio server/hello: ([\d.]+)", read(os.path.join(res, "report.txt")))
r["checkin_ratio"] = float(m.group(1)) if m else None
m = re.search(r"median requests/s: server (\d+), hello (\d+)", read(os.path.join(res, "report.txt")))
r["checkin_server_rps"], r["checkin_hello_rps"] = (int(m.group(1)), int(m.group(2))) if m else (None, None)

# ingest: the script's last line is JSON with ingest_ratio.
j = last_json(log("ingest")) if status.get("ingest", {}).get("status") == "ok" else None
r["ingest_ratio"] = j.get("ingest_ratio") if j else None

# agent: memory.txt ("idle vmrss_kb=..."), and the failed requests of every swap.
res = status.get("agent", {}).get("results") or ""
mem = {}
for line in read(os.path.join(res, "memory.txt")).splitlines():
    name, *kv = line.split()
    mem[name] = {k: int(v) for k, v in (x.split("=") for x in kv) if v.isdigit()}
r["agent_rss_idle_kb"] = mem.get("idle", {}).get("vmrss_kb")
r["agent_private_dirty_idle_kb"] = mem.get("idle", {}).get("private_dirty_kb")
fails = [int(x) for x in re.findall(r"^  failed requests: (\d+)", read(os.path.join(res, "report.txt")), re.M)]
r["swap_failed"] = sum(fails) if fails else None
r["swaps"] = len(fails) or None

# rollout of real agents and the engine tick.
res = status.get("rollout", {}).get("results") or ""
fleets = {}
for path in glob.glob(os.path.join(res, "fleet-*.json")):
    doc = json.load(open(path))
    fleets[doc.get("agents")] = doc
r["rollout_agents"] = {str(k): v for k, v in sorted(fleets.items(), key=lambda kv: kv[0] or 0)} or None
ticks = {}
for path in glob.glob(os.path.join(res, "engine-w*.txt")):
    j = last_json(read(path))
    if j and "result" in j:
        ticks[j["result"]["windows_per_device"]] = j["result"]
t0 = ticks.get(0) or (next(iter(ticks.values())) if ticks else None)
r["engine_devices"] = t0["devices"] if t0 else None
r["engine_tick_ms"] = t0["eval_tick_median_ms"] if t0 else None
r["engine_start_tick_ms"] = t0["start_tick_ms"] if t0 else None

# simulated fleets.
j = last_json(log("sim_rollout")) if status.get("sim_rollout", {}).get("status") == "ok" else None
sims = (j or {}).get("sim_rollout", {})
for n, key in (("1000", "1k"), ("5000", "5k"), ("10000", "10k")):
    s = sims.get(n)
    r[f"rollout_{key}_s"] = s["rollout_s"] if s else None
    r[f"rollout_{key}_all_committed_s"] = s["server_all_s"] if s else None
    r[f"enroll_{key}_s"] = s["enroll_s"] if s else None
    r[f"server_rss_{key}_mb"] = round(s["server_hwm_kb"] / 1024, 1) if s else None
r["sim_rollout"] = sims or None

cpu = ""
for line in read("/proc/cpuinfo").splitlines():
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
mem_kb = int(re.search(r"MemTotal:\s+(\d+)", read("/proc/meminfo")).group(1))
r["machine"] = {"cores": os.cpu_count(), "cpu": cpu, "memory_mb": mem_kb // 1024,
                "kernel": platform.release(), "load_avg_after": read("/proc/loadavg").split()[:3]}
r["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
r["quick"] = quick == "1"
r["build_dir"] = build_dir
r["build_s"] = int(build_s)
r["total_s"] = int(total_s)
r["benchmarks"] = status
json.dump(r, open(os.path.join(out, "results.json"), "w"), indent=2, sort_keys=True)

def fmt(v, unit=""):
    if v is None:
        return "—"
    if isinstance(v, float):
        v = ("%.2f" % v).rstrip("0").rstrip(".") if v < 100 else "%.0f" % v
    return f"{v}{unit}"

def verdict(v, ok):
    return "—" if v is None else ("met" if ok(v) else "**not met**")

rows = [
    ("check-in vs bare libmicrohttpd (ratio)", r["checkin_ratio"], "", ">= 0.8", lambda v: v >= 0.8),
    ("ingest vs plain subscriber (ratio)", r["ingest_ratio"], "", ">= 0.9", lambda v: v >= 0.9),
    ("failed requests during a swap", r["swap_failed"], "", "0", lambda v: v == 0),
    ("agent idle VmRSS", r["agent_rss_idle_kb"], " kB", "< 4096 kB", lambda v: v < 4096),
    ("rollout, 1,000 simulated devices", r["rollout_1k_s"], " s", "<= 10 s", lambda v: v <= 10),
    ("rollout, 5,000 simulated devices", r["rollout_5k_s"], " s", "—", None),
    ("rollout, 10,000 simulated devices", r["rollout_10k_s"], " s", "<= 60 s", lambda v: v <= 60),
    ("server RSS (peak) with 10,000 devices", r["server_rss_10k_mb"], " MB", "< 200 MB", lambda v: v < 200),
    ("engine tick over %s devices (median)" % fmt(r["engine_devices"]), r["engine_tick_ms"], " ms", "—", None),
]
lines = [f"# edgefleet benchmarks ({'quick' if r['quick'] else 'full'} run, {r['date']})", "",
         f"Machine: {r['machine']['cores']} cores ({cpu}), {r['machine']['memory_mb']} MB, "
         f"Linux {r['machine']['kernel']}; Release build in {build_dir}.", "",
         "| benchmark | figure | goal | |", "|---|---|---|---|"]
for label, v, unit, goal, ok in rows:
    lines.append(f"| {label} | {fmt(v, unit)} | {goal} | {verdict(v, ok) if ok else ''} |")
lines += ["", "| script | status | seconds |", "|---|---|---|"]
for name, st in status.items():
    lines.append(f"| {name} | {st['status']} | {fmt(st['seconds'])} |")
lines += ["", f"Build {build_s} s; all {total_s} s. Raw outputs: {os.path.join(out, 'raw')}.",
          "What each figure measures, and the anchors: docs/benchmarks.md.", ""]
open(os.path.join(out, "results.md"), "w").write("\n".join(lines))
print("\n".join(lines))
EOF
say "results: $OUT/results.md, $OUT/results.json"

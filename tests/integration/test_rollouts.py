"""Rollouts end to end (docs/rollouts.md): a real broker, one edgefleet-server
(`--rollout-tick-ms 200`) and real edgefleet-agents in three rings:

  canary  ro-c1, ro-c2   explicit ring (`edgefleet device set ID --ring canary`)
  early   ro-e1, ro-e2   tag selector tier=early
  broad   ro-b1, ro-b2   tag selector tier=broad

all committed on thyroid@1 (`assign --ring`) before the first rollout. The
server and the fleet are shared by the whole module; every test starts by
putting each device back on the last version a rollout left everywhere
(`settle`), so a failed test does not leave the next one a different fleet.

  - a good version walks canary -> early -> broad to `succeeded`, each ring
    starting only after the one before finished (rollout object, events on
    edgefleet/v1/events/rollout and the agents' own logs agree);
  - a version whose golden vectors fail stops at canary: paused (early and
    broad never assigned) or rolled back (canary back on its version);
  - a latency gate breached by a much slower network pauses the rollout;
  - a device that enrolls into a running ring converges on its version;
  - abort leaves committed devices on the new version, sends the others back;
  - the CLI: create --json, show --json, show --watch (exit 0 on success);
  - a device that joins a soaking ring is awaited before the ring succeeds;
  - the server killed with SIGKILL mid-rollout resumes it after a restart.
"""

import datetime
import json
import os
import signal
import subprocess
import threading
import time

import pytest

pytest.register_assert_rewrite("agent_fixtures")
import agent_fixtures as af  # noqa: E402
import edgefleet_fixtures as ef  # noqa: E402

pytest_plugins = ["agent_fixtures"]

MODEL = "thyroid"
TICK_MS = 200
SERVER_ARGS = ["--rollout-tick-ms", str(TICK_MS)]  # conftest's server, ticking fast
RINGS = ("canary", "early", "broad")
CANARY = ("ro-c1", "ro-c2")
EARLY = ("ro-e1", "ro-e2")
BROAD = ("ro-b1", "ro-b2")
ALL = CANARY + EARLY + BROAD
RING_OF = {**{d: "canary" for d in CANARY}, **{d: "early" for d in EARLY},
           **{d: "broad" for d in BROAD}}
AGENT_OPTIONS = {"trial_seconds": 1, "poll_interval": 5, "metrics_interval": 1}
X = af.thyroid_rows(1)[0][0]     # one thyroid input, to ask a device what it serves


# --------------------------------------------------------------------------
# Helpers

def parse_ts(s):
    """RFC 3339 (UTC, ms) as the server and the agents write it -> datetime."""
    assert isinstance(s, str) and s.endswith("Z"), s
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")


def rollout(server, rid):
    return server.get_json(f"/api/v1/rollouts/{rid}")


def ring(doc, name):
    for g in doc["rings"]:
        if g["name"] == name:
            return g
    raise AssertionError(f"no ring {name} in {doc}")


def wait_rollout(server, rid, pred, timeout, what):
    return server.wait_rollout(rid, pred, timeout, what)


def wait_state(server, rid, state, timeout=40):
    return wait_rollout(server, rid, lambda d: d["state"] == state, timeout,
                        f"rollout {rid} {state}")


def create(server, version, *flags, rings=RINGS):
    doc = server.cli_json("rollout", "create", f"{MODEL}@{version}", "--rings", ",".join(rings),
                          *flags)
    assert doc["state"] == "draft", doc
    return doc["id"]


def start(server, rid):
    doc = server.cli_json("rollout", "start", rid)
    assert doc["state"] == "running", doc
    return doc


def slot(agent):
    return agent.show()["slots"].get("production") or {}


def serving(agent):
    return agent.serving(X)


class Events:
    """Every message on edgefleet/v1/events/rollout since the module began."""

    def __init__(self, broker):
        self.lock = threading.Lock()
        self.items = []
        self.mqtt = ef.MqttClient(broker, f"it-rollout-events-{os.getpid()}")

        def on_message(client, userdata, msg):
            with self.lock:
                self.items.append((msg.topic, bool(msg.retain), json.loads(msg.payload)))
        self.mqtt.client.on_message = on_message
        self.mqtt.subscribe("edgefleet/v1/events/rollout")

    def of(self, rid):
        with self.lock:
            return [e for _, _, e in self.items if e.get("rollout") == rid]

    def retained(self):
        with self.lock:
            return [e for _, r, e in self.items if r]

    def close(self):
        self.mqtt.close()


class Traffic(threading.Thread):
    """Inference requests to one agent in a loop until stopped."""

    def __init__(self, agent):
        super().__init__(daemon=True)
        self.agent = agent
        self.stop_flag = threading.Event()
        self.answers = []
        self.failure = None

    def run(self):
        rows = af.thyroid_rows(20)
        try:
            with self.agent.connect() as c:
                i = 0
                while not self.stop_flag.is_set():
                    self.answers.append(c.infer(rows[i % len(rows)][0]).get("model"))
                    i += 1
        except Exception as e:   # reported by the test
            self.failure = repr(e)

    def stop(self):
        self.stop_flag.set()
        self.join(10)


def restart_server_after_kill9(srv):
    """SIGKILL the server by its PID, then serve again on the same data
    directory and port (so agents and CLI keep their URL)."""
    args = list(srv.proc.args)
    os.kill(srv.proc.pid, signal.SIGKILL)
    assert srv.proc.wait(10) == -signal.SIGKILL
    srv._stderr.close()
    srv._stderr = open(srv.stderr_path, "ab")
    deadline = time.monotonic() + 10
    while True:
        srv.proc = subprocess.Popen(args, stdout=srv._stderr, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        try:
            srv.wait_healthy()
            return
        except (RuntimeError, TimeoutError, AssertionError):
            if srv.proc.poll() is None or time.monotonic() > deadline:
                raise
            time.sleep(0.3)     # the port still taken?


# --------------------------------------------------------------------------
# Fixtures

@pytest.fixture(scope="module")
def events(broker):
    e = Events(broker)
    yield e
    e.close()


@pytest.fixture(scope="module")
def nets(train_net):
    """Small networks of the same shape, one per good version (seeds differ),
    a bad one for self-test failures and a much slower one (10,000 hidden
    neurons: about 0.2 ms per inference against a few µs)."""
    return {
        "good": [train_net(hidden=4, epochs=10, seed=100 + i) for i in range(8)],
        "bad": [train_net(hidden=4, epochs=10, seed=200 + i) for i in range(2)],
        "slow": train_net(hidden=10000, epochs=1, seed=300),
    }


class Registry:
    """Pushes versions of MODEL and remembers which one the fleet is on."""

    def __init__(self, server, nets, tmp):
        self.server = server
        self.nets = nets
        self.tmp = tmp
        self.good_left = list(nets["good"])
        self.bad_left = list(nets["bad"])
        self.settled = None          # the version every device committed last

    def push_good(self):
        return self.server.push(MODEL, self.good_left.pop(0).path)["version"]

    def push_bad(self):
        """A version whose golden vectors are wrong: its self-test fails."""
        rows = af.thyroid_rows(2)
        meta = self.tmp / f"bad-{len(self.bad_left)}.json"
        meta.write_text(json.dumps({"test_vectors": [
            {"input": rows[0][0], "output": [0.5, 0.5, 0.5], "tolerance": 1e-4},
            {"input": rows[1][0], "output": [0.5, 0.5, 0.5], "tolerance": 1e-4}]}))
        net = self.bad_left.pop(0)
        return self.server.cli_json("model", "push", MODEL, str(net.path), "--data",
                                    str(ef.THYROID_TEST), "--meta", str(meta))["version"]

    def push_slow(self):
        return self.server.push(MODEL, self.nets["slow"].path)["version"]


@pytest.fixture(scope="module")
def registry(server, nets, tmp_path_factory):
    return Registry(server, nets, tmp_path_factory.mktemp("meta"))


@pytest.fixture(scope="module")
def fleet(server, module_agent, registry, events):
    """Rings, six running agents, all committed on thyroid@1 by ring."""
    server.cli_ok("ring", "create", "canary", "--position", "1")
    server.cli_ok("ring", "create", "early", "--position", "2", "--selector", "tier=early")
    server.cli_ok("ring", "create", "broad", "--position", "3", "--selector", "tier=broad")
    agents = {}
    for d in ALL:
        tags = {"tier": RING_OF[d]} if d not in CANARY else {"tier": "none"}
        agents[d] = module_agent(d, tags=tags, **AGENT_OPTIONS)
    for d in ALL:
        ef.wait_until(lambda: server.request("GET", f"/api/v1/devices/{d}",
                                             token=server.admin_token).status == 200,
                      20, what=f"{d} enrolled")
    for d in CANARY:
        server.cli_ok("device", "set", d, "--ring", "canary")
    for d in ALL:
        assert agents[d].show()["ring"] == RING_OF[d], agents[d].show()
    assert registry.push_good() == 1
    for r in RINGS:
        assigned = server.cli_json("assign", f"{MODEL}@1", "--ring", r)
        assert sorted(x["device_id"] for x in assigned["assigned"]) == \
            sorted(d for d in ALL if RING_OF[d] == r), assigned
    for a in agents.values():
        a.wait_slot(MODEL, 1, "committed", timeout=40)
    registry.settled = 1
    return agents


def settle(server, fleet, registry):
    """Before a test: no rollout of MODEL running or paused, and every device
    of the fleet committed on registry.settled (assigned again if not)."""
    for state in ("running", "paused"):
        for r in server.get_json(f"/api/v1/rollouts?model={MODEL}&state={state}")["rollouts"]:
            server.cli_json("rollout", "abort", r["id"])
    v = registry.settled
    for d, a in fleet.items():
        s = slot(a)
        if (s.get("version"), s.get("state")) != (v, "committed"):
            server.cli_json("assign", f"{MODEL}@{v}", "--device", d)
    for a in fleet.values():
        a.wait_slot(MODEL, v, "committed", timeout=40)
    return v


def agent_events(agent, version, state):
    return [e for e in agent.deploy_states() if e.get("version") == str(version)
            and e.get("state") == state and e.get("slot", "production") == "production"]


# --------------------------------------------------------------------------
# 1. Rings in order

def test_a_good_version_walks_the_rings_in_order_to_succeeded(server, fleet, registry, events):
    prev = settle(server, fleet, registry)
    v = registry.push_good()
    rid = create(server, v)
    t0 = datetime.datetime.utcnow()
    start(server, rid)
    doc = wait_state(server, rid, "succeeded", timeout=60)

    # The rollout object: every ring succeeded with all its devices
    # committed, each started after the one before finished.
    assert doc["reason"] is None and doc["finished_at"], doc
    assert [g["name"] for g in doc["rings"]] == list(RINGS)
    assert [g["position"] for g in doc["rings"]] == [1, 2, 3]
    for g in doc["rings"]:
        assert g["state"] == "succeeded", g
        assert g["devices"] == 2 and g["counts"]["committed"] == 2, g
        assert sum(g["counts"].values()) == 2, g
        assert parse_ts(g["started_at"]) <= parse_ts(g["finished_at"]), g
    for before, after in zip(doc["rings"], doc["rings"][1:]):
        assert parse_ts(before["finished_at"]) <= parse_ts(after["started_at"]), (before, after)
    assert parse_ts(doc["started_at"]) <= parse_ts(doc["rings"][0]["started_at"])
    assert parse_ts(doc["rings"][-1]["finished_at"]) <= parse_ts(doc["finished_at"])

    # Every device committed the version and serves it; the server knew
    # each commit when the ring succeeded (no waiting here).
    for d, a in fleet.items():
        s = slot(a)
        assert (s["name"], s["version"], s["state"]) == (MODEL, v, "committed"), (d, s)
        assert serving(a) == f"{MODEL}@{v}", d

    # The agents' own logs: no device of a ring was notified of the version
    # before every device of the ring before it had committed it.
    def first(d, state):
        ev = agent_events(fleet[d], v, state)
        assert ev, f"{d}: no {state} of {MODEL}@{v}"
        return parse_ts(ev[0]["ts"])
    for earlier, later in ((CANARY, EARLY), (EARLY, BROAD)):
        last_commit = max(first(d, "committed") for d in earlier)
        first_notice = min(first(d, "notified") for d in later)
        assert last_commit <= first_notice, (earlier, later, last_commit, first_notice)
        ring_start = parse_ts(ring(doc, RING_OF[later[0]])["started_at"])
        assert last_commit <= ring_start + datetime.timedelta(milliseconds=5)
    assert first(CANARY[0], "notified") >= t0 - datetime.timedelta(seconds=1)

    # The events: the rollout running, then each ring running -> soaking ->
    # succeeded in ring order, then the rollout succeeded; not retained.
    ef.wait_until(lambda: any(e["state"] == "succeeded" and "ring" not in e
                              for e in events.of(rid)), 5, what="the succeeded event")
    seq = [(e.get("ring"), e.get("ring_state") or e["state"]) for e in events.of(rid)]
    want = [(None, "running")]
    for r in RINGS:
        want += [(r, "running"), (r, "soaking"), (r, "succeeded")]
    want += [(None, "succeeded")]
    assert seq == want, seq
    for e in events.of(rid):
        assert e["model"] == MODEL and e["version"] == v, e
        parse_ts(e["ts"])
    assert not [e for e in events.retained() if e.get("rollout") == rid]
    assert prev != v
    registry.settled = v


# --------------------------------------------------------------------------
# 2. A version that fails its self-test stops at canary

def assert_untouched(fleet, devices, settled, bad):
    """Devices a rollout never reached: still committed on settled, serving
    it, and never told about the bad version."""
    for d in devices:
        s = slot(fleet[d])
        assert (s["version"], s["state"]) == (settled, "committed"), (d, s)
        assert serving(fleet[d]) == f"{MODEL}@{settled}", d
        assert not [e for e in fleet[d].deploy_states() if e.get("version") == str(bad)], d


def test_a_failing_self_test_pauses_the_rollout_at_canary(server, fleet, registry, events):
    settled = settle(server, fleet, registry)
    bad = registry.push_bad()
    rid = create(server, bad, "--on-breach", "pause")
    start(server, rid)
    doc = wait_state(server, rid, "paused", timeout=40)
    canary, early, broad = doc["rings"]
    assert canary["state"] == "failed", canary
    assert canary["reason"].startswith("errors: "), canary
    assert doc["reason"] == f"ring canary: {canary['reason']}", doc
    assert canary["devices"] == 2 and canary["counts"]["failed"] >= 1, canary
    for g in (early, broad):
        assert g["state"] == "pending" and g["devices"] == 0, g
        assert g["started_at"] is None, g
    # The canary devices failed the self-test and keep serving settled.
    for d in CANARY:
        ef.wait_until(lambda: slot(fleet[d]).get("state") == "failed", 15,
                      what=f"{d} failed {MODEL}@{bad}")
        s = slot(fleet[d])
        assert s["version"] == bad and s["reason"].startswith("self-test: golden vector"), s
        assert serving(fleet[d]) == f"{MODEL}@{settled}", d
    # Paused stays paused: nothing reaches early or broad a few ticks later.
    time.sleep(5 * TICK_MS / 1000)
    doc = rollout(server, rid)
    assert doc["state"] == "paused" and [g["state"] for g in doc["rings"]] == \
        ["failed", "pending", "pending"], doc
    assert_untouched(fleet, EARLY + BROAD, settled, bad)
    seq = [(e.get("ring"), e.get("ring_state") or e["state"]) for e in events.of(rid)]
    assert seq[-2:] == [("canary", "failed"), (None, "paused")], seq
    assert ("early", "running") not in seq, seq
    # Resume retries: the canary's failed devices are given the version
    # again (a higher seq), fail their self-test again, and the rollout
    # pauses again on the same rule.
    since = {d: fleet[d].log_size() for d in CANARY}
    doc = server.cli_json("rollout", "resume", rid)
    assert doc["state"] in ("running", "paused"), doc
    for d in CANARY:
        fleet[d].wait_state("failed", version=bad, since=since[d], timeout=20)
    doc = wait_state(server, rid, "paused", timeout=20)
    assert ring(doc, "canary")["state"] == "failed", doc
    assert ring(doc, "canary")["reason"].startswith("errors: "), doc
    assert [g["state"] for g in doc["rings"][1:]] == ["pending", "pending"], doc
    # The events go out after the state is committed: wait for the pause's.
    ef.wait_until(lambda: [(e.get("ring"), e["state"]) for e in events.of(rid)
                           if not e.get("ring")].count((None, "paused")) == 2,
                  10, interval=0.05, what="the second pause's event")
    seq = [(e.get("ring"), e.get("ring_state") or e["state"]) for e in events.of(rid)]
    assert seq[-4:] == [("canary", "running"), (None, "running"), ("canary", "failed"),
                        (None, "paused")] or \
        seq[-4:] == [(None, "running"), ("canary", "running"), ("canary", "failed"),
                     (None, "paused")], seq
    assert_untouched(fleet, EARLY + BROAD, settled, bad)
    # Abort: the canary devices are given settled back (they never left it).
    doc = server.cli_json("rollout", "abort", rid)
    assert doc["state"] == "aborted", doc
    for d in CANARY:
        fleet[d].wait_slot(MODEL, settled, "committed", timeout=20)
        assert serving(fleet[d]) == f"{MODEL}@{settled}"


def test_a_failing_self_test_with_on_breach_rollback_rolls_canary_back(server, fleet, registry,
                                                                        events):
    settled = settle(server, fleet, registry)
    bad = registry.push_bad()
    rid = create(server, bad, "--on-breach", "rollback")
    start(server, rid)
    doc = wait_state(server, rid, "rolled_back", timeout=40)
    canary, early, broad = doc["rings"]
    assert canary["state"] == "failed" and canary["reason"].startswith("errors: "), canary
    assert doc["reason"].startswith("ring canary: errors: "), doc
    assert canary["counts"]["rolled_back"] == 2, canary
    for g in (early, broad):
        assert g["state"] == "pending" and g["devices"] == 0, g
    # The canary devices are assigned their previous version again (a new
    # seq) and serve it; their slot no longer names the bad version.
    for d in CANARY:
        s = fleet[d].wait_slot(MODEL, settled, "committed", timeout=20)
        assert s["version"] == settled, s
        assert serving(fleet[d]) == f"{MODEL}@{settled}", d
        assert agent_events(fleet[d], bad, "failed"), d
        assert not agent_events(fleet[d], bad, "active"), d
    assert_untouched(fleet, EARLY + BROAD, settled, bad)
    seq = [(e.get("ring"), e.get("ring_state") or e["state"]) for e in events.of(rid)]
    assert seq[-2:] == [("canary", "failed"), (None, "rolled_back")], seq
    assert ("early", "running") not in seq, seq


# --------------------------------------------------------------------------
# 3. A metric gate

GATE_P99_MS = 0.1    # the slow network takes about 0.2 ms per inference


def test_a_latency_gate_breach_pauses_the_rollout(server, fleet, registry, events):
    settled = settle(server, fleet, registry)
    slow = registry.push_slow()
    rid = create(server, slow, "--soak", "60", "--gate", f"latency_p99_ms<={GATE_P99_MS}@200",
                 "--on-breach", "pause")
    start(server, rid)
    # No traffic during the agents' one-second trial: they commit the slow
    # network, the ring soaks; only then do clients send inferences.
    for d in CANARY:
        fleet[d].wait_slot(MODEL, slow, "committed", timeout=60)
    doc = wait_rollout(server, rid, lambda d: ring(d, "canary")["state"] == "soaking", 10,
                       "canary soaking")
    assert doc["state"] == "running", doc
    clients = [Traffic(fleet[d]) for d in CANARY]
    for c in clients:
        c.start()
    try:
        doc = wait_state(server, rid, "paused", timeout=30)
    finally:
        for c in clients:
            c.stop()
    for c in clients:
        assert c.failure is None, c.failure
        assert c.answers and set(c.answers) == {f"{MODEL}@{slow}"}, set(c.answers)
    canary = ring(doc, "canary")
    assert canary["state"] == "failed", canary
    assert canary["reason"].startswith("gate latency_p99_ms: "), canary
    assert f"> {GATE_P99_MS:g} over " in canary["reason"], canary
    assert doc["reason"] == f"ring canary: {canary['reason']}", doc
    p99 = float(canary["reason"].split(": ")[1].split(" >")[0])
    assert p99 > GATE_P99_MS, canary
    # What the gate read: the canary's windows of the slow version (more may
    # have come in since the breach, so the largest p99 is at least its own).
    windows = server.get_json(f"/api/v1/telemetry?model={MODEL}@{slow}&ring=canary&limit=5000")
    busy = [w for w in windows["windows"] if w["inferences"]]
    assert busy and max(w["latency_ms"]["p99"] for w in busy) >= p99 * (1 - 1e-3), busy
    for g in doc["rings"][1:]:
        assert g["state"] == "pending" and g["devices"] == 0, g
    assert_untouched(fleet, EARLY + BROAD, settled, slow)
    # Clean up: the operator rolls the paused rollout back.
    doc = server.cli_json("rollout", "rollback", rid)
    assert doc["state"] == "rolled_back", doc
    for d in CANARY:
        fleet[d].wait_slot(MODEL, settled, "committed", timeout=20)
        assert serving(fleet[d]) == f"{MODEL}@{settled}"


# --------------------------------------------------------------------------
# 5. A device joins a running ring

def test_a_device_joining_a_running_ring_converges_on_its_version(server, fleet, registry,
                                                                  module_agent, events):
    settle(server, fleet, registry)
    v = registry.push_good()
    rid = create(server, v, "--soak", "6")
    start(server, rid)
    wait_rollout(server, rid, lambda d: ring(d, "early")["state"] in ("running", "soaking"), 30,
                 "early running")
    late = module_agent("ro-late", tags={"tier": "early"}, **AGENT_OPTIONS)
    ef.wait_until(lambda: server.request("GET", "/api/v1/devices/ro-late",
                                         token=server.admin_token).status == 200,
                  10, what="ro-late enrolled")
    assert late.show()["ring"] == "early"
    doc = rollout(server, rid)
    assert ring(doc, "early")["state"] in ("running", "soaking"), \
        f"the test was too slow: the early ring is done before ro-late enrolled\n{doc}"
    late.wait_slot(MODEL, v, "committed", timeout=40)
    assert serving(late) == f"{MODEL}@{v}"
    doc = wait_state(server, rid, "succeeded", timeout=60)
    early = ring(doc, "early")
    assert early["devices"] == 3 and early["counts"]["committed"] == 3, early
    for d, a in fleet.items():
        assert slot(a)["version"] == v and serving(a) == f"{MODEL}@{v}", d
    # The joiner's only assignment is the rollout's.
    assert [e["version"] for e in late.deploy_states() if e["state"] == "notified"] == [str(v)]
    # It stays in the fleet, committed like the others.
    fleet["ro-late"] = late
    registry.settled = v


# --------------------------------------------------------------------------
# 6. Abort

def test_abort_keeps_committed_devices_and_sends_the_others_back(server, fleet, registry,
                                                                 events):
    settled = settle(server, fleet, registry)
    v = registry.push_good()
    c1, c2 = (fleet[d] for d in CANARY)
    # ro-c2 gets a long trial: it will be serving v on trial when we abort.
    c2.restart(trial_seconds=120)
    try:
        rid = create(server, v, "--soak", "60")
        start(server, rid)
        c1.wait_slot(MODEL, v, "committed", timeout=40)
        c2.wait_state("active", version=v, timeout=40)
        assert serving(c2) == f"{MODEL}@{v}"
        doc = rollout(server, rid)
        canary = ring(doc, "canary")
        assert canary["state"] == "running", canary
        assert canary["counts"]["committed"] == 1 and canary["counts"]["active"] == 1, canary
        since = c2.log_size()
        doc = server.cli_json("rollout", "abort", rid)
        assert doc["state"] == "aborted" and doc["reason"] == "aborted by an operator", doc
        canary = ring(doc, "canary")
        assert canary["state"] == "failed" and canary["reason"] == "aborted", canary
        assert canary["counts"]["committed"] == 1 and canary["counts"]["cancelled"] == 1, canary
        # ro-c2 swaps the candidate out and serves its last committed version.
        c2.wait_serving(f"{MODEL}@{settled}", X, timeout=15)
        c2.wait_slot(MODEL, settled, "committed", timeout=15)
        e = c2.wait_log("deploy_cancelled", lambda e: e.get("version") == str(v), since=since,
                        timeout=5)
        assert e["reason"].startswith("superseded by assignment seq"), e
        # ro-c1 committed v: that is its last committed version, it keeps it.
        time.sleep(1)
        assert serving(c1) == f"{MODEL}@{v}"
        s = slot(c1)
        assert (s["version"], s["state"]) == (v, "committed"), s
        # The rings after canary never got v.
        for g in doc["rings"][1:]:
            assert g["state"] == "pending" and g["devices"] == 0, g
        assert_untouched(fleet, EARLY + BROAD, settled, v)
        seq = [(e.get("ring"), e.get("ring_state") or e["state"]) for e in events.of(rid)]
        assert seq[-2:] == [("canary", "failed"), (None, "aborted")], seq
    finally:
        c2.restart(trial_seconds=AGENT_OPTIONS["trial_seconds"])


# --------------------------------------------------------------------------
# 7. The CLI

def test_cli_create_show_and_watch(server, fleet, registry):
    settle(server, fleet, registry)
    v = registry.push_good()
    doc = server.cli_json("rollout", "create", f"{MODEL}@{v}", "--rings", ",".join(RINGS),
                          "--success", "100%", "--error", "0", "--min-devices", "1",
                          "--deadline", "120", "--gate", "error_rate<=0.5")
    assert isinstance(doc["id"], int) and doc["state"] == "draft", doc
    assert doc["model"] == MODEL and doc["version"] == v, doc
    assert doc["policy"]["deadline_s"] == 120 and doc["policy"]["success"] == 1.0, doc
    assert doc["policy"]["gates"] == [{"metric": "error_rate", "max": 0.5, "min_inferences": 1}]
    assert [(g["name"], g["state"], g["devices"]) for g in doc["rings"]] == \
        [(r, "pending", 0) for r in RINGS], doc
    rid = doc["id"]
    # The text form of show names the rollout and its state.
    rc, out, err = server.cli("rollout", "show", rid)
    assert rc == 0 and f"rollout {rid}" in out and "draft" in out, (out, err)
    server.cli_ok("rollout", "start", rid)
    # --watch --json: one snapshot per change, exit 0 once it succeeded.
    rc, out, err = server.cli("--json", "rollout", "show", rid, "--watch", "--interval", "0.2",
                              timeout=90)
    assert rc == 0, (rc, out[-2000:], err)
    snapshots, dec, i = [], json.JSONDecoder(), 0
    while i < len(out):
        if out[i].isspace():
            i += 1
            continue
        obj, i = dec.raw_decode(out, i)
        snapshots.append(obj)
    assert len(snapshots) >= 2, out
    assert snapshots[-1]["state"] == "succeeded", snapshots[-1]
    assert all(s["id"] == rid for s in snapshots)
    # show --json: state and rings.
    doc = server.cli_json("rollout", "show", rid)
    assert doc["state"] == "succeeded" and [g["state"] for g in doc["rings"]] == \
        ["succeeded"] * 3, doc
    assert all(set(g["counts"]) == {"pending", "notified", "downloading", "verifying", "active",
                                    "committed", "failed", "rolled_back", "cancelled"}
               for g in doc["rings"]), doc
    # --watch on a finished rollout: one view, exit 0 for succeeded.
    t = time.monotonic()
    rc, out, err = server.cli("rollout", "show", rid, "--watch", timeout=20)
    assert rc == 0 and time.monotonic() - t < 5, (rc, out, err)
    assert "succeeded" in out, out
    # ... and exit 1 for any other end.
    other = create(server, v)
    server.cli_json("rollout", "abort", other)
    rc, out, err = server.cli("rollout", "show", other, "--watch", timeout=20)
    assert rc == 1 and "rollout_ended" in err and "aborted" in err, (rc, out, err)
    # A transition the state does not allow: 409, exit 1.
    rc, out, err = server.cli("rollout", "start", rid)
    assert rc == 1 and "conflict" in err, (rc, out, err)
    listed = server.cli_json("rollout", "list", "--model", MODEL)["rollouts"]
    assert [r["id"] for r in listed][:2] == [other, rid], listed
    registry.settled = v


# --------------------------------------------------------------------------
# A device that joins a ring while it soaks

def test_a_device_joining_a_soaking_ring_is_awaited(server, fleet, registry):
    settle(server, fleet, registry)
    v = registry.push_good()
    b2 = fleet["ro-b2"]
    rid = create(server, v, "--soak", "3", rings=("canary",))
    b2.stop()           # offline: it cannot commit anything
    try:
        start(server, rid)
        wait_rollout(server, rid, lambda d: ring(d, "canary")["state"] == "soaking", 30,
                     "canary soaking")
        server.cli_ok("device", "set", "ro-b2", "--ring", "canary")
        wait_rollout(server, rid, lambda d: ring(d, "canary")["devices"] == 3, 5,
                     "ro-b2 counted in canary")
        time.sleep(3 + 5 * TICK_MS / 1000)
        doc = rollout(server, rid)
        canary = ring(doc, "canary")
        # success is 1.0 and one of the three devices never committed.
        assert canary["state"] != "succeeded", canary
    finally:
        doc = rollout(server, rid)
        if doc["state"] in ("running", "paused"):
            server.cli_json("rollout", "abort", rid)
        server.cli_ok("device", "set", "ro-b2", "--ring", "broad")
        b2.start()


# --------------------------------------------------------------------------
# 4. The server killed mid-rollout

def test_a_rollout_resumes_after_the_server_is_killed(server, fleet, registry, events):
    settle(server, fleet, registry)
    v = registry.push_good()
    rid = create(server, v, "--soak", "3")
    start(server, rid)
    before = wait_rollout(server, rid, lambda d: ring(d, "canary")["state"] == "soaking", 30,
                          "canary soaking")
    restart_server_after_kill9(server)
    after = rollout(server, rid)
    assert after["state"] == "running", after
    # Nothing was lost: what the server had stored before is still there.
    assert ring(after, "canary")["started_at"] == ring(before, "canary")["started_at"]
    assert ring(after, "canary")["state"] in ("soaking", "succeeded"), after
    doc = wait_state(server, rid, "succeeded", timeout=60)
    for before_g, after_g in zip(doc["rings"], doc["rings"][1:]):
        assert parse_ts(before_g["finished_at"]) <= parse_ts(after_g["started_at"])
    for g in doc["rings"]:
        assert g["state"] == "succeeded" and g["counts"]["committed"] == g["devices"], g
    for d, a in fleet.items():
        s = slot(a)
        assert (s["version"], s["state"]) == (v, "committed"), (d, s)
        assert serving(a) == f"{MODEL}@{v}", d
    log = server.log_text()
    assert "event=rollout_engine_started" in log and " running=1" in log, log[-3000:]
    registry.settled = v

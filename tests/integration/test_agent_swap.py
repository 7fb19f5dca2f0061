"""The hot swap drops nothing: while clients keep sending inference requests
over the agent's socket (one connection, and several in parallel), a new
version is assigned, downloaded, self-tested and swapped in; every request is
answered, and each connection's answers go from thyroid@1 to thyroid@2 once,
with no error or gap between them.

The longest request latency during the deployment and the p99 of the steady
state before it are printed (a benchmark figure, not asserted).
"""

import json
import threading
import time

import pytest

pytest.register_assert_rewrite("agent_fixtures")
import agent_fixtures as af  # noqa: E402
import edgefleet_fixtures as ef  # noqa: E402

pytest_plugins = ["agent_fixtures"]

MODEL = "thyroid"
DEV = "swap-1"
PARALLEL = 3          # connections beside the main one
STEADY_S = 2.0        # steady state measured before the assignment


class Client(threading.Thread):
    """Sends requests back to back on one connection until stopped; records
    (sent, answered, model or None, error or None) for each."""

    def __init__(self, agent, name, rows):
        super().__init__(name=name, daemon=True)
        self.agent = agent
        self.rows = rows
        self.records = []
        self.failure = None
        self.stop_flag = threading.Event()

    def run(self):
        try:
            with self.agent.connect(timeout=10) as c:
                i = 0
                while not self.stop_flag.is_set():
                    x = self.rows[i % len(self.rows)][0]
                    t0 = time.monotonic()
                    ans = c.infer(x)
                    t1 = time.monotonic()
                    self.records.append((t0, t1, ans.get("model"), ans.get("error")))
                    i += 1
        except Exception as e:  # recorded, asserted by the test
            self.failure = repr(e)


@pytest.fixture(scope="module")
def deployed(server, thyroid_net, thyroid_net_b, module_agent):
    assert server.push(MODEL, thyroid_net)["version"] == 1
    assert server.push(MODEL, thyroid_net_b)["version"] == 2
    a = module_agent(DEV)
    ef.wait_until(lambda: server.request("GET", f"/api/v1/devices/{DEV}",
                                         token=server.admin_token).status == 200,
                  15, what="enrolled")
    server.cli_json("assign", f"{MODEL}@1", "--device", DEV)
    a.wait_slot(MODEL, 1, "committed", timeout=30)
    return a


def test_swap_under_load_drops_no_request_and_switches_once(server, deployed, capsys):
    a = deployed
    rows = af.thyroid_rows(50)
    clients = [Client(a, "main", rows)] + [Client(a, f"par-{i}", rows) for i in range(PARALLEL)]
    for c in clients:
        c.start()
    try:
        time.sleep(STEADY_S)
        since = a.log_size()
        t_assign = time.monotonic()
        server.cli_json("assign", f"{MODEL}@2", "--device", DEV)
        a.wait_state("active", version=2, since=since, timeout=20)
        a.wait_state("committed", version=2, since=since, timeout=20)
        t_commit = time.monotonic()
        time.sleep(0.5)
    finally:
        for c in clients:
            c.stop_flag.set()
        for c in clients:
            c.join(15)
    for c in clients:
        assert not c.is_alive(), f"client {c.name} hangs"
        assert c.failure is None, f"client {c.name} failed: {c.failure}"

    for c in clients:
        recs = c.records
        errors = [r for r in recs if r[3] is not None or r[2] is None]
        assert not errors, f"{c.name}: {len(errors)} failed requests, first {errors[:3]}"
        models = [r[2] for r in recs]
        # thyroid@1 ... thyroid@1 thyroid@2 ... thyroid@2: one switch, never back.
        switches = [i for i in range(1, len(models)) if models[i] != models[i - 1]]
        assert models[0] == f"{MODEL}@1", (c.name, models[:3])
        assert models[-1] == f"{MODEL}@2", (c.name, models[-3:])
        assert len(switches) == 1, (c.name, [(i, models[i - 1], models[i]) for i in switches])
        # Requests kept being answered by v1 while v2 was downloaded and tested.
        assert any(r[0] >= t_assign and r[2] == f"{MODEL}@1" for r in recs), c.name

    allrecs = [r for c in clients for r in c.records]
    steady = [r[1] - r[0] for r in allrecs if r[1] < t_assign]
    during = [r[1] - r[0] for r in allrecs if r[1] >= t_assign and r[0] <= t_commit]
    main = clients[0].records
    sw = next(i for i in range(1, len(main)) if main[i][2] != main[i - 1][2])
    around = [r[1] - r[0] for r in allrecs
              if abs(r[0] - main[sw][0]) <= 0.05 or abs(r[1] - main[sw][1]) <= 0.05]
    gap_ms = (main[sw][1] - main[sw - 1][1]) * 1000
    figures = {
        "requests": len(allrecs),
        "connections": len(clients),
        "steady_requests": len(steady),
        "steady_p50_ms": round(af.percentile(steady, 0.50) * 1000, 3),
        "steady_p99_ms": round(af.percentile(steady, 0.99) * 1000, 3),
        "steady_max_ms": round(max(steady) * 1000, 3),
        "deployment_s": round(t_commit - t_assign, 3),
        "during_requests": len(during),
        "during_max_ms": round(max(during) * 1000, 3),
        "around_swap_max_ms": round(max(around) * 1000, 3),
        "main_connection_gap_at_swap_ms": round(gap_ms, 3),
    }
    with capsys.disabled():
        print(f"\nswap figures: {json.dumps(figures)}")
    # What the agent logged: one swap, from thyroid@1 to thyroid@2.
    swaps = a.events("deploy_swap", since)
    assert [(s["serving"], s["previous"]) for s in swaps] == [(f"{MODEL}@2", f"{MODEL}@1")], swaps
    a.wait_slot(MODEL, 2, "committed", timeout=10)

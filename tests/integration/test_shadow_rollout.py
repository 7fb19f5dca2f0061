"""Shadow deployment and promotion end to end (docs/monitoring.md, "Shadow
deployment and promotion"; docs/rollouts.md): a real broker, one
edgefleet-server (`--rollout-tick-ms 200`) and three real edgefleet-agents in
ring `lab`, committed on thyroid@1.

  - a shadow rollout of thyroid@2 over `lab` succeeds on the agents' shadow
    reports: every shadow slot committed thyroid@2, while production stays
    thyroid@1 committed and every answer still comes from thyroid@1;
  - promote is refused while the shadow rollout runs, then starts a production
    rollout of thyroid@2 over the same rings with the same policy; it
    succeeds, the agents answer with thyroid@2, and their shadow slots are
    empty (the server cleared them in the promoting assignment);
  - a second promote, and promoting a production rollout, are 409 conflict;
    the CLI prints the promoted rollout.
"""

import pytest

pytest.register_assert_rewrite("agent_fixtures")
import agent_fixtures as af  # noqa: E402
import edgefleet_fixtures as ef  # noqa: E402

pytest_plugins = ["agent_fixtures"]

MODEL = "thyroid"
TICK_MS = 200
SERVER_ARGS = ["--rollout-tick-ms", str(TICK_MS)]  # conftest's server, ticking fast
DEVICES = ("sh-1", "sh-2", "sh-3")
AGENT_OPTIONS = {"trial_seconds": 1, "poll_interval": 5, "metrics_interval": 1}
ROWS = af.thyroid_rows(20)


def rollout(server, rid):
    return server.get_json(f"/api/v1/rollouts/{rid}")


def wait_rollout_state(server, rid, state, timeout=60):
    return server.wait_rollout(rid, lambda d: d["state"] == state, timeout,
                               f"rollout {rid} {state}")


def slots(agent):
    return agent.show().get("slots") or {}


def test_shadow_rollout_then_promote(server, agent, train_net):
    # The fleet: three agents in ring lab, committed on thyroid@1.
    server.cli_ok("ring", "create", "lab")
    agents = [agent(d, **AGENT_OPTIONS) for d in DEVICES]
    for d in DEVICES:
        ef.wait_until(lambda: server.request("GET", f"/api/v1/devices/{d}",
                                             token=server.admin_token).status == 200,
                      20, what=f"{d} enrolled")
        server.cli_ok("device", "set", d, "--ring", "lab")
    assert server.push(MODEL, train_net(hidden=4, epochs=10, seed=401).path)["version"] == 1
    assert server.push(MODEL, train_net(hidden=5, epochs=10, seed=402).path)["version"] == 2
    server.cli_json("assign", f"{MODEL}@1", "--ring", "lab")
    for a in agents:
        a.wait_slot(MODEL, 1, "committed", timeout=40)

    # A shadow rollout of thyroid@2: created with the CLI's --slot shadow.
    created = server.cli_json("rollout", "create", f"{MODEL}@2", "--rings", "lab",
                              "--slot", "shadow", "--deadline", "120")
    rid = created["id"]
    assert created["slot"] == "shadow" and created["promoted_to"] is None, created
    assert created["state"] == "draft", created
    started = server.cli_json("rollout", "start", rid)
    assert started["state"] == "running", started

    # Promote is refused before the shadow rollout has succeeded.
    r = server.admin("POST", f"/api/v1/rollouts/{rid}/promote")
    ef.assert_error(r, 409, "conflict")

    doc = wait_rollout_state(server, rid, "succeeded")
    lab = doc["rings"][0]
    assert lab["state"] == "succeeded" and lab["devices"] == 3, lab
    assert lab["counts"]["committed"] == 3, lab

    # Every shadow slot committed thyroid@2; production is still thyroid@1,
    # and it is production that answers.
    for a in agents:
        s = slots(a)
        assert s["shadow"]["name"] == MODEL and s["shadow"]["version"] == 2, s
        assert s["shadow"]["state"] == "committed", s
        assert s["production"]["version"] == 1 and s["production"]["state"] == "committed", s
        with a.connect() as c:
            for x, _ in ROWS:
                assert c.infer(x).get("model") == f"{MODEL}@1"
        shadow_commits = [e for e in a.deploy_states() if e.get("slot") == "shadow"
                          and e.get("version") == "2" and e.get("state") == "committed"]
        assert shadow_commits, a.log_text()[-3000:]

    # Promote: a production rollout of thyroid@2 over the same rings and
    # policy, started at once; the shadow rollout points at it.
    r = server.admin("POST", f"/api/v1/rollouts/{rid}/promote")
    assert r.status == 201, r
    prod = r.json()
    assert prod["slot"] == "production" and prod["version"] == 2, prod
    assert prod["state"] == "running", prod
    assert [g["name"] for g in prod["rings"]] == ["lab"], prod
    assert prod["policy"] == doc["policy"], (prod, doc)
    assert rollout(server, rid)["promoted_to"] == prod["id"]

    # Only once; a production rollout is not promoted.
    ef.assert_error(server.admin("POST", f"/api/v1/rollouts/{rid}/promote"), 409, "conflict")
    ef.assert_error(server.admin("POST", f"/api/v1/rollouts/{prod['id']}/promote"), 409,
                    "conflict")
    ef.assert_error(server.admin("POST", "/api/v1/rollouts/9999/promote"), 404, "not_found")

    done = wait_rollout_state(server, prod["id"], "succeeded")
    assert done["rings"][0]["counts"]["committed"] == 3, done
    for a in agents:
        a.wait_slot(MODEL, 2, "committed", timeout=40)
        a.wait_serving(f"{MODEL}@2", ROWS[0][0], timeout=20)
        s = slots(a)
        assert "shadow" not in s or s["shadow"] is None, s
        with a.connect() as c:
            for x, _ in ROWS:
                assert c.infer(x).get("model") == f"{MODEL}@2"

    # The CLI shows both: the shadow rollout names the rollout it became.
    out = server.cli_ok("rollout", "show", str(rid))
    assert f"{MODEL}@2 (shadow)  succeeded" in out and f"promoted to rollout {prod['id']}" in out, \
        out

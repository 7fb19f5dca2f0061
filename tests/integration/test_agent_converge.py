"""Three real agents converge on their signed desired state: enrolled with
the CLI's enrollment tokens (one joins a ring by its tag), assigned by ring
and by device, they download, verify, self-test, try and commit thyroid@1;
they answer inference on their Unix socket exactly as FANN itself does; they
say online (retained) and offline (on SIGTERM) on their status topic, and send
telemetry windows that count their inferences.
"""

import json
import time

import pytest

pytest.register_assert_rewrite("agent_fixtures")
import agent_fixtures as af  # noqa: E402
import edgefleet_fixtures as ef  # noqa: E402

pytest_plugins = ["agent_fixtures"]

MODEL = "thyroid"
A, B, C = "conv-a", "conv-b", "conv-c"   # A: ring "lab" by tag; B, C: by device
ROWS = 20


@pytest.fixture(scope="module")
def net(train_net):
    """A network trained on thyroid.test, with FANN's own outputs (fann_run)
    for its first ROWS rows."""
    n = train_net(hidden=8, epochs=30, seed=3, data=ef.THYROID_TEST, vectors=ROWS)
    assert len(n.vectors) == ROWS
    return n


@pytest.fixture(scope="module")
def fleet(server, module_agent, net):
    """The ring, the model and three running agents, assigned thyroid@1."""
    server.cli_ok("ring", "create", "lab", "--position", "1", "--selector", "site=lab")
    assert server.push(MODEL, net.path)["version"] == 1
    agents = {A: module_agent(A, tags={"site": "lab"}),
              B: module_agent(B, tags={"site": "elsewhere"}),
              C: module_agent(C)}
    for a in agents.values():
        ef.wait_until(lambda: server.request("GET", f"/api/v1/devices/{a.device_id}",
                                             token=server.admin_token).status == 200,
                      15, what=f"{a.device_id} enrolled")
    assigned = server.cli_json("assign", f"{MODEL}@1", "--ring", "lab")
    assert [d["device_id"] for d in assigned["assigned"]] == [A], assigned
    for d in (B, C):
        server.cli_json("assign", f"{MODEL}@1", "--device", d)
    return agents


@pytest.fixture(scope="module")
def committed(fleet):
    for a in fleet.values():
        a.wait_slot(MODEL, 1, "committed", timeout=30)
    return fleet


def test_tag_selector_puts_the_tagged_agent_in_its_ring(server, fleet):
    assert fleet[A].show()["ring"] == "lab"
    assert fleet[A].show()["tags"] == {"site": "lab"}
    assert fleet[B].show()["ring"] == "default"
    assert fleet[C].show()["ring"] == "default"


def test_every_agent_commits_what_its_ring_or_device_assignment_says(server, fleet, net):
    for a in fleet.values():
        slot = a.wait_slot(MODEL, 1, "committed", timeout=30)
        assert slot["reason"] is None, slot
        doc = a.show()
        assert doc["desired_seq"] == 1 and doc["online"] is True, doc
        states = [e["state"] for e in a.deploy_states() if e["version"] == "1"]
        assert states == ["notified", "downloading", "verifying", "staged", "self-test",
                          "active", "committed"], states
        # What the agent keeps: the committed model under its own sha256.
        files = a.model_files()
        assert [p.name for p in files] == [f"{ef.sha256_file(net.path)}.model"]
        assert not a.bad_model_files()


def test_infer_command_prints_one_json_object_with_output_and_model(committed):
    x = af.thyroid_rows(1)[0][0]
    for a in committed.values():
        rc, out, err = a.infer_cli(x)
        assert rc == 0, (rc, out, err)
        lines = out.splitlines()
        assert len(lines) == 1, out
        doc = json.loads(lines[0])
        assert isinstance(doc, dict), doc
        assert doc["model"] == f"{MODEL}@1", doc
        assert isinstance(doc["output"], list) and len(doc["output"]) == 3, doc
        assert all(isinstance(v, float) for v in doc["output"]), doc


def test_inference_equals_fann_run_on_the_first_test_rows(committed, net):
    rows = af.thyroid_rows(ROWS)
    for a in committed.values():
        with a.connect() as c:
            for i, ((x, _), want) in enumerate(zip(rows, net.vectors)):
                # The same row FANN ran (ef-train-fixture read the same file).
                assert all(abs(u - v) < 1e-6 for u, v in zip(x, want["input"])), (i, x)
                ans = c.infer(x, id=f"row-{i}")
                assert ans.get("model") == f"{MODEL}@1", ans
                assert ans.get("id") == f"row-{i}", ans
                got = ans["output"]
                assert len(got) == len(want["output"]), (ans, want)
                diffs = [abs(g - w) for g, w in zip(got, want["output"])]
                assert max(diffs) <= 1e-6, f"{a.device_id} row {i}: {got} vs FANN {want['output']}"
                assert ans["class"] == max(range(len(got)), key=lambda k: got[k]), ans


def test_status_online_is_retained_on_the_broker(broker, committed):
    for a in committed.values():
        payload = af.retained(broker, af.topic(a.device_id, "status"))
        assert payload == b"online", (a.device_id, payload)


def test_telemetry_windows_count_the_inferences(broker, committed):
    a = committed[B]
    sub = ef.MqttClient(broker, "it-conv-telemetry")
    try:
        sub.subscribe(af.topic(B, "telemetry"))
        # The window open now may have started before the subscription: drop it.
        first = json.loads(sub.next_message(timeout=6)[1])
        assert "inferences" in first, first
        x = af.thyroid_rows(1)[0][0]
        n = 9
        with a.connect() as c:
            for _ in range(n):
                assert c.infer(x)["model"] == f"{MODEL}@1"
        total, windows = 0, []
        deadline = time.monotonic() + 10
        while total < n and time.monotonic() < deadline:
            t, payload, _ = sub.next_message(timeout=6)
            assert t == af.topic(B, "telemetry")
            w = json.loads(payload)
            windows.append(w)
            assert w["errors"] == 0, w
            if w["inferences"]:
                assert w["model"] == f"{MODEL}@1", w
                assert w["latency_ms"] and w["latency_ms"]["p99"] >= 0, w
            total += w["inferences"]
        assert total == n, windows
    finally:
        sub.close()


def test_sigterm_says_offline_on_the_status_topic(broker, server, committed):
    a = committed[C]
    sub = ef.MqttClient(broker, "it-conv-status")
    try:
        sub.subscribe(af.topic(C, "status"))
        assert sub.next_message()[1:] == (b"online", True)
        rc = a.stop()
        assert rc == 0, f"exit status {rc}"
        t, payload, _ = sub.next_message(timeout=5)
        assert (t, payload) == (af.topic(C, "status"), b"offline")
    finally:
        sub.close()
    assert af.retained(broker, af.topic(C, "status")) == b"offline"
    ef.wait_until(lambda: server.get_json(f"/api/v1/devices/{C}")["online"] is False, 5,
                  what="the server sees the device offline")

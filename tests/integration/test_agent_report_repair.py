"""A device report the server missed is made good at the next desired poll.

The broker may drop a report on its way to the server (its queue for the
server's one subscription overflows during a large rollout). The agent says
again where each slot stands whenever it polls GET /desired: after a 304,
and also after a 200 carrying the assignment it already holds, which is what
the first poll after an assignment delivered over MQTT answers (its ETag is
of the assignment before).

Here the lost report is played by the test: once the device has committed
thyroid@2, a stale `downloading` report of thyroid@2 on the device's topic
(the conftest broker is anonymous) makes the server believe the commit never
came. A `poll_desired` command then makes the agent poll; it must answer
with its current state, and the server show the slot committed again. The
agent's own timer polls every 600 s here, so nothing else repairs it.
"""

import json

import pytest

pytest.register_assert_rewrite("agent_fixtures")
import agent_fixtures as af  # noqa: E402
import edgefleet_fixtures as ef  # noqa: E402

pytest_plugins = ["agent_fixtures"]

MODEL = "thyroid"


@pytest.fixture(scope="module")
def versions(server, train_net):
    """thyroid@1 and thyroid@2, two different small networks."""
    for v in (1, 2):
        net = train_net(hidden=5, epochs=5, seed=60 + v)
        assert server.push(MODEL, net.path)["version"] == v
    return MODEL


def test_a_poll_answered_with_the_held_assignment_reports_again(server, broker, versions, agent):
    a = agent("repair-1", poll_interval=600)
    ef.wait_until(lambda: server.request("GET", f"/api/v1/devices/{a.device_id}",
                                         token=server.admin_token).status == 200,
                  15, what=f"{a.device_id} enrolled")
    server.cli_json("assign", f"{MODEL}@1", "--device", a.device_id)
    a.wait_slot(MODEL, 1, "committed", timeout=30)
    # The second assignment comes over MQTT; the agent's ETag stays older.
    server.cli_json("assign", f"{MODEL}@2", "--device", a.device_id)
    a.wait_slot(MODEL, 2, "committed", timeout=30)
    c = ef.MqttClient(broker, f"it-repair-{a.device_id}")
    try:
        stale = {"slot": "production", "model": MODEL, "version": 2, "state": "downloading"}
        c.publish(af.topic(a.device_id, "reported"), json.dumps(stale))
        a.wait_slot(MODEL, 2, "downloading", timeout=10)
        since = a.log_size()
        c.publish(af.topic(a.device_id, "cmd"), json.dumps({"command": "poll_desired"}))
    finally:
        c.close()
    a.wait_slot(MODEL, 2, "committed", timeout=10)
    # It was a poll that did it, and it did not deploy anything again.
    assert not a.events("desired_poll_failed", since), a.log_text(since)
    assert not a.events("assignment_accepted", since), a.log_text(since)

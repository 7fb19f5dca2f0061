"""The agent rides out outages of the broker and of the server.

- The broker is killed and started again on the same port: the agent
  connects again (status online, retained, on the new broker) and converges
  on an assignment made while the broker was away, whether it learns of it
  by its HTTP poll while the broker is still down or once it is back; the
  server then shows the slot committed.
- The server stops: the agent keeps answering with its committed model; and
  an agent restarted while the server is down serves its committed model at
  once, before any network.

This module runs its own broker (killed and restarted here), so the `broker`
fixture is overridden for it.
"""

import time

import pytest

pytest.register_assert_rewrite("agent_fixtures")
import agent_fixtures as af  # noqa: E402
import conftest  # noqa: E402
import edgefleet_fixtures as ef  # noqa: E402

pytest_plugins = ["agent_fixtures"]

MODEL = "thyroid"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A broker of this module's own, which the tests kill and restart."""
    b = af.RestartableBroker(tmp_path_factory.mktemp("outage-broker"))
    conftest._LIVE_BROKERS.append(b)
    yield b
    conftest._LIVE_BROKERS.remove(b)
    if b.proc.poll() is None:
        b.stop()


@pytest.fixture(scope="module")
def versions(server, train_net):
    """thyroid@1..4, four different small networks."""
    for v in range(1, 5):
        net = train_net(hidden=5, epochs=5, seed=40 + v)
        assert server.push(MODEL, net.path)["version"] == v
    return MODEL


def x0():
    return af.thyroid_rows(1)[0][0]


def enrolled_and_committed(server, a, version=1):
    ef.wait_until(lambda: server.request("GET", f"/api/v1/devices/{a.device_id}",
                                         token=server.admin_token).status == 200,
                  15, what=f"{a.device_id} enrolled")
    server.cli_json("assign", f"{MODEL}@{version}", "--device", a.device_id)
    a.wait_slot(MODEL, version, "committed", timeout=30)


def wait_online_retained(broker, a, timeout=30.0):
    def online():
        return af.retained(broker, af.topic(a.device_id, "status"), timeout=1) == b"online"
    try:
        ef.wait_until(online, timeout, interval=0.3, what=f"{a.device_id} online again")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{a.log_text()[-3000:]}") from None


def test_short_broker_outage_reconnects_and_converges_on_assignment_made_meanwhile(
        server, broker, versions, agent):
    a = agent("out-short")
    enrolled_and_committed(server, a)
    since = a.log_size()
    broker.kill()
    a.wait_log("broker_lost", since=since, timeout=10)
    # Assigned while the broker is away: the server keeps it in its database.
    server.cli_json("assign", f"{MODEL}@2", "--device", a.device_id)
    time.sleep(1.0)
    broker.start()
    wait_online_retained(broker, a)
    assert a.wait_log("broker_connected", since=since, timeout=5)
    a.wait_slot(MODEL, 2, "committed", timeout=20)
    assert a.infer(x0())["model"] == f"{MODEL}@2"


def test_assignment_made_while_broker_is_down_arrives_by_http_poll_and_is_reported_after(
        server, broker, versions, agent):
    a = agent("out-long")
    enrolled_and_committed(server, a)
    since = a.log_size()
    broker.kill()
    try:
        a.wait_log("broker_lost", since=since, timeout=10)
        server.cli_json("assign", f"{MODEL}@3", "--device", a.device_id)
        # With no broker at all, the poll (every 5 s) brings it in.
        a.wait_state("committed", version=3, since=since, timeout=20)
        assert a.infer(x0())["model"] == f"{MODEL}@3"
        assert a.show()["slots"]["production"]["state"] != "committed"  # no way to say it yet
    finally:
        broker.start()
    wait_online_retained(broker, a)
    # Once connected again, the device tells the server where it stands.
    a.wait_slot(MODEL, 3, "committed", timeout=15)


@pytest.fixture(scope="module")
def lonely(broker, versions, tmp_path_factory, module_agent):
    """A second server with one device committed on thyroid@1; the server is
    then stopped (cleanly) and stays down."""
    srv = conftest._start_server(tmp_path_factory.mktemp("server-down"), broker)
    stopped = False
    try:
        net = af.train(tmp_path_factory.mktemp("net") / "n.net", hidden=5, epochs=5, seed=49)
        assert srv.push(MODEL, net.path)["version"] == 1
        a = module_agent("out-alone", server=srv, broker=broker)
        enrolled_and_committed(srv, a)
        conftest._stop_server(srv)
        stopped = True
        yield a
    finally:
        if not stopped:
            conftest._stop_server(srv)


def test_agent_keeps_serving_while_the_server_is_down(lonely):
    a = lonely
    since = a.log_size()
    deadline = time.monotonic() + 7   # longer than the poll interval (5 s)
    n = 0
    with a.connect() as c:
        while time.monotonic() < deadline:
            ans = c.infer(x0())
            assert ans.get("model") == f"{MODEL}@1", ans
            n += 1
            time.sleep(0.05)
    assert n > 50
    # It did try the server meanwhile, and nothing changed because of it.
    assert a.events("desired_poll_failed", since), a.log_text(since)
    assert not a.deploy_states(since)


def test_agent_restarted_with_the_server_down_serves_its_committed_model_at_once(lonely):
    a = lonely
    a.stop()
    t0 = time.monotonic()
    a.start()
    ans = a.infer(x0())
    elapsed = time.monotonic() - t0
    assert ans.get("model") == f"{MODEL}@1", ans
    text = a.log_text(a.starts[-1])
    lines = text.splitlines()

    def first(event):
        return next((i for i, line in enumerate(lines) if f" event={event} " in line + " "),
                    len(lines))
    # The committed model was loaded and the socket opened before any network.
    assert first("deploy_serving") < first("serve_listening") < first("agent_started"), text
    assert first("agent_started") < first("mqtt_connected"), text
    assert elapsed < 10, elapsed

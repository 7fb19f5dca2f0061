"""The server's report ingest (server/report_queue.c) through the real broker:
a burst of reports larger than mosquitto's default per-client queue (1000)
is received whole, applied in the order sent, in fewer transactions than
reports, and counted at /metrics; malformed reports and status words are
counted and change nothing."""

import json

import pytest

import edgefleet_fixtures as ef

MODEL = "thyroid"
DEVICE = "ingest-1"
TOPIC = f"edgefleet/v1/devices/{DEVICE}"
BURST = 3000
STEPS = ["notified", "downloading", "verifying", "staged", "self-test", "active", "committed"]


def metrics(server):
    """The server's /metrics samples as {name: value}, and the text."""
    r = server.request("GET", "/metrics")
    assert r.status == 200, r
    text = r.body.decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out, text


def counter(server, what):
    return metrics(server)[0][f"edgefleet_{what}"]


@pytest.fixture(scope="module")
def setup(server, thyroid_net):
    server.push(MODEL, thyroid_net)
    server.enroll(DEVICE)
    ef.wait_until(lambda: server.get_json("/healthz").get("mqtt") == "connected", 10,
                  what="server connected to the broker")
    server.assign(MODEL, 1, DEVICE)


@pytest.fixture
def mq(broker, request):
    c = ef.MqttClient(broker, f"it-{request.node.name[:40]}")
    yield c
    c.close()


def device(server):
    return server.get_json(f"/api/v1/devices/{DEVICE}")


def publish_async(mq, topic, payload):
    """A QoS 1 publish without waiting for its acknowledgement, so that a
    burst reaches the broker as fast as a fleet's would."""
    info = mq.client.publish(topic, payload, qos=1)
    assert info.rc == 0, info.rc
    return info


def sync(server, mq):
    """Flips the device's status and waits until the server shows it: status
    words take the same queue as reports, so every report published before
    has been applied by then."""
    want = not device(server)["online"]
    mq.publish(f"{TOPIC}/status", b"online" if want else b"offline", retain=True)
    ef.wait_until(lambda: device(server)["online"] is want, 30, what=f"device online={want}")


def test_a_burst_of_reports_is_received_whole_and_applied_in_order(server, setup, mq):
    received0 = counter(server, "reports_received_total")
    stored0 = counter(server, "reports_stored_total")
    batches0 = counter(server, "report_batches_total")
    infos = []
    for i in range(BURST):
        # The burst ends in a committed report of version 1.
        state = STEPS[(i + len(STEPS) - BURST % len(STEPS)) % len(STEPS)]
        report = {"slot": "production", "model": MODEL, "version": 1, "state": state}
        infos.append(publish_async(mq, f"{TOPIC}/reported", json.dumps(report).encode()))
    for info in infos:
        info.wait_for_publish(timeout=30)
    sync(server, mq)
    # Every report and the status word: nothing dropped on the way.
    assert counter(server, "reports_received_total") - received0 == BURST + 1
    assert counter(server, "reports_stored_total") - stored0 == BURST + 1
    assert counter(server, "reports_dropped_total") == 0
    # Batched: fewer transactions than reports (how many fewer depends on
    # how fast they arrive; test_report_queue.c checks the batching exactly).
    batches = counter(server, "report_batches_total") - batches0
    assert 1 <= batches < BURST, batches
    d = device(server)
    assert d["reported"]["production"]["state"] == "committed"
    assert d["slots"]["production"]["state"] == "committed"


def test_malformed_reports_and_status_words_are_counted(server, setup, mq):
    malformed0 = counter(server, "reports_malformed_total")
    mq.publish(f"{TOPIC}/reported", b"{not json")
    mq.publish(f"{TOPIC}/reported", json.dumps({"slot": "production", "model": MODEL,
                                                "version": 1, "state": "exploded"}).encode())
    mq.publish(f"{TOPIC}/status", b"maybe")
    sync(server, mq)
    assert counter(server, "reports_malformed_total") - malformed0 == 3
    assert device(server)["slots"]["production"]["state"] == "committed"
    _, text = metrics(server)
    for name, kind in (("edgefleet_reports_received_total", "counter"),
                       ("edgefleet_reports_malformed_total", "counter"),
                       ("edgefleet_reports_dropped_total", "counter"),
                       ("edgefleet_reports_stored_total", "counter"),
                       ("edgefleet_reports_ignored_total", "counter"),
                       ("edgefleet_reports_failed_total", "counter"),
                       ("edgefleet_report_batches_total", "counter"),
                       ("edgefleet_report_queue_depth", "gauge")):
        assert f"# TYPE {name} {kind}" in text, name

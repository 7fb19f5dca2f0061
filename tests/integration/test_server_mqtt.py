"""The server on the broker: the signed desired state published retained on
edgefleet/v1/devices/{id}/desired, and what devices say on their status and
reported topics (malformed messages ignored, the server unharmed)."""

import json

import pytest

import edgefleet_fixtures as ef

MODEL = "thyroid"
DEVICE = "mq-1"
TOPIC = f"edgefleet/v1/devices/{DEVICE}"


@pytest.fixture(scope="module")
def setup(server, thyroid_net, thyroid_net_b):
    server.push(MODEL, thyroid_net)
    server.push(MODEL, thyroid_net_b)
    server.enroll(DEVICE)
    ef.wait_until(lambda: server.get_json("/healthz").get("mqtt") == "connected", 10,
                  what="server connected to the broker")
    out = server.assign(MODEL, 1, DEVICE)
    assert out["assigned"] == [{"device_id": DEVICE, "seq": 1}]
    return {"keys": server.keys()}


@pytest.fixture
def mq(broker, request):
    c = ef.MqttClient(broker, f"it-{request.node.name[:40]}")
    yield c
    c.close()


def device(server):
    return server.get_json(f"/api/v1/devices/{DEVICE}")


def slot_state(server):
    return device(server)["slots"]["production"]["state"]


def test_late_subscriber_gets_the_retained_signed_desired_state(server, setup, mq):
    mq.subscribe(f"{TOPIC}/desired")
    topic, payload, retained = mq.next_message()
    assert topic == f"{TOPIC}/desired"
    assert retained, "the desired state was not published retained"
    envelope = json.loads(payload)
    a = ef.open_envelope(envelope, setup["keys"]["server"])
    assert a["device_id"] == DEVICE and a["seq"] == 1
    assert a["slots"]["production"]["model"] == MODEL
    assert a["slots"]["production"]["version"] == 1
    # The same envelope as GET .../desired.
    r = server.admin("GET", f"/api/v1/devices/{DEVICE}/desired")
    assert r.json() == envelope


def test_a_new_assignment_reaches_a_subscribed_device_with_a_higher_seq(server, setup, mq):
    mq.subscribe(f"{TOPIC}/desired")
    _, payload, _ = mq.next_message()  # the retained one
    first = ef.open_envelope(json.loads(payload), setup["keys"]["server"])
    out = server.assign(MODEL, 2, DEVICE)
    seq = out["assigned"][0]["seq"]
    assert seq == first["seq"] + 1
    _, payload, _ = mq.next_message()
    a = ef.open_envelope(json.loads(payload), setup["keys"]["server"])
    assert a["seq"] == seq and a["slots"]["production"]["version"] == 2
    # Back to version 1 for the tests that follow: a rollback is a new seq.
    out = server.assign(MODEL, 1, DEVICE)
    _, payload, _ = mq.next_message()
    a = ef.open_envelope(json.loads(payload), setup["keys"]["server"])
    assert a["seq"] == seq + 1 and a["slots"]["production"]["version"] == 1


def test_status_online_and_offline_mark_the_device(server, setup, mq):
    mq.publish(f"{TOPIC}/status", b"online", retain=True)
    ef.wait_until(lambda: device(server)["online"] is True, 5, what="device online")
    assert device(server)["last_seen"]
    mq.publish(f"{TOPIC}/status", b"offline", retain=True)
    ef.wait_until(lambda: device(server)["online"] is False, 5, what="device offline")
    mq.publish(f"{TOPIC}/status", b"online", retain=True)
    ef.wait_until(lambda: device(server)["online"] is True, 5, what="device online again")
    online = server.get_json("/api/v1/devices?online=true")["devices"]
    assert DEVICE in [d["id"] for d in online]


def test_reported_committed_becomes_the_slot_state(server, setup, mq):
    assert slot_state(server) == "pending"
    report = {"slot": "production", "model": MODEL, "version": 1, "state": "committed"}
    mq.publish(f"{TOPIC}/reported", json.dumps(report).encode())
    ef.wait_until(lambda: slot_state(server) == "committed", 5, what="slot committed")


BAD_REPORTS = [
    b"",
    b"{",
    b"not json at all",
    b"\xff\xfe\x00garbage",
    b"[]",
    b"null",
    b'{"slot":"production","model":"thyroid","version":1,"state":"committed","slot":"shadow"}',
    b'{"slot":"production","model":"thyroid","version":1}',
    b'{"slot":"production","model":"thyroid","version":"1","state":"failed"}',
    b'{"slot":"production","model":"thyroid","version":1,"state":"exploded"}',
    b'{"slot":"attic","model":"thyroid","version":1,"state":"failed"}',
    b'{"slot":"production","model":"Thyroid!","version":1,"state":"failed"}',
    b'{"slot":"production","model":"thyroid","version":0,"state":"failed"}',
    b'{"slot":"production","model":"thyroid","version":-1,"state":"failed"}',
    b'{"slot":"production","model":"thyroid","version":1,"state":"failed","extra":1}',
    b'{"slot":"production","model":"thyroid","version":1e999,"state":"failed"}',
    b'{"slot":"production","model":"thyroid","version":1,"state":"failed","reason":7}',
    b'{"slot":"production","model":"thyroid","version":2,"state":"failed"}',
    b'{"slot":"production","model":"other","version":1,"state":"failed"}',
    json.dumps({"slot": "production", "model": MODEL, "version": 1, "state": "failed",
                "reason": "x" * 40000}).encode(),
    b"[" * 100000,
]


def sync(server, mq):
    """Flips the device's status and waits until the server shows it: the
    server then has handled every message this client published before."""
    want = not device(server)["online"]
    mq.publish(f"{TOPIC}/status", b"online" if want else b"offline", retain=True)
    ef.wait_until(lambda: device(server)["online"] is want, 5, what=f"device online={want}")


def commit_v1(server, mq):
    good = {"slot": "production", "model": MODEL, "version": 1, "state": "committed"}
    mq.publish(f"{TOPIC}/reported", json.dumps(good).encode())
    ef.wait_until(lambda: slot_state(server) == "committed", 5, what="slot committed")
    return good


def test_malformed_reports_are_ignored_and_the_server_stays_up(server, setup, mq):
    good = commit_v1(server, mq)
    for payload in BAD_REPORTS:
        mq.publish(f"{TOPIC}/reported", payload)
    for payload in (b"maybe", b"ONLINE", b"online\n", b"\x00"):
        mq.publish(f"{TOPIC}/status", payload)
    # Reports about devices that do not exist, or topics that are not ours.
    mq.publish("edgefleet/v1/devices/ghost-device/reported", json.dumps(good).encode())
    mq.publish("edgefleet/v1/devices/ghost-device/status", b"online")
    mq.publish("edgefleet/v1/devices/" + "x" * 200 + "/reported", json.dumps(good).encode())
    mq.publish(f"{TOPIC}/reported/extra", json.dumps(good).encode())
    # A marker after them all, on another topic of the same client: once the
    # server has applied it, it has seen everything published before.
    sync(server, mq)
    assert server.alive()
    assert server.healthz_ok()
    prod = device(server)["slots"]["production"]
    assert (prod["name"], prod["version"], prod["state"]) == (MODEL, 1, "committed")
    ef.assert_error(server.admin("GET", "/api/v1/devices/ghost-device"), 404, "not_found")


def schema_invalid_reports():
    """Well-formed reports that schema/json/reported.schema.json refuses,
    derived from the schema so that the test follows it: the server must
    not take any of them as the slot's state."""
    with open(ef.SOURCE_DIR / "schema" / "json" / "reported.schema.json") as f:
        schema = json.load(f)
    props = schema["properties"]
    cases = {}
    for state in ("pending", "staged", "self-test", "exploded"):
        if state not in props["state"]["enum"]:
            cases[f"state_{state}"] = {"state": state}
    if schema.get("additionalProperties") is False:
        for extra in ("ts", "unknown"):
            if extra not in props:
                cases[f"member_{extra}"] = {"state": "failed", extra: 1}
    if "maxLength" in props["reason"]:
        n = props["reason"]["maxLength"] + 1
        cases[f"reason_of_{n}_chars"] = {"state": "failed", "reason": "r" * n}
    if "minimum" in props["seq"]:
        cases["seq_below_minimum"] = {"state": "failed", "seq": props["seq"]["minimum"] - 1}
    return cases


SCHEMA_INVALID_REPORTS = schema_invalid_reports()


@pytest.mark.parametrize("change", list(SCHEMA_INVALID_REPORTS.values()),
                         ids=list(SCHEMA_INVALID_REPORTS))
def test_schema_invalid_report_does_not_change_the_slot(server, setup, mq, change):
    commit_v1(server, mq)
    report = {"slot": "production", "model": MODEL, "version": 1}
    report.update(change)
    mq.publish(f"{TOPIC}/reported", json.dumps(report).encode())
    sync(server, mq)
    assert slot_state(server) == "committed", f"{report} was taken as the slot state"
    assert server.healthz_ok()


def test_agent_steps_staged_and_self_test_show_as_verifying(server, setup, mq):
    """reported.schema.json: the agent's staged and self-test steps are
    shown by the server as verifying."""
    with open(ef.SOURCE_DIR / "schema" / "json" / "reported.schema.json") as f:
        states = json.load(f)["properties"]["state"]["enum"]
    for step in ("staged", "self-test"):
        if step not in states:
            continue
        commit_v1(server, mq)
        report = {"slot": "production", "model": MODEL, "version": 1, "state": step}
        mq.publish(f"{TOPIC}/reported", json.dumps(report).encode())
        ef.wait_until(lambda: slot_state(server) == "verifying", 5,
                      what=f"{step} shown as verifying")

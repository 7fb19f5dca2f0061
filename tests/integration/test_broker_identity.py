"""Every device's own broker identity (mosquitto's dynamic-security plugin),
made by the server at enrollment and deleted at decommission: a device may
read only its own desired and cmd topics and write only its own reported,
telemetry and status; no one but the server writes desired. Without the
plugin (or without rights on it) the server says so once and enrolls devices
without broker credentials. Also the broker set-up of deploy/quickstart.sh.
"""

import json
import os
import pwd
import queue
import secrets
import stat
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import paho.mqtt.client as mqtt
import pytest

import conftest
import edgefleet_fixtures as ef

PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
CONTROL = "$CONTROL/dynamic-security/v1"
MODEL = "thyroid"
A, B = "bi-a", "bi-b"
REFUSED = 0x80  # SUBACK failure


def topic(device, leaf):
    return f"edgefleet/v1/devices/{device}/{leaf}"


class DynsecBroker:
    """mosquitto with the dynamic-security plugin on a free loopback port,
    no anonymous clients. Its state file comes from `mosquitto_ctrl dynsec
    init` (client admin, role admin); the admin role may also write the
    edgefleet topics, so that a server connected as admin can do its work,
    and the default ACL access denies receiving as well (as quickstart.sh
    sets it). Same interface as edgefleet_fixtures.Broker."""

    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.port = ef.free_port()
        self.admin_password = secrets.token_hex(16)
        self.state = self.dir / "dynsec.json"
        self.conf = self.dir / "mosquitto.conf"
        self.log_path = self.dir / "mosquitto.log"
        subprocess.run(["mosquitto_ctrl", "dynsec", "init", str(self.state), "admin",
                        self.admin_password], check=True, capture_output=True, timeout=30)
        doc = json.loads(self.state.read_text())
        defaults = doc["defaultACLAccess"]
        # What the plugin's own defaults are, and what the device roles rely on.
        assert defaults["publishClientSend"] is False and defaults["subscribe"] is False, defaults
        defaults["publishClientReceive"] = False
        admin = next(r for r in doc["roles"] if r["rolename"] == "admin")
        admin["acls"].append({"acltype": "publishClientSend", "topic": "edgefleet/v1/#",
                              "allow": True})
        self.state.write_text(json.dumps(doc))
        # Started as root, mosquitto would become user mosquitto, which cannot
        # read the state file in a private temporary directory.
        self.conf.write_text(f"per_listener_settings false\n"
                             f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
                             f"listener {self.port} {ef.HOST}\n"
                             f"allow_anonymous false\n"
                             f"plugin {PLUGIN}\n"
                             f"plugin_opt_config_file {self.state}\n"
                             f"persistence false\n"
                             # As deploy/mosquitto/dynsec.conf: the server's
                             # one subscription receives every device's reports.
                             f"max_queued_messages 100000\n")
        self.log = None
        self.proc = None
        self.start()

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([ef.MOSQUITTO, "-c", str(self.conf)], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            ef.wait_port(self.port, self.proc)
        except Exception:
            self.stop()
            raise

    @property
    def url(self):
        return f"mqtt://admin:{self.admin_password}@{ef.HOST}:{self.port}"

    def stop(self):
        ef.stop_process(self.proc)
        self.log.close()

    def call(self, *commands):
        """Sends plugin commands as admin; returns the plugin's answers."""
        c = Client(self.port, "admin", self.admin_password, "it-dynsec-admin")
        try:
            assert c.subscribe(f"{CONTROL}/response") != REFUSED
            c.publish(CONTROL, json.dumps({"commands": list(commands)}))
            _, payload, _ = c.next_message()
            return json.loads(payload)["responses"]
        finally:
            c.close()

    def client_names(self):
        return self.call({"command": "listClients"})[0]["data"]["clients"]

    def role_names(self):
        return self.call({"command": "listRoles"})[0]["data"]["roles"]


class Client:
    """A paho client (MQTT 3.1.1) with credentials that records its CONNACK
    code, the granted QoS of each SUBSCRIBE, its messages and a lost
    connection. A refused client is closed at once."""

    def __init__(self, port, username, password, client_id, will=None):
        self.messages = queue.Queue()
        self.lost = threading.Event()
        self._connack = queue.Queue()
        self._granted = {}
        self.client = mqtt.Client(client_id=client_id, clean_session=True,
                                  protocol=mqtt.MQTTv311)
        if username is not None:
            self.client.username_pw_set(username, password)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.client.on_connect = lambda c, u, f, rc: self._connack.put(rc)
        self.client.on_subscribe = lambda c, u, mid, granted: self._granted.update({mid: granted})
        self.client.on_message = lambda c, u, m: self.messages.put(
            (m.topic, bytes(m.payload), bool(m.retain)))
        self.client.on_disconnect = lambda c, u, rc: self.lost.set()
        self.client.connect(ef.HOST, port, keepalive=30)
        self.client.loop_start()
        self.connack = self._connack.get(timeout=5)
        if self.connack != 0:
            self.close()

    def subscribe(self, t):
        """Subscribes at QoS 1; returns the granted QoS (REFUSED on failure)."""
        result, mid = self.client.subscribe(t, 1)
        assert result == 0, f"subscribe {t}: {result}"
        return ef.wait_until(lambda: self._granted.get(mid), 5, what=f"SUBACK for {t}")[0]

    def publish(self, t, payload, retain=False):
        info = self.client.publish(t, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=5)
        assert info.is_published(), f"publish to {t} not acknowledged"

    def next_message(self, timeout=5.0):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no MQTT message within {timeout}s") from None

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()

    def drop(self):
        """Loses the connection without a DISCONNECT, so the broker sends the will."""
        self.client.loop_stop()
        self.client.socket().close()


def connack(port, username, password):
    """The CONNACK code a client with these credentials gets."""
    c = Client(port, username, password, f"it-probe-{secrets.token_hex(4)}")
    c.close()
    return c.connack


def device(broker, creds, name):
    c = Client(broker.port, creds["username"], creds["password"], f"it-{name}")
    assert c.connack == 0, f"{creds['username']} refused: {mqtt.connack_string(c.connack)}"
    return c


def log_events(srv, event):
    return [line for line in srv.log_text().splitlines() if f"event={event} " in line + " "]


# --------------------------------------------------------------------------
# Fixtures

@pytest.fixture(scope="module")
def dsbroker(tmp_path_factory):
    b = DynsecBroker(tmp_path_factory.mktemp("dynsec-broker"))
    conftest._LIVE_BROKERS.append(b)
    yield b
    conftest._LIVE_BROKERS.remove(b)
    b.stop()


@pytest.fixture(scope="module")
def dsserver(dsbroker, tmp_path_factory):
    srv = conftest._start_server(tmp_path_factory.mktemp("server"), dsbroker)
    try:
        ef.wait_until(lambda: log_events(srv, "dynsec_managed"), 10,
                      what="the server finds the dynamic-security plugin")
        yield srv
    finally:
        conftest._stop_server(srv)


@pytest.fixture(scope="module")
def fleet(dsserver, thyroid_net, thyroid_net_b):
    """Devices A and B enrolled (with their broker credentials) and assigned
    version 1 (of 2); the server's public keys."""
    dsserver.push(MODEL, thyroid_net)
    dsserver.push(MODEL, thyroid_net_b)
    enrolled = {d: dsserver.enroll(d) for d in (A, B)}
    for d in (A, B):
        assert dsserver.assign(MODEL, 1, d)["assigned"] == [{"device_id": d, "seq": 1}]
    return {"enrolled": enrolled, "creds": {d: enrolled[d]["mqtt"] for d in (A, B)},
            "keys": dsserver.keys()}


@pytest.fixture
def observer(dsbroker):
    """The admin's view of the broker: may subscribe to anything."""
    c = Client(dsbroker.port, "admin", dsbroker.admin_password, "it-observer")
    assert c.connack == 0
    yield c
    c.close()


# --------------------------------------------------------------------------
# Managed credentials

def test_enrollment_hands_each_device_its_own_broker_credentials(dsserver, dsbroker, fleet):
    for d in (A, B):
        answer = fleet["enrolled"][d]
        assert set(answer) == {"device_id", "device_token", "keys", "mqtt"}, answer
        creds = answer["mqtt"]
        assert set(creds) == {"username", "password"}
        assert creds["username"] == d
        assert creds["password"].startswith("efm_") and len(creds["password"]) == 47
    assert fleet["creds"][A]["password"] != fleet["creds"][B]["password"]
    assert {A, B} <= set(dsbroker.client_names())
    assert {f"edgefleet-device-{A}", f"edgefleet-device-{B}"} <= set(dsbroker.role_names())
    role = dsbroker.call({"command": "getRole", "rolename": f"edgefleet-device-{A}"})[0]
    acls = {(a["acltype"], a["topic"], a["allow"]) for a in role["data"]["role"]["acls"]}
    assert acls == {
        ("subscribeLiteral", topic(A, "desired"), True),
        ("subscribeLiteral", topic(A, "cmd"), True),
        ("publishClientReceive", topic(A, "desired"), True),
        ("publishClientReceive", topic(A, "cmd"), True),
        ("publishClientSend", topic(A, "reported"), True),
        ("publishClientSend", topic(A, "telemetry"), True),
        ("publishClientSend", topic(A, "status"), True),
    }
    # The password is shown once: neither logged nor stored by the server.
    assert len(log_events(dsserver, "dynsec_unavailable")) == 0
    stored = b"".join(p.read_bytes() for p in dsserver.data_dir.rglob("*") if p.is_file())
    text = dsserver.log_text()
    for creds in fleet["creds"].values():
        assert creds["password"] not in text
        assert creds["password"].encode() not in stored


def test_a_device_receives_its_retained_assignment(dsbroker, fleet):
    a = device(dsbroker, fleet["creds"][A], "a-desired")
    try:
        assert a.subscribe(topic(A, "desired")) == 1
        t, payload, retained = a.next_message()
        assert t == topic(A, "desired") and retained
        assignment = ef.open_envelope(json.loads(payload), fleet["keys"]["server"])
        assert assignment["device_id"] == A and assignment["seq"] == 1
        assert a.subscribe(topic(A, "cmd")) == 1
    finally:
        a.close()


def test_a_device_cannot_subscribe_beyond_its_own_topics(dsserver, dsbroker, fleet):
    a = device(dsbroker, fleet["creds"][A], "a-subscribe")
    try:
        for t in ("#", "edgefleet/#", topic(B, "desired"), topic("+", "desired"),
                  topic(B, "cmd"), topic(A, "reported"), topic(A, "#"), "$SYS/#",
                  f"{CONTROL}/response"):
            assert a.subscribe(t) == REFUSED, f"{A} may subscribe to {t}"
        assert a.subscribe(topic(A, "desired")) == 1
        assert a.next_message()[0] == topic(A, "desired")  # the retained one
        # B's desired state goes out first, then A's: A sees only its own.
        dsserver.assign(MODEL, 2, B)
        dsserver.assign(MODEL, 2, A)
        t, payload, retained = a.next_message()
        assert t == topic(A, "desired") and not retained
        assert ef.open_envelope(json.loads(payload), fleet["keys"]["server"])["device_id"] == A
        with pytest.raises(AssertionError):
            a.next_message(timeout=0.5)
    finally:
        a.close()


def test_a_device_writes_only_its_own_reported_telemetry_and_status(dsserver, dsbroker, fleet,
                                                                    observer):
    for leaf in ("reported", "telemetry", "status"):
        assert observer.subscribe(topic("+", leaf)) == 1
    assert observer.subscribe("edgefleet/v1/events/#") == 1
    a = device(dsbroker, fleet["creds"][A], "a-publish")
    try:
        for leaf in ("reported", "telemetry", "status"):
            a.publish(topic(B, leaf), b"forged by a")
        a.publish("edgefleet/v1/events/alert", b"forged event")
        # A's own messages go through, and nothing of the above came before them
        # (the broker handles one client's packets in order).
        a.publish(topic(A, "reported"), b'{"not": "a report"}')
        a.publish(topic(A, "telemetry"), b"{}")
        a.publish(topic(A, "status"), b"online", retain=True)
        got = [observer.next_message()[:2] for _ in range(3)]
        assert got == [(topic(A, "reported"), b'{"not": "a report"}'),
                       (topic(A, "telemetry"), b"{}"),
                       (topic(A, "status"), b"online")], got
        # The server, subscribed as admin, heard the status too.
        ef.wait_until(lambda: dsserver.get_json(f"/api/v1/devices/{A}")["online"], 5,
                      what=f"{A} online")
        assert not dsserver.get_json(f"/api/v1/devices/{B}")["online"]
    finally:
        a.close()
    # The last will on its own status goes out; one on another device's does not.
    creds = fleet["creds"][A]
    for will, name in ((topic(B, "status"), "a-will-b"), (topic(A, "status"), "a-will-a")):
        c = Client(dsbroker.port, creds["username"], creds["password"], f"it-{name}",
                   will=(will, b"offline"))
        if c.connack == 0:
            c.drop()
    assert observer.next_message()[:2] == (topic(A, "status"), b"offline")


def test_no_device_writes_desired(dsbroker, fleet, observer):
    assert observer.subscribe(topic("+", "desired")) == 1
    assert observer.subscribe(topic(A, "reported")) == 1
    retained = {observer.next_message()[0] for _ in range(2)}
    assert retained == {topic(A, "desired"), topic(B, "desired")}
    a = device(dsbroker, fleet["creds"][A], "a-desired-forger")
    try:
        a.publish(topic(A, "desired"), b"forged", retain=True)
        a.publish(topic(B, "desired"), b"forged", retain=True)
        a.publish(topic(A, "cmd"), b"forged")
        a.publish(topic(A, "reported"), b"fence")
        assert observer.next_message()[:2] == (topic(A, "reported"), b"fence")
    finally:
        a.close()
    # The retained desired states are still the server's signed ones.
    late = Client(dsbroker.port, "admin", dsbroker.admin_password, "it-late")
    try:
        late.subscribe(topic("+", "desired"))
        for _ in range(2):
            t, payload, _ = late.next_message()
            ef.open_envelope(json.loads(payload), fleet["keys"]["server"])
    finally:
        late.close()


def test_wrong_or_missing_credentials_are_refused_at_connect(dsbroker, fleet):
    a, b = fleet["creds"][A], fleet["creds"][B]
    assert connack(dsbroker.port, A, a["password"]) == 0
    assert connack(dsbroker.port, A, a["password"] + "x") == 5
    assert connack(dsbroker.port, A, b["password"]) == 5
    assert connack(dsbroker.port, A, "") == 5
    assert connack(dsbroker.port, None, None) == 5


def test_enrollment_that_the_database_refuses_leaves_no_broker_identity(dsserver, dsbroker):
    token = dsserver.create_enroll_token(**{"class": "cam"})
    r = dsserver.request("POST", "/api/v1/enroll", {"device_id": "bi-c", "class": "other"},
                         token=token)
    ef.assert_error(r, 422, "unprocessable")
    assert "bi-c" not in dsbroker.client_names()
    assert "edgefleet-device-bi-c" not in dsbroker.role_names()
    # A device id already enrolled keeps its identity.
    r = dsserver.request("POST", "/api/v1/enroll", {"device_id": B},
                         token=dsserver.create_enroll_token())
    ef.assert_error(r, 409, "device_exists")
    assert B in dsbroker.client_names()


def test_decommission_deletes_the_broker_identity(dsserver, dsbroker, fleet):
    old = fleet["creds"][A]
    a = device(dsbroker, old, "a-doomed")
    try:
        r = dsserver.admin("DELETE", f"/api/v1/devices/{A}")
        assert r.status == 204, r
        assert a.lost.wait(5), "the broker kept the decommissioned device connected"
    finally:
        a.close()
    assert connack(dsbroker.port, A, old["password"]) == 5
    assert A not in dsbroker.client_names()
    assert f"edgefleet-device-{A}" not in dsbroker.role_names()
    assert log_events(dsserver, "device_broker_identity_deleted")
    # B is untouched; A enrolled again gets new credentials, the old ones stay dead.
    assert connack(dsbroker.port, B, fleet["creds"][B]["password"]) == 0
    new = dsserver.enroll(A)["mqtt"]
    assert new["password"] != old["password"]
    assert connack(dsbroker.port, A, new["password"]) == 0
    assert connack(dsbroker.port, A, old["password"]) == 5


def test_enrollment_stores_nothing_while_the_broker_is_away(tmp_path_factory, thyroid_net):
    broker = DynsecBroker(tmp_path_factory.mktemp("dynsec-broker-away"))
    conftest._LIVE_BROKERS.append(broker)
    srv = None
    try:
        srv = conftest._start_server(tmp_path_factory.mktemp("server"), broker)
        ef.wait_until(lambda: log_events(srv, "dynsec_managed"), 10, what="managed")
        token = srv.create_enroll_token()
        broker.stop()
        ef.wait_until(lambda: srv.get_json("/healthz").get("mqtt") != "connected", 10,
                      what="the server noticed the broker is gone")
        r = srv.request("POST", "/api/v1/enroll", {"device_id": "bi-away"}, token=token)
        ef.assert_error(r, 503, "broker_unavailable")
        r = srv.admin("GET", "/api/v1/devices/bi-away")
        assert r.status == 404, r
        # The enrollment token's use was not spent: it works once the broker is back.
        broker.start()
        ef.wait_until(lambda: srv.get_json("/healthz").get("mqtt") == "connected", 40,
                      what="the server reconnected")
        r = ef.wait_until(lambda: (lambda r: r if r.status != 503 else None)(
            srv.request("POST", "/api/v1/enroll", {"device_id": "bi-away"}, token=token)),
            10, what="enrollment once the broker is back")
        assert r.status == 201, r
        creds = r.json()["mqtt"]
        assert connack(broker.port, "bi-away", creds["password"]) == 0
    finally:
        if srv is not None:
            conftest._stop_server(srv)
        conftest._LIVE_BROKERS.remove(broker)
        broker.stop()


# --------------------------------------------------------------------------
# Unmanaged

def test_without_the_plugin_devices_enroll_without_broker_credentials(make_server):
    srv = make_server()  # the anonymous broker of conftest
    ef.wait_until(lambda: log_events(srv, "dynsec_unavailable"), 10,
                  what="dynsec_unavailable logged")
    answer = srv.enroll("bi-plain")
    assert "mqtt" not in answer and set(answer) == {"device_id", "device_token", "keys"}
    assert srv.admin("DELETE", "/api/v1/devices/bi-plain").status == 204
    time.sleep(0.5)
    assert len(log_events(srv, "dynsec_unavailable")) == 1
    assert not log_events(srv, "dynsec_managed")


def test_a_server_client_without_rights_on_the_plugin_runs_unmanaged(dsbroker, tmp_path_factory):
    password = secrets.token_hex(16)
    answers = dsbroker.call(
        {"command": "deleteClient", "username": "bi-weak-server"},
        {"command": "createClient", "username": "bi-weak-server", "password": password})
    assert "error" not in answers[1], answers
    weak = SimpleNamespace(port=dsbroker.port,
                           url=f"mqtt://bi-weak-server:{password}@{ef.HOST}:{dsbroker.port}")
    srv = conftest._start_server(tmp_path_factory.mktemp("server"), weak)
    try:
        ef.wait_until(lambda: log_events(srv, "dynsec_unavailable"), 10,
                      what="dynsec_unavailable logged")
        assert "mqtt" not in srv.enroll("bi-weak-dev")
        assert "bi-weak-dev" not in dsbroker.client_names()
        assert len(log_events(srv, "dynsec_unavailable")) == 1
    finally:
        conftest._stop_server(srv)


# --------------------------------------------------------------------------
# deploy/quickstart.sh's broker

def test_quickstart_broker_confines_devices_and_serves_the_server(tmp_path_factory,
                                                                 thyroid_net):
    """Runs quickstart.sh's own functions: the first-run state file, the
    broker configuration, the server's client; then a server on it."""
    data_dir = tmp_path_factory.mktemp("quickstart") / "data"
    data_dir.mkdir(mode=0o700)
    port = ef.free_port()
    script = ef.SOURCE_DIR / "deploy" / "quickstart.sh"
    shell = (f'source "{script}"; root="{ef.SOURCE_DIR}"; data_dir="{data_dir}"; '
             f'mqtt_port={port}; start_broker; echo "$broker_pid"; '
             f'printf "%s\\n" "$server_mqtt_password"')
    p = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60)
    lines = p.stdout.split()
    broker_pid = int(lines[0]) if lines else None
    broker_dir = data_dir / "mosquitto"
    broker = SimpleNamespace(port=port, log_path=broker_dir / "mosquitto.log", url=None)
    conftest._LIVE_BROKERS.append(broker)
    srv = None
    try:
        assert p.returncode == 0 and len(lines) == 2, f"{p.stdout}\n{p.stderr}"
        server_password = lines[1]
        for f in ("admin.password", "dynsec.json"):
            mode = stat.S_IMODE((broker_dir / f).stat().st_mode)
            assert mode & 0o077 == 0, f"{f} is readable by others ({oct(mode)})"
        assert server_password not in (broker_dir / "dynsec.json").read_text()
        conf = (broker_dir / "mosquitto.conf").read_text()
        assert "allow_anonymous false" in conf and "mosquitto_dynamic_security.so" in conf
        assert "@" not in conf
        broker.url = f"mqtt://edgefleet-server:{server_password}@{ef.HOST}:{port}"
        srv = conftest._start_server(tmp_path_factory.mktemp("server"), broker)
        ef.wait_until(lambda: log_events(srv, "dynsec_managed"), 10, what="managed")
        assert not log_events(srv, "dynsec_permissive_default")
        assert connack(port, None, None) == 5
        creds = srv.enroll("qs-dev")["mqtt"]
        dev = device(broker, creds, "qs-dev")
        try:
            assert dev.subscribe("#") == REFUSED
            assert dev.subscribe(topic("qs-dev", "desired")) == 1
            srv.push(MODEL, thyroid_net)
            srv.assign(MODEL, 1, "qs-dev")
            t, payload, _ = dev.next_message()
            assert t == topic("qs-dev", "desired")
            assert ef.open_envelope(json.loads(payload), srv.keys()["server"])["seq"] == 1
            dev.publish(topic("qs-dev", "status"), b"online", retain=True)
            ef.wait_until(lambda: srv.get_json("/api/v1/devices/qs-dev")["online"], 5,
                          what="the server hears the device")
        finally:
            dev.close()
        assert srv.admin("DELETE", "/api/v1/devices/qs-dev").status == 204
        assert connack(port, "qs-dev", creds["password"]) == 5
    finally:
        if srv is not None:
            conftest._stop_server(srv)
        conftest._LIVE_BROKERS.remove(broker)
        if broker_pid:
            os.kill(broker_pid, 15)
            ef.wait_until(lambda: not Path(f"/proc/{broker_pid}").exists() or
                          "zombie" in Path(f"/proc/{broker_pid}/status").read_text().lower(),
                          10, what="the quickstart broker stopped")

"""Telemetry ingest end to end: devices publish metrics windows on
edgefleet/v1/devices/{id}/telemetry (with paho, as the agent's payload), the
server stores them through its batching writer, and GET /api/v1/telemetry and
`edgefleet telemetry query` read them back. Malformed windows are ignored and
counted, windows of devices that are not enrolled are not stored, a burst of
2,000 windows is stored whole, and retention deletes old windows."""

import json
import os
import sqlite3
import subprocess
import time
import urllib.parse

import pytest

import edgefleet_fixtures as ef

LAB = ["tel-1", "tel-2"]      # tag site=lab: ring "lab" by its selector
OTHERS = ["tel-3"]            # ring default
BURST_DEVICES = [f"burst-{i:02d}" for i in range(20)]
BURST = 2000


def topic(device):
    return f"edgefleet/v1/devices/{device}/telemetry"


def window(model="thyroid@3", inferences=120, errors=2, p99=7.0, start="2026-11-22T10:00:00.123Z",
           feedback=10, accuracy=0.9):
    """A window shaped as agent/metrics.c writes it."""
    return {
        "window_start": start,
        "window_s": 60.004,
        "model": model,
        "inferences": inferences,
        "errors": errors,
        "latency_ms": ({"p50": 1.5, "p95": 3.25, "p99": p99, "max": p99 + 2.5}
                       if inferences else None),
        "feedback": feedback,
        "accuracy": accuracy if feedback else None,
        "rss_bytes": 10485760,
        "cpu_s": 0.25,
    }


def metrics(server):
    """The server's /metrics samples as {name: value}."""
    r = server.request("GET", "/metrics")
    assert r.status == 200, r
    out = {}
    for line in r.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def counter(server, what):
    return metrics(server)[f"edgefleet_telemetry_{what}"]


def query(server, **params):
    path = "/api/v1/telemetry"
    if params:
        path += "?" + urllib.parse.urlencode(params)
    return server.get_json(path)["windows"]


@pytest.fixture(scope="module")
def fleet(server):
    r = server.admin("POST", "/api/v1/rings", {"name": "lab", "selector": {"site": "lab"}})
    assert r.status == 201, r
    for d in LAB:
        server.enroll(d, tags={"site": "lab"})
    for d in OTHERS + BURST_DEVICES:
        server.enroll(d)
    ef.wait_until(lambda: server.get_json("/healthz").get("mqtt") == "connected", 10,
                  what="server connected to the broker")
    return server


@pytest.fixture
def mq(broker, request):
    c = ef.MqttClient(broker, f"tel-{request.node.name[:40]}")
    yield c
    c.close()


def wait_stored(server, n, timeout=10.0):
    """Waits until the writer has stored n windows in all (its counter)."""
    return ef.wait_until(lambda: counter(server, "windows_stored_total") >= n, timeout,
                         interval=0.02, what=f"{n} windows stored")


def test_published_windows_are_stored_and_read_back(fleet, mq):
    server = fleet
    base = counter(server, "windows_stored_total")
    # QoS 0, as the agent publishes; the idle window has no model.
    mq.publish(topic("tel-1"), json.dumps(window(p99=7.0)).encode(), qos=0)
    mq.publish(topic("tel-2"), json.dumps(window(model="thyroid@4", p99=9.0)).encode(), qos=0)
    mq.publish(topic("tel-3"), json.dumps(window(p99=11.0)).encode(), qos=1)
    mq.publish(topic("tel-1"), json.dumps(window(model=None, inferences=0, errors=0,
                                                 feedback=0)).encode(), qos=1)
    wait_stored(server, base + 4)

    rows = query(server)
    assert len(rows) == 4
    newest, oldest = rows[0], rows[-1]
    assert newest["device"] == "tel-1" and newest["model"] is None
    assert newest["version"] is None and newest["latency_ms"] is None
    assert newest["accuracy"] is None
    assert [r["received_at"] for r in rows] == sorted((r["received_at"] for r in rows),
                                                      reverse=True)
    assert oldest["device"] == "tel-1"
    assert oldest["model"] == "thyroid" and oldest["version"] == 3
    assert oldest["window_start"] == "2026-11-22T10:00:00.123Z"
    assert oldest["window_s"] == pytest.approx(60.004)
    assert (oldest["inferences"], oldest["errors"], oldest["feedback"]) == (120, 2, 10)
    assert oldest["latency_ms"] == {"p50": 1.5, "p95": 3.25, "p99": 7.0, "max": 9.5}
    assert oldest["accuracy"] == pytest.approx(0.9)
    assert oldest["rss_bytes"] == 10485760 and oldest["cpu_s"] == pytest.approx(0.25)
    assert set(oldest) == {"id", "device", "received_at", "window_start", "window_s", "model",
                           "version", "inferences", "errors", "latency_ms", "feedback",
                           "accuracy", "rss_bytes", "cpu_s"}

    def devices(**params):
        return [r["device"] for r in query(server, **params)]
    assert devices(model="thyroid") == ["tel-3", "tel-2", "tel-1"]
    assert devices(model="thyroid@3") == ["tel-3", "tel-1"]
    assert devices(model="thyroid@4") == ["tel-2"]
    assert devices(ring="lab") == ["tel-1", "tel-2", "tel-1"]
    assert devices(ring="lab", model="thyroid@3") == ["tel-1"]
    assert devices(ring="default") == ["tel-3"]
    assert devices(device="tel-1") == ["tel-1", "tel-1"]
    assert devices(limit=2) == ["tel-1", "tel-3"]
    assert devices(since=3600) == devices()
    assert devices(since="2099-01-01T00:00:00Z") == []
    assert devices(since=oldest["received_at"]) == devices()
    assert devices(ring="nowhere") == [] and devices(model="nothing") == []

    # A viewer may read it.
    viewer = server.create_token("viewer")
    assert server.get_json("/api/v1/telemetry?limit=1", token=viewer)["windows"] == rows[:1]


def test_bad_query_parameters(fleet):
    server = fleet
    for q in ("model=Thyroid", "model=thyroid@0", "model=thyroid@", "ring=Lab%21", "device=..",
              "since=yesterday", "since=-5", "limit=0", "limit=5001", "limit=ten"):
        r = server.admin("GET", f"/api/v1/telemetry?{q}")
        assert r.status == 400, (q, r)
        assert r.json()["error"]["code"] == "bad_request"
    assert server.request("GET", "/api/v1/telemetry").status == 401
    assert server.admin("GET", "/api/v1/telemetry?limit=5000").status == 200


def test_cli_query(fleet, mq):
    server = fleet
    base = counter(server, "windows_stored_total")
    mq.publish(topic("tel-2"), json.dumps(window(model="thyroid@5", p99=42.5)).encode())
    wait_stored(server, base + 1)

    doc = server.cli_json("telemetry", "query", "--model", "thyroid@5")
    assert [w["device"] for w in doc["windows"]] == ["tel-2"]
    assert doc == server.get_json("/api/v1/telemetry?model=thyroid%405")
    doc = server.cli_json("telemetry", "query", "--ring", "lab", "--since", "3600",
                          "--limit", "2")
    assert len(doc["windows"]) == 2 and doc["windows"][0]["version"] == 5
    doc = server.cli_json("telemetry", "query", "--device", "tel-3",
                          "--since", "2000-01-01T00:00:00Z")
    assert {w["device"] for w in doc["windows"]} == {"tel-3"}

    out = server.cli_ok("telemetry", "query", "--model", "thyroid@5")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["RECEIVED", "DEVICE", "MODEL"]
    assert len(lines) == 2
    assert "tel-2" in lines[1] and "thyroid@5" in lines[1] and "42.5" in lines[1]

    for bad in (["--model", "Bad!"], ["--limit", "0"], ["--limit", "5001"],
                ["--since", "yesterday"], ["--device", "../x"], ["--ring", "UP"],
                ["extra-positional"]):
        rc, _, err = server.cli("telemetry", "query", *bad)
        assert rc == 2, (bad, err)
    rc, out, _ = server.cli("telemetry", "query", "--help")
    assert rc == 0 and "--since" in out


BAD_WINDOWS = [
    b"",
    b"{",
    b"not json",
    b"\xff\xfe\x00garbage",
    b"[]",
    b"null",
    b'{"window_start":"2026-11-22T10:00:00Z","window_s":1,"inferences":3,"inferences":4,'
    b'"errors":0}',
    b'{"window_start":"2026-11-22T10:00:00Z","window_s":1,"inferences":3,"errors":0,"x":1}',
    b'{"window_start":"2026-11-22T10:00:00Z","window_s":1,"inferences":3,"errors":4}',
    b'{"window_start":"2026-11-22T10:00:00Z","window_s":1,"inferences":-3,"errors":0}',
    b'{"window_start":"yesterday","window_s":1,"inferences":3,"errors":0}',
    b'{"window_start":"2026-11-22T10:00:00Z","window_s":1,"inferences":3,"errors":0,'
    b'"model":"thyroid"}',
    b'{"window_start":"2026-11-22T10:00:00Z","window_s":1e999,"inferences":3,"errors":0}',
    json.dumps(dict(window(), accuracy=1.5)).encode(),
    json.dumps(dict(window(), latency_ms={"p50": 1})).encode(),
    json.dumps(dict(window(), padding="x" * 9000)).encode(),  # over 8 KiB
    b"[" * 10000,
]


def test_malformed_windows_are_ignored_and_counted(fleet, mq):
    server = fleet
    before = metrics(server)
    rows_before = len(query(server, limit=5000))
    for payload in BAD_WINDOWS:
        mq.publish(topic("tel-3"), payload)
    # Good windows from a stranger are not stored either, only counted.
    mq.publish(topic("not-enrolled"), json.dumps(window()).encode())
    # One good window after them: once it is stored, the rest were handled.
    mq.publish(topic("tel-3"), json.dumps(window(model="thyroid@6")).encode())
    wait_stored(server, before["edgefleet_telemetry_windows_stored_total"] + 1)
    ef.wait_until(lambda: counter(server, "windows_ignored_total") >=
                  before["edgefleet_telemetry_windows_ignored_total"] + 1, 5,
                  what="the stranger's window counted")
    after = metrics(server)
    assert (after["edgefleet_telemetry_windows_malformed_total"] -
            before["edgefleet_telemetry_windows_malformed_total"]) == len(BAD_WINDOWS)
    assert after["edgefleet_telemetry_windows_dropped_total"] == 0
    assert after["edgefleet_telemetry_windows_failed_total"] == 0
    assert len(query(server, limit=5000)) == rows_before + 1
    assert query(server, limit=1)[0]["version"] == 6
    assert server.healthz_ok()
    assert "telemetry_malformed" in server.log_text()


def test_a_burst_of_2000_windows_is_all_stored(fleet, broker):
    server = fleet
    base = metrics(server)
    stored0 = base["edgefleet_telemetry_windows_stored_total"]
    batches0 = base["edgefleet_telemetry_batches_total"]
    payloads = [(topic(BURST_DEVICES[i % len(BURST_DEVICES)]),
                 json.dumps(window(inferences=i + 1, errors=0, feedback=0)).encode())
                for i in range(BURST)]
    # Four publishers at once, at QoS 1 so that a finished publish means the
    # broker has the window. (The server subscribes at QoS 0: at QoS 1 the
    # broker's in-flight window to it throttled such a burst until the
    # broker's queue overflowed and dropped windows.)
    clients = [ef.MqttClient(broker, f"tel-burst-{k}") for k in range(4)]
    for c in clients:
        c.client.max_inflight_messages_set(200)
    try:
        started = time.monotonic()
        infos = [clients[i % 4].client.publish(t, p, qos=1) for i, (t, p) in enumerate(payloads)]
        for info in infos:
            info.wait_for_publish(timeout=30)
        published = time.monotonic()
        wait_stored(server, stored0 + BURST, timeout=60)
        done = time.monotonic()
    finally:
        for c in clients:
            c.close()
    after = metrics(server)
    assert after["edgefleet_telemetry_windows_stored_total"] == stored0 + BURST
    assert after["edgefleet_telemetry_windows_dropped_total"] == 0
    assert after["edgefleet_telemetry_windows_failed_total"] == 0
    batches = after["edgefleet_telemetry_batches_total"] - batches0
    rows = query(server, model="thyroid@3", limit=5000)
    mine = [r for r in rows if r["device"].startswith("burst-")]
    assert len(mine) == BURST
    assert sorted(r["inferences"] for r in mine) == list(range(1, BURST + 1))
    rate = BURST / (done - started)
    line = (f"telemetry burst: {BURST} windows published in {published - started:.3f}s, "
            f"all stored after {done - started:.3f}s ({rate:.0f} windows/s end to end) "
            f"in {batches:.0f} transactions")
    print(line)
    out = os.environ.get("EF_TELEMETRY_BENCH_OUT")
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    assert batches < BURST / 4, "the writer did not batch"


def test_metrics_are_exported(fleet):
    text = fleet.request("GET", "/metrics").body.decode()
    for name in ("received_total", "malformed_total", "dropped_total", "stored_total",
                 "ignored_total", "failed_total", "expired_total"):
        assert f"# TYPE edgefleet_telemetry_windows_{name} counter" in text
    assert "# TYPE edgefleet_telemetry_batches_total counter" in text
    assert "# TYPE edgefleet_telemetry_queue_depth gauge" in text


def test_retention_deletes_old_windows(tmp_path):
    """Windows received longer ago than --telemetry-retention-hours go at
    start and then every minute; newer ones stay."""
    data = tmp_path / "data"
    init = subprocess.run([ef.server_bin(), "init", "--data-dir", str(data)],
                          capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    now = int(time.time() * 1000)
    with sqlite3.connect(data / "edgefleet.db") as db:
        db.execute("INSERT INTO devices (id, token_hash, enrolled_at) VALUES ('old-1', 'h', 0)")
        rows = [("old-1", now - age_h * 3600 * 1000, 0, 60.0, "m", 1, 1, 0, 0, 0.1)
                for age_h in (0, 0.5, 1.5, 3, 100)]
        db.executemany("INSERT INTO telemetry_windows (device_id, received_at, window_start,"
                       " window_s, model, version, inferences, errors, feedback, cpu_s)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    port = ef.free_port()
    log = open(tmp_path / "server.stderr", "wb")
    proc = subprocess.Popen([ef.server_bin(), "serve", "--data-dir", str(data), "--listen",
                             f"{ef.HOST}:{port}", "--telemetry-retention-hours", "1"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        ef.wait_port(port, proc)

        def expired():
            body = ef.http_request(port, "GET", "/metrics").body.decode()
            return "edgefleet_telemetry_windows_expired_total 3" in body
        ef.wait_until(expired, 10, what="3 old windows expired")
    finally:
        rc = ef.stop_process(proc)
        log.close()
    text = (tmp_path / "server.stderr").read_text(errors="replace")
    assert ef.sanitizer_report(text) is None, text
    assert rc == 0, text
    assert "retention_h=1" in text
    with sqlite3.connect(data / "edgefleet.db") as db:
        left = sorted(r[0] for r in db.execute("SELECT received_at FROM telemetry_windows"))
    assert left == [now - 1800000, now]

    for bad in ("0", "-1", "87601", "week"):
        p = subprocess.run([ef.server_bin(), "serve", "--data-dir", str(data),
                            "--telemetry-retention-hours", bad],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 2, (bad, p.stderr)
        assert "--telemetry-retention-hours" in p.stderr

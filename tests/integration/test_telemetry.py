"""Telemetry ingest end to end: devices publish metrics windows on
edgefleet/v1/devices/{id}/telemetry (with paho, as the agent's payload), the
server stores them through its batching writer, and GET /api/v1/telemetry and
`edgefleet telemetry query` read them back. Windows with the monitoring keys
(drift, confusion, confidence, shadow) are stored with the ring of the time
and rolled up per minute (GET /api/v1/telemetry/rollups, `edgefleet telemetry
rollups`). Malformed and absurd windows are ignored and counted, windows of
devices that are not enrolled are not stored, a burst of 2,000 windows is
stored whole, and retention deletes old windows."""

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
                           "version", "ring", "inferences", "errors", "latency_ms", "feedback",
                           "accuracy", "correct", "drift", "drift_output", "confidence",
                           "shadow", "detail", "rss_bytes", "cpu_s"}
    assert oldest["ring"] == "lab"
    assert all(oldest[k] is None for k in ("correct", "drift", "drift_output", "confidence",
                                           "shadow", "detail"))

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
    json.dumps(dict(window(), padding="x" * 9000)).encode(),  # an unknown key
    json.dumps(dict(window(), confidence=0.5, model="m" * 70000 + "@1")).encode(),  # > 64 KiB
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


def full_window(model="drifty@1", drift=0.3, confidence=0.8, correct=7, agreement=0.9,
                shadow_accuracy=0.5):
    """A window with every key of docs/monitoring.md's "Telemetry window"."""
    return dict(window(model=model, inferences=100, errors=4, feedback=10,
                       accuracy=correct / 10),
                correct=correct,
                confusion=[[correct, 10 - correct], [0, 0]],
                drift={"n": 100, "features": [drift, drift / 2], "output": [0.05],
                       "max": drift, "output_max": 0.05},
                confidence=confidence,
                shadow={"model": "drifty@2", "inferences": 50, "errors": 1,
                        "agreement": agreement, "feedback": 4, "accuracy": shadow_accuracy})


def unix_ms(rfc3339):
    """Unix ms of the server's RFC 3339 times (2026-11-22T10:00:00.123Z)."""
    import datetime
    t = datetime.datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%S.%fZ")
    t = t.replace(tzinfo=datetime.timezone.utc)
    return int(round(t.timestamp() * 1000))


def rollups(server, **params):
    return server.get_json("/api/v1/telemetry/rollups?" + urllib.parse.urlencode(params))


def expected_rollup(rows, metric):
    """The rollup series computed here from raw rows: {(version, ring): {minute: (value,
    windows)}}, by the table of docs/monitoring.md."""
    acc = {}
    for r in sorted(rows, key=lambda r: r["id"]):
        key = (r["version"], r["ring"])
        minute = unix_ms(r["received_at"]) // 60000 * 60000
        a = acc.setdefault(key, {}).setdefault(minute, {"n": 0, "num": 0.0, "den": 0.0,
                                                        "max": None})
        a["n"] += 1
        if metric == "drift" and r["drift"] is not None:
            a["num"] += r["drift"]
            a["den"] += 1
        elif metric == "accuracy" and r["correct"] is not None:
            a["num"] += r["correct"]
            a["den"] += r["feedback"]
        elif metric == "error_rate":
            a["num"] += r["errors"]
            a["den"] += r["inferences"]
        elif metric == "confidence" and r["confidence"] is not None:
            a["num"] += r["confidence"]
            a["den"] += 1
        elif metric == "shadow_agreement" and r["shadow"] and r["shadow"]["agreement"] is not None:
            a["num"] += r["shadow"]["agreement"] * r["shadow"]["inferences"]
            a["den"] += r["shadow"]["inferences"]
        elif metric == "latency_p99" and r["latency_ms"]:
            p99 = r["latency_ms"]["p99"]
            a["max"] = p99 if a["max"] is None else max(a["max"], p99)
    out = {}
    for key, minutes in acc.items():
        for minute, a in minutes.items():
            value = a["max"] if metric == "latency_p99" else (
                a["num"] / a["den"] if a["den"] else None)
            if value is not None:
                out.setdefault(key, {})[minute] = (value, a["n"])
    return out


def test_monitoring_keys_are_stored_and_rolled_up(fleet, mq):
    server = fleet
    base = counter(server, "windows_stored_total")
    sent = [("tel-1", full_window(drift=0.2, confidence=0.9, correct=8, agreement=0.8)),
            ("tel-2", full_window(drift=0.4, confidence=0.6, correct=10, agreement=1.0)),
            ("tel-3", full_window(drift=0.05, confidence=0.5, correct=2, agreement=0.5)),
            ("tel-1", full_window(model="drifty@2", drift=1.5, correct=0)),
            # Without the optional keys the window still rolls up its counts.
            ("tel-2", window(model="drifty@1", inferences=10, errors=10, feedback=0))]
    for device, w in sent:
        mq.publish(topic(device), json.dumps(w).encode(), qos=0)
    wait_stored(server, base + len(sent))

    rows = query(server, model="drifty")
    assert len(rows) == len(sent)
    oldest = rows[-1]
    assert oldest["device"] == "tel-1" and oldest["ring"] == "lab"
    assert oldest["correct"] == 8 and oldest["confidence"] == pytest.approx(0.9)
    assert oldest["drift"] == pytest.approx(0.2) and oldest["drift_output"] == pytest.approx(0.05)
    assert oldest["shadow"] == {"model": "drifty@2", "inferences": 50, "errors": 1,
                                "agreement": 0.8, "feedback": 4, "accuracy": 0.5}
    assert oldest["detail"] == {"psi": {"n": 100, "features": [0.2, 0.1], "output": [0.05]},
                                "confusion": [[8, 2], [0, 0]]}
    assert {r["ring"] for r in rows if r["device"] == "tel-3"} == {"default"}

    # Raw rows with a metric carry its value per window.
    values = [r["value"] for r in query(server, model="drifty@1", metric="drift")]
    assert values == [None, pytest.approx(0.05), pytest.approx(0.4), pytest.approx(0.2)]
    values = [r["value"] for r in query(server, model="drifty@1", metric="error_rate")]
    assert values == [1.0, 0.04, 0.04, 0.04]
    values = [r["value"] for r in query(server, model="drifty@1", metric="accuracy")]
    assert values == [None, pytest.approx(0.2), pytest.approx(1.0), pytest.approx(0.8)]

    # Rollups agree with what the raw rows say, minute by minute, per version and ring.
    for metric in ("drift", "accuracy", "error_rate", "confidence", "shadow_agreement",
                   "latency_p99"):
        doc = rollups(server, model="drifty", metric=metric)
        assert doc["model"] == "drifty" and doc["metric"] == metric
        got = {(s["version"], s["ring"]): {p[0]: (p[1], p[2]) for p in s["points"]}
               for s in doc["series"]}
        want = expected_rollup(rows, metric)
        assert set(got) == set(want), metric
        for key in want:
            assert set(got[key]) == set(want[key]), (metric, key)
            for minute, (value, n) in want[key].items():
                assert got[key][minute][0] == pytest.approx(value, rel=1e-12), (metric, key)
                assert got[key][minute][1] == n, (metric, key)
        keys = [(s["version"], s["ring"] or "") for s in doc["series"]]
        assert keys == sorted(keys, key=lambda k: (k[0], k[1] != "default"))
    doc = rollups(server, model="drifty", metric="drift", version=1, ring="lab")
    assert [(s["version"], s["ring"]) for s in doc["series"]] == [(1, "lab")]
    assert rollups(server, model="drifty@2", metric="drift")["series"][0]["version"] == 2
    assert rollups(server, model="drifty", metric="drift", since="2000-01-01T00:00:00Z",
                   until="2000-01-02T00:00:00Z")["series"] == []

    # The CLI: one line per window with the value, one line per rollup point.
    out = server.cli_ok("telemetry", "query", "--model", "drifty@1", "--metric", "drift")
    lines = out.splitlines()
    assert lines[0].split() == ["RECEIVED", "DEVICE", "MODEL", "RING", "VALUE"]
    assert len(lines) == 5 and lines[-1].split()[1:] == ["tel-1", "drifty@1", "lab", "0.2"]
    doc = server.cli_json("telemetry", "rollups", "--model", "drifty", "--metric", "drift")
    assert doc == rollups(server, model="drifty", metric="drift")
    out = server.cli_ok("telemetry", "rollups", "--model", "drifty@1", "--metric", "confidence",
                        "--ring", "default")
    lines = out.splitlines()
    assert lines[0].split() == ["VERSION", "RING", "MINUTE", "VALUE", "WINDOWS"]
    assert len(lines) == 2 and lines[1].split()[:2] == ["1", "default"]
    assert lines[1].split()[3:] == ["0.5", "1"]
    for bad in (["--metric", "drift"], ["--model", "drifty"], ["--model", "drifty",
                                                                "--metric", "Drift!"]):
        rc, _, err = server.cli("telemetry", "rollups", *bad)
        assert rc == 2, (bad, err)
    rc, _, err = server.cli("telemetry", "rollups", "--model", "drifty", "--metric", "nope")
    assert rc != 0 and "metric" in err
    rc, out, _ = server.cli("telemetry", "rollups", "--help")
    assert rc == 0 and "--metric" in out and "shadow_agreement" in out


def test_bad_rollup_and_metric_parameters(fleet):
    server = fleet
    for q in ("metric=drift", "model=drifty", "model=drifty&metric=nope",
              "model=drifty&metric=drift_output", "model=Bad&metric=drift",
              "model=drifty&metric=drift&version=0", "model=drifty@1&metric=drift&version=2",
              "model=drifty&metric=drift&ring=UP", "model=drifty&metric=drift&since=yesterday",
              "model=drifty&metric=drift&until=-1"):
        r = server.admin("GET", f"/api/v1/telemetry/rollups?{q}")
        assert r.status == 400, (q, r)
        assert r.json()["error"]["code"] == "bad_request"
        assert r.json()["error"]["message"]
    r = server.admin("GET", "/api/v1/telemetry?metric=nope")
    assert r.status == 400 and "error_rate" in r.json()["error"]["message"]
    assert server.request("GET", "/api/v1/telemetry/rollups?model=a&metric=drift").status == 401


ABSURD_WINDOWS = [
    dict(full_window(), drift={"n": 100, "features": [1e9], "output": [], "max": 1e9,
                               "output_max": None}),                     # PSI 1e9
    dict(full_window(), drift={"n": 100, "features": [-0.1], "output": [], "max": -0.1,
                               "output_max": None}),                     # PSI negative
    dict(window(model="drifty@1"), accuracy=2),                          # accuracy 2
    dict(full_window(), correct=-1),                                     # a negative count
    dict(full_window(), inferences=-5),
    dict(full_window(), correct=11),                                     # correct > feedback
    dict(full_window(), confusion=[[1, 2, 3], [4, 5, 6]]),               # not square
    dict(full_window(), confusion=[[1, 2], [3]]),
    dict(full_window(), confidence=1.5),
    dict(full_window(), shadow={"model": "drifty@2", "inferences": 500, "errors": 0,
                                "agreement": 1, "feedback": 0, "accuracy": None}),
    dict(full_window(), drift={"n": 100, "features": [0.1], "output": [], "max": 0.1,
                               "output_max": None, "extra": 1}),         # unknown key inside
]


def test_absurd_windows_are_counted_never_stored(fleet, mq):
    server = fleet
    before = metrics(server)
    rows_before = query(server, limit=5000)
    rollups_before = rollups(server, model="drifty", metric="error_rate")
    for w in ABSURD_WINDOWS:
        mq.publish(topic("tel-1"), json.dumps(w).encode())
    mq.publish(topic("not-enrolled"), json.dumps(full_window()).encode())
    # One good window (of another model) after them: once it is stored, the rest were handled.
    mq.publish(topic("tel-1"), json.dumps(window(model="thyroid@7")).encode())
    wait_stored(server, before["edgefleet_telemetry_windows_stored_total"] + 1)
    ef.wait_until(lambda: counter(server, "windows_ignored_total") >=
                  before["edgefleet_telemetry_windows_ignored_total"] + 1, 5,
                  what="the stranger's window counted")
    after = metrics(server)
    assert (after["edgefleet_telemetry_windows_malformed_total"] -
            before["edgefleet_telemetry_windows_malformed_total"]) == len(ABSURD_WINDOWS)
    assert after["edgefleet_telemetry_windows_stored_total"] == \
        before["edgefleet_telemetry_windows_stored_total"] + 1
    rows = query(server, limit=5000)
    assert rows[1:] == rows_before and rows[0]["version"] == 7
    assert rollups(server, model="drifty", metric="error_rate") == rollups_before
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

"""Trigger rules, alerts and actions end to end (docs/monitoring.md, "Trigger
rules, alerts and actions"): a real broker and server (monitor ticking every
200 ms, a --retrain-command that writes its environment to a file), windows
published with paho as enrolled devices. A drift rule fires exactly once
across many windows: one alert stored, one alert event and one retrain event
with the documented keys, one run of the command with EF_MODEL and the rest.
Bad rule bodies are refused with precise errors and nothing is stored; a
viewer may read rules and alerts but not create them."""

import json
import time
import urllib.parse

import pytest

import edgefleet_fixtures as ef

DEVICES = ["trig-1", "trig-2", "trig-3"]
RETRAIN_KEYS = {"model", "version", "dataset_id", "alert_id", "trigger_id", "reason", "ts"}
ALERT_KEYS = {"id", "trigger_id", "model", "version", "ring", "metric", "value", "threshold", "op",
              "devices", "state", "fired_at", "resolved_at", "action", "action_result"}


def window(drift, model="thyroid@1"):
    """A window with a drift block, shaped as the agent writes it."""
    return {
        "window_start": "2026-11-22T10:00:00.000Z",
        "window_s": 60.0,
        "model": model,
        "inferences": 100,
        "errors": 0,
        "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 3.0, "max": 4.0},
        "feedback": 0,
        "accuracy": None,
        "drift": {"n": 100, "features": [drift, drift / 2], "output": [0.01],
                  "max": drift, "output_max": 0.01},
        "confidence": 0.8,
        "rss_bytes": 1048576,
        "cpu_s": 0.1,
    }


def stored(server):
    r = server.request("GET", "/metrics")
    for line in r.body.decode().splitlines():
        if line.startswith("edgefleet_telemetry_windows_stored_total "):
            return float(line.split()[1])
    raise AssertionError("no edgefleet_telemetry_windows_stored_total in /metrics")


def alerts(server, **params):
    path = "/api/v1/alerts"
    if params:
        path += "?" + urllib.parse.urlencode(params)
    return server.get_json(path)["alerts"]


def drain(mq, quiet=1.0):
    """Every message that arrives until none has for `quiet` seconds."""
    out = []
    while True:
        try:
            out.append(mq.next_message(timeout=quiet))
        except AssertionError:
            return out


@pytest.fixture
def mq(broker, request):
    c = ef.MqttClient(broker, f"trig-{request.node.name[:40]}")
    yield c
    c.close()


def setup_fleet(server):
    r = server.admin("POST", "/api/v1/models", {"name": "thyroid"})
    assert r.status == 201, r
    for d in DEVICES:
        server.enroll(d)
    ef.wait_until(lambda: server.get_json("/healthz").get("mqtt") == "connected", 10,
                  what="server connected to the broker")


def test_a_drift_rule_fires_once_and_runs_the_retrain_command(make_server, mq, tmp_path):
    out_dir = tmp_path / "retrain"
    out_dir.mkdir()
    # Written under a temporary name and renamed: a file that exists is whole.
    command = (f"env > {out_dir}/run.$EF_ALERT_ID.tmp && "
               f"mv {out_dir}/run.$EF_ALERT_ID.tmp {out_dir}/run.$EF_ALERT_ID.env")
    server = make_server(["--monitor-tick-ms", "200", "--retrain-command", command])
    setup_fleet(server)
    mq.subscribe("edgefleet/v1/events/#", qos=1)

    rule = server.cli_json("trigger", "create", "--model", "thyroid", "--metric", "drift",
                           "--above", "0.25", "--min-devices", "3", "--window", "600",
                           "--action", "retrain")
    assert rule["model"] == "thyroid" and rule["metric"] == "drift"
    assert rule["op"] == "above" and rule["threshold"] == 0.25
    assert rule["aggregation"] == "mean" and rule["cooldown_s"] == 3600
    assert rule["min_devices"] == 3 and rule["window_s"] == 600
    assert rule["ring"] is None and rule["enabled"] is True and rule["action"] == "retrain"

    # Two devices drift: below min_devices, nothing fires.
    base = stored(server)
    for d in DEVICES[:2]:
        mq.publish(f"edgefleet/v1/devices/{d}/telemetry", json.dumps(window(0.4)).encode())
    ef.wait_until(lambda: stored(server) >= base + 2, 10, what="2 windows stored")
    time.sleep(1.0)  # several monitor ticks
    assert alerts(server) == []

    # The third device too: the rule holds, and keeps holding over many
    # windows and ticks.
    sent = 2
    for rnd in range(5):
        for d in DEVICES if rnd else DEVICES[2:]:
            mq.publish(f"edgefleet/v1/devices/{d}/telemetry", json.dumps(window(0.4)).encode())
            sent += 1
        ef.wait_until(lambda: stored(server) >= base + sent, 10, what=f"{sent} windows stored")
        if rnd == 0:
            ef.wait_until(lambda: len(alerts(server)) == 1, 15, what="the alert")
        time.sleep(0.5)  # more ticks between rounds
    rows = alerts(server)
    assert len(rows) == 1, rows
    alert = rows[0]
    assert set(alert) == ALERT_KEYS
    assert alert["state"] == "firing" and alert["resolved_at"] is None
    assert alert["trigger_id"] == rule["id"] and alert["model"] == "thyroid"
    assert alert["version"] == 1 and alert["metric"] == "drift" and alert["devices"] == 3
    assert alert["value"] == pytest.approx(0.4) and alert["threshold"] == 0.25
    assert alert["action"] == "retrain"
    assert alert["action_result"].startswith("event published; command started (pid ")

    # Exactly one alert event and one retrain event.
    messages = drain(mq)
    alert_events = [json.loads(p) for t, p, _ in messages if t == "edgefleet/v1/events/alert"]
    retrain_events = [json.loads(p) for t, p, _ in messages
                      if t == "edgefleet/v1/events/retrain"]
    assert len(alert_events) == 1, alert_events
    assert alert_events[0]["id"] == alert["id"] and alert_events[0]["state"] == "firing"
    assert set(alert_events[0]) == ALERT_KEYS
    assert len(retrain_events) == 1, retrain_events
    ev = retrain_events[0]
    assert set(ev) == RETRAIN_KEYS
    assert ev["model"] == "thyroid" and ev["version"] == 1 and ev["dataset_id"] is None
    assert ev["alert_id"] == alert["id"] and ev["trigger_id"] == rule["id"]
    assert ev["reason"] == "drift mean 0.4 above 0.25 over 3 devices"

    # The command ran once, with the documented environment plus the server's.
    env_file = out_dir / f"run.{alert['id']}.env"
    ef.wait_until(env_file.exists, 15, what="the retrain command's output")
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    assert env["EF_MODEL"] == "thyroid"
    assert env["EF_VERSION"] == "1"
    assert env["EF_DATASET_ID"] == ""
    assert env["EF_ALERT_ID"] == str(alert["id"])
    assert env["EF_TRIGGER_ID"] == str(rule["id"])
    assert env["EF_REASON"] == "drift mean 0.4 above 0.25 over 3 devices"
    assert env["EF_SERVER_URL"] == server.url
    assert "PATH" in env
    assert [p.name for p in out_dir.iterdir()] == [env_file.name]

    # Audited as the monitor, and shown by the CLI.
    entries = server.get_json("/api/v1/audit?limit=1000")["entries"]
    fired = [e for e in entries if e["actor"] == "monitor" and e["action"] == "alert fire"]
    assert len(fired) == 1 and fired[0]["target"] == f"alert:{alert['id']}"
    out = server.cli_ok("alert", "list", "--model", "thyroid", "--state", "firing")
    assert "thyroid@1" in out and "firing" in out and "above 0.25" in out
    out = server.cli_ok("trigger", "list", "--model", "thyroid")
    assert "drift" in out and "retrain" in out
    ef.wait_until(lambda: "retrain_command_exited" in server.log_text(), 15,
                  what="the command reaped")

    # Deleting the rule resolves its alert, which stays listed.
    assert server.cli_ok("trigger", "delete", str(rule["id"])).strip() == \
        f"trigger {rule['id']} deleted"
    assert server.get_json("/api/v1/triggers")["triggers"] == []
    rows = alerts(server)
    assert len(rows) == 1 and rows[0]["state"] == "resolved" and rows[0]["resolved_at"]


BAD_BODIES = [
    ({"model": "thyroid", "metric": "drfit", "op": "above", "threshold": 1}, 400,
     "unknown metric 'drfit'"),
    ({"model": "thyroid", "op": "above", "threshold": 1}, 400, "metric is required"),
    ({"model": "thyroid", "metric": "drift", "op": "over", "threshold": 1}, 400,
     "unknown op 'over' (above or below)"),
    ({"model": "thyroid", "metric": "drift", "threshold": 1}, 400, "op is required"),
    ({"model": "thyroid", "metric": "drift", "op": "above", "threshold": "1"}, 400,
     "threshold must be a finite number"),
    ({"model": "thyroid", "metric": "drift", "op": "above"}, 400,
     "threshold must be a finite number"),
    ({"model": "thyroid", "metric": "drift", "op": "above", "threshold": 1,
      "aggregation": "avg"}, 400, "unknown aggregation 'avg'"),
    ({"model": "thyroid", "metric": "drift", "op": "above", "threshold": 1, "action": "page"},
     400, "unknown action 'page'"),
    ({"model": "thyroid", "metric": "drift", "op": "above", "threshold": 1, "window_s": 0}, 400,
     "window_s must be an integer in 1..604800"),
    ({"model": "thyroid", "metric": "drift", "op": "above", "threshold": 1,
      "min_devices": 1.5}, 400, "min_devices must be an integer"),
    ({"model": "thyroid", "metric": "drift", "op": "above", "threshold": 1, "cooldown_s": -1},
     400, "cooldown_s must be an integer"),
    ({"model": "thyroid", "metric": "drift", "op": "above", "threshold": 1, "enabled": "yes"},
     400, "enabled must be true or false"),
    ({"model": "thyroid", "metric": "drift", "op": "above", "threshold": 1, "colour": "red"},
     400, "unknown key 'colour'"),
    ({"model": "Not A Name", "metric": "drift", "op": "above", "threshold": 1}, 400,
     "model must be a model name"),
    ({"model": "nosuch", "metric": "drift", "op": "above", "threshold": 1}, 404,
     "no model nosuch"),
    ({"model": "thyroid", "ring": "nosuch", "metric": "drift", "op": "above", "threshold": 1},
     404, "no ring nosuch"),
]


def test_bad_rule_bodies_are_refused_precisely_and_nothing_is_stored(server):
    r = server.admin("POST", "/api/v1/models", {"name": "thyroid"})
    assert r.status in (201, 409), r
    for body, status, message in BAD_BODIES:
        r = server.admin("POST", "/api/v1/triggers", body)
        err = ef.assert_error(r, status, "bad_request" if status == 400 else "not_found")
        assert message in err["message"], (body, err)
    # A threshold JSON cannot hold as a finite double.
    r = server.admin("POST", "/api/v1/triggers",
                     b'{"model":"thyroid","metric":"drift","op":"above","threshold":1e999}',
                     headers={"Content-Type": "application/json"})
    assert r.status == 400, r
    assert server.get_json("/api/v1/triggers")["triggers"] == []
    entries = server.get_json("/api/v1/audit?limit=1000")["entries"]
    rejected = [e for e in entries
                if e["action"] == "POST /api/v1/triggers" and e["outcome"] == "rejected"]
    assert len(rejected) == len(BAD_BODIES) + 1

    # Bad queries of the lists.
    for path, message in [("/api/v1/alerts?state=open", "state must be firing or resolved"),
                          ("/api/v1/alerts?limit=0", "limit must be an integer in 1..1000"),
                          ("/api/v1/alerts?since=yesterday", "since must be"),
                          ("/api/v1/triggers?model=A%20B", "model must be a model name")]:
        err = ef.assert_error(server.admin("GET", path), 400, "bad_request")
        assert message in err["message"], (path, err)
    err = ef.assert_error(server.admin("DELETE", "/api/v1/triggers/99"), 404, "not_found")
    assert "no trigger 99" in err["message"]

    # The CLI refuses a rule without a comparison before asking the server.
    rc, out, errtext = server.cli("trigger", "create", "--model", "thyroid", "--metric",
                                  "drift", "--action", "none")
    assert rc == 2 and "exactly one of --above V and --below V" in errtext
    rc, out, errtext = server.cli("trigger", "create", "--model", "thyroid", "--metric",
                                  "drfit", "--above", "1", "--action", "none")
    assert rc == 1 and "unknown metric 'drfit'" in errtext


def test_a_viewer_reads_but_cannot_create(server):
    r = server.admin("POST", "/api/v1/models", {"name": "thyroid"})
    assert r.status in (201, 409), r
    viewer = server.create_token("viewer")
    operator = server.create_token("operator")
    body = {"model": "thyroid", "metric": "accuracy", "op": "below", "threshold": 0.8,
            "aggregation": "median", "action": "pause_rollout", "ring": None}
    ef.assert_error(server.request("POST", "/api/v1/triggers", body, token=viewer), 403)
    assert server.get_json("/api/v1/triggers", token=viewer)["triggers"] == []
    r = server.request("POST", "/api/v1/triggers", body, token=operator)
    assert r.status == 201, r
    created = r.json()
    assert created["aggregation"] == "median" and created["action"] == "pause_rollout"
    listed = server.get_json("/api/v1/triggers?model=thyroid", token=viewer)["triggers"]
    assert [t["id"] for t in listed] == [created["id"]]
    assert server.get_json("/api/v1/alerts", token=viewer)["alerts"] == []
    ef.assert_error(server.request("DELETE", f"/api/v1/triggers/{created['id']}", token=viewer),
                    403)
    entries = server.get_json("/api/v1/audit?limit=1000")["entries"]
    assert any(e["action"] == "POST /api/v1/triggers" and e["outcome"] == "refused"
               for e in entries)
    r = server.request("DELETE", f"/api/v1/triggers/{created['id']}", token=operator)
    assert r.status == 204, r

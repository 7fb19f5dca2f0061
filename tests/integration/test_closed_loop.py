"""The closed loop end to end (docs/monitoring.md): a real broker, one
edgefleet-server (`--rollout-tick-ms 200 --monitor-tick-ms 200
--retrain-command ...`) and three real edgefleet-agents (`--metrics-interval
1`) in ring `lab`, on the thyroid data of PROBEN1.

  1. edgefleet-train trains thyroid@1 on thyroid.train and registers it (its
     manifest carries the baseline histograms drift is measured against);
     it is assigned to the ring and serves.
  2. Collection is enabled for the model.
  3. A client feeds every agent thyroid.train inputs as they are (no drift),
     about 300 a second; once every device sends full windows, a trigger
     rule: drift mean above 0.5 over 3 s on all three devices -> retrain.
     It does not hold while the data is what the model was trained for.
  4. Drift onset: the client now feeds inputs from a recalibrated analyser
     (TSH reads 0.05 high, TT4 and FTI half of the truth), each followed by
     its true label (feedback). thyroid@1 is mostly wrong on them; a model
     trained on them is right. Telemetry shows the drift and the accuracy.
  5. The rule fires once (one alert, one retrain event, however many windows
     the drift lasts); the server's retrain command runs edgefleet-train on
     the collected data set, which registers thyroid@2 with lineage pointing
     at thyroid@1, the data set and the alert, and starts a shadow rollout.
  6. thyroid@2 runs as shadow: telemetry carries its agreement and accuracy
     while thyroid@1 still answers; then the shadow rollout is promoted and
     thyroid@2 serves on every device, its shadow slot cleared, without drift
     (its baseline is the new data) and far more accurate.
  7. On held-out shifted rows (thyroid.test, never sent with labels), the
     accuracy of thyroid@2 through the agents beats thyroid@1's by a margin.

It prints the time from drift onset to the retrain event.
"""

import datetime
import json
import random
import shlex
import subprocess
import threading
import time

import pytest

pytest.register_assert_rewrite("agent_fixtures")
import agent_fixtures as af  # noqa: E402
import conftest  # noqa: E402
import edgefleet_fixtures as ef  # noqa: E402

pytest_plugins = ["agent_fixtures"]

MODEL = "thyroid"
RING = "lab"
DEVICES = ("cl-1", "cl-2", "cl-3")
AGENT_OPTIONS = {"trial_seconds": 1, "poll_interval": 5, "metrics_interval": 1}
THRESHOLD = 0.5           # drift (PSI) above which the rule holds: twice the rule of
                          # thumb's 0.25, clear of the noise of a version's own data
RATE = 300.0              # requests a second to each agent: windows of ~300 inputs, whose
                          # PSI on unshifted data stays well below THRESHOLD
FULL = 200                # inferences of a window that counts as full
MARGIN = 0.3              # accuracy thyroid@2 must gain on the shifted rows
TRAIN_FLAGS = ["--hidden", "10", "--epochs", "200", "--seed", "1"]


def shift(x):
    """The drift: a recalibrated analyser. TSH (input 16) reads 0.05 high,
    TT4 (18) and FTI (20) half of the truth. Labels do not change."""
    x = list(x)
    x[16] = min(1.0, x[16] + 0.05)
    x[18] *= 0.5
    x[20] *= 0.5
    return x


def label(y):
    return max(range(len(y)), key=lambda k: y[k])


FIELD = ef.read_fann_data(ef.THYROID_TRAIN)         # what the client feeds
HELD_OUT = ef.read_fann_data(ef.THYROID_TEST)[:400]  # only ever asked, never labelled


def train_bin():
    return str(ef.BIN_DIR / "edgefleet-train")


# --------------------------------------------------------------------------
# The client

class Feeder(threading.Thread):
    """Inference requests to one agent: rows of FIELD (shifted once
    `shifted` is set), each followed by its true label as feedback when
    `labelled` is set, at about `rate` requests a second."""

    def __init__(self, agent, seed):
        super().__init__(daemon=True)
        self.agent = agent
        self.rows = list(FIELD)
        random.Random(seed).shuffle(self.rows)
        self.rate = RATE
        self.shifted = threading.Event()
        self.labelled = threading.Event()
        self.stop_flag = threading.Event()
        self.sent = 0
        self.failure = None

    def run(self):
        batch = 10
        try:
            with self.agent.connect() as c:
                i = 0
                while not self.stop_flag.is_set():
                    t = time.monotonic()
                    shifted, labelled = self.shifted.is_set(), self.labelled.is_set()
                    reqs = []
                    for _ in range(batch):
                        x, y = self.rows[i % len(self.rows)]
                        rid = f"{self.agent.device_id}-{i}"
                        i += 1
                        c.send_line({"input": shift(x) if shifted else x, "id": rid})
                        reqs.append((rid, label(y)))
                    for _ in reqs:
                        ans = c.read_line()
                        assert "output" in ans, ans
                    if labelled:
                        for rid, k in reqs:
                            c.send_line({"feedback": rid, "label": k})
                        for _ in reqs:
                            ans = c.read_line()
                            assert ans.get("ok") is True, ans
                    self.sent += batch
                    pause = batch / self.rate - (time.monotonic() - t)
                    if pause > 0:
                        self.stop_flag.wait(pause)
        except Exception as e:   # reported by the test
            self.failure = repr(e)

    def stop(self):
        self.stop_flag.set()
        self.join(10)


def accuracy(agents, rows, expect_model):
    """Share of rows the agents (round robin) classify right; every answer
    must come from expect_model."""
    clients = [a.connect() for a in agents]
    right = 0
    try:
        for i, (x, y) in enumerate(rows):
            ans = clients[i % len(clients)].infer(shift(x))
            assert ans.get("model") == expect_model, ans
            right += ans["class"] == label(y)
    finally:
        for c in clients:
            c.close()
    return right / len(rows)


# --------------------------------------------------------------------------
# Server-side reads

def telemetry(server, **query):
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return server.get_json(f"/api/v1/telemetry?model={MODEL}&limit=1000&{q}")


def rows_of(doc):
    return doc if isinstance(doc, list) else doc.get("windows", doc.get("rows", []))


def alerts(server):
    return server.get_json(f"/api/v1/alerts?model={MODEL}")["alerts"]


def rollouts(server):
    return server.get_json(f"/api/v1/rollouts?model={MODEL}")["rollouts"]


def wait_rollout(server, rid, state, timeout=60):
    return server.wait_rollout(rid, lambda d: d["state"] == state, timeout,
                               f"rollout {rid} {state}", interval=0.2)


class Events:
    """Messages on edgefleet/v1/events/{retrain,alert} with their arrival
    time (time.time())."""

    def __init__(self, broker):
        self.lock = threading.Lock()
        self.items = []
        self.mqtt = ef.MqttClient(broker, f"it-closed-loop-{time.monotonic_ns()}")

        def on_message(client, userdata, msg):
            with self.lock:
                self.items.append((time.time(), msg.topic, json.loads(msg.payload)))
        self.mqtt.client.on_message = on_message
        self.mqtt.subscribe("edgefleet/v1/events/retrain")
        self.mqtt.subscribe("edgefleet/v1/events/alert")

    def of(self, kind):
        with self.lock:
            return [(t, p) for t, topic, p in self.items if topic.endswith("/" + kind)]

    def close(self):
        self.mqtt.close()


# --------------------------------------------------------------------------
# Fixtures

@pytest.fixture(scope="module")
def retrain_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("retrain")


@pytest.fixture(scope="module")
def server(broker, retrain_dir):
    """This module's server: fast engine and monitor ticks, and a retrain
    command that runs edgefleet-train on the alert's data set with an
    operator token the test writes once the server is up."""
    token_file = retrain_dir / "token"
    cmd = (f"EDGEFLEET_TOKEN=\"$(cat {shlex.quote(str(token_file))})\" "
           f"exec {shlex.quote(train_bin())} --register --shadow-rings {RING} "
           f"--out {shlex.quote(str(retrain_dir))}/retrain-\"$EF_ALERT_ID\" "
           + " ".join(TRAIN_FLAGS))
    srv = conftest._start_server(retrain_dir / "server", broker,
                                 ["--rollout-tick-ms", "200", "--monitor-tick-ms", "200",
                                  "--retrain-command", cmd])
    token_file.write_text(srv.create_token("operator", "retrain") + "\n")
    yield srv
    conftest._stop_server(srv)


@pytest.fixture
def events(broker):
    e = Events(broker)
    yield e
    e.close()


# --------------------------------------------------------------------------

def test_drift_retrain_shadow_promote(server, agent, events, retrain_dir):
    t_begin = time.monotonic()

    # 1. thyroid@1 by edgefleet-train on thyroid.train, registered.
    p = subprocess.run([train_bin(), "--dataset", str(ef.THYROID_TRAIN), "--out",
                           str(retrain_dir / "v1"), "--register", "--model", MODEL, "--server",
                           server.url, "--token", server.admin_token] + TRAIN_FLAGS,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"edgefleet-train (v1) exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
    v1_manifest = server.get_json(f"/api/v1/models/{MODEL}/versions/1/manifest")
    assert v1_manifest["baseline"] and len(v1_manifest["baseline"]["features"]) == 21, v1_manifest

    # The fleet: three agents in ring lab.
    server.cli_ok("ring", "create", RING)
    agents = [agent(d, **AGENT_OPTIONS) for d in DEVICES]
    for d in DEVICES:
        ef.wait_until(lambda: server.request("GET", f"/api/v1/devices/{d}",
                                             token=server.admin_token).status == 200,
                      20, what=f"{d} enrolled")
        server.cli_ok("device", "set", d, "--ring", RING)

    # 2. Collection, before the model reaches the devices (which ask for
    # their policy when their production model changes).
    r = server.admin("PUT", f"/api/v1/models/{MODEL}/collection",
                     {"enabled": True, "sample_rate": 1.0, "max_samples": 20000})
    assert r.status == 200, r
    dataset_id = r.json()["dataset_id"]
    assert isinstance(dataset_id, int), r.json()
    server.cli_json("assign", f"{MODEL}@1", "--ring", RING)
    for a in agents:
        a.wait_slot(MODEL, 1, "committed", timeout=40)
        a.wait_serving(f"{MODEL}@1", FIELD[0][0])

    # 3. No drift: thyroid.train inputs as they are, for a few windows.
    feeders = [Feeder(a, seed=i) for i, a in enumerate(agents)]
    for f in feeders:
        f.start()
    try:
        # The first windows of the traffic are partial (few inputs, noisy
        # PSI): the rule comes once the last four windows of every device
        # are full, so that its 3 s period holds only full ones.
        def full_windows(n, since_id=0):
            def check():
                for d in DEVICES:
                    ws = [w for w in rows_of(telemetry(server, device=d, version=1))
                          if w["version"] == 1]
                    if len(ws) < n or any(w["inferences"] < FULL or w["id"] <= since_id
                                          for w in ws[:n]):
                        return None
                return True
            return ef.wait_until(check, 30, interval=0.2,
                                 what=f"{n} full windows from every device")
        full_windows(4)
        r = server.admin("POST", "/api/v1/triggers",
                         {"model": MODEL, "metric": "drift", "aggregation": "mean",
                          "op": "above", "threshold": THRESHOLD, "window_s": 3,
                          "min_devices": len(DEVICES), "cooldown_s": 3600,
                          "action": "retrain"})
        assert r.status == 201, r
        trigger_id = r.json()["id"]
        last_id = max(w["id"] for w in rows_of(telemetry(server, version=1)))
        full_windows(3, since_id=last_id)
        assert alerts(server) == [], alerts(server)
        calm = [w["value"] for w in rows_of(telemetry(server, version=1, metric="drift"))
                if w["id"] > last_id]
        assert calm and None not in calm and max(calm) < THRESHOLD, calm

        # 4. Drift onset: shifted inputs, each with its true label; and
        # thyroid@1 on the held-out rows shifted alike (asked, not labelled).
        t0 = time.time()
        for f in feeders:
            f.shifted.set()
            f.labelled.set()
        v1_shifted = accuracy(agents, HELD_OUT, f"{MODEL}@1")

        # 5. The rule fires: the retrain event arrives.
        retrain = ef.wait_until(lambda: events.of("retrain"), 30, interval=0.05,
                                what="a retrain event")[0]
        t_retrain, event = retrain
        onset_to_retrain = t_retrain - t0
        fired_at = datetime.datetime.strptime(alerts(server)[0]["fired_at"],
                                              "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        print(f"\ndrift onset -> retrain event: {onset_to_retrain:.2f} s "
              f"(alert fired_at {fired_at - t0:.2f} s after onset)")
        assert event["model"] == MODEL and event["version"] == 1, event
        assert event["trigger_id"] == trigger_id and event["dataset_id"] == dataset_id, event
        fired = alerts(server)
        assert len(fired) == 1, fired
        alert = fired[0]
        assert alert["id"] == event["alert_id"] and alert["trigger_id"] == trigger_id, alert
        assert alert["metric"] == "drift" and alert["value"] > THRESHOLD, alert
        assert alert["devices"] == len(DEVICES) and alert["state"] == "firing", alert
        assert alert["action"] == "retrain", alert

        # Drift and accuracy show in the telemetry of thyroid@1.
        shifted_windows = [w for w in rows_of(telemetry(server, version=1))
                           if w.get("feedback")]
        assert shifted_windows, "no window with feedback"
        assert max(w["drift"] for w in shifted_windows if w["drift"] is not None) > THRESHOLD
        v1_window_acc = sum(w["correct"] for w in shifted_windows) / \
            sum(w["feedback"] for w in shifted_windows)
        assert v1_window_acc < 0.5, v1_window_acc

        # The retrain command registers thyroid@2 with its lineage.
        def registered():
            r = server.request("GET", f"/api/v1/models/{MODEL}/versions/2/manifest",
                               token=server.admin_token)
            return r.json() if r.status == 200 else None
        v2_manifest = ef.wait_until(registered, 60, interval=0.2, what="thyroid@2 registered")
        lineage = v2_manifest["lineage"]
        assert lineage["parent_version"] == 1, lineage
        # Lineage names datasets as strings: one may live outside edgefleet.
        assert lineage["dataset_id"] == str(dataset_id), lineage
        assert lineage["alert_id"] == alert["id"], lineage

        # 6. The shadow rollout the trainer started walks the ring.
        shadow = ef.wait_until(lambda: [r for r in rollouts(server)
                                        if r["slot"] == "shadow" and r["version"] == 2],
                               30, interval=0.2, what="a shadow rollout of thyroid@2")[0]
        wait_rollout(server, shadow["id"], "succeeded")
        for a in agents:
            a.wait_slot(MODEL, 2, "committed", slot="shadow", timeout=30)
            assert a.serving(FIELD[0][0]) == f"{MODEL}@1"

        # Shadow agreement and accuracy reach the telemetry.
        def shadow_windows():
            ws = [w for w in rows_of(telemetry(server, version=1))
                  if isinstance(w.get("shadow"), dict) and w["shadow"].get("feedback")]
            return ws if len({w["device"] for w in ws}) == len(DEVICES) else None
        ws = ef.wait_until(shadow_windows, 30, interval=0.3,
                           what="shadow metrics from every device")
        assert all(w["shadow"]["model"] == f"{MODEL}@2" for w in ws), ws
        assert all(w["shadow"]["agreement"] is not None for w in ws), ws
        shadow_acc = sum(w["shadow"]["accuracy"] * w["shadow"]["feedback"] for w in ws) / \
            sum(w["shadow"]["feedback"] for w in ws)
        prod_acc = sum(w["correct"] for w in ws) / sum(w["feedback"] for w in ws)
        assert shadow_acc > prod_acc + MARGIN, (shadow_acc, prod_acc)
        agreement = [w["value"] for w in rows_of(telemetry(server, version=1,
                                                           metric="shadow_agreement"))
                     if w.get("value") is not None]
        assert agreement and max(agreement) < 1.0, agreement

        # Promote: thyroid@2 rolls out to production over the same ring.
        r = server.admin("POST", f"/api/v1/rollouts/{shadow['id']}/promote")
        assert r.status == 201, r
        prod = r.json()
        wait_rollout(server, prod["id"], "succeeded")
        for a in agents:
            a.wait_slot(MODEL, 2, "committed", timeout=30)
            a.wait_serving(f"{MODEL}@2", FIELD[0][0])
            assert (a.show().get("slots") or {}).get("shadow") is None, a.show()

        # The loop is closed: on the data it was trained for, thyroid@2's
        # full windows (after each device's first, which may be partial)
        # show no drift and a high accuracy.
        def settled():
            ws = {d: [w for w in rows_of(telemetry(server, device=d, version=2))
                      if w["version"] == 2 and w["inferences"] >= FULL and w.get("feedback")]
                  for d in DEVICES}
            return ws if all(len(v) >= 3 for v in ws.values()) else None
        v2_windows = [w for ws in ef.wait_until(settled, 30, interval=0.3,
                                                what="three windows of thyroid@2 per device"
                                                ).values() for w in ws[:-1]]
        # Against its own baseline (the shifted samples it learnt from) the
        # data is no longer drift: well below the rule and a tenth of what
        # thyroid@1 saw. A window's PSI still carries sampling noise from a
        # baseline of a few hundred rows (one window has read 0.44), so the
        # mean is what is compared.
        v2_drift = sum(w["drift"] for w in v2_windows) / len(v2_windows)
        v1_drift = max(w["drift"] for w in shifted_windows if w["drift"] is not None)
        assert v2_drift < 0.25 and v2_drift < v1_drift / 10, json.dumps([
            (w["device"], w["window_start"], w["version"], w["inferences"], w["drift"],
             w["accuracy"]) for w in rows_of(telemetry(server))[:30]])
        v2_window_acc = sum(w["correct"] for w in v2_windows) / \
            sum(w["feedback"] for w in v2_windows)
        assert v2_window_acc > v1_window_acc + MARGIN, (v1_window_acc, v2_window_acc)

        # The drift lasted many windows: still one alert, one retrain event.
        assert len(alerts(server)) == 1, [(a["version"], a["value"], a["fired_at"])
                                          for a in alerts(server)]
        assert len(events.of("retrain")) == 1, events.of("retrain")
    finally:
        for f in feeders:
            f.stop()
    for f in feeders:
        assert f.failure is None, f.failure
        assert f.sent > 0

    # 7. The held-out shifted rows: thyroid@2 beats thyroid@1 by a margin.
    v2_shifted = accuracy(agents, HELD_OUT, f"{MODEL}@2")
    print(f"accuracy on shifted held-out rows: thyroid@1 {v1_shifted:.3f}, "
          f"thyroid@2 {v2_shifted:.3f}; wall time {time.monotonic() - t_begin:.1f} s")
    assert v2_shifted >= v1_shifted + MARGIN, (v1_shifted, v2_shifted)

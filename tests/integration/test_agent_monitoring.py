"""The agent's telemetry window against a real broker, server and agent
(docs/monitoring.md, "Telemetry window"): thyroid@1 is pushed with a
baseline computed from thyroid.train; inputs drawn from that distribution
give a small PSI, shifted inputs a clearly larger one; feedback gives
correct, accuracy and a confusion matrix equal to what the answers imply; a
shadow model (thyroid@2, assigned to the shadow slot) is scored beside
production while every answer stays production's. Windows are closed on
demand with the `report_now` command, so each holds exactly the requests a
test made; assertions are on the MQTT payloads."""

import json
import math

import pytest

pytest.register_assert_rewrite("agent_fixtures")
import agent_fixtures as af  # noqa: E402
import edgefleet_fixtures as ef  # noqa: E402

pytest_plugins = ["agent_fixtures"]

MODEL = "thyroid"
DEVICE = "mon-1"
N = 300            # inferences per drift window
MAX_BYTES = 65536  # a window's payload stays below this


@pytest.fixture(scope="module")
def nets(train_net):
    prod = train_net(hidden=8, epochs=30, seed=3, data=ef.THYROID_TRAIN)
    shadow = train_net(hidden=4, epochs=5, seed=11, data=ef.THYROID_TRAIN)
    return prod, shadow


@pytest.fixture(scope="module")
def device(server, module_agent, nets):
    prod, _ = nets
    # The CLI computes the baseline histograms from --data: thyroid.train.
    assert server.push(MODEL, prod.path, data=ef.THYROID_TRAIN)["version"] == 1
    # Windows close only when a test asks (report_now), not on a timer.
    a = module_agent(DEVICE, metrics_interval=3600)
    ef.wait_until(lambda: server.request("GET", f"/api/v1/devices/{DEVICE}",
                                         token=server.admin_token).status == 200,
                  15, what=f"{DEVICE} enrolled")
    server.cli_json("assign", f"{MODEL}@1", "--device", DEVICE)
    a.wait_slot(MODEL, 1, "committed", timeout=30)
    return a


@pytest.fixture
def windows(broker):
    """window() closes the agent's window now and returns it as published."""
    sub = ef.MqttClient(broker, "it-mon-telemetry")
    sub.subscribe(af.topic(DEVICE, "telemetry"))

    def window():
        sub.publish(af.topic(DEVICE, "cmd"), json.dumps({"command": "report_now"}))
        t, payload, _ = sub.next_message(timeout=10)
        assert t == af.topic(DEVICE, "telemetry")
        assert len(payload) < MAX_BYTES
        return json.loads(payload)
    window()  # whatever the window held before the test
    yield window
    sub.close()


def rows():
    return af.thyroid_rows(path=ef.THYROID_TRAIN)


def infer_all(a, inputs, ids=None):
    answers = []
    with a.connect() as c:
        for i, x in enumerate(inputs):
            extra = {"id": ids[i]} if ids else {}
            ans = c.infer(x, **extra)
            assert "output" in ans, ans
            answers.append(ans)
    return answers


def true_class(expected):
    return max(range(len(expected)), key=lambda k: expected[k])


def test_the_manifest_carries_a_baseline(server, device):
    r = server.admin("GET", f"/api/v1/models/{MODEL}/versions/1/manifest")
    assert r.status == 200, r
    baseline = json.loads(r.body)["baseline"]
    assert len(baseline["features"]) == 21 and len(baseline["output"]) == 3


def test_training_inputs_give_small_psi(device, windows):
    data = rows()[:N]
    infer_all(device, [x for x, _ in data])
    w = windows()
    assert w["model"] == f"{MODEL}@1" and w["inferences"] == N and w["errors"] == 0, w
    drift = w["drift"]
    assert drift is not None, w
    assert drift["n"] == N
    assert len(drift["features"]) == 21 and len(drift["output"]) == 3
    assert all(0 <= v for v in drift["features"] + drift["output"])
    assert math.isclose(drift["max"], max(drift["features"]), rel_tol=1e-9)
    assert math.isclose(drift["output_max"], max(drift["output"]), rel_tol=1e-9)
    # The same distribution as the baseline: stable by the rule of thumb.
    assert drift["max"] < 0.1, drift
    assert 0 <= w["confidence"] <= 1
    # No feedback, no shadow.
    assert w["feedback"] == 0 and w["correct"] == 0 and w["accuracy"] is None, w
    assert w["confusion"] is None and w["shadow"] is None, w


def test_shifted_inputs_give_a_large_psi(device, windows):
    data = rows()[:N]
    infer_all(device, [x for x, _ in data])
    stable = windows()["drift"]
    # Every feature moved by half its value plus 0.3: out of the baseline's bins.
    infer_all(device, [[v * 0.5 + 0.3 for v in x] for x, _ in data])
    w = windows()
    shifted = w["drift"]
    assert shifted is not None and shifted["n"] == N, w
    assert shifted["max"] > 0.25, shifted
    assert shifted["max"] > 10 * stable["max"], (stable, shifted)
    # Most features moved by far more than the significant-shift threshold.
    assert sum(v > 0.25 for v in shifted["features"]) >= 10, shifted["features"]


def test_fewer_than_ten_inputs_report_no_drift(device, windows):
    infer_all(device, [x for x, _ in rows()[:9]])
    w = windows()
    assert w["inferences"] == 9 and w["drift"] is None, w
    assert w["confidence"] is not None


def test_feedback_gives_correct_accuracy_and_confusion(device, windows):
    data = rows()[:60]
    ids = [f"fb-{i}" for i in range(len(data))]
    answers = infer_all(device, [x for x, _ in data], ids)
    truth = [true_class(y) for _, y in data]
    with device.connect() as c:
        for i, k in enumerate(truth):
            r = c.request({"feedback": ids[i], "label": k})
            assert r.get("ok") is True, r
            assert r["correct"] == (answers[i]["class"] == k), (r, answers[i], k)
    w = windows()
    correct = sum(a["class"] == k for a, k in zip(answers, truth))
    assert w["feedback"] == len(data) and w["correct"] == correct, w
    assert math.isclose(w["accuracy"], correct / len(data), rel_tol=1e-9), w
    expect = [[0] * 3 for _ in range(3)]
    for a, k in zip(answers, truth):
        expect[k][a["class"]] += 1
    assert w["confusion"] == expect, w


def test_a_shadow_model_is_scored_and_never_answers(server, device, windows, nets):
    prod, shadow = nets
    assert server.push(MODEL, shadow.path, data=ef.THYROID_TRAIN)["version"] == 2
    server.cli_json("assign", f"{MODEL}@2", "--device", DEVICE, "--slot", "shadow")
    device.wait_slot(MODEL, 2, "committed", slot="shadow", timeout=30)
    device.wait_slot(MODEL, 1, "committed", slot="production")
    windows()  # drop what the shadow's trial saw
    data = rows()[:80]
    ids = [f"sh-{i}" for i in range(len(data))]
    answers = infer_all(device, [x for x, _ in data], ids)
    p_net, s_net = ef.FannNet(prod.path), ef.FannNet(shadow.path)
    for (x, _), a in zip(data, answers):
        # Production answers (FANN computes in single precision).
        assert a["model"] == f"{MODEL}@1", a
        assert all(math.isclose(o, e, abs_tol=1e-5)
                   for o, e in zip(a["output"], p_net.run(x))), a
    truth = [true_class(y) for _, y in data]
    with device.connect() as c:
        for i, k in enumerate(truth):
            assert c.request({"feedback": ids[i], "label": k}).get("ok") is True
    w = windows()
    sh = w["shadow"]
    assert sh is not None, w
    assert sh["model"] == f"{MODEL}@2" and sh["inferences"] == len(data) and sh["errors"] == 0, sh
    s_cls = [true_class(s_net.run(x)) for x, _ in data]
    agreed = sum(a["class"] == s for a, s in zip(answers, s_cls))
    # One near-tie decided differently by FANN's C and this Python pass at most.
    assert abs(sh["agreement"] - agreed / len(data)) <= 1.5 / len(data), (sh, agreed)
    assert sh["feedback"] == len(data), sh
    shadow_correct = sum(s == k for s, k in zip(s_cls, truth))
    assert abs(sh["accuracy"] - shadow_correct / len(data)) <= 1.5 / len(data), sh
    # Production's own counts are untouched by the shadow.
    assert w["inferences"] == len(data) and w["errors"] == 0, w
    assert w["correct"] == sum(a["class"] == k for a, k in zip(answers, truth)), w


def cmd(broker, payload):
    sub = ef.MqttClient(broker, "it-mon-cmd")
    try:
        sub.publish(af.topic(DEVICE, "cmd"), json.dumps(payload))
    finally:
        sub.close()


def dataset(server):
    found = server.get_json(f"/api/v1/datasets?model={MODEL}")
    assert len(found) == 1, found
    return found[0]


def test_collected_samples_reach_the_dataset_until_full(server, broker, device, windows):
    # Collection is off by default: a window's end uploads nothing.
    infer_all(device, [x for x, _ in rows()[:5]])
    windows()
    assert device.events("collect_uploaded") == []
    r = server.admin("PUT", f"/api/v1/models/{MODEL}/collection",
                     {"enabled": True, "sample_rate": 1.0, "max_samples": 50})
    assert r.status == 200, r
    since = device.log_size()
    cmd(broker, {"cmd": "collect"})
    device.wait_log("cmd_collect", since=since)
    device.wait_log("collect_started", since=since)
    # 30 inferences (all selected: sample_rate 1, batch 200), 20 labelled.
    data = rows()[100:130]
    ids = [f"col-{i}" for i in range(len(data))]
    infer_all(device, [x for x, _ in data], ids)
    with device.connect() as c:
        for i in range(20):
            assert c.request({"feedback": ids[i], "label": true_class(data[i][1])})["ok"]
    windows()
    up = device.wait_log("collect_uploaded", since=since)
    assert up["accepted"] == "30" and up["full"] == "no", up
    ds = dataset(server)
    assert ds["samples"] == 30 and ds["labelled"] == 20, ds
    export = server.admin("GET", f"/api/v1/datasets/{ds['id']}/export")
    assert export.status == 200, export
    lines = export.body.decode().splitlines()
    assert lines[0].split() == ["20", "21", "3"], lines[:3]
    # The labelled inputs are the ones sent, with their one-hot labels.
    sent = {tuple(round(v, 6) for v in data[i][0]): data[i][1] for i in range(20)}
    for k in range(20):
        x = tuple(round(float(v), 6) for v in lines[1 + 2 * k].split())
        y = [float(v) for v in lines[2 + 2 * k].split()]
        assert x in sent, x
        assert y == [float(v) for v in sent[x]], (x, y)
    # 40 more: the dataset takes 20 of them (max 50) and says full.
    since = device.log_size()
    infer_all(device, [x for x, _ in rows()[200:240]])
    windows()
    device.wait_log("collect_full", since=since)
    assert dataset(server)["samples"] == 50
    # Full: nothing more is uploaded, even after the policy is fetched again.
    cmd(broker, {"command": "collect"})
    infer_all(device, [x for x, _ in rows()[300:310]])
    windows()
    assert [e for e in device.events("collect_uploaded", since) if e["full"] == "no"] == []
    assert dataset(server)["samples"] == 50

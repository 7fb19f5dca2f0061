"""Data collection end to end (docs/monitoring.md, "Data collection and
datasets"): a real server and broker, enrolled devices holding a real thyroid
network (21 inputs, 3 outputs) in production. Collection is off by default
(devices read enabled false, uploads are refused and nothing is stored); an
operator enables it with the CLI, uploads fill the policy's dataset up to
max_samples and then answer full; malformed, mis-shaped, mismatched and
foreign uploads are refused whole; a ring's policy overrides the model-wide
one; the export is FANN training data that FANN itself reads and trains on."""

import json
import subprocess

import pytest

import edgefleet_fixtures as ef

MODEL = "thyroid"
INPUTS, OUTPUTS = 21, 3
DEVICES = ["col-1", "col-2"]  # thyroid@1 in production
BARE = "col-3"                # enrolled, no model


def thyroid_rows(n):
    """The first n (inputs, label) rows of thyroid.train."""
    rows = ef.read_fann_data(ef.THYROID_TRAIN)[:n]
    return [(inputs, outputs.index(max(outputs))) for inputs, outputs in rows]


def batch(dataset_id, rows, model=f"{MODEL}@1", labels=True):
    return {"model": model, "dataset_id": dataset_id,
            "samples": [{"input": list(x), "label": (y if labels else None)} for x, y in rows]}


class World:
    def __init__(self, server, net):
        self.server = server
        server.push(MODEL, net)
        self.tokens = {}
        for device in DEVICES + [BARE]:
            self.tokens[device] = server.enroll(device)["device_token"]
        for device in DEVICES:
            server.assign(MODEL, 1, device)
        self.viewer = server.create_token("viewer")
        self.operator = server.create_token("operator")

    def policy_of(self, device, token=None):
        return self.server.get_json(f"/api/v1/devices/{device}/collection",
                                    token=token or self.tokens[device])

    def upload(self, device, body, token=None):
        return self.server.request("POST", f"/api/v1/devices/{device}/samples", body,
                                   token=token or self.tokens[device])

    def datasets(self, model=MODEL):
        return self.server.get_json(f"/api/v1/datasets?model={model}")

    def dataset(self, dataset_id):
        return next(d for d in self.server.get_json("/api/v1/datasets")
                    if d["id"] == dataset_id)


@pytest.fixture(scope="module")
def world(server, thyroid_net):
    return World(server, thyroid_net)


def test_collection_is_off_by_default(world):
    server = world.server
    p = world.policy_of("col-1")
    assert p == {"model": MODEL, "version": 1, "enabled": False, "sample_rate": None,
                 "max_samples": None, "dataset_id": None, "batch": 200}
    bare = world.policy_of(BARE)
    assert bare["model"] is None and bare["version"] is None and bare["enabled"] is False
    assert server.get_json(f"/api/v1/models/{MODEL}/collection") == []
    r = world.upload("col-1", batch(1, thyroid_rows(2)))
    ef.assert_error(r, 403, "collection_disabled")
    assert server.get_json("/api/v1/datasets") == []


def test_policy_writes_need_an_operator_and_are_audited(world):
    server = world.server
    path = f"/api/v1/models/{MODEL}/collection"
    r = server.request("PUT", path, {"enabled": True}, token=world.viewer)
    ef.assert_error(r, 403, "forbidden")
    for body, code in (({"enabled": "yes"}, "bad_request"), ({}, "bad_request"),
                       ({"enabled": True, "sample_rate": 0}, "bad_request"),
                       ({"enabled": True, "sample_rate": 1.5}, "bad_request"),
                       ({"enabled": True, "max_samples": 0}, "bad_request"),
                       ({"enabled": True, "max_samples": 1000001}, "bad_request"),
                       ({"enabled": True, "colour": "red"}, "bad_request"),
                       ({"enabled": True, "ring": "Bad Ring"}, "bad_request")):
        ef.assert_error(server.request("PUT", path, body, token=world.operator), 400, code)
    ef.assert_error(server.request("PUT", "/api/v1/models/nope/collection", {"enabled": True},
                                   token=world.operator), 404, "not_found")
    ef.assert_error(server.request("PUT", path, {"enabled": True, "ring": "nope"},
                                   token=world.operator), 404, "not_found")
    ef.assert_error(server.request("GET", "/api/v1/models/nope/collection", token=world.viewer),
                    404, "not_found")
    # Nothing of the refused writes was stored.
    assert server.get_json(path) == []
    assert server.get_json("/api/v1/datasets") == []
    entries = server.get_json("/api/v1/audit?limit=100")["entries"]
    puts = [e for e in entries if e["action"] == "PUT /api/v1/models/{name}/collection"]
    assert {e["status"] for e in puts} >= {403, 400, 404}
    assert all(e["outcome"] == ("refused" if e["status"] == 403 else "rejected")
               for e in puts), puts
    assert any("max_samples" in e["detail"] for e in puts), puts


def test_enable_then_upload_until_full(world):
    server = world.server
    policy = server.cli_json("collection", "set", MODEL, "--enable", "--max-samples", "5",
                             "--sample-rate", "0.5")
    assert policy["model"] == MODEL and policy["ring"] is None and policy["enabled"] is True
    assert policy["sample_rate"] == 0.5 and policy["max_samples"] == 5
    ds = policy["dataset_id"]
    assert isinstance(ds, int) and ds > 0
    audit = server.get_json("/api/v1/audit?limit=20")["entries"]
    assert any(e["action"] == "PUT /api/v1/models/{name}/collection" and e["outcome"] == "ok"
               for e in audit)

    p = world.policy_of("col-1")
    assert p == {"model": MODEL, "version": 1, "enabled": True, "sample_rate": 0.5,
                 "max_samples": 5, "dataset_id": ds, "batch": 200}
    # An operator may read a device's policy too.
    assert world.policy_of("col-1", token=world.viewer) == p

    rows = thyroid_rows(6)
    body = batch(ds, rows[:3])
    body["samples"][2]["label"] = None
    r = world.upload("col-1", body)
    assert r.status == 201, r
    assert r.json() == {"accepted": 3, "full": False}
    d = world.dataset(ds)
    assert (d["model"], d["ring"], d["samples"], d["labelled"]) == (MODEL, None, 3, 2)

    # The cap: 2 of these 3 go in, then it is full.
    r = world.upload("col-2", batch(ds, rows[3:6]))
    assert r.status == 201, r
    assert r.json() == {"accepted": 2, "full": True}
    r = world.upload("col-1", batch(ds, rows[:1]))
    assert r.status == 201, r
    assert r.json() == {"accepted": 0, "full": True}
    d = world.dataset(ds)
    assert (d["samples"], d["labelled"]) == (5, 4)

    listed = server.cli_json("dataset", "list", "--model", MODEL)
    assert [x["id"] for x in listed] == [ds]
    out = server.cli_ok("collection", "list", MODEL)
    assert "ENABLED" in out and "true" in out


def test_refused_batches_store_nothing(world):
    server = world.server
    ds = world.policy_of("col-1")["dataset_id"]
    # Make room so that a wrongly accepted batch would show.
    server.cli_json("collection", "set", MODEL, "--enable", "--max-samples", "1000")
    before = world.dataset(ds)
    rows = thyroid_rows(2)

    short = batch(ds, rows)
    short["samples"][1]["input"] = short["samples"][1]["input"][:20]
    ef.assert_error(world.upload("col-1", short), 422, "bad_sample")
    label = batch(ds, rows)
    label["samples"][0]["label"] = OUTPUTS
    ef.assert_error(world.upload("col-1", label), 422, "bad_sample")
    text = batch(ds, rows)
    text["samples"][1]["input"][0] = "0.5"
    ef.assert_error(world.upload("col-1", text), 422, "bad_sample")
    extra = batch(ds, rows)
    extra["samples"][0]["weight"] = 1
    ef.assert_error(world.upload("col-1", extra), 422, "bad_sample")
    ef.assert_error(world.upload("col-1", batch(ds, rows, model=f"{MODEL}@9")), 422,
                    "bad_sample")
    ef.assert_error(world.upload("col-1", {**batch(ds, rows), "x": 1}), 400, "bad_request")
    ef.assert_error(world.upload("col-1", batch(ds + 100, rows)), 409, "dataset_mismatch")
    ef.assert_error(world.upload("col-1", batch(ds, rows, model="other@1")), 409,
                    "dataset_mismatch")
    r = server.request("POST", "/api/v1/devices/col-1/samples", b'{"model": "thyroid@1", "da',
                       headers={"Content-Type": "application/json"}, token=world.tokens["col-1"])
    ef.assert_error(r, 400, "malformed_json")
    # Another device's token, an API token, a device without a model, an unknown device.
    ef.assert_error(world.upload("col-1", batch(ds, rows), token=world.tokens["col-2"]), 403,
                    "forbidden")
    ef.assert_error(world.upload("col-1", batch(ds, rows), token=world.operator), 403,
                    "forbidden")
    ef.assert_error(server.request("GET", "/api/v1/devices/col-1/collection",
                                   token=world.tokens["col-2"]), 403, "forbidden")
    ef.assert_error(world.upload(BARE, batch(ds, rows)), 403, "collection_disabled")
    ef.assert_error(world.upload("nobody", batch(ds, rows), token=world.viewer), 403,
                    "forbidden")
    ef.assert_error(server.request("GET", "/api/v1/devices/nobody/collection",
                                   token=world.viewer), 404, "not_found")
    # Over 1,000 samples, and over 1 MiB (refused before the body is read).
    many = batch(ds, thyroid_rows(1) * 1001)
    ef.assert_error(world.upload("col-1", many), 413, "payload_too_large")
    big = json.dumps(batch(ds, [([0.123456789] * 5000, 0)] * 30)).encode()
    assert len(big) > 1 << 20
    r = server.raw(ef.request_head("POST", "/api/v1/devices/col-1/samples", {
        "Authorization": f"Bearer {world.tokens['col-1']}", "Content-Type": "application/json",
        "Content-Length": str(len(big)), "Connection": "close"}), big, read_first=True)
    ef.assert_error(r, 413, "payload_too_large")
    assert world.dataset(ds) == before
    assert server.healthz_ok()


def test_ring_policy_overrides_model_wide(world):
    server = world.server
    all_ds = world.policy_of("col-1")["dataset_id"]
    r = server.admin("POST", "/api/v1/rings", {"name": "canary"})
    assert r.status == 201, r
    r = server.admin("PATCH", "/api/v1/devices/col-2", {"ring": "canary"})
    assert r.status == 200, r
    # Disabled for the ring: col-2 stops, col-1 goes on.
    off = server.cli_json("collection", "set", MODEL, "--disable", "--ring", "canary")
    assert off["ring"] == "canary" and off["enabled"] is False and off["dataset_id"] is None
    assert world.policy_of("col-2")["enabled"] is False
    assert world.policy_of("col-1")["enabled"] is True
    ef.assert_error(world.upload("col-2", batch(all_ds, thyroid_rows(1))), 403,
                    "collection_disabled")
    # Enabled for the ring: its own dataset, bodies far above the 64 KiB JSON limit.
    on = server.cli_json("collection", "set", MODEL, "--enable", "--ring", "canary")
    ring_ds = on["dataset_id"]
    assert ring_ds not in (None, all_ds)
    assert world.policy_of("col-2")["dataset_id"] == ring_ds
    ef.assert_error(world.upload("col-2", batch(all_ds, thyroid_rows(1))), 409,
                    "dataset_mismatch")
    body = batch(ring_ds, thyroid_rows(1000), labels=False)
    assert len(json.dumps(body)) > 64 * 1024
    r = world.upload("col-2", body)
    assert r.status == 201, r
    assert r.json() == {"accepted": 1000, "full": False}
    d = world.dataset(ring_ds)
    assert (d["ring"], d["samples"], d["labelled"]) == ("canary", 1000, 0)
    policies = server.get_json(f"/api/v1/models/{MODEL}/collection", token=world.viewer)
    assert [p["ring"] for p in policies] == [None, "canary"]
    assert [d["id"] for d in world.datasets()] == [ring_ds, all_ds]


def test_export_is_fann_training_data(world, tmp_path):
    server = world.server
    ds = world.policy_of("col-1")["dataset_id"]
    d = world.dataset(ds)
    r = server.request("GET", f"/api/v1/datasets/{ds}/export", token=world.viewer)
    assert r.status == 200, r
    assert r.header("content-type").startswith("text/plain")
    text = r.body.decode()
    lines = text.splitlines()
    assert lines[0] == f"{d['labelled']} {INPUTS} {OUTPUTS}"
    assert len(lines) == 1 + 2 * d["labelled"]
    # The labelled samples stored, in upload order: rows 0, 1 (col-1), 3, 4 (col-2).
    rows = thyroid_rows(6)
    expected = [rows[0], rows[1], rows[3], rows[4]]
    path = tmp_path / "export.data"
    path.write_bytes(r.body)
    got = ef.read_fann_data(path)
    assert len(got) == len(expected)
    for (inputs, outputs), (x, y) in zip(got, expected):
        assert inputs == pytest.approx(x, rel=1e-6, abs=1e-9)
        assert outputs == [1.0 if j == y else 0.0 for j in range(OUTPUTS)]
    # FANN's own reader takes it: one epoch of training on it, and the
    # vectors it prints are the inputs it read.
    trainer = ef.TEST_BIN_DIR / "ef-train-fixture"
    p = subprocess.run([str(trainer), str(path), str(tmp_path / "out.net"), "4", "1", "1",
                        "float", str(len(expected))],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"ef-train-fixture:\n{p.stdout}\n{p.stderr}"
    vectors = json.loads(p.stdout.splitlines()[1])
    assert len(vectors) == len(expected)
    for v, (x, _) in zip(vectors, expected):
        assert v["input"] == pytest.approx(x, rel=1e-6)
    # The CLI writes the same bytes.
    out = tmp_path / "cli.data"
    server.cli_ok("dataset", "export", str(ds), "--out", str(out))
    assert out.read_bytes() == r.body
    assert server.cli_ok("dataset", "export", str(ds)).encode() == r.body
    # A dataset with no labelled sample exports just the header.
    ring_ds = world.policy_of("col-2")["dataset_id"]
    r = server.request("GET", f"/api/v1/datasets/{ring_ds}/export", token=world.viewer)
    assert r.status == 200 and r.body == f"0 {INPUTS} {OUTPUTS}\n".encode()
    ef.assert_error(server.request("GET", "/api/v1/datasets/999/export", token=world.viewer),
                    404, "not_found")
    ef.assert_error(server.request("GET", "/api/v1/datasets/x1/export", token=world.viewer),
                    404, "not_found")
    assert not [f for f in server.tmp_files() if f.startswith("export.")]
    rc, _, err = server.cli("dataset", "export", "999")
    assert rc == 1 and "not_found" in err

"""What the agent refuses, and that refusing never costs the model it serves.

Five devices commit thyroid@1; then each is offered something it must not
take: an artifact changed in the server's store, a manifest signed with
another key than the release key, an older assignment replayed on the
broker, a manifest for another device class (forged with the server's own
key, since the server refuses to assign it) and a model whose golden vectors
fail. Each time the slot fails (or the assignment is refused) with a reason
that names the problem, and the previous model keeps answering.
"""

import base64
import json
import os
import sqlite3
import stat

import nacl.signing
import pytest

pytest.register_assert_rewrite("agent_fixtures")
import agent_fixtures as af  # noqa: E402
import edgefleet_fixtures as ef  # noqa: E402

pytest_plugins = ["agent_fixtures"]

MODEL = "thyroid"
DEVICES = ("ref-tamper", "ref-badsig", "ref-replay", "ref-class", "ref-vectors")
# Devices whose desired topic a test writes get no periodic poll, so that the
# server's own (lower) seq does not come back in while the test looks.
NO_POLL = ("ref-replay", "ref-class")


def schema_trigger():
    """The CREATE TRIGGER model_versions_immutable statement of
    schema/001_init.sql, as SQLite keeps it (no final semicolon)."""
    text = (ef.SOURCE_DIR / "schema" / "001_init.sql").read_text()
    start = text.index("CREATE TRIGGER model_versions_immutable")
    end = text.index("END;", start) + len("END")
    return text[start:end]


@pytest.fixture(scope="module")
def fleet(server, thyroid_net, module_agent):
    """Every device running and committed on thyroid@1; the seq-1 envelopes."""
    assert server.push(MODEL, thyroid_net)["version"] == 1
    agents = {}
    for d in DEVICES:
        opts = {"poll_interval": 300} if d in NO_POLL else {}
        agents[d] = module_agent(d, **opts)
    for d in DEVICES:
        ef.wait_until(lambda: server.request("GET", f"/api/v1/devices/{d}",
                                             token=server.admin_token).status == 200,
                      15, what=f"{d} enrolled")
        server.cli_json("assign", f"{MODEL}@1", "--device", d)
    envelopes = {}
    for d in DEVICES:
        agents[d].wait_slot(MODEL, 1, "committed", timeout=30)
        envelopes[d] = server.get_json(f"/api/v1/devices/{d}/desired")
        assert ef.open_envelope(envelopes[d], server.keys()["server"])["seq"] == 1
    return {"agents": agents, "envelopes": envelopes}


def x0():
    return af.thyroid_rows(1)[0][0]


def push_unique(server, train_net, seed, *extra):
    """Pushes a network of its own (its artifact shared with no other version)."""
    net = train_net(hidden=5, epochs=5, seed=seed)
    out = server.cli_json("model", "push", MODEL, str(net.path), "--data", str(ef.THYROID_TEST),
                          *extra)
    return out


def fleet_sha(server, version):
    return server.get_json(f"/api/v1/models/{MODEL}/versions/{version}")["sha256"]


def assert_keeps_serving(a, model_id):
    for _ in range(3):
        ans = a.infer(x0())
        assert ans.get("model") == model_id, ans


def failed_state(a, version, since=0):
    return a.wait_state("failed", version=version, since=since, timeout=20)


def test_tampered_artifact_fails_on_its_hash_and_v1_keeps_serving(server, fleet, train_net):
    a = fleet["agents"]["ref-tamper"]
    pushed = push_unique(server, train_net, 21)
    v, sha = pushed["version"], pushed["sha256"]
    path = server.data_dir / "store" / sha[:2] / sha
    os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR)
    data = bytearray(path.read_bytes())
    i = data.index(b"connections (connected_to_neuron, weight)=") + 60
    data[i] = ord("7") if data[i] != ord("7") else ord("3")
    path.write_bytes(bytes(data))
    assert ef.sha256_file(path) != sha
    since = a.log_size()
    server.cli_json("assign", f"{MODEL}@{v}", "--device", a.device_id)
    slot = a.wait_slot(MODEL, v, "failed", timeout=20)
    assert slot["reason"] == "artifact hash mismatch", slot
    assert failed_state(a, v, since)["reason"] == "artifact hash mismatch"
    assert_keeps_serving(a, f"{MODEL}@1")
    # Nothing of the bad download is kept.
    assert [p.name for p in a.model_files()] == [f"{fleet_sha(server, 1)}.model"]
    assert not any((a.data_dir / "downloads").iterdir())


def test_manifest_signed_with_another_key_fails_and_v1_keeps_serving(server, fleet, train_net):
    a = fleet["agents"]["ref-badsig"]
    v = push_unique(server, train_net, 22)["version"]
    db = sqlite3.connect(str(server.data_dir / "edgefleet.db"), timeout=10)
    try:
        (vid, manifest), = db.execute(
            "SELECT v.id, v.manifest FROM model_versions v JOIN models m ON m.id = v.model_id"
            " WHERE m.name = ? AND v.version = ?", (MODEL, v)).fetchall()
        manifest = bytes(manifest) if not isinstance(manifest, str) else manifest.encode()
        other = nacl.signing.SigningKey.generate()
        sig = base64.b64encode(other.sign(manifest).signature).decode()
        trigger_sql = ("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND"
                       " name = 'model_versions_immutable'")
        assert db.execute(trigger_sql).fetchone() == (schema_trigger(),)
        with db:
            db.execute("DROP TRIGGER model_versions_immutable")
            db.execute("UPDATE model_versions SET signature = ? WHERE id = ?", (sig, vid))
            db.execute(schema_trigger())
        assert db.execute(trigger_sql).fetchone() == (schema_trigger(),)
        with pytest.raises(sqlite3.IntegrityError, match="immutable"):
            db.execute("UPDATE model_versions SET size = size WHERE id = ?", (vid,))
    finally:
        db.close()
    r = server.admin("GET", f"/api/v1/models/{MODEL}/versions/{v}/manifest.sig")
    assert r.status == 200 and r.body.decode().strip() == sig, r
    since = a.log_size()
    server.cli_json("assign", f"{MODEL}@{v}", "--device", a.device_id)
    slot = a.wait_slot(MODEL, v, "failed", timeout=20)
    assert "manifest signature" in slot["reason"] and "does not verify" in slot["reason"], slot
    assert "signature" in failed_state(a, v, since)["reason"]
    assert_keeps_serving(a, f"{MODEL}@1")
    assert [p.name for p in a.model_files()] == [f"{fleet_sha(server, 1)}.model"]


def test_replayed_older_assignment_is_refused_and_v2_keeps_serving(server, broker, fleet,
                                                                   train_net):
    a = fleet["agents"]["ref-replay"]
    seq1 = fleet["envelopes"][a.device_id]
    v = push_unique(server, train_net, 23)["version"]
    server.cli_json("assign", f"{MODEL}@{v}", "--device", a.device_id)
    a.wait_slot(MODEL, v, "committed", timeout=30)
    since = a.log_size()
    pub = ef.MqttClient(broker, "it-ref-replayer")
    try:
        pub.publish(af.topic(a.device_id, "desired"), json.dumps(seq1), qos=1, retain=True)
    finally:
        pub.close()
    refused = a.wait_log("assignment_refused", since=since, timeout=10)
    assert "replayed" in refused["reason"], refused
    assert refused["error"] == "stale", refused

    def reported():
        r = a.show()["reported"].get("production") or {}
        return r if r.get("state") == "failed" else None
    r = ef.wait_until(reported, 10, what="the refusal reported")
    assert (r["model"], r["version"]) == (MODEL, 1), r
    assert r["reason"].startswith("replayed assignment"), r
    # The server's slot still says v2 committed, and v2 answers.
    assert a.show()["slots"]["production"] == {"name": MODEL, "version": v,
                                               "state": "committed", "reason": None}
    assert_keeps_serving(a, f"{MODEL}@{v}")
    assert not [e for e in a.deploy_states(since)], a.deploy_states(since)
    # Leave the broker with the server's own assignment again.
    envelope = server.get_json(f"/api/v1/devices/{a.device_id}/desired")
    pub = ef.MqttClient(broker, "it-ref-restorer")
    try:
        pub.publish(af.topic(a.device_id, "desired"), json.dumps(envelope), qos=1, retain=True)
    finally:
        pub.close()


def test_manifest_for_another_device_class_is_refused_and_v1_keeps_serving(server, broker, fleet,
                                                                           train_net):
    a = fleet["agents"]["ref-class"]
    pushed = push_unique(server, train_net, 24, "--class", "other")
    v, sha, size = pushed["version"], pushed["sha256"], pushed["size"]
    # The server will not assign it to a device of class default ...
    r = server.admin("POST", "/api/v1/assignments",
                     {"model": MODEL, "version": v, "device": a.device_id})
    ef.assert_error(r, 409)
    # ... so it is forged with the server's key, its files served off the server
    # (which gives a device only what it was assigned).
    base = f"/api/v1/models/{MODEL}/versions/{v}"
    files = {"/m.json": server.admin("GET", base + "/manifest").body,
             "/m.sig": server.admin("GET", base + "/manifest.sig").body,
             "/model": server.admin("GET", base + "/artifact").body}
    assert len(files["/model"]) == size
    assert af.hashlib_sha256(files["/model"]) == sha
    assert json.loads(files["/m.json"])["device_class"] == "other"
    mirror = af.FileMirror(files)
    try:
        seq = a.show()["desired_seq"] + 1
        envelope = af.forge_assignment(server, a.device_id, seq, {
            "model": MODEL, "version": v, "manifest_url": mirror.url + "/m.json",
            "signature_url": mirror.url + "/m.sig", "artifact_url": mirror.url + "/model",
            "sha256": sha, "size": size, "rollout_id": None})
        since = a.log_size()
        pub = ef.MqttClient(broker, "it-ref-forger")
        try:
            pub.publish(af.topic(a.device_id, "desired"), json.dumps(envelope), qos=1,
                        retain=True)
        finally:
            pub.close()
        accepted = a.wait_log("assignment_accepted", since=since, timeout=10)
        assert accepted["seq"] == str(seq), accepted
        failed = failed_state(a, v, since)
        assert failed["reason"] == "manifest is for device class other", failed

        def reported():
            r = a.show()["reported"].get("production") or {}
            return r if r.get("state") == "failed" and r.get("version") == v else None
        r = ef.wait_until(reported, 10, what="the failure reported")
        assert r["reason"] == "manifest is for device class other", r
        assert "/model" not in mirror.requests, "the artifact was fetched anyway"
        assert_keeps_serving(a, f"{MODEL}@1")
    finally:
        mirror.close()


def test_failing_golden_vectors_fail_the_self_test_and_v1_keeps_serving(server, fleet, train_net,
                                                                        tmp_path):
    a = fleet["agents"]["ref-vectors"]
    rows = af.thyroid_rows(2)
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"test_vectors": [
        {"input": rows[0][0], "output": [0.5, 0.5, 0.5], "tolerance": 1e-4},
        {"input": rows[1][0], "output": [0.5, 0.5, 0.5], "tolerance": 1e-4}]}))
    v = push_unique(server, train_net, 25, "--meta", str(meta))["version"]
    since = a.log_size()
    server.cli_json("assign", f"{MODEL}@{v}", "--device", a.device_id)
    slot = a.wait_slot(MODEL, v, "failed", timeout=20)
    assert slot["reason"].startswith("self-test: golden vector 0"), slot
    assert "expected 0.5" in slot["reason"], slot
    states = [e["state"] for e in a.deploy_states(since)]
    assert states == ["notified", "downloading", "verifying", "staged", "self-test", "failed"], \
        states
    assert_keeps_serving(a, f"{MODEL}@1")
    assert [p.name for p in a.model_files()] == [f"{fleet_sha(server, 1)}.model"]

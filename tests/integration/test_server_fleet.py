"""The fleet end to end: enrollment tokens and enrollment, devices, rings
(explicit and by tag selector), direct assignments, and the signed desired
state a device polls (ETag, If-None-Match, seq), with device tokens limited
to their own state and to the versions assigned to them."""

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import nacl.exceptions
import pytest
import yaml

import edgefleet_fixtures as ef

MODEL = "thyroid"


class Fleet:
    """Two versions of thyroid with different artifacts, the server's keys."""

    def __init__(self, server, net_a, net_b):
        self.server = server
        self.v1 = server.push(MODEL, net_a)
        self.v2 = server.push(MODEL, net_b)
        assert self.v1["sha256"] != self.v2["sha256"]
        self.nets = {1: net_a, 2: net_b}
        self.keys = server.keys()
        self.viewer = server.create_token("viewer")

    def sha(self, version):
        return (self.v1 if version == 1 else self.v2)["sha256"]


@pytest.fixture(scope="module")
def fleet(server, thyroid_net, thyroid_net_b):
    return Fleet(server, thyroid_net, thyroid_net_b)


def device_show(server, device_id):
    return server.cli_json("device", "show", device_id)


def desired(server, device_id, token, etag=None):
    headers = {"If-None-Match": etag} if etag else None
    return server.request("GET", f"/api/v1/devices/{device_id}/desired", headers=headers,
                          token=token)


def fetch(server, version, what, token):
    return server.request("GET", f"/api/v1/models/{MODEL}/versions/{version}/{what}",
                          token=token)


# --------------------------------------------------------------------------
# Enrollment

def test_enroll_with_a_cli_token_returns_a_device_token_and_the_keys(fleet):
    server = fleet.server
    created = server.cli_json("enroll-token", "create")
    assert created["token"] and created["uses"] == 1 and created["expires_at"]
    r = server.request("POST", "/api/v1/enroll", {"device_id": "edge-1", "tags": {"site": "hq"}},
                       token=created["token"])
    assert r.status == 201, r
    doc = r.json()
    assert doc["device_id"] == "edge-1"
    assert isinstance(doc["device_token"], str) and len(doc["device_token"]) >= 16
    assert doc["keys"]["release"] == fleet.keys["release"]
    assert doc["keys"]["server"] == fleet.keys["server"]


def test_enrollment_token_is_single_use(fleet):
    server = fleet.server
    token = server.cli_json("enroll-token", "create")["token"]
    r = server.request("POST", "/api/v1/enroll", {"device_id": "once-1"}, token=token)
    assert r.status == 201, r
    again = server.request("POST", "/api/v1/enroll", {"device_id": "once-2"}, token=token)
    ef.assert_error(again, 401, "unauthenticated")
    ids = [d["id"] for d in server.get_json("/api/v1/devices")["devices"]]
    assert "once-1" in ids and "once-2" not in ids


def test_enrollment_token_with_uses_enrolls_that_many(fleet):
    server = fleet.server
    token = server.cli_json("enroll-token", "create", "--uses", "2")["token"]
    for i in (1, 2):
        r = server.request("POST", "/api/v1/enroll", {"device_id": f"multi-{i}"}, token=token)
        assert r.status == 201, r
    ef.assert_error(server.request("POST", "/api/v1/enroll", {"device_id": "multi-3"},
                                   token=token), 401, "unauthenticated")


def test_expired_enrollment_token_is_401(fleet):
    server = fleet.server
    created = server.cli_json("enroll-token", "create", "--uses", "3")
    # Expire it in the database rather than waiting out the shortest TTL.
    db = sqlite3.connect(str(server.data_dir / "edgefleet.db"), timeout=10)
    try:
        with db:
            n = db.execute("UPDATE enroll_tokens SET expires_at = ? WHERE id = ?",
                           (int(time.time() * 1000) - 1000, created["id"])).rowcount
        assert n == 1
    finally:
        db.close()
    ef.assert_error(server.request("POST", "/api/v1/enroll", {"device_id": "late-1"},
                                   token=created["token"]), 401, "unauthenticated")


def test_enroll_token_ttl_accepts_the_openapi_minimum(fleet):
    with open(ef.SOURCE_DIR / "schema" / "openapi.yaml") as f:
        schema = yaml.safe_load(f)["components"]["schemas"]["EnrollTokenCreate"]
    minimum = schema["properties"]["ttl_seconds"]["minimum"]
    r = fleet.server.admin("POST", "/api/v1/enroll-tokens", {"ttl_seconds": minimum})
    assert r.status == 201, f"ttl_seconds={minimum} (openapi minimum) refused: {r!r}"


def test_enrollment_token_class_becomes_the_device_class(fleet):
    server = fleet.server
    token = server.cli_json("enroll-token", "create", "--class", "pi4")["token"]
    r = server.request("POST", "/api/v1/enroll", {"device_id": "classy-1"}, token=token)
    assert r.status == 201, r
    assert device_show(server, "classy-1")["class"] == "pi4"


def test_enrolling_an_existing_id_is_409_and_keeps_the_use(fleet):
    server = fleet.server
    server.enroll("taken-1")
    token = server.create_enroll_token()
    r = server.request("POST", "/api/v1/enroll", {"device_id": "taken-1"}, token=token)
    ef.assert_error(r, 409, "device_exists")
    r = server.request("POST", "/api/v1/enroll", {"device_id": "taken-2"}, token=token)
    assert r.status == 201, f"a refused enrollment used up the token: {r!r}"


def test_device_list_and_show(fleet):
    server = fleet.server
    server.enroll("list-1", tags={"site": "hq", "floor": "2"})
    devices = server.cli_json("device", "list")["devices"]
    row = [d for d in devices if d["id"] == "list-1"]
    assert len(row) == 1
    d = device_show(server, "list-1")
    assert d["id"] == "list-1"
    assert d["ring"] == "default"
    assert d["tags"] == {"site": "hq", "floor": "2"}
    assert d["online"] is False
    assert d["slots"] == {} and d["desired_seq"] == 0
    assert "list-1" in server.cli_ok("device", "show", "list-1")
    filtered = server.cli_json("device", "list", "--tag", "floor=2")["devices"]
    assert [x["id"] for x in filtered] == ["list-1"]


def test_device_show_of_an_unknown_device_fails(fleet):
    rc, out, err = fleet.server.cli("device", "show", "nobody-here")
    assert rc != 0 and "not_found" in err
    ef.assert_error(fleet.server.admin("GET", "/api/v1/devices/nobody-here"), 404, "not_found")


# --------------------------------------------------------------------------
# Rings

def test_ring_create_and_device_set_ring(fleet):
    server = fleet.server
    ring = server.cli_json("ring", "create", "canary")
    assert ring["name"] == "canary"
    server.enroll("canary-1")
    changed = server.cli_json("device", "set", "canary-1", "--ring", "canary")
    assert changed["ring"] == "canary"
    assert device_show(server, "canary-1")["ring"] == "canary"
    members = server.cli_json("device", "list", "--ring", "canary")["devices"]
    assert [d["id"] for d in members] == ["canary-1"]
    rings = {r["name"]: r for r in server.cli_json("ring", "list")["rings"]}
    assert rings["canary"]["devices"] == 1
    assert "default" in rings


def test_ring_membership_follows_the_tag_selector(fleet):
    server = fleet.server
    server.cli_json("ring", "create", "lab", "--selector", "site=lab")
    server.enroll("lab-1", tags={"site": "lab"})
    server.enroll("hq-1", tags={"site": "hq"})
    assert device_show(server, "lab-1")["ring"] == "lab"
    assert device_show(server, "hq-1")["ring"] == "default"
    server.cli_json("device", "set", "hq-1", "--tag", "site=lab")
    assert device_show(server, "hq-1")["ring"] == "lab"
    members = {d["id"] for d in server.cli_json("device", "list", "--ring", "lab")["devices"]}
    assert members == {"lab-1", "hq-1"}


def test_creating_an_existing_ring_is_409_ring_exists(fleet):
    """docs/rest.md lists ring_exists among the specific 409 codes."""
    server = fleet.server
    server.cli_json("ring", "create", "twice")
    r = server.admin("POST", "/api/v1/rings", {"name": "twice"})
    ef.assert_error(r, 409, "ring_exists")
    rc, _, err = server.cli("ring", "create", "twice")
    assert rc != 0 and "ring_exists" in err


def test_setting_an_unknown_ring_is_refused(fleet):
    server = fleet.server
    server.enroll("ringless-1")
    r = server.admin("PATCH", "/api/v1/devices/ringless-1", {"ring": "no-such-ring"})
    ef.assert_error(r, 404, "not_found")
    assert device_show(server, "ringless-1")["ring"] == "default"


# --------------------------------------------------------------------------
# Assignments and desired state

@pytest.fixture(scope="module")
def assigned(fleet):
    """Device asg-1 with thyroid@1 assigned through the CLI; asg-2 enrolled
    beside it with nothing assigned."""
    server = fleet.server
    one = server.enroll("asg-1")
    two = server.enroll("asg-2")
    out = server.cli_json("assign", f"{MODEL}@1", "--device", "asg-1")
    return {"out": out, "token": one["device_token"], "other_token": two["device_token"]}


def test_assign_puts_a_pending_production_slot(fleet, assigned):
    assert assigned["out"]["assigned"] == [{"device_id": "asg-1", "seq": 1}]
    d = device_show(fleet.server, "asg-1")
    prod = d["slots"]["production"]
    assert (prod["name"], prod["version"], prod["state"]) == (MODEL, 1, "pending")
    assert d["desired_seq"] == 1


def test_desired_state_is_an_envelope_signed_by_the_server_key(fleet, assigned):
    server = fleet.server
    r = desired(server, "asg-1", assigned["token"])
    assert r.status == 200, r
    assert r.header("etag"), r.headers
    a = ef.open_envelope(r.json(), fleet.keys["server"])
    assert a["device_id"] == "asg-1" and a["seq"] == 1 and a["issued_at"]
    prod = a["slots"]["production"]
    assert set(prod) == {"model", "version", "manifest_url", "signature_url", "artifact_url",
                         "sha256", "size", "rollout_id"}
    assert prod["model"] == MODEL and prod["version"] == 1
    assert prod["sha256"] == fleet.sha(1) == ef.sha256_file(fleet.nets[1])
    assert prod["size"] == fleet.nets[1].stat().st_size
    assert prod["rollout_id"] is None
    # The URLs lead to the files, for this device's token.
    manifest = fetch(server, 1, "manifest", assigned["token"]).body
    sig = fetch(server, 1, "manifest.sig", assigned["token"]).body
    for key, want in (("artifact_url", fleet.nets[1].read_bytes()),
                      ("manifest_url", manifest), ("signature_url", sig)):
        url = prod[key]
        got = server.request("GET", url[url.index("/api/v1/"):], token=assigned["token"])
        assert got.status == 200 and got.body == want, (key, got)


def test_desired_state_does_not_verify_with_the_release_key(fleet, assigned):
    r = desired(fleet.server, "asg-1", assigned["token"])
    with pytest.raises(nacl.exceptions.BadSignatureError):
        ef.open_envelope(r.json(), fleet.keys["release"])


def test_desired_with_if_none_match_is_304(fleet, assigned):
    server = fleet.server
    etag = desired(server, "asg-1", assigned["token"]).header("etag")
    r = desired(server, "asg-1", assigned["token"], etag=etag)
    assert r.status == 304, r
    assert r.body == b""
    assert r.header("etag") == etag


def test_desired_of_another_device_is_403(fleet, assigned):
    r = desired(fleet.server, "asg-1", assigned["other_token"])
    ef.assert_error(r, 403, "forbidden")


def test_desired_without_an_assignment_is_404_no_assignment(fleet, assigned):
    r = desired(fleet.server, "asg-2", assigned["other_token"])
    ef.assert_error(r, 404, "no_assignment")


def test_a_viewer_may_read_any_desired_state(fleet, assigned):
    r = desired(fleet.server, "asg-1", fleet.viewer)
    assert r.status == 200, r
    assert ef.open_envelope(r.json(), fleet.keys["server"])["device_id"] == "asg-1"


def test_device_token_reads_only_its_assigned_version(fleet, assigned):
    server, token = fleet.server, assigned["token"]
    data = fetch(server, 1, "manifest", token)
    assert data.status == 200, data
    sig = fetch(server, 1, "manifest.sig", token)
    assert sig.status == 200, sig
    ef.verify_detached(fleet.keys["release"], data.body, sig.body.decode())
    art = fetch(server, 1, "artifact", token)
    assert art.status == 200 and art.body == fleet.nets[1].read_bytes()
    for what in ("manifest", "manifest.sig", "artifact"):
        ef.assert_error(fetch(server, 2, what, token), 403, "forbidden")
        ef.assert_error(fetch(server, 1, what, assigned["other_token"]), 403, "forbidden")


def test_device_token_may_not_read_the_registry_or_fleet(fleet, assigned):
    for path in ("/api/v1/models", f"/api/v1/models/{MODEL}", f"/api/v1/models/{MODEL}/versions/1",
                 "/api/v1/devices", "/api/v1/devices/asg-1", "/api/v1/rings"):
        ef.assert_error(fleet.server.request("GET", path, token=assigned["token"]), 403,
                        "forbidden")


def test_second_assign_raises_seq_and_the_old_etag_gets_200(fleet, assigned):
    server, token = fleet.server, assigned["token"]
    old = desired(server, "asg-1", token)
    assert old.status == 200
    out = server.cli_json("assign", f"{MODEL}@2", "--device", "asg-1")
    assert out["assigned"] == [{"device_id": "asg-1", "seq": 2}]
    r = desired(server, "asg-1", token, etag=old.header("etag"))
    assert r.status == 200, r
    assert r.header("etag") != old.header("etag")
    a = ef.open_envelope(r.json(), fleet.keys["server"])
    assert a["seq"] == 2
    assert a["slots"]["production"]["version"] == 2
    assert a["slots"]["production"]["sha256"] == fleet.sha(2)
    d = device_show(server, "asg-1")
    assert d["desired_seq"] == 2
    assert (d["slots"]["production"]["version"], d["slots"]["production"]["state"]) == \
        (2, "pending")
    # Now version 2 is the device's to download.
    assert fetch(server, 2, "artifact", token).body == fleet.nets[2].read_bytes()


def test_assign_of_a_missing_version_is_404(fleet, assigned):
    r = fleet.server.admin("POST", "/api/v1/assignments",
                           {"model": MODEL, "version": 99, "device": "asg-1"})
    ef.assert_error(r, 404, "not_found")
    r = fleet.server.admin("POST", "/api/v1/assignments",
                           {"model": MODEL, "version": 1, "device": "no-such-device"})
    ef.assert_error(r, 404, "not_found")


def test_assign_to_a_ring_assigns_each_member(fleet):
    server = fleet.server
    server.cli_json("ring", "create", "wave")
    for i in (1, 2):
        server.enroll(f"wave-{i}")
        server.cli_json("device", "set", f"wave-{i}", "--ring", "wave")
    out = server.cli_json("assign", f"{MODEL}@1", "--ring", "wave")
    assert sorted(x["device_id"] for x in out["assigned"]) == ["wave-1", "wave-2"]
    for i in (1, 2):
        prod = device_show(server, f"wave-{i}")["slots"]["production"]
        assert (prod["name"], prod["version"], prod["state"]) == (MODEL, 1, "pending")


def test_device_remove_makes_it_404_and_kills_its_token(fleet):
    server = fleet.server
    dev = server.enroll("doomed-1")
    server.assign(MODEL, 1, "doomed-1")
    server.cli_ok("device", "remove", "doomed-1")
    ef.assert_error(server.admin("GET", "/api/v1/devices/doomed-1"), 404, "not_found")
    rc, _, err = server.cli("device", "show", "doomed-1")
    assert rc != 0 and "not_found" in err
    ids = [d["id"] for d in server.get_json("/api/v1/devices")["devices"]]
    assert "doomed-1" not in ids
    ef.assert_error(desired(server, "doomed-1", dev["device_token"]), 401, "unauthenticated")
    ef.assert_error(fetch(server, 1, "artifact", dev["device_token"]), 401, "unauthenticated")


def test_reenrolled_device_continues_above_its_old_seq(fleet):
    """DESIGN: a device's seq never decreases, even across decommissioning."""
    server = fleet.server
    server.enroll("phoenix-1")
    server.assign(MODEL, 1, "phoenix-1")
    server.assign(MODEL, 2, "phoenix-1")
    server.cli_ok("device", "remove", "phoenix-1")
    again = server.enroll("phoenix-1")
    out = server.assign(MODEL, 1, "phoenix-1")
    assert out["assigned"][0]["seq"] > 2
    r = desired(server, "phoenix-1", again["device_token"])
    assert ef.open_envelope(r.json(), fleet.keys["server"])["seq"] > 2


def test_a_single_use_token_enrolls_one_device_under_concurrency(fleet):
    server = fleet.server
    token = server.create_enroll_token()

    def enroll(i):
        return server.request("POST", "/api/v1/enroll", {"device_id": f"race-{i}"},
                              token=token)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(enroll, range(8)))
    ok = [r for r in results if r.status == 201]
    assert len(ok) == 1, results
    for r in results:
        if r.status != 201:
            ef.assert_error(r, 401, "unauthenticated")
    ids = {d["id"] for d in server.get_json("/api/v1/devices")["devices"]}
    assert len({f"race-{i}" for i in range(8)} & ids) == 1


def test_concurrent_assignments_get_distinct_seqs(fleet):
    server = fleet.server
    dev = server.enroll("busy-1")

    def assign(i):
        return server.admin("POST", "/api/v1/assignments",
                            {"model": MODEL, "version": 1 + i % 2, "device": "busy-1"})
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(assign, range(8)))
    assert all(r.status == 200 for r in results), results
    seqs = [r.json()["assigned"][0]["seq"] for r in results]
    # Re-assigning what a slot already wants is a no-op answering the current
    # seq (assign.h), so seqs may repeat, but never go past the last one.
    final = ef.open_envelope(desired(server, "busy-1", dev["device_token"]).json(),
                             fleet.keys["server"])
    assert final["seq"] == max(seqs) == device_show(server, "busy-1")["desired_seq"]
    assert len(set(seqs)) >= 2


def test_json_gets_carry_an_etag_and_answer_304_until_the_data_changes(fleet):
    server = fleet.server
    first = server.admin("GET", "/api/v1/rings")
    etag = first.header("etag")
    assert first.status == 200 and etag and etag.startswith('"'), first.headers
    again = server.admin("GET", "/api/v1/rings", headers={"If-None-Match": etag})
    assert again.status == 304 and again.body == b"", again
    assert again.header("etag") == etag
    # Weak and listed forms match too (RFC 9110's weak comparison for GET).
    listed = server.admin("GET", "/api/v1/rings", headers={"If-None-Match": f'"x", W/{etag}'})
    assert listed.status == 304, listed
    server.cli_ok("ring", "create", "etag-ring")
    changed = server.admin("GET", "/api/v1/rings", headers={"If-None-Match": etag})
    assert changed.status == 200 and changed.header("etag") != etag, changed
    assert b"etag-ring" in changed.body
    # Errors and writes carry none.
    missing = server.admin("GET", "/api/v1/devices/no-such-device")
    assert missing.status == 404 and missing.header("etag") is None, missing

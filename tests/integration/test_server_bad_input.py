"""Bad input over raw HTTP: missing, unknown and misplaced credentials,
broken JSON, wrong media types, oversized and truncated bodies, unknown
routes and methods. Each is refused with the documented status and a
{"error": {"code", "message"}} body, the server stays healthy, and nothing
changes (models, versions, devices). Then the audit trail of changes and
refusals, and the append-only audit table."""

import json
import re
import socket
import sqlite3
import time

import pytest

import edgefleet_fixtures as ef

MODEL = "thyroid"


class World:
    """What the bad requests aim at: a model with a version, a device, and
    tokens of every kind."""

    def __init__(self, server, thyroid_net):
        self.server = server
        server.push(MODEL, thyroid_net)
        created = server.cli_json("token", "create", "--role", "viewer", "--name", "watcher")
        self.viewer = created["token"]
        self.viewer_id = created["id"]
        self.enroll_token = server.create_enroll_token(uses=5)
        self.device = server.enroll("bad-input-dev")
        self.device_token = self.device["device_token"]


@pytest.fixture(scope="module")
def world(server, thyroid_net):
    return World(server, thyroid_net)


def snapshot(server):
    """The state no refused request may change."""
    return (server.get_json("/api/v1/models"),
            server.get_json(f"/api/v1/models/{MODEL}")["versions"],
            server.get_json("/api/v1/devices"),
            server.get_json("/api/v1/rings"),
            server.get_json("/api/v1/tokens"))


def json_post(w, path, body_bytes, token="admin", ctype="application/json"):
    headers = {"Content-Type": ctype} if ctype else {}
    tok = w.server.admin_token if token == "admin" else token
    return w.server.request("POST", path, body_bytes, headers, token=tok)


# Each case: (id, function(world) -> Response, status, code).
CASES = [
    ("no_token_get",
     lambda w: w.server.request("GET", "/api/v1/models"), 401, "unauthenticated"),
    ("no_token_post",
     lambda w: json_post(w, "/api/v1/models", b'{"name":"anon-made"}', token=None),
     401, "unauthenticated"),
    ("garbage_token",
     lambda w: w.server.request("GET", "/api/v1/models", token="garbage"), 401,
     "unauthenticated"),
    ("unknown_api_token",
     lambda w: w.server.request("GET", "/api/v1/models", token="efa_" + "A" * 43), 401,
     "unauthenticated"),
    ("basic_auth_scheme",
     lambda w: w.server.request("GET", "/api/v1/models",
                                headers={"Authorization": "Basic YWRtaW46YWRtaW4="}),
     401, "unauthenticated"),
    ("viewer_token_on_post",
     lambda w: json_post(w, "/api/v1/models", b'{"name":"viewer-made"}', token=w.viewer),
     403, "forbidden"),
    ("viewer_token_on_admin_route",
     lambda w: w.server.request("GET", "/api/v1/tokens", token=w.viewer), 403, "forbidden"),
    ("device_token_on_admin_route",
     lambda w: w.server.request("GET", "/api/v1/tokens", token=w.device_token), 403,
     "forbidden"),
    ("device_token_on_operator_post",
     lambda w: json_post(w, "/api/v1/models", b'{"name":"device-made"}',
                         token=w.device_token), 403, "forbidden"),
    ("enroll_token_on_admin_route",
     lambda w: w.server.request("GET", "/api/v1/audit", token=w.enroll_token), 403,
     "forbidden"),
    ("enroll_token_on_viewer_route",
     lambda w: w.server.request("GET", "/api/v1/devices", token=w.enroll_token), 403,
     "forbidden"),
    ("bad_enrollment_token",
     lambda w: json_post(w, "/api/v1/enroll", b'{"device_id":"intruder"}',
                         token="efe_" + "B" * 43), 401, "unauthenticated"),
    ("api_token_on_enroll",
     lambda w: json_post(w, "/api/v1/enroll", b'{"device_id":"admin-enrolled"}'),
     403, "forbidden"),
    ("malformed_json",
     lambda w: json_post(w, "/api/v1/models", b'{"name": "half'), 400, "malformed_json"),
    ("not_json_at_all",
     lambda w: json_post(w, "/api/v1/models", b"name=x"), 400, "malformed_json"),
    ("duplicate_keys",
     lambda w: json_post(w, "/api/v1/models", b'{"name":"dup-a","name":"dup-b"}'), 400,
     "malformed_json"),
    # docs/rest.md, "Which 4xx": JSON of the wrong shape (not an object, an
    # unknown member, an invalid name, ...) is 400 bad_request.
    ("json_array_body",
     lambda w: json_post(w, "/api/v1/models", b'[{"name":"array-made"}]'), 400,
     "bad_request"),
    ("json_string_body",
     lambda w: json_post(w, "/api/v1/models", b'"string-made"'), 400, "bad_request"),
    ("json_number_body",
     lambda w: json_post(w, "/api/v1/models", b'42'), 400, "bad_request"),
    ("unknown_key",
     lambda w: json_post(w, "/api/v1/models", b'{"name":"unknown-key","colour":"red"}'),
     400, "bad_request"),
    ("unknown_key_enroll_token",
     lambda w: json_post(w, "/api/v1/enroll-tokens", b'{"uses":1,"colour":"red"}'),
     400, "bad_request"),
    ("unknown_key_enroll",
     lambda w: json_post(w, "/api/v1/enroll", b'{"device_id":"unk-dev","colour":"red"}',
                         token=w.enroll_token), 400, "bad_request"),
    ("unknown_key_token",
     lambda w: json_post(w, "/api/v1/tokens", b'{"role":"viewer","colour":"red"}'),
     400, "bad_request"),
    ("unknown_key_ring",
     lambda w: json_post(w, "/api/v1/rings", b'{"name":"unk-ring","colour":"red"}'),
     400, "bad_request"),
    ("unknown_key_assignment",
     lambda w: json_post(w, "/api/v1/assignments",
                         b'{"model":"thyroid","version":1,"device":"bad-input-dev",'
                         b'"colour":"red"}'), 400, "bad_request"),
    ("unknown_key_device_patch",
     lambda w: w.server.request("PATCH", "/api/v1/devices/bad-input-dev",
                                b'{"ring":"default","colour":"red"}',
                                {"Content-Type": "application/json"},
                                token=w.server.admin_token), 400, "bad_request"),
    ("empty_body_on_json_route",
     lambda w: json_post(w, "/api/v1/models", b"", ctype=None), 400, "malformed_json"),
    ("text_plain_to_json_route",
     lambda w: json_post(w, "/api/v1/models", b'{"name":"plain-made"}', ctype="text/plain"),
     415, "unsupported_media_type"),
    ("json_to_upload_route",
     lambda w: json_post(w, f"/api/v1/models/{MODEL}/versions", b'{"artifact":"x"}'),
     415, "unsupported_media_type"),
    ("unknown_route",
     lambda w: w.server.admin("GET", "/api/v1/nope"), 404, "no_route"),
    ("unknown_api_version",
     lambda w: w.server.admin("GET", "/api/v2/models"), 404, "no_route"),
    ("trailing_slash",
     lambda w: w.server.admin("GET", "/api/v1/models/"), 404, "no_route"),
    ("unknown_route_without_token",
     lambda w: w.server.request("GET", "/api/v1/nope"), 404, "no_route"),
    ("missing_model",
     lambda w: w.server.admin("GET", "/api/v1/models/no-such-model"), 404, "not_found"),
    ("dot_dot_model_name",
     lambda w: w.server.admin("GET", "/api/v1/models/%2e%2e/versions/1/artifact"), 404, None),
    ("slash_in_model_name",
     lambda w: w.server.admin("GET", "/api/v1/models/..%2f..%2fkeys/versions/1/artifact"),
     404, None),
    ("overlong_path_segment",
     lambda w: w.server.admin("GET", "/api/v1/models/" + "a" * 300), 404, None),
    ("invalid_model_name",
     lambda w: json_post(w, "/api/v1/models", b'{"name":"Not A Name!"}'), 400, "bad_request"),
    ("description_above_maxlength",
     lambda w: json_post(w, "/api/v1/models",
                         json.dumps({"name": "wordy", "description": "d" * 1025}).encode()),
     400, "bad_request"),
    ("enroll_token_uses_zero",
     lambda w: json_post(w, "/api/v1/enroll-tokens", b'{"uses":0}'), 400, "bad_request"),
    ("token_role_unknown",
     lambda w: json_post(w, "/api/v1/tokens", b'{"role":"root"}'), 400, "bad_request"),
    ("ring_position_negative",
     lambda w: json_post(w, "/api/v1/rings", b'{"name":"neg","position":-1}'), 400,
     "bad_request"),
    ("assignment_device_and_ring",
     lambda w: json_post(w, "/api/v1/assignments",
                         b'{"model":"thyroid","version":1,"device":"bad-input-dev",'
                         b'"ring":"default"}'), 400, "bad_request"),
    ("device_patch_empty",
     lambda w: w.server.request("PATCH", "/api/v1/devices/bad-input-dev", b"{}",
                                {"Content-Type": "application/json"},
                                token=w.server.admin_token), 400, "bad_request"),
    ("audit_limit_out_of_range",
     lambda w: w.server.admin("GET", "/api/v1/audit?limit=0"), 400, "bad_request"),
    ("devices_online_not_boolean",
     lambda w: w.server.admin("GET", "/api/v1/devices?online=maybe"), 400, "bad_request"),
    ("invalid_device_id",
     lambda w: json_post(w, "/api/v1/enroll", b'{"device_id":"../etc"}', token=w.enroll_token),
     400, "bad_request"),
]


@pytest.mark.parametrize("make,status,code", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_request_is_refused_and_changes_nothing(world, make, status, code):
    server = world.server
    before = snapshot(server)
    r = make(world)
    ef.assert_error(r, status, code)
    if status == 401:
        assert (r.header("www-authenticate") or "").lower().startswith("bearer"), r.headers
    assert server.healthz_ok()
    assert snapshot(server) == before


@pytest.mark.parametrize("method,path,allowed", [
    ("PUT", "/api/v1/models", {"GET", "POST"}),
    ("DELETE", f"/api/v1/models/{MODEL}", {"GET"}),
    ("POST", "/healthz", {"GET"}),
    ("GET", "/api/v1/assignments", {"POST"}),
])
def test_wrong_method_is_405_with_allow(world, method, path, allowed):
    server = world.server
    before = snapshot(server)
    r = server.raw(ef.request_head(method, path, {
        "Authorization": f"Bearer {server.admin_token}", "Content-Length": "0",
        "Connection": "close"}))
    ef.assert_error(r, 405, "method_not_allowed")
    assert {m.strip() for m in r.header("allow").split(",")} == allowed
    assert server.healthz_ok()
    assert snapshot(server) == before


def test_revoked_token_is_401(world):
    server = world.server
    created = server.cli_json("token", "create", "--role", "operator")
    assert server.request("GET", "/api/v1/models", token=created["token"]).status == 200
    r = server.admin("DELETE", f"/api/v1/tokens/{created['id']}")
    assert r.status == 204, r
    ef.assert_error(server.request("GET", "/api/v1/models", token=created["token"]), 401,
                    "unauthenticated")


def test_revoking_the_last_admin_token_is_refused(world):
    server = world.server
    tokens = server.get_json("/api/v1/tokens")["tokens"]
    admins = [t for t in tokens if t["role"] == "admin" and not t["revoked"]]
    assert len(admins) == 1
    r = server.admin("DELETE", f"/api/v1/tokens/{admins[0]['id']}")
    ef.assert_error(r, 409)
    assert server.request("GET", "/api/v1/tokens", token=server.admin_token).status == 200


def test_cli_prints_an_api_error_in_one_line_and_fails(world):
    rc, out, err = world.server.cli("model", "list", token="efa_" + "C" * 43)
    assert rc != 0
    assert out == ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "unauthenticated" in lines[0], err


def oversized_model_body():
    body = json.dumps({"name": "too-big", "description": "x" * (70 * 1024)}).encode()
    assert len(body) > 64 * 1024
    return body


def test_oversized_json_with_content_length_is_413_before_the_body(world):
    server = world.server
    before = snapshot(server)
    body = oversized_model_body()
    r = server.raw(ef.request_head("POST", "/api/v1/models", {
        "Authorization": f"Bearer {server.admin_token}", "Content-Type": "application/json",
        "Content-Length": str(len(body)), "Connection": "close"}), body, read_first=True)
    ef.assert_error(r, 413, "payload_too_large")
    assert server.healthz_ok()
    assert snapshot(server) == before


def test_oversized_chunked_json_is_413(world):
    server = world.server
    before = snapshot(server)
    body = oversized_model_body()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 8192]), body[i:i + 8192])
                      for i in range(0, len(body), 8192)) + b"0\r\n\r\n"
    r = server.raw(ef.request_head("POST", "/api/v1/models", {
        "Authorization": f"Bearer {server.admin_token}", "Content-Type": "application/json",
        "Transfer-Encoding": "chunked", "Connection": "close"}), chunks)
    ef.assert_error(r, 413, "payload_too_large")
    assert server.healthz_ok()
    assert snapshot(server) == before


def test_json_body_just_under_the_limit_is_read(world):
    """The limit is 64 KiB: a body of 64 KiB - 1 is parsed (and refused for
    its oversized description, not for its size)."""
    prefix, suffix = b'{"name":"near-limit","description":"', b'"}'
    body = prefix + b"y" * (64 * 1024 - 1 - len(prefix) - len(suffix)) + suffix
    assert len(body) == 64 * 1024 - 1
    r = json_post(world, "/api/v1/models", body)
    assert r.status in (400, 422) and "description" in ef.assert_error(r, r.status)["message"]


def test_truncated_upload_leaves_nothing_behind(make_server, thyroid_net):
    """Uploads cut off half-way (the client closes its socket while the
    server is still spooling the artifact to DATA_DIR/tmp): nothing is
    registered and every temporary file is gone once the connection ends.
    libmicrohttpd's epoll mode may only see such a close when the idle
    timeout expires, so this server runs with --timeout 2 and the test
    allows that long plus a margin."""
    server = make_server(["--timeout", "2"])
    before = (server.get_json("/api/v1/models"), server.get_json("/api/v1/devices"))
    ctype, body = ef.multipart([
        ("artifact", "model.net", "application/octet-stream", thyroid_net.read_bytes() * 200)])
    head = ef.request_head("POST", "/api/v1/models/truncated/versions", {
        "Authorization": f"Bearer {server.admin_token}", "Content-Type": ctype,
        "Content-Length": str(len(body))})
    for _ in range(5):
        s = socket.create_connection((ef.HOST, server.port), timeout=5)
        try:
            s.sendall(head + body[: len(body) // 2])
            # The server spools the artifact part to DATA_DIR/tmp as it comes.
            ef.wait_until(lambda: server.tmp_files() != [], 3,
                          what="the partial upload spooled to tmp/")
        finally:
            s.close()
    ef.wait_until(lambda: server.tmp_files() == [], 8,
                  what=f"{server.data_dir / 'tmp'} empty after aborted uploads")
    assert server.healthz_ok()
    ef.assert_error(server.admin("GET", "/api/v1/models/truncated"), 404, "not_found")
    assert (server.get_json("/api/v1/models"), server.get_json("/api/v1/devices")) == before


def test_truncated_json_body_changes_nothing(world):
    server = world.server
    before = snapshot(server)
    head = ef.request_head("POST", "/api/v1/models", {
        "Authorization": f"Bearer {server.admin_token}", "Content-Type": "application/json",
        "Content-Length": "100"})
    s = socket.create_connection((ef.HOST, server.port), timeout=5)
    try:
        s.sendall(head + b'{"name":"cut-')
        time.sleep(0.2)
    finally:
        s.close()
    time.sleep(0.2)
    assert server.healthz_ok()
    assert snapshot(server) == before


def test_garbage_request_line_does_not_hurt_the_server(world):
    server = world.server
    for junk in (b"\x00\x01\x02garbage\r\n\r\n", b"GET\r\n\r\n",
                 b"GET /healthz HTTP/9.9\r\n\r\n", b"G" * 10000 + b"\r\n\r\n"):
        s = socket.create_connection((ef.HOST, server.port), timeout=5)
        try:
            s.sendall(junk)
            s.settimeout(0.5)
            try:
                s.recv(4096)
            except (OSError, socket.timeout):
                pass
        finally:
            s.close()
    assert server.healthz_ok()


def test_every_error_body_has_only_code_and_message(world):
    """The error envelope, once more across kinds of failure together."""
    server = world.server
    for r in (server.request("GET", "/api/v1/models"),
              server.admin("GET", "/api/v1/nope"),
              json_post(world, "/api/v1/models", b"{"),
              server.admin("GET", f"/api/v1/models/{MODEL}/versions/42")):
        doc = r.json()
        assert set(doc) == {"error"} and set(doc["error"]) == {"code", "message"}, doc


# --------------------------------------------------------------------------
# The audit trail

def audit_entries(server, **query):
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    doc = server.get_json("/api/v1/audit" + (f"?{qs}" if qs else ""))
    return doc["entries"]


def test_audit_lists_an_allowed_and_a_refused_post(world):
    server = world.server
    ok = json_post(world, "/api/v1/models", b'{"name":"audited-ok"}')
    assert ok.status == 201, ok
    refused = json_post(world, "/api/v1/models", b'{"name":"audited-refused"}',
                        token=world.viewer)
    assert refused.status == 403, refused
    entries = audit_entries(server, limit=50)
    for e in entries:
        assert {"id", "ts", "actor", "action", "target", "outcome", "status"} <= set(e), e
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True), "audit entries are not newest first"
    posts = [e for e in entries if e["action"] == "POST /api/v1/models"]
    allowed = [e for e in posts if e["status"] == 201]
    denied = [e for e in posts if e["status"] == 403]
    assert allowed and denied, posts
    a, d = allowed[0], denied[0]
    assert a["outcome"] == "ok" and d["outcome"] == "refused"
    assert a["actor"] and d["actor"] and a["actor"] != d["actor"]
    assert str(world.viewer_id) in d["actor"], d
    assert d["id"] > a["id"]
    # Nothing leaks a secret into the trail.
    text = json.dumps(entries)
    assert server.admin_token not in text and world.viewer not in text


def test_audit_records_an_anonymous_401_on_a_get(world):
    server = world.server
    r = server.request("GET", "/api/v1/devices")
    assert r.status == 401
    e = audit_entries(server, limit=5)
    hits = [x for x in e if x["status"] == 401 and x["target"] == "/api/v1/devices"]
    assert hits and hits[0]["outcome"] == "refused", e


def test_audit_paging_with_limit_and_before(world):
    server = world.server
    page = audit_entries(server, limit=2)
    assert len(page) == 2
    older = audit_entries(server, limit=2, before=page[-1]["id"])
    assert older and all(x["id"] < page[-1]["id"] for x in older)


def test_audit_is_admin_only(world):
    ef.assert_error(world.server.request("GET", "/api/v1/audit", token=world.viewer), 403,
                    "forbidden")


def test_audit_table_refuses_update_and_delete(world):
    db = sqlite3.connect(str(world.server.data_dir / "edgefleet.db"), timeout=10)
    try:
        tables = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'audit%'")]
        assert tables, "no audit table"
        table = tables[0]
        n = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        assert n > 0
        with pytest.raises((sqlite3.IntegrityError, sqlite3.DatabaseError)):
            db.execute(f"UPDATE {table} SET outcome = 'ok'")
            db.commit()
        db.rollback()
        with pytest.raises((sqlite3.IntegrityError, sqlite3.DatabaseError)):
            db.execute(f"DELETE FROM {table}")
            db.commit()
        db.rollback()
        assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] >= n
    finally:
        db.close()


def test_audit_entries_match_the_openapi_schema(world):
    """AuditEntry in schema/openapi.yaml: status is an HTTP status (100..599),
    ts an RFC 3339 time, and the rest strings. Runs after the aborted
    uploads above, whose entries are included."""
    entries = audit_entries(world.server, limit=1000)
    assert entries
    for e in entries:
        assert isinstance(e["id"], int) and e["id"] >= 1, e
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)",
                            e["ts"]), e
        assert isinstance(e["actor"], str) and isinstance(e["action"], str), e
        assert e["outcome"] in ("ok", "refused", "rejected", "failed", "aborted"), e
        # A request that never got an answer (the client went away) has status 0.
        assert isinstance(e["status"], int), e
        assert (e["status"] == 0) == (e["outcome"] == "aborted"), e
        assert e["status"] == 0 or 100 <= e["status"] <= 599, e

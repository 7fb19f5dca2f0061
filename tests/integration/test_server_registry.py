"""The model registry end to end: `edgefleet model push` of a real FANN
network, the signed manifest it gets, the artifact served back byte for byte,
and manifests signed elsewhere (accepted when the release key signed them and
they describe the upload, refused otherwise, with nothing stored)."""

import base64
import hashlib
import json
import math
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import nacl.exceptions
import nacl.signing
import pytest

import edgefleet_fixtures as ef

MODEL = "thyroid"
BASE = f"/api/v1/models/{MODEL}"


@pytest.fixture(scope="module")
def pushes(server, thyroid_net):
    """Two pushes of the thyroid network: versions 1 and 2."""
    first = server.push(MODEL, thyroid_net)
    second = server.push(MODEL, thyroid_net)
    return first, second


@pytest.fixture(scope="module")
def release_pub(server):
    return server.keys()["release"]


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    """Trains another thyroid network (distinct bytes per seed)."""
    def make(seed, hidden=5, epochs=10):
        out = tmp_path_factory.mktemp("nets") / f"thyroid-{seed}.net"
        p = subprocess.run([str(ef.TEST_BIN_DIR / "ef-train-fixture"), str(ef.THYROID_TRAIN),
                            str(out), str(hidden), str(epochs), str(seed)],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        return out
    return make


def version_numbers(server):
    doc = server.get_json(BASE)
    return [v["version"] for v in doc["versions"]]


def manifest_bytes(server, version, name=MODEL):
    r = server.admin("GET", f"/api/v1/models/{name}/versions/{version}/manifest")
    assert r.status == 200, r
    return r.body


def signed_elsewhere(server, artifact_path, key, **changes):
    """A manifest for artifact built from version 1's, with changes, written
    with another layout than the server's (indented) and signed with key.
    Returns (manifest bytes, base64 signature)."""
    doc = json.loads(manifest_bytes(server, 1))
    data = artifact_path.read_bytes()
    doc["artifact"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    net = ef.FannNet(artifact_path)
    for vec in doc["test_vectors"]:
        vec["output"] = net.run(vec["input"])
    doc["lineage"] = {"parent_version": 2, "dataset_id": "thyroid.train", "trigger": None}
    doc["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    for k, v in changes.items():
        doc[k] = v
    text = json.dumps(doc, indent=2).encode() + b"\n"
    sig = base64.b64encode(key.sign(text).signature).decode()
    return text, sig


def upload_signed(server, artifact, manifest, sig):
    """POST .../versions with artifact, manifest and signature parts."""
    ctype, body = ef.multipart([
        ("artifact", "model.net", "application/octet-stream", artifact.read_bytes()),
        ("manifest", "manifest.json", "application/json", manifest),
        ("signature", None, "text/plain", sig.encode() + b"\n"),
    ])
    return server.admin("POST", f"{BASE}/versions", body, {"Content-Type": ctype})


def store_objects(server):
    root = server.data_dir / "store"
    return sorted(p.name for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------

def test_push_prints_name_version_1_and_sha256_of_the_file(pushes, thyroid_net):
    first, _ = pushes
    assert first["name"] == MODEL
    assert first["version"] == 1
    assert first["sha256"] == ef.sha256_file(thyroid_net)
    assert first["size"] == thyroid_net.stat().st_size
    assert first["backend"] == "fann"


def test_second_push_gets_version_2(pushes, thyroid_net):
    _, second = pushes
    assert second["version"] == 2
    assert second["sha256"] == ef.sha256_file(thyroid_net)


def test_keys_route_gives_two_distinct_ed25519_public_keys(server):
    keys = server.keys()
    release = base64.b64decode(keys["release"], validate=True)
    srv = base64.b64decode(keys["server"], validate=True)
    assert len(release) == 32 and len(srv) == 32
    assert release != srv


@pytest.mark.parametrize("version", [1, 2])
def test_manifest_bytes_verify_with_the_release_key(server, pushes, release_pub, version):
    data = manifest_bytes(server, version)
    r = server.admin("GET", f"{BASE}/versions/{version}/manifest.sig")
    assert r.status == 200, r
    assert (r.header("content-type") or "").startswith("text/plain")
    ef.verify_detached(release_pub, data, r.body.decode())


def test_manifest_signature_does_not_verify_with_the_server_key(server, pushes):
    data = manifest_bytes(server, 1)
    sig = server.admin("GET", f"{BASE}/versions/1/manifest.sig").body.decode()
    with pytest.raises(nacl.exceptions.BadSignatureError):
        ef.verify_detached(server.keys()["server"], data, sig)


def test_manifest_describes_the_thyroid_network(server, pushes, thyroid_net):
    m = json.loads(manifest_bytes(server, 1))
    assert m["format"] == 1
    assert m["name"] == MODEL and m["version"] == 1
    assert m["backend"] == "fann"
    assert m["input"]["size"] == 21 and len(m["input"]["features"]) == 21
    assert m["output"]["size"] == 3
    assert m["artifact"] == {"sha256": ef.sha256_file(thyroid_net),
                             "size": thyroid_net.stat().st_size}
    m2 = json.loads(manifest_bytes(server, 2))
    assert m2["version"] == 2 and m2["lineage"]["parent_version"] == 1


def test_manifest_baseline_has_a_histogram_per_feature_and_output(server, pushes):
    m = json.loads(manifest_bytes(server, 1))
    features, outputs = m["baseline"]["features"], m["baseline"]["output"]
    assert len(features) == 21 and len(outputs) == 3
    for h in features + outputs:
        edges, fractions = h["edges"], h["fractions"]
        assert len(edges) == len(fractions) + 1
        assert all(a < b for a, b in zip(edges, edges[1:])), edges
        assert all(0 <= f <= 1 for f in fractions)
        assert math.isclose(sum(fractions), 1.0, abs_tol=1e-6), fractions


def test_manifest_test_vectors_are_the_models_own_outputs(server, pushes, thyroid_net):
    m = json.loads(manifest_bytes(server, 1))
    vectors = m["test_vectors"]
    assert vectors, "the manifest has no golden test vectors"
    net = ef.FannNet(thyroid_net)
    rows = ef.read_fann_data(ef.THYROID_TEST)
    inputs = [r[0] for r in rows]
    for vec in vectors:
        assert len(vec["input"]) == 21 and len(vec["output"]) == 3
        # Each vector's input is a row of the reference data ...
        assert any(all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(vec["input"], row))
                   for row in inputs), vec["input"]
        # ... and its output what the network computes for it.
        want = net.run(vec["input"])
        assert all(math.isclose(a, b, abs_tol=1e-4) for a, b in zip(vec["output"], want)), \
            (vec["output"], want)
        assert vec["tolerance"] >= 0


def test_version_detail_holds_the_parsed_signed_manifest(server, pushes):
    doc = server.get_json(f"{BASE}/versions/1")
    assert doc["manifest"] == json.loads(manifest_bytes(server, 1))
    assert doc["version"] == 1 and doc["sha256"] == pushes[0]["sha256"]


def test_artifact_download_equals_the_upload_byte_for_byte(server, pushes, thyroid_net):
    for version in (1, 2):
        r = server.admin("GET", f"{BASE}/versions/{version}/artifact")
        assert r.status == 200, r
        assert r.body == thyroid_net.read_bytes()
        assert r.header("content-type") == "application/octet-stream"
        assert r.header("etag") == f'"{ef.sha256_file(thyroid_net)}"'


def test_artifact_range_requests_resume_a_download(server, pushes, thyroid_net):
    """Devices resume an interrupted download with Range: the server answers
    206 with the asked part and Content-Range, and 416 past the end."""
    data = thyroid_net.read_bytes()
    path = f"{BASE}/versions/1/artifact"
    r = server.admin("GET", path, headers={"Range": "bytes=100-"})
    assert r.status == 206, r
    assert r.body == data[100:]
    assert r.header("content-range") == f"bytes 100-{len(data) - 1}/{len(data)}"
    r = server.admin("GET", path, headers={"Range": "bytes=10-19"})
    assert r.status == 206 and r.body == data[10:20], r
    r = server.admin("GET", path, headers={"Range": f"bytes={len(data)}-"})
    assert r.status == 416, r
    assert r.header("content-range") == f"bytes */{len(data)}"
    # A form we do not serve as a range (suffix, several ranges) gets the whole file.
    r = server.admin("GET", path, headers={"Range": "bytes=-5"})
    assert r.status == 200 and r.body == data, r


def test_model_list_and_show_list_thyroid_and_its_versions(server, pushes):
    models = server.cli_json("model", "list")["models"]
    row = [m for m in models if m["name"] == MODEL]
    assert len(row) == 1 and row[0]["latest_version"] >= 2
    shown = server.cli_json("model", "show", MODEL)
    assert shown["name"] == MODEL
    assert [v["version"] for v in shown["versions"]][:2] == [1, 2]
    one = server.cli_json("model", "show", f"{MODEL}@1")
    assert one["version"] == 1 and one["manifest"]["input"]["size"] == 21
    # The text forms name the model too.
    assert MODEL in server.cli_ok("model", "list")
    assert MODEL in server.cli_ok("model", "show", MODEL)


def test_manifest_signed_elsewhere_is_accepted_and_served_byte_identical(
        server, pushes, tmp_path, train):
    artifact = train(seed=11)
    before = version_numbers(server)
    version = max(before) + 1
    text, sig = signed_elsewhere(server, artifact, server.release_signing_key(),
                                 version=version)
    mpath, spath = tmp_path / "manifest.json", tmp_path / "manifest.sig"
    mpath.write_bytes(text)
    spath.write_text(sig + "\n")
    out = server.cli_json("model", "push", MODEL, str(artifact), "--manifest", str(mpath),
                          "--signature", str(spath))
    assert out["version"] == version
    assert out["sha256"] == ef.sha256_file(artifact)
    assert manifest_bytes(server, version) == text
    served_sig = server.admin("GET", f"{BASE}/versions/{version}/manifest.sig").body.decode()
    assert served_sig.strip() == sig
    assert server.admin("GET", f"{BASE}/versions/{version}/artifact").body == \
        artifact.read_bytes()
    assert version_numbers(server) == before + [version]


def test_manifest_signed_with_another_key_is_refused_and_nothing_stored(
        server, pushes, train):
    artifact = train(seed=12)
    before, objects = version_numbers(server), store_objects(server)
    text, sig = signed_elsewhere(server, artifact, nacl.signing.SigningKey.generate(),
                                 version=max(before) + 1)
    r = upload_signed(server, artifact, text, sig)
    ef.assert_error(r, 422, "bad_signature")
    assert version_numbers(server) == before
    assert store_objects(server) == objects
    assert ef.sha256_file(artifact) not in objects
    ef.wait_until(lambda: server.tmp_files() == [], 3, what="tmp/ empty")


def test_cli_push_of_a_foreign_signature_fails_with_bad_signature(
        server, pushes, train, tmp_path):
    artifact = train(seed=13)
    before = version_numbers(server)
    text, sig = signed_elsewhere(server, artifact, nacl.signing.SigningKey.generate(),
                                 version=max(before) + 1)
    (tmp_path / "m.json").write_bytes(text)
    (tmp_path / "m.sig").write_text(sig)
    rc, out, err = server.cli("model", "push", MODEL, str(artifact), "--manifest",
                              tmp_path / "m.json", "--signature", tmp_path / "m.sig")
    assert rc != 0
    assert "bad_signature" in err
    assert version_numbers(server) == before


def test_manifest_with_a_wrong_sha256_is_refused_with_hash_mismatch(server, pushes, train):
    artifact = train(seed=14)
    before, objects = version_numbers(server), store_objects(server)
    size = artifact.stat().st_size
    text, sig = signed_elsewhere(server, artifact, server.release_signing_key(),
                                 version=max(before) + 1,
                                 artifact={"sha256": "ab" * 32, "size": size})
    r = upload_signed(server, artifact, text, sig)
    ef.assert_error(r, 422, "hash_mismatch")
    assert version_numbers(server) == before
    assert store_objects(server) == objects


def test_manifest_for_another_model_is_refused(server, pushes, train):
    artifact = train(seed=15)
    before = version_numbers(server)
    text, sig = signed_elsewhere(server, artifact, server.release_signing_key(),
                                 version=max(before) + 1, name="other-model")
    r = upload_signed(server, artifact, text, sig)
    ef.assert_error(r, 422, "unprocessable")
    assert version_numbers(server) == before


def test_signed_manifest_with_an_old_version_is_refused_as_not_increasing(
        server, pushes, train):
    artifact = train(seed=16)
    before = version_numbers(server)
    text, sig = signed_elsewhere(server, artifact, server.release_signing_key(), version=1)
    r = upload_signed(server, artifact, text, sig)
    ef.assert_error(r, 409, "version_not_increasing")
    assert version_numbers(server) == before


def test_version_routes_answer_404_for_a_missing_version(server, pushes):
    for suffix in ("", "/manifest", "/manifest.sig", "/artifact"):
        ef.assert_error(server.admin("GET", f"{BASE}/versions/999{suffix}"), 404, "not_found")


def test_concurrent_uploads_get_distinct_increasing_versions(server, thyroid_net):
    """Eight uploads of one new model at once: each is registered under its
    own version (or refused with 409 version_not_increasing), the versions
    are 1..n without gaps, and each manifest names its own version."""
    name = "concurrent"
    ctype, body = ef.multipart([("artifact", "model.net", "application/octet-stream",
                                 thyroid_net.read_bytes())])

    def upload(_):
        return server.admin("POST", f"/api/v1/models/{name}/versions", body,
                            {"Content-Type": ctype})
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(upload, range(8)))
    created = [r.json()["version"] for r in results if r.status == 201]
    for r in results:
        if r.status != 201:
            ef.assert_error(r, 409, "version_not_increasing")
    assert created, results
    assert sorted(created) == list(range(1, len(created) + 1)), created
    doc = server.get_json(f"/api/v1/models/{name}")
    assert [v["version"] for v in doc["versions"]] == sorted(created)
    release = server.keys()["release"]
    for v in created:
        data = manifest_bytes(server, v, name)
        assert json.loads(data)["version"] == v
        sig = server.admin("GET", f"/api/v1/models/{name}/versions/{v}/manifest.sig").body
        ef.verify_detached(release, data, sig.decode())


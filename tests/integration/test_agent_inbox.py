"""The third way in: a package dropped into DATA_DIR/inbox/ by a local tool.

A package is a directory holding manifest.json and manifest.sig (as the
server signed them, fetched from it) and model (the artifact), completed by
a READY file. A signed one is verified, self-tested, tried and served; one
whose signature does not verify, or whose model is not the manifest's
artifact, is refused and the model serving before keeps serving. Either way
the package leaves the inbox.
"""

import base64

import nacl.signing
import pytest

pytest.register_assert_rewrite("agent_fixtures")
import agent_fixtures as af  # noqa: E402
import edgefleet_fixtures as ef  # noqa: E402

pytest_plugins = ["agent_fixtures"]

MODEL = "thyroid"
DEV = "inbox-1"


def x0():
    return af.thyroid_rows(1)[0][0]


def fetch(server, version):
    base = f"/api/v1/models/{MODEL}/versions/{version}"
    out = {}
    for name, path in (("manifest.json", "/manifest"), ("manifest.sig", "/manifest.sig"),
                       ("model", "/artifact")):
        r = server.admin("GET", base + path)
        assert r.status == 200, r
        out[name] = r.body
    return out


def drop(a, name, files):
    """Writes the package's files into inbox/NAME/, READY last."""
    d = a.data_dir / "inbox" / name
    d.mkdir()
    for fname, data in files.items():
        (d / fname).write_bytes(data)
    (d / "READY").write_bytes(b"")
    return d


@pytest.fixture(scope="module")
def device(server, train_net, module_agent):
    """The device serving thyroid@1 (assigned by the server); versions 2..4
    pushed but not assigned."""
    for v in range(1, 5):
        net = train_net(hidden=5, epochs=5, seed=60 + v)
        assert server.push(MODEL, net.path)["version"] == v
    a = module_agent(DEV)
    ef.wait_until(lambda: server.request("GET", f"/api/v1/devices/{DEV}",
                                         token=server.admin_token).status == 200,
                  15, what="enrolled")
    server.cli_json("assign", f"{MODEL}@1", "--device", DEV)
    a.wait_slot(MODEL, 1, "committed", timeout=30)
    return a


def test_signed_package_in_the_inbox_is_deployed_and_served(server, device):
    a = device
    since = a.log_size()
    pkg = drop(a, "pkg1", fetch(server, 2))
    a.wait_log("package_accepted", since=since, timeout=10)
    a.wait_state("committed", version=2, since=since, timeout=15)
    states = [e["state"] for e in a.deploy_states(since)]
    assert states == ["staged", "self-test", "active", "committed"], states
    assert a.infer(x0())["model"] == f"{MODEL}@2"
    assert not pkg.exists(), "the package stayed in the inbox"
    sha = server.get_json(f"/api/v1/models/{MODEL}/versions/2")["sha256"]
    assert [p.name for p in a.model_files()] == [f"{sha}.model"]
    assert not a.bad_model_files()

    # The server hears of it.
    def reported():
        r = a.show()["reported"].get("production") or {}
        return r if (r.get("version"), r.get("state")) == (2, "committed") else None
    ef.wait_until(reported, 10, what="the inbox deployment reported")

    # And it stays after a restart (committed, served before any network).
    a.restart()
    assert a.infer(x0())["model"] == f"{MODEL}@2"


def test_package_with_a_bad_signature_is_refused_and_the_old_model_keeps_serving(server, device):
    a = device
    before = a.infer(x0())["model"]
    files = fetch(server, 3)
    other = nacl.signing.SigningKey.generate()
    files["manifest.sig"] = base64.b64encode(other.sign(files["manifest.json"]).signature)
    since = a.log_size()
    pkg = drop(a, "pkg2", files)
    refused = a.wait_log("package_refused", since=since, timeout=10)
    assert refused["reason"] == "manifest signature does not verify", refused
    assert refused["error"] == "bad_signature", refused
    assert not a.deploy_states(since)
    assert a.infer(x0())["model"] == before
    ef.wait_until(lambda: not pkg.exists(), 5, what="the package leaves the inbox")
    assert not list((a.data_dir / "downloads").iterdir())


def test_package_whose_model_is_not_the_signed_artifact_is_refused(server, device):
    a = device
    before = a.infer(x0())["model"]
    files = fetch(server, 4)
    files["model"] = fetch(server, 1)["model"]   # a real network, but not this one
    since = a.log_size()
    pkg = drop(a, "pkg3", files)
    refused = a.wait_log("package_refused", since=since, timeout=10)
    assert refused["reason"] == "artifact hash mismatch", refused
    assert not a.deploy_states(since)
    assert a.infer(x0())["model"] == before
    ef.wait_until(lambda: not pkg.exists(), 5, what="the package leaves the inbox")

    def reported():
        r = a.show()["reported"].get("production") or {}
        return r if (r.get("version"), r.get("state")) == (4, "failed") else None
    r = ef.wait_until(reported, 10, what="the refusal reported")
    assert r["reason"] == "artifact hash mismatch", r

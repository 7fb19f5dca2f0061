"""edgefleet-train (server/train/) against real data and a real server.

Trains on the PROBEN1 thyroid set that libfann-doc ships (3600 + 3600 rows,
21 inputs, 3 classes) with small settings (hidden 10, at most 100 epochs), and
registers with a real edgefleet-server:
  - the outputs exist (float and fixed-point networks, meta.json,
    manifest.json) and describe the run; the same seed gives the same network;
  - the meta's baselines, golden vectors, metrics and lineage are accepted by
    the server as they are (`edgefleet model push --meta`) and reach the
    signed manifest unchanged;
  - --register uploads v2 with its lineage when it beats v1 on the holdout,
    and refuses (exit 3, nothing registered) when the margin cannot be met;
  - the environment of the server's --retrain-command (EF_MODEL,
    EF_SERVER_URL, EF_ALERT_ID, EF_REASON) stands in for the flags;
  - --rollout-rings creates and starts a rollout of the registered version;
  - bad data and bad flags fail with one precise line and register nothing.
"""

import json
import os
import subprocess

import pytest

import edgefleet_fixtures as ef

TRAIN_ARGS = ("--hidden", "10", "--epochs", "100")


def train_bin():
    path = ef.BIN_DIR / "edgefleet-train"
    assert os.access(path, os.X_OK), f"{path} is not built (EF_BIN_DIR?)"
    return str(path)


def run_train(*args, env=None, timeout=120):
    """Runs edgefleet-train; (rc, stdout, stderr). Fails on a sanitizer report."""
    full_env = dict(os.environ)
    for name in ("EF_MODEL", "EF_DATASET_ID", "EF_ALERT_ID", "EF_REASON", "EF_SERVER_URL",
                 "EDGEFLEET_SERVER", "EDGEFLEET_TOKEN"):
        full_env.pop(name, None)
    full_env.update(env or {})
    p = subprocess.run([train_bin()] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout, env=full_env)
    report = ef.sanitizer_report(p.stderr)
    assert report is None, f"edgefleet-train: sanitizer report:\n{report}"
    return p.returncode, p.stdout, p.stderr


def versions(server, model):
    r = server.admin("GET", f"/api/v1/models/{model}")
    if r.status == 404:
        return []
    assert r.status == 200, r
    return sorted(v["version"] for v in r.json()["versions"])


def manifest_of(server, model, version):
    return server.get_json(f"/api/v1/models/{model}/versions/{version}")["manifest"]


def push_weak_v1(server, model, tmp_path):
    """Registers an undertrained network (4 hidden neurons, 2 epochs) as v1."""
    net = tmp_path / "weak.net"
    p = subprocess.run([str(ef.TEST_BIN_DIR / "ef-train-fixture"), str(ef.THYROID_TRAIN),
                        str(net), "4", "2"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    server.cli_json("model", "push", model, str(net), "--data", str(ef.THYROID_TEST))
    assert versions(server, model) == [1]


def test_outputs_describe_the_run_and_the_seed_repeats_it(tmp_path):
    out, again, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d, seed in ((out, 5), (again, 5), (other, 6)):
        rc, stdout, stderr = run_train("--dataset", ef.THYROID_TRAIN, "--dataset",
                                       ef.THYROID_TEST, "--out", d, "--seed", seed, *TRAIN_ARGS)
        assert rc == 0, stderr
        assert "holdout accuracy" in stdout
    assert (out / "model.net").read_text().startswith("FANN_FLO_2.1\n")
    assert (out / "model-fixed.net").read_text().startswith("FANN_FIX_2.0\n")
    # Same data and seed: the same split and the same network, byte for byte.
    assert (out / "model.net").read_bytes() == (again / "model.net").read_bytes()
    assert (out / "model.net").read_bytes() != (other / "model.net").read_bytes()

    record = json.loads((out / "manifest.json").read_text())
    meta = json.loads((out / "meta.json").read_text())
    assert record["meta"] == meta
    assert meta["backend"] == "fann"
    m = meta["metrics"]
    # 7200 rows merged, round(0.2 * 7200) held out.
    assert (m["train_rows"], m["holdout_rows"]) == (5760, 1440)
    assert m["epochs"] == 100
    assert 0.9 < m["holdout_accuracy"] <= 1.0 and 0 <= m["holdout_mse"] < 0.05
    assert [c["rows"] for c in m["per_class"]] == \
        [c["rows"] for c in record["evaluation"]["candidate_holdout"]["per_class"]]
    assert sum(c["rows"] for c in m["per_class"]) == 1440
    assert len(meta["baseline"]["features"]) == 21 and len(meta["baseline"]["output"]) == 3
    assert all(len(h["fractions"]) == 10 for h in meta["baseline"]["features"])
    assert len(meta["test_vectors"]) == 8
    assert meta["lineage"] == {"parent_version": None, "dataset_id": None, "alert_id": None,
                               "trigger": None}
    assert record["evaluation"]["decision"] == "not_registered"
    assert record["registered_version"] is None
    assert [s["rows"] for s in record["training"]["sources"]] == [3600, 3600]
    assert record["artifacts"]["model"]["sha256"] == ef.sha256_file(out / "model.net")


def test_meta_is_accepted_by_the_server_as_it_is(server, tmp_path):
    out = tmp_path / "out"
    rc, _, stderr = run_train("--dataset", ef.THYROID_TRAIN, "--out", out, "--golden", "5",
                              "--bins", "12", *TRAIN_ARGS)
    assert rc == 0, stderr
    meta = json.loads((out / "meta.json").read_text())
    pushed = server.cli_json("model", "push", "train-meta", str(out / "model.net"), "--meta",
                             str(out / "meta.json"))
    man = manifest_of(server, "train-meta", pushed["version"])
    assert man["baseline"] == meta["baseline"]
    assert len(man["baseline"]["features"][0]["edges"]) == 13
    assert man["test_vectors"] == meta["test_vectors"] and len(man["test_vectors"]) == 5
    assert man["metrics"] == meta["metrics"]
    assert man["input"]["size"] == 21 and man["output"]["size"] == 3
    # The golden vectors are the network's own outputs, as a device's
    # self-test will recompute them.
    net = ef.FannNet(out / "model.net")
    for v in man["test_vectors"]:
        got = net.run(v["input"])
        assert all(abs(a - b) <= v["tolerance"] for a, b in zip(got, v["output"]))


def test_register_v2_when_better_then_refuse_when_the_margin_cannot_be_met(server, tmp_path):
    model = "train-reg"
    push_weak_v1(server, model, tmp_path)
    v1 = manifest_of(server, model, 1)
    rc, stdout, stderr = run_train("--dataset", ef.THYROID_TRAIN, "--out", tmp_path / "r1",
                                   "--register", "--model", model, "--server", server.url,
                                   "--token", server.admin_token, "--alert-id", "41",
                                   "--reason", "drift mean 0.41 above 0.25", *TRAIN_ARGS)
    assert rc == 0, stderr
    assert stdout.splitlines()[-1].startswith(f"registered {model}@2: holdout accuracy ")
    assert f"of {model}@1" in stdout
    assert versions(server, model) == [1, 2]
    man = manifest_of(server, model, 2)
    assert man["lineage"] == {"parent_version": 1, "dataset_id": None, "alert_id": 41,
                              "trigger": "drift mean 0.41 above 0.25"}
    # The names of v1 carry over; the metrics are the trainer's.
    assert man["input"]["features"] == v1["input"]["features"]
    record = json.loads((tmp_path / "r1" / "manifest.json").read_text())
    assert record["registered_version"] == 2 and record["evaluation"]["decision"] == "registered"
    assert record["evaluation"]["current"]["version"] == 1
    assert man["metrics"]["holdout_accuracy"] == record["meta"]["metrics"]["holdout_accuracy"]
    assert man["metrics"]["holdout_accuracy"] >= \
        record["evaluation"]["current"]["holdout"]["accuracy"] + 0.01

    # No network can gain 1.0 in accuracy over v2: nothing is registered.
    rc, stdout, stderr = run_train("--dataset", ef.THYROID_TRAIN, "--out", tmp_path / "r2",
                                   "--register", "--model", model, "--server", server.url,
                                   "--token", server.admin_token, "--margin", "1.0",
                                   "--seed", "9", *TRAIN_ARGS)
    assert rc == 3, (stdout, stderr)
    line = stdout.splitlines()[-1]
    assert line.startswith("not registered: holdout accuracy ")
    assert f"of {model}@2 by the margin 1.0000" in line
    assert versions(server, model) == [1, 2]
    record = json.loads((tmp_path / "r2" / "manifest.json").read_text())
    assert record["evaluation"]["decision"] == "not_better"
    assert record["registered_version"] is None
    assert record["meta"]["lineage"]["parent_version"] == 2


def test_retrain_command_environment_stands_in_for_the_flags(server, tmp_path):
    model = "train-env"
    push_weak_v1(server, model, tmp_path)
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = {"EF_MODEL": model, "EF_SERVER_URL": server.url, "EF_ALERT_ID": "5",
           "EF_REASON": "accuracy mean 0.40 below 0.80 over 2 devices", "EF_DATASET_ID": "",
           "EDGEFLEET_TOKEN": server.admin_token}
    p = subprocess.run([train_bin(), "--register", "--dataset", str(ef.THYROID_TRAIN),
                        *TRAIN_ARGS], cwd=workdir, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, **env))
    assert p.returncode == 0, p.stderr
    assert ef.sanitizer_report(p.stderr) is None
    assert versions(server, model) == [1, 2]
    assert manifest_of(server, model, 2)["lineage"] == {
        "parent_version": 1, "dataset_id": None, "alert_id": 5,
        "trigger": "accuracy mean 0.40 below 0.80 over 2 devices"}
    # Without --out, a run for an alert writes into ./retrain-MODEL-alert-ID.
    assert (workdir / f"retrain-{model}-alert-5" / "model.net").is_file()


def test_first_version_is_registered_without_comparison_and_rollout_starts(server, tmp_path):
    model = "train-first"
    server.cli_ok("ring", "create", "train-canary", "--position", "1")
    rc, stdout, stderr = run_train("--dataset", ef.THYROID_TRAIN, "--out", tmp_path / "o",
                                   "--register", "--model", model, "--server", server.url,
                                   "--token", server.admin_token, "--rollout-rings",
                                   "train-canary", *TRAIN_ARGS)
    assert rc == 0, stderr
    lines = stdout.splitlines()
    assert lines[-2].startswith(f"registered {model}@1: holdout accuracy ")
    assert "no earlier version to compare with" in lines[-2]
    assert lines[-1].startswith("started production rollout ")
    rollout_id = int(lines[-1].split()[3])
    doc = server.get_json(f"/api/v1/rollouts/{rollout_id}")
    assert (doc["model"], doc["version"]) == (model, 1)
    assert doc["state"] != "draft"
    assert [g["name"] for g in doc["rings"]] == ["train-canary"]
    record = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert record["rollout_id"] == rollout_id
    assert manifest_of(server, model, 1)["lineage"]["parent_version"] is None


def test_a_rollout_over_an_unknown_ring_fails_after_registering(server, tmp_path):
    model = "train-noring"
    rc, stdout, stderr = run_train("--dataset", ef.THYROID_TRAIN, "--out", tmp_path / "o",
                                   "--register", "--model", model, "--server", server.url,
                                   "--token", server.admin_token, "--rollout-rings",
                                   "no-such-ring", *TRAIN_ARGS)
    assert rc == 1
    assert f"{model}@1 is registered but its production rollout over no-such-ring did not " \
        "start" in stderr
    assert versions(server, model) == [1]


@pytest.mark.parametrize("text,reason", [
    ("3 21 3\n" + "0 " * 21 + "\n1 0 0\n", "row 2: expected 21 input and 3 output numbers"),
    ("not a header\n", "does not start with a FANN training header"),
])
def test_malformed_data_fails_with_the_row_and_registers_nothing(server, tmp_path, text, reason):
    bad = tmp_path / "bad.data"
    bad.write_text(text)
    rc, stdout, stderr = run_train("--dataset", ef.THYROID_TRAIN, "--dataset", bad, "--out",
                                   tmp_path / "o", "--register", "--model", "train-bad",
                                   "--server", server.url, "--token", server.admin_token)
    assert rc == 1
    assert stderr.strip().splitlines()[-1].startswith("edgefleet-train: malformed: ")
    assert reason in stderr and str(bad) in stderr
    assert not (tmp_path / "o" / "model.net").exists()
    assert versions(server, "train-bad") == []


def test_data_of_another_shape_is_refused(tmp_path):
    rc, _, stderr = run_train("--dataset", ef.THYROID_TRAIN, "--dataset",
                              ef.DATASETS / "diabetes.train", "--out", tmp_path / "o")
    assert rc == 1
    assert "diabetes.train has 8 inputs and 2 outputs but the data before it has 21 and 3" \
        in stderr


@pytest.mark.parametrize("args,reason", [
    ((), "no data"),
    (("--dataset", "x.data"), "--out DIR is required"),
    (("--dataset", "x", "--out", "o", "--holdout", "1"), "--holdout must be a share"),
    (("--dataset", "x", "--out", "o", "--register"), "--register needs --model NAME"),
    (("--dataset", "x", "--out", "o", "--dataset-id", "3"), "--dataset-id needs --from-server"),
    (("--dataset", "x", "--out", "o", "--margin", "0.1"), "go with --register"),
    (("--dataset", "x", "--out", "o", "--epochs", "0"), "--epochs must be"),
    (("--dataset", "x", "--out", "o", "--model", "Bad Name"), "not a valid model name"),
    (("--bogus",), "--bogus"),
])
def test_bad_flags_are_usage_errors(tmp_path, args, reason):
    rc, _, stderr = run_train(*args)
    assert rc == 2, stderr
    assert reason in stderr


def test_help_lists_every_flag():
    rc, stdout, _ = run_train("--help")
    assert rc == 0
    for flag in ("--dataset", "--from-server", "--model", "--dataset-id", "--out", "--hidden",
                 "--epochs", "--learning-rate", "--target-mse", "--seed", "--holdout",
                 "--golden", "--bins", "--register", "--server", "--margin", "--parent-version",
                 "--alert-id", "--reason", "--rollout-rings", "--shadow-rings", "EF_MODEL",
                 "EF_DATASET_ID", "EF_ALERT_ID", "EF_REASON", "EF_SERVER_URL"):
        assert flag in stdout, flag


def upload_thyroid_samples(server, model, device, device_token, dataset_id, rows):
    """Uploads rows [(inputs, one-hot outputs)] as labelled samples, 1000 a batch."""
    for start in range(0, len(rows), 1000):
        batch = [{"input": x, "label": y.index(max(y))} for x, y in rows[start:start + 1000]]
        r = server.request("POST", f"/api/v1/devices/{device}/samples",
                           {"model": f"{model}@1", "dataset_id": dataset_id, "samples": batch},
                           token=device_token)
        assert r.status == 201, r
        assert r.json()["accepted"] == len(batch)


def test_from_server_trains_on_the_exported_dataset(server, tmp_path):
    model = "train-ds"
    push_weak_v1(server, model, tmp_path)
    device = "train-ds-dev"
    device_token = server.enroll(device)["device_token"]
    server.assign(model, 1, device)
    r = server.admin("PUT", f"/api/v1/models/{model}/collection",
                     {"enabled": True, "sample_rate": 1.0, "max_samples": 10000})
    assert r.status == 200, r
    dataset_id = r.json()["dataset_id"]
    rows = ef.read_fann_data(ef.THYROID_TEST)
    upload_thyroid_samples(server, model, device, device_token, dataset_id, rows)

    out = tmp_path / "o"
    rc, stdout, stderr = run_train("--from-server", server.url, "--model", model,
                                   "--dataset-id", dataset_id, "--token", server.admin_token,
                                   "--out", out, "--register", *TRAIN_ARGS)
    assert rc == 0, stderr
    assert stdout.splitlines()[-1].startswith(f"registered {model}@2")
    # The export is kept beside the outputs, and it is what was trained on.
    export = out / f"dataset-{dataset_id}.data"
    assert export.read_text().split(None, 3)[:3] == ["3600", "21", "3"]
    assert [(x, y) for x, y in ef.read_fann_data(export)] == \
        [(x, [1.0 if i == y.index(max(y)) else 0.0 for i in range(3)]) for x, y in rows]
    record = json.loads((out / "manifest.json").read_text())
    assert record["training"]["sources"] == [
        {"server": server.url, "dataset_id": dataset_id, "file": str(export), "rows": 3600,
         "sha256": ef.sha256_file(export)}]
    lineage = manifest_of(server, model, 2)["lineage"]
    assert lineage == {"parent_version": 1, "dataset_id": str(dataset_id), "alert_id": None,
                       "trigger": None}

    # With a base set as well: the files first, then the export.
    rc, _, stderr = run_train("--dataset", ef.THYROID_TRAIN, "--from-server", server.url,
                              "--model", model, "--dataset-id", dataset_id, "--token",
                              server.admin_token, "--out", tmp_path / "both", *TRAIN_ARGS)
    assert rc == 0, stderr
    record = json.loads((tmp_path / "both" / "manifest.json").read_text())
    assert [s["rows"] for s in record["training"]["sources"]] == [3600, 3600]
    assert record["meta"]["metrics"]["holdout_rows"] == 1440

    # A data set that does not exist: the server's answer, in one line.
    rc, _, stderr = run_train("--from-server", server.url, "--model", model, "--dataset-id",
                              "999999", "--token", server.admin_token, "--out", tmp_path / "x")
    assert rc == 1
    assert "(HTTP 404)" in stderr


def test_shadow_rings_start_a_shadow_rollout(server, tmp_path):
    model = "train-shadow"
    push_weak_v1(server, model, tmp_path)
    server.cli_ok("ring", "create", "train-shadow-ring", "--position", "7")
    rc, stdout, stderr = run_train("--dataset", ef.THYROID_TRAIN, "--out", tmp_path / "o",
                                   "--register", "--model", model, "--server", server.url,
                                   "--token", server.admin_token, "--shadow-rings",
                                   "train-shadow-ring", *TRAIN_ARGS)
    assert rc == 0, stderr
    assert stdout.splitlines()[-1].startswith("started shadow rollout ")
    rollout_id = int(stdout.splitlines()[-1].split()[3])
    doc = server.get_json(f"/api/v1/rollouts/{rollout_id}")
    assert (doc["model"], doc["version"], doc["slot"]) == (model, 2, "shadow")
    assert doc["state"] != "draft"


@pytest.mark.parametrize("alert_id", ["7", 0, 1.5])
def test_server_refuses_a_lineage_alert_id_that_is_not_a_positive_integer(server, thyroid_net,
                                                                          tmp_path, alert_id):
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"lineage": {"alert_id": alert_id}}))
    rc, _, stderr = server.cli("model", "push", "train-alert", str(thyroid_net), "--meta",
                               str(meta))
    assert rc == 1
    assert "meta.lineage.alert_id must be an integer >= 1 or null (HTTP 422)" in stderr
    assert versions(server, "train-alert") == []


def test_parent_version_chooses_the_version_to_beat(server, tmp_path):
    model = "train-parent"
    push_weak_v1(server, model, tmp_path)
    server.cli_json("model", "push", model, str(tmp_path / "weak.net"), "--data",
                    str(ef.THYROID_TEST))
    assert versions(server, model) == [1, 2]
    rc, stdout, stderr = run_train("--dataset", ef.THYROID_TRAIN, "--out", tmp_path / "o",
                                   "--register", "--model", model, "--server", server.url,
                                   "--token", server.admin_token, "--parent-version", "1",
                                   *TRAIN_ARGS)
    assert rc == 0, stderr
    assert f"registered {model}@3" in stdout and f"of {model}@1 " in stdout
    assert manifest_of(server, model, 3)["lineage"]["parent_version"] == 1
    # A version that does not exist: the server's 404, nothing registered.
    rc, _, stderr = run_train("--dataset", ef.THYROID_TRAIN, "--out", tmp_path / "p",
                              "--register", "--model", model, "--server", server.url,
                              "--token", server.admin_token, "--parent-version", "9",
                              "--epochs", "5")
    assert rc == 1
    assert "(HTTP 404)" in stderr
    assert versions(server, model) == [1, 2, 3]

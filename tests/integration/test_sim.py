"""edgefleet-sim against the real broker and server: 200 simulated devices
(the agent's own modules, one process) enroll, converge on an assignment and
then on a rollout, and the share made to fail is reported failed, device by
device, while the slow and the offline shares still converge.

Behaviour, not speed: nothing here is timed (the benchmarks in tests/bench/
measure how fast)."""

import json
import os
import subprocess
import threading

import pytest

import edgefleet_fixtures as ef

DEVICES = 200
FAIL_SHARE = 0.1
SIM = ef.TEST_BIN_DIR / "edgefleet-sim"


class Sim:
    """edgefleet-sim as a child process; its stdout lines (JSON) are collected
    by a thread."""

    def __init__(self, workdir, server, broker, token, *extra):
        assert os.access(SIM, os.X_OK), f"{SIM} is not built (EF_TEST_BIN_DIR?)"
        self.stderr_path = workdir / "sim.stderr"
        self.args = [str(SIM), "--devices", str(DEVICES), "--server", server.url,
                     "--mqtt", broker.url, "--enroll-token", token,
                     "--data-dir", str(workdir / "devices"), "--tag", "site=sim",
                     "--status-interval", "0.5", *extra]
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self._err,
                                     stdin=subprocess.DEVNULL, text=True)
        self.lines = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(json.loads(line))

    def events(self, kind):
        with self._lock:
            return [e for e in self.lines if e["event"] == kind]

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def stop(self):
        rc = ef.stop_process(self.proc, timeout=30)
        self._reader.join(timeout=10)
        self._err.close()
        return rc


@pytest.fixture
def sim_fleet(server, broker, tmp_path):
    server.cli_ok("ring", "create", "sim", "--selector", "site=sim")
    token = server.create_enroll_token(uses=DEVICES)
    sims = []

    def start(*extra):
        s = Sim(tmp_path, server, broker, token, *extra)
        sims.append(s)
        return s
    yield start
    for s in sims:
        if s.proc.poll() is None:
            s.stop()


def devices_by_state(server, version):
    """{device id: production state} of the ring's devices, for the given
    version (None when the device's slot names another version)."""
    out = {}
    for d in server.get_json("/api/v1/devices")["devices"]:
        if d.get("ring") != "sim":
            continue
        slot = (d.get("slots") or {}).get("production") or {}
        out[d["id"]] = slot.get("state") if slot.get("version") == version else None
    return out


def wait_states(server, version, failing, timeout):
    """Waits until every device of the ring is committed on version but the
    failing ones, which are failed."""
    def settled():
        states = devices_by_state(server, version)
        if len(states) != DEVICES:
            return False
        return all(state == ("failed" if dev in failing else "committed")
                   for dev, state in states.items())
    try:
        ef.wait_until(settled, timeout=timeout, interval=0.5, what=f"version {version} settled")
    except AssertionError:
        states = devices_by_state(server, version)
        wrong = {d: s for d, s in states.items()
                 if s != ("failed" if d in failing else "committed")}
        raise AssertionError(f"{len(states)} devices, not settled: {dict(list(wrong.items())[:20])}")


def test_sim_fleet_converges_and_failing_share_is_failed(server, broker, sim_fleet,
                                                         thyroid_net, thyroid_net_b):
    v1 = server.push("thyroid", thyroid_net)["version"]
    sim = sim_fleet("--fail-share", str(FAIL_SHARE), "--trial-seconds", "1",
                    "--infer-rate", "2", "--metrics-interval", "2",
                    "--slow-share", "0.05", "--slow-bps", "4096",
                    "--offline-share", "0.05", "--offline-at", "2", "--offline-for", "4")
    ef.wait_until(lambda: sim.events("start"), timeout=30, what="the start line")
    start = sim.events("start")[0]
    failing = set(start["failing"])
    assert len(failing) == int(DEVICES * FAIL_SHARE)
    assert len(start["slow"]) == 10 and len(start["offline"]) == 10
    assert not failing & (set(start["slow"]) | set(start["offline"]))

    # Every device enrolls: the server knows all of them, in the ring.
    def all_enrolled():
        return len(devices_by_state(server, v1)) == DEVICES
    ef.wait_until(all_enrolled, timeout=90, interval=0.5, what="every device enrolled")
    ring = [r for r in server.get_json("/api/v1/rings")["rings"] if r["name"] == "sim"][0]
    assert ring["devices"] == DEVICES

    server.cli_ok("assign", f"thyroid@{v1}", "--ring", "sim")
    wait_states(server, v1, failing, timeout=90)

    # The rollout of a new version converges on every healthy device, slow
    # and offline ones included; the failing share is reported failed.
    v2 = server.push("thyroid", thyroid_net_b)["version"]
    rollout = server.cli_json("rollout", "create", f"thyroid@{v2}", "--rings", "sim",
                              "--success", "0.85", "--error", "0.15")
    server.cli_ok("rollout", "start", str(rollout["id"]))
    wait_states(server, v2, failing, timeout=90)

    def finished():
        doc = server.get_json(f"/api/v1/rollouts/{rollout['id']}")
        return doc if doc["state"] not in ("draft", "running") else None
    doc = ef.wait_until(finished, timeout=60, interval=0.5, what="rollout finished")
    doc = server.get_json(f"/api/v1/rollouts/{rollout['id']}")
    assert doc["state"] == "succeeded", doc
    counts = doc["rings"][0]["counts"]
    assert counts["committed"] == DEVICES - len(failing), counts
    assert counts["failed"] == len(failing), counts

    # Why the failing devices failed, as they reported it.
    devs = {d["id"]: d for d in server.get_json("/api/v1/devices")["devices"]}
    for dev in failing:
        reason = devs[dev]["slots"]["production"]["reason"] or ""
        assert "backend" in reason, (dev, devs[dev]["slots"])

    # Telemetry windows reached the server from the simulated devices.
    ef.wait_until(lambda: sim.events("status") and sim.events("status")[-1]["inferences"] > 0,
                  timeout=10, what="inferences served")

    assert sim.stop() == 0, sim.stderr()[-4000:]
    stop = sim.events("stop")[-1]
    assert stop["enrolled"] == DEVICES and stop["dead"] == 0, stop
    assert stop["states"].get("committed") == DEVICES - len(failing), stop
    assert stop["states"].get("failed") == len(failing), stop
    assert stop["committed"].get(f"thyroid@{v2}") == DEVICES - len(failing), stop
    report = ef.sanitizer_report(sim.stderr())
    assert report is None, report


def test_sim_refuses_a_fleet_the_machine_cannot_hold(tmp_path):
    """More devices than the hard file-descriptor limit allows: a clear error
    and exit status 2, before anything starts."""
    assert os.access(SIM, os.X_OK), f"{SIM} is not built (EF_TEST_BIN_DIR?)"
    # The simulator raises the hard limit itself when it may (CAP_SYS_RESOURCE):
    # as root, drop that capability so that the limit holds.
    drop = ["setpriv", "--bounding-set", "-sys_resource"] if os.geteuid() == 0 else []
    p = subprocess.run(["sh", "-c", 'ulimit -n 256 && exec "$@"', "sh", *drop, str(SIM),
                        "--devices", "1000", "--server", "http://127.0.0.1:9",
                        "--mqtt", "mqtt://127.0.0.1:9", "--enroll-token", "et_x",
                        "--data-dir", str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p
    assert "cannot hold 1000 devices" in p.stderr and "file descriptors" in p.stderr, p.stderr
    assert not (tmp_path / "d").exists()

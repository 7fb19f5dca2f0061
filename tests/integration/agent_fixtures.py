"""Fixtures and machinery of the agent's integration tests (test_agent_*.py).

A test module loads this file as a pytest plugin:

    pytest_plugins = ["agent_fixtures"]

which gives it these fixtures (next to conftest.py's broker, server,
make_server, thyroid_net, thyroid_net_b):

  agent        a factory: agent("dev-1", tags={"site": "lab"}, trial_seconds=4)
               creates an enrollment token with the CLI (`enroll-token create`),
               starts edgefleet-agent --server URL --mqtt URL --data-dir DIR
               --device-id ID --enroll-token T [--class C] [--tag k=v]
               --metrics-interval 2 --poll-interval 5 --trial-seconds 2
               --trial-min-requests 5 (each overridable as a keyword, None
               drops it), stderr to a log file; returns an Agent. Every agent
               is stopped at teardown by its PID (SIGTERM, then SIGKILL); one
               that was running must exit 0 and no agent log may hold a
               sanitizer report.
  module_agent the same factory, for agents shared by a whole test module.
  train_net    a factory of FANN networks trained with ef-train-fixture,
               cached for the session: train_net(hidden, epochs, seed, data=,
               vectors=K) -> TrainedNet (.path, .vectors: FANN's own outputs
               of the first K rows of data).

and a report hook: when a test fails, the tail of every agent log of that
test is appended to its report.

Helpers: Agent (infer over the Unix socket, infer_cli, kill9, restart,
deploy_states from the log, wait_slot on `edgefleet --json device show`),
InferClient (one persistent socket connection), ThrottleProxy (a slow HTTP
relay), FileMirror (a tiny HTTP server for forged assignments), sign_envelope
and forge_assignment (the server key's signature), RestartableBroker.
"""

import base64
import datetime
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nacl.signing
import pytest

import edgefleet_fixtures as ef

DEFAULT_OPTIONS = {
    "metrics_interval": 2,
    "poll_interval": 5,
    "trial_seconds": 2,
    "trial_min_requests": 5,
}


def agent_bin():
    return str(ef.BIN_DIR / "edgefleet-agent")


def topic(device_id, leaf):
    return f"edgefleet/v1/devices/{device_id}/{leaf}"


def _tail(text, limit=6000):
    return text if len(text) <= limit else "...\n" + text[-limit:]


# --------------------------------------------------------------------------
# Log lines: ts=... level=... event=NAME key=value key="quoted \" value"

_KV = re.compile(r'([A-Za-z_][\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_log_line(line):
    """A log line as a dict of its key=value pairs (quotes removed)."""
    out = {}
    for k, v in _KV.findall(line):
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            v = re.sub(r'\\(.)', r'\1', v[1:-1])
        out[k] = v
    return out


def log_events(text, event):
    """Every line of text whose event is event, parsed."""
    return [parse_log_line(line) for line in text.splitlines()
            if f" event={event} " in line + " "]


# --------------------------------------------------------------------------
# The inference socket

class InferError(AssertionError):
    pass


class InferClient:
    """One connection to an agent's inference socket (newline-delimited JSON)."""

    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = b""

    def send_line(self, obj):
        data = obj if isinstance(obj, (bytes, str)) else json.dumps(obj)
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data + b"\n")

    def read_line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise InferError(f"the agent closed the connection (pending {self.buf[:200]!r})")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)

    def request(self, obj):
        """Sends one request object, returns the parsed answer."""
        self.send_line(obj)
        return self.read_line()

    def infer(self, vector, **extra):
        return self.request(dict({"input": list(vector)}, **extra))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------
# The agent

class Agent:
    """One edgefleet-agent process (and the data directory it keeps across
    restarts)."""

    def __init__(self, workdir, device_id, server, mqtt_url, enroll_token=None, cls=None,
                 tags=None, options=None, extra_args=(), server_url=None):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.device_id = device_id
        self.server = server                 # ef.Server (or anything with .url and .cli_json)
        self.server_url = server_url or server.url
        self.mqtt_url = mqtt_url
        self.enroll_token = enroll_token
        self.cls = cls
        self.tags = dict(tags or {})
        self.options = dict(DEFAULT_OPTIONS)
        self.options.update(options or {})
        self.extra_args = list(extra_args)
        self.data_dir = self.dir / "data"
        self.log_path = self.dir / "agent.log"
        self.socket_path = self.data_dir / "infer.sock"
        self.proc = None
        self._log = None
        self.starts = []        # log offsets where each start began
        self.exit_codes = []    # of every stop / kill

    # -- processes ------------------------------------------------------------

    def args(self):
        a = [agent_bin(), "--server", self.server_url, "--mqtt", self.mqtt_url,
             "--data-dir", str(self.data_dir), "--device-id", self.device_id]
        if self.enroll_token:
            a += ["--enroll-token", self.enroll_token]
        if self.cls:
            a += ["--class", self.cls]
        for k, v in self.tags.items():
            a += ["--tag", f"{k}={v}"]
        for k, v in self.options.items():
            if v is not None:
                a += ["--" + k.replace("_", "-"), str(v)]
        return a + [str(x) for x in self.extra_args]

    def start(self, wait_socket=True, timeout=15.0):
        assert self.proc is None or self.proc.poll() is not None, "agent already running"
        assert os.access(agent_bin(), os.X_OK), f"{agent_bin()} is not built (EF_BIN_DIR?)"
        self._log = open(self.log_path, "ab")
        self.starts.append(self._log.tell())
        self.proc = subprocess.Popen(self.args(), stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        if wait_socket:
            self.wait_socket(timeout)
        return self

    def wait_socket(self, timeout=15.0):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"edgefleet-agent exited with {self.proc.returncode}:\n"
                                     f"{_tail(self.log_text())}")
            return self.socket_path.exists() and self._connectable()
        ef.wait_until(ready, timeout, what=f"{self.device_id}'s inference socket")

    def _connectable(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(1)
            s.connect(str(self.socket_path))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def _closed(self):
        if self._log:
            self._log.close()
            self._log = None
        self.exit_codes.append(self.proc.returncode)

    def stop(self, timeout=10.0):
        """SIGTERM (then SIGKILL after timeout) by PID; returns the exit status."""
        if self.proc is None or (self.proc.poll() is not None and not self._log):
            return self.proc.returncode if self.proc else None
        rc = ef.stop_process(self.proc, timeout)
        self._closed()
        return rc

    def kill9(self):
        """SIGKILL by PID, at once; returns the exit status (-9)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        rc = self.proc.wait(10)
        self._closed()
        return rc

    def restart(self, wait_socket=True, **options):
        """Stops (SIGTERM) if running, then starts again with the same data
        directory; keyword options change flags for this and later starts."""
        if self.alive():
            rc = self.stop()
            assert rc == 0, f"edgefleet-agent exited {rc} on SIGTERM:\n{_tail(self.log_text())}"
        elif self._log:
            self.proc.wait(10)
            self._closed()
        self.options.update(options)
        return self.start(wait_socket=wait_socket)

    # -- logs -------------------------------------------------------------------

    def log_text(self, since=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_size(self):
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def events(self, event, since=0):
        return log_events(self.log_text(since), event)

    def deploy_states(self, since=0):
        """The deploy_state lines of the log (since a byte offset), parsed:
        [{"slot", "model", "version", "state", "reason", ...}]."""
        return self.events("deploy_state", since)

    def wait_log(self, event, pred=lambda e: True, since=0, timeout=10.0):
        """Waits for a log line of event (matching pred); returns it parsed."""
        def found():
            for e in self.events(event, since):
                if pred(e):
                    return e
            return None
        try:
            return ef.wait_until(found, timeout, interval=0.05, what=f"log event {event}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- {self.device_id} log ---\n"
                                 f"{_tail(self.log_text())}") from None

    def wait_state(self, state, version=None, since=0, timeout=15.0):
        """Waits for a deploy_state line with this state (and version)."""
        return self.wait_log("deploy_state", lambda e: e.get("state") == state and (
            version is None or e.get("version") == str(version)), since, timeout)

    # -- inference ----------------------------------------------------------------

    def connect(self, timeout=10.0):
        return InferClient(self.socket_path, timeout)

    def infer(self, vector, timeout=10.0, **extra):
        """One inference over a fresh connection: the parsed answer."""
        with self.connect(timeout) as c:
            return c.infer(vector, **extra)

    def infer_cli(self, vector, timeout=20):
        """`edgefleet-agent infer --data-dir DIR JSON`: (rc, stdout, stderr)."""
        p = subprocess.run([agent_bin(), "infer", "--data-dir", str(self.data_dir),
                            json.dumps(list(vector))], capture_output=True, text=True,
                           timeout=timeout)
        report = ef.sanitizer_report(p.stderr)
        assert report is None, f"edgefleet-agent infer: sanitizer report:\n{report}"
        return p.returncode, p.stdout, p.stderr

    def serving(self, vector):
        """The model id answering vector now (None when an error answers)."""
        ans = self.infer(vector)
        return ans.get("model")

    def wait_serving(self, model_id, vector, timeout=15.0):
        def ok():
            try:
                return self.serving(vector) == model_id
            except (OSError, InferError, ValueError):
                return False
        try:
            return ef.wait_until(ok, timeout, interval=0.1, what=f"{self.device_id} serves "
                                 f"{model_id}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- {self.device_id} log ---\n"
                                 f"{_tail(self.log_text())}") from None

    # -- the server's view ----------------------------------------------------------

    def show(self, server=None):
        """`edgefleet --json device show ID`."""
        return (server or self.server).cli_json("device", "show", self.device_id)

    def wait_slot(self, name, version, state, timeout=20.0, slot="production", server=None):
        """Waits until `device show` has slots.SLOT == {name, version, state};
        returns the slot."""
        last = {}

        def reached():
            doc = self.show(server)
            last["doc"] = doc
            s = doc.get("slots", {}).get(slot) or {}
            if s.get("name") == name and s.get("version") == version and s.get("state") == state:
                return s
            return None
        try:
            return ef.wait_until(reached, timeout, interval=0.2,
                                 what=f"{self.device_id} {slot} {name}@{version} {state}")
        except AssertionError as e:
            raise AssertionError(f"{e}\nlast device show: {json.dumps(last.get('doc'))}\n"
                                 f"--- {self.device_id} log ---\n"
                                 f"{_tail(self.log_text())}") from None

    # -- files ------------------------------------------------------------------------

    def state_json(self):
        return json.loads((self.data_dir / "state.json").read_text())

    def model_files(self):
        d = self.data_dir / "models"
        return sorted(d.glob("*.model")) if d.is_dir() else []

    def bad_model_files(self):
        """models/<sha>.model files whose content does not hash to <sha>."""
        bad = []
        for p in self.model_files():
            name = p.name[:-len(".model")]
            if ef.sha256_file(p) != name:
                bad.append(p.name)
        return bad


# --------------------------------------------------------------------------
# FANN networks

class TrainedNet:
    def __init__(self, path, vectors):
        self.path = Path(path)
        self.vectors = vectors

    def __fspath__(self):
        return str(self.path)

    def __str__(self):
        return str(self.path)


def train(out, data=ef.THYROID_TRAIN, hidden=8, epochs=30, seed=1, vectors=0):
    trainer = ef.TEST_BIN_DIR / "ef-train-fixture"
    assert os.access(trainer, os.X_OK), f"{trainer} is not built (EF_TEST_BIN_DIR?)"
    cmd = [str(trainer), str(data), str(out), str(hidden), str(epochs), str(seed), "float"]
    if vectors:
        cmd.append(str(vectors))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"ef-train-fixture failed:\n{p.stdout}\n{p.stderr}"
    lines = p.stdout.strip().splitlines()
    vecs = json.loads(lines[1]) if vectors else None
    return TrainedNet(out, vecs)


# --------------------------------------------------------------------------
# Signed envelopes

def server_signing_key(server):
    """The server key from DATA_DIR/keys/server.key (base64 of the 64-byte
    libsodium secret key; its first 32 bytes are the seed)."""
    sk = base64.b64decode((Path(server.data_dir) / "keys" / "server.key").read_text().strip())
    assert len(sk) == 64
    return nacl.signing.SigningKey(sk[:32])


def sign_envelope(payload_bytes, signing_key):
    sig = signing_key.sign(payload_bytes).signature
    return {"payload": base64.b64encode(payload_bytes).decode(),
            "signature": base64.b64encode(sig).decode()}


def rfc3339_now():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def forge_assignment(server, device_id, seq, production):
    """An assignment envelope signed with the server's own key, as the server
    would publish it; production is the slot object (model, version,
    manifest_url, signature_url, artifact_url, sha256, size, rollout_id)."""
    doc = {"device_id": device_id, "seq": seq, "issued_at": rfc3339_now(),
           "slots": {"production": production}}
    return sign_envelope(json.dumps(doc, separators=(",", ":")).encode(),
                         server_signing_key(server))


# --------------------------------------------------------------------------
# Network helpers

class ThrottleProxy:
    """A TCP relay on a free loopback port in front of an HTTP server:
    client -> server bytes pass at once; server -> client bytes go in chunks
    of `chunk` bytes with `delay` seconds of sleep after every full chunk, so
    small answers are not slowed and artifacts are. Threaded, one pair of
    threads per connection; keep-alive works since bytes are relayed as
    they are."""

    def __init__(self, target_port, chunk=4096, delay=0.002):
        self.target_port = target_port
        self.chunk = chunk
        self.delay = delay
        self.paused = threading.Event()   # set: new bytes wait (a stalled link)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ef.HOST, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{ef.HOST}:{self.port}"
        self.stopping = False
        self.conns = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection((ef.HOST, self.target_port), timeout=10)
                s.settimeout(None)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, s]
            threading.Thread(target=self._pipe, args=(c, s, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(s, c, True), daemon=True).start()

    def _pipe(self, src, dst, slow):
        try:
            while True:
                data = src.recv(self.chunk if slow else 65536)
                if not data:
                    break
                dst.sendall(data)
                if slow and len(data) == self.chunk:
                    time.sleep(self.delay)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass


class FileMirror:
    """A small HTTP server on a free loopback port serving fixed bytes by path
    (for assignments whose URLs point off the edgefleet server)."""

    def __init__(self, files):
        self.files = dict(files)   # path -> bytes
        self.requests = []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                mirror.requests.append(self.path)
                body = mirror.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer((ef.HOST, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://{ef.HOST}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class RestartableBroker(ef.Broker):
    """conftest's anonymous mosquitto, which can be killed and started again
    on the same port."""

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def start(self):
        self.log = open(self.log_path, "ab")
        deadline = time.monotonic() + 10
        while True:
            self.proc = subprocess.Popen([ef.MOSQUITTO, "-c", str(self.conf)], stdout=self.log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                ef.wait_port(self.port, self.proc, 5)
                return
            except (RuntimeError, TimeoutError):
                ef.stop_process(self.proc)
                if time.monotonic() > deadline:   # the port still in TIME_WAIT?
                    raise
                time.sleep(0.2)


def retained(broker, t, timeout=3.0):
    """The retained payload on topic t (None when there is none)."""
    c = ef.MqttClient(broker, f"it-retained-{os.getpid()}-{time.monotonic_ns()}")
    try:
        c.subscribe(t)
        try:
            got, payload, is_retained = c.next_message(timeout)
        except AssertionError:
            return None
        return payload if is_retained else None
    finally:
        c.close()


def hashlib_sha256(data):
    return hashlib.sha256(data).hexdigest()


def thyroid_rows(n=None, path=ef.THYROID_TEST):
    rows = ef.read_fann_data(path)
    return rows if n is None else rows[:n]


def percentile(values, q):
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))
    return v[k]


# --------------------------------------------------------------------------
# Fixtures

_LIVE_AGENTS = {}   # test nodeid -> [Agent]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        agents = [a for key, group in list(_LIVE_AGENTS.items())
                  if item.nodeid == key or item.nodeid.startswith(key + "::") for a in group]
        for a in agents:
            rep.sections.append((f"edgefleet-agent {a.device_id} ({a.log_path})",
                                 _tail(a.log_text(), 5000)))


def _agent_factory(request, tmp_path_factory):
    """The factory behind `agent` and `module_agent`; returns (make, finish)."""
    started = []
    key = request.node.nodeid
    _LIVE_AGENTS[key] = started

    def make(device_id, server=None, broker=None, cls=None, tags=None, token_class=None,
             enroll=True, start=True, extra_args=(), server_url=None, mqtt_url=None,
             **options):
        srv = server if server is not None else request.getfixturevalue("server")
        if mqtt_url is None:
            b = broker if broker is not None else request.getfixturevalue("broker")
            mqtt_url = b.url
        token = None
        if enroll:
            args = ["enroll-token", "create"]
            if token_class:
                args += ["--class", token_class]
            token = srv.cli_json(*args)["token"]
        a = Agent(tmp_path_factory.mktemp(f"agent-{device_id}"), device_id, srv, mqtt_url,
                  token, cls, tags, options, extra_args, server_url)
        started.append(a)
        if start:
            a.start()
        return a

    def finish():
        problems = []
        for a in started:
            was_alive = a.alive()
            # Exited although nobody stopped or killed it: it died.
            died = a.proc is not None and not was_alive and a._log is not None
            rc = a.stop() if a.proc is not None else None
            report = ef.sanitizer_report(a.log_text())
            if report:
                problems.append(f"{a.device_id}: sanitizer report:\n{report}")
            elif died:
                problems.append(f"{a.device_id}: died during the test (status {rc}):\n"
                                f"{_tail(a.log_text(), 3000)}")
            elif was_alive and rc != 0:
                problems.append(f"{a.device_id}: exited {rc} on SIGTERM:\n"
                                f"{_tail(a.log_text(), 3000)}")
        _LIVE_AGENTS.pop(key, None)
        assert not problems, "\n".join(problems)
    return make, finish


@pytest.fixture
def agent(request, tmp_path_factory):
    """Factory: agent(device_id, server=None (the module's `server`),
    broker=None (the session's `broker`), cls=None, tags=None,
    token_class=None, enroll=True, start=True, extra_args=(),
    server_url=None (e.g. a proxy's), mqtt_url=None, **options) -> a
    started Agent, stopped at the end of the test."""
    make, finish = _agent_factory(request, tmp_path_factory)
    yield make
    finish()


@pytest.fixture(scope="module")
def module_agent(request, tmp_path_factory):
    """The same factory, for agents that live as long as the test module."""
    make, finish = _agent_factory(request, tmp_path_factory)
    yield make
    finish()


_NETS = {}


@pytest.fixture(scope="session")
def train_net(tmp_path_factory):
    """Factory: train_net(hidden=8, epochs=30, seed=1, data=THYROID_TRAIN,
    vectors=0) -> TrainedNet, trained once per session for each argument set."""
    base = tmp_path_factory.mktemp("agent-nets")

    def make(hidden=8, epochs=30, seed=1, data=ef.THYROID_TRAIN, vectors=0):
        key = (hidden, epochs, seed, str(data), vectors)
        if key not in _NETS:
            out = base / f"net-h{hidden}-e{epochs}-s{seed}-{Path(data).stem}-k{vectors}.net"
            _NETS[key] = train(out, data, hidden, epochs, seed, vectors)
        return _NETS[key]
    return make

"""Shared machinery of the integration tests: a real mosquitto broker, a real
edgefleet-server and the edgefleet CLI on 127.0.0.1, with temporary data
directories, plus raw HTTP, multipart, signature and FANN helpers.

Everything here uses the standard library and Debian's python3-* packages
(pytest, paho-mqtt 1.6, yaml, nacl). conftest.py turns these into fixtures.

Environment (set by tests/CMakeLists.txt):
  EF_BIN_DIR       edgefleet-server and edgefleet
  EF_TEST_BIN_DIR  ef-train-fixture
  EF_SOURCE_DIR    the source tree (schema/, docs/)
  EF_BUILD_DIR     the build tree
"""

import base64
import hashlib
import http.client
import json
import math
import os
import queue
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import nacl.signing
import paho.mqtt.client as mqtt

HOST = "127.0.0.1"
SOURCE_DIR = Path(os.environ.get("EF_SOURCE_DIR") or Path(__file__).resolve().parents[2])
BUILD_DIR = Path(os.environ.get("EF_BUILD_DIR") or SOURCE_DIR / "build")
BIN_DIR = Path(os.environ.get("EF_BIN_DIR") or BUILD_DIR / "bin")
TEST_BIN_DIR = Path(os.environ.get("EF_TEST_BIN_DIR") or BUILD_DIR / "test-bin")
DATASETS = Path("/usr/share/doc/libfann-dev/examples/datasets")
THYROID_TRAIN = DATASETS / "thyroid.train"
THYROID_TEST = DATASETS / "thyroid.test"
MOSQUITTO = "/usr/sbin/mosquitto"

# What a sanitizer build prints when it finds something; any of these in a
# process's stderr fails the test that ran it.
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer")


def server_bin():
    return str(BIN_DIR / "edgefleet-server")


def cli_bin():
    return str(BIN_DIR / "edgefleet")


def sanitizer_report(text):
    """The first sanitizer finding in text, or None."""
    for mark in SANITIZER_MARKS:
        i = text.find(mark)
        if i >= 0:
            return text[max(0, i - 200):i + 3000]
    return None


# --------------------------------------------------------------------------
# Processes and ports

def free_port():
    """A TCP port that was free a moment ago (bound to port 0, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=10.0):
    """Waits until port accepts a connection; fails early if proc exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {HOST}:{port} after {timeout}s")


def wait_until(predicate, timeout=5.0, interval=0.05, what="condition"):
    """Polls predicate until it returns a truthy value, which it returns."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")


def stop_process(proc, timeout=10.0):
    """Stops proc by its PID: SIGTERM, then SIGKILL after timeout. Returns
    its exit status (negative for a signal)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    return proc.returncode


class Broker:
    """mosquitto on a free loopback port, anonymous, no persistence."""

    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.port = free_port()
        self.conf = self.dir / "mosquitto.conf"
        self.log_path = self.dir / "mosquitto.log"
        # max_queued_messages: the server is the one subscriber receiving
        # every device's reports, and mosquitto's default of 1000 queued
        # messages per client drops a fleet's burst (deploy/mosquitto/).
        self.conf.write_text(f"listener {self.port} {HOST}\n"
                             "allow_anonymous true\n"
                             "persistence false\n"
                             "max_queued_messages 100000\n")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_port(self.port, self.proc)
        except Exception:
            self.stop()
            raise

    @property
    def url(self):
        return f"mqtt://{HOST}:{self.port}"

    def stop(self):
        stop_process(self.proc)
        self.log.close()


# --------------------------------------------------------------------------
# HTTP

class Response:
    """An HTTP answer: status, headers (lower-case names), body bytes."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        text = self.body[:400].decode("utf-8", "replace")
        return f"<Response {self.status} {text!r}>"


def http_request(port, method, path, body=None, headers=None, token=None, timeout=15.0):
    """One request over a fresh connection (http.client)."""
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        body = body.encode()
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def parse_raw_response(data):
    """Parses the first HTTP/1.1 response in data (bytes)."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError(f"no complete HTTP response in {data[:200]!r}")
    lines = head.decode("iso-8859-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    if not m:
        raise ValueError(f"bad status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        rest = rest[:int(headers["content-length"])]
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body, buf = b"", rest
        while True:
            size_line, _, buf = buf.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            body, buf = body + buf[:size], buf[size + 2:]
        rest = body
    return Response(int(m.group(1)), headers, rest)


def raw_exchange(port, head, body=b"", read_first=False, timeout=10.0):
    """Sends raw request bytes and reads the answer until the server closes
    or a complete response arrived. With read_first the headers are sent
    alone and the answer is awaited before any body byte is sent (for
    replies that the server gives before reading a body)."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    data = b""
    try:
        s.sendall(head)
        if not read_first and body:
            try:
                s.sendall(body)
            except (BrokenPipeError, ConnectionResetError):
                pass
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            data += chunk
            try:
                resp = parse_raw_response(data)
                if "content-length" in resp.headers and \
                        len(resp.body) >= int(resp.headers["content-length"]):
                    return resp
            except (ValueError, IndexError):
                continue
    finally:
        s.close()
    return parse_raw_response(data)


def request_head(method, path, headers):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def multipart(parts, boundary=None):
    """Encodes parts [(name, filename or None, content type, bytes)] as
    multipart/form-data; returns (content type, body)."""
    boundary = boundary or "efboundary" + hashlib.sha256(os.urandom(8)).hexdigest()[:16]
    out = []
    for name, filename, ctype, data in parts:
        disp = f'form-data; name="{name}"'
        if filename is not None:
            disp += f'; filename="{filename}"'
        out.append(f"--{boundary}\r\nContent-Disposition: {disp}\r\n"
                   f"Content-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(out)


def assert_error(resp, status, code=None):
    """resp is an error of this status whose body is exactly
    {"error": {"code", "message"}} (and of this code when given)."""
    assert resp.status == status, f"expected {status} {code or ''}, got {resp!r}"
    assert (resp.header("content-type") or "").startswith("application/json"), resp.headers
    doc = resp.json()
    assert set(doc) == {"error"}, doc
    assert set(doc["error"]) == {"code", "message"}, doc
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"], doc
    assert re.fullmatch(r"[a-z][a-z0-9_]*", doc["error"]["code"]), doc
    if code is not None:
        assert doc["error"]["code"] == code, f"expected code {code}, got {doc}"
    return doc["error"]


# --------------------------------------------------------------------------
# The server

class Server:
    """edgefleet-server initialised in a fresh data directory and serving on
    a free port, connected to broker."""

    def __init__(self, workdir, broker=None, extra_args=()):
        self.dir = Path(workdir)
        self.data_dir = self.dir / "data"
        self.stderr_path = self.dir / "server.stderr"
        self.proc = None
        init = subprocess.run([server_bin(), "init", "--data-dir", str(self.data_dir)],
                              capture_output=True, text=True, timeout=60)
        if init.returncode != 0:
            raise RuntimeError(f"edgefleet-server init failed ({init.returncode}):\n"
                               f"{init.stdout}\n{init.stderr}")
        report = sanitizer_report(init.stderr)
        if report:
            raise RuntimeError(f"edgefleet-server init: sanitizer report:\n{report}")
        self.init_output = init.stdout
        self.admin_token = init.stdout.strip().splitlines()[-1].strip()
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        args = [server_bin(), "serve", "--data-dir", str(self.data_dir),
                "--listen", f"{HOST}:{self.port}"]
        if broker is not None:
            args += ["--mqtt", broker.url]
        args += list(extra_args)
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._stderr, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        try:
            self.wait_healthy()
        except Exception:
            self.stop()
            raise RuntimeError(f"edgefleet-server did not come up:\n{self.log_text()}")

    def wait_healthy(self, timeout=15.0):
        wait_port(self.port, self.proc, timeout)

        def healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"edgefleet-server exited with {self.proc.returncode}")
            try:
                return self.request("GET", "/healthz").status == 200
            except OSError:
                return False
        wait_until(healthy, timeout, what="GET /healthz 200")

    def log_text(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """Stops the server; returns its exit status."""
        if self.proc is None:
            return None
        rc = stop_process(self.proc)
        self._stderr.close()
        return rc

    # -- HTTP ---------------------------------------------------------------

    def request(self, method, path, body=None, headers=None, token=None, **kw):
        return http_request(self.port, method, path, body=body, headers=headers, token=token,
                            **kw)

    def admin(self, method, path, body=None, headers=None):
        return self.request(method, path, body=body, headers=headers, token=self.admin_token)

    def get_json(self, path, token=None, status=200):
        r = self.request("GET", path, token=token or self.admin_token)
        assert r.status == status, f"GET {path}: expected {status}, got {r!r}"
        return r.json()

    def wait_rollout(self, rid, pred, timeout, what, interval=0.1):
        """Polls GET /api/v1/rollouts/RID until pred(doc) holds and returns
        that doc; on timeout the AssertionError shows the last doc."""
        last = {}

        def check():
            last["doc"] = self.get_json(f"/api/v1/rollouts/{rid}")
            return last["doc"] if pred(last["doc"]) else None
        try:
            return wait_until(check, timeout, interval=interval, what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}\nlast rollout: {json.dumps(last.get('doc'), indent=1)}") \
                from None

    def raw(self, head, body=b"", **kw):
        return raw_exchange(self.port, head, body, **kw)

    def healthz_ok(self):
        r = self.request("GET", "/healthz")
        return r.status == 200 and r.json().get("status") == "ok"

    # -- the CLI ------------------------------------------------------------

    def cli(self, *args, token=None, timeout=60):
        """Runs `edgefleet --server URL --token T ARGS`; (rc, stdout, stderr)."""
        cmd = [cli_bin(), "--server", self.url, "--token", token or self.admin_token]
        cmd += [str(a) for a in args]
        env = dict(os.environ)
        env.pop("EDGEFLEET_SERVER", None)
        env.pop("EDGEFLEET_TOKEN", None)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        report = sanitizer_report(p.stderr)
        assert report is None, f"{' '.join(cmd)}: sanitizer report:\n{report}"
        return p.returncode, p.stdout, p.stderr

    def cli_ok(self, *args, **kw):
        rc, out, err = self.cli(*args, **kw)
        assert rc == 0, f"edgefleet {' '.join(map(str, args))} exited {rc}:\n{out}\n{err}"
        return out

    def cli_json(self, *args, **kw):
        """Runs the CLI with --json; asserts success and returns the parsed stdout."""
        out = self.cli_ok("--json", *args, **kw)
        try:
            return json.loads(out)
        except ValueError as e:
            raise AssertionError(f"edgefleet --json {' '.join(map(str, args))}: "
                                 f"not JSON ({e}):\n{out!r}")

    # -- set-up shortcuts (REST, so that they do not depend on CLI verbs) ----

    def create_token(self, role, name=None):
        body = {"role": role}
        if name:
            body["name"] = name
        r = self.admin("POST", "/api/v1/tokens", body)
        assert r.status == 201, r
        return r.json()["token"]

    def create_enroll_token(self, **body):
        r = self.admin("POST", "/api/v1/enroll-tokens", body)
        assert r.status == 201, r
        return r.json()["token"]

    def enroll(self, device_id, tags=None, cls=None):
        """Enrolls a device with a fresh enrollment token; returns the answer."""
        token = self.create_enroll_token()
        body = {"device_id": device_id}
        if tags is not None:
            body["tags"] = tags
        if cls is not None:
            body["class"] = cls
        r = self.request("POST", "/api/v1/enroll", body, token=token)
        assert r.status == 201, r
        return r.json()

    def push(self, name, artifact, data=THYROID_TEST):
        """`edgefleet --json model push NAME ARTIFACT --data DATA`."""
        return self.cli_json("model", "push", name, str(artifact), "--data", str(data))

    def assign(self, model, version, device, token=None):
        r = self.request("POST", "/api/v1/assignments",
                         {"model": model, "version": version, "device": device},
                         token=token or self.admin_token)
        assert r.status == 200, r
        return r.json()

    def keys(self):
        r = self.request("GET", "/api/v1/keys")
        assert r.status == 200, r
        return r.json()

    def release_signing_key(self):
        """The release key from DATA_DIR/keys/release.key (base64 of the
        64-byte libsodium secret key; its first 32 bytes are the seed)."""
        sk = base64.b64decode((self.data_dir / "keys" / "release.key").read_text().strip())
        assert len(sk) == 64
        return nacl.signing.SigningKey(sk[:32])

    def tmp_files(self):
        tmp = self.data_dir / "tmp"
        return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


# --------------------------------------------------------------------------
# Signatures and envelopes

def verify_key(b64):
    return nacl.signing.VerifyKey(base64.b64decode(b64))


def verify_detached(pub_b64, message, sig_b64):
    """Verifies a detached Ed25519 signature; raises nacl BadSignatureError."""
    sig = base64.b64decode(sig_b64.strip() if isinstance(sig_b64, str) else sig_b64.strip())
    assert len(sig) == 64, f"signature of {len(sig)} bytes"
    verify_key(pub_b64).verify(message, sig)


def open_envelope(envelope, server_pub_b64):
    """Verifies a signed assignment envelope, then parses its payload."""
    assert set(envelope) == {"payload", "signature"}, envelope
    payload = base64.b64decode(envelope["payload"], validate=True)
    verify_detached(server_pub_b64, payload, envelope["signature"])
    return json.loads(payload)


def sha256_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------
# FANN: an independent forward pass, to check the manifest's golden vectors

class FannNet:
    """A float FANN network file (FANN_FLO_2.1) run in pure Python; enough
    for the standard fully connected nets that ef-train-fixture trains."""

    def __init__(self, path):
        text = Path(path).read_text()
        fields = {}
        for line in text.splitlines():
            k, sep, v = line.partition("=")
            if sep:
                fields[k] = v
        assert text.startswith("FANN_FLO_2.1"), "not a float FANN network"
        self.layers = [int(x) for x in fields["layer_sizes"].split()]
        neurons = fields["neurons (num_inputs, activation_function, activation_steepness)"]
        self.neurons = [(int(a), int(b), float(c)) for a, b, c in
                        re.findall(r"\((\d+), (\d+), ([^)]+)\)", neurons)]
        conns = fields["connections (connected_to_neuron, weight)"]
        self.connections = [(int(a), float(b)) for a, b in re.findall(r"\((\d+), ([^)]+)\)", conns)]
        assert len(self.neurons) == sum(self.layers)
        self.n_in = self.layers[0] - 1
        self.n_out = self.layers[-1] - 1

    @staticmethod
    def _activate(fn, x):
        if fn == 0:      # FANN_LINEAR
            return x
        if fn == 3:      # FANN_SIGMOID
            return 1.0 / (1.0 + math.exp(-2.0 * x))
        if fn == 5:      # FANN_SIGMOID_SYMMETRIC
            return 2.0 / (1.0 + math.exp(-2.0 * x)) - 1.0
        raise NotImplementedError(f"activation function {fn}")

    def run(self, inputs):
        assert len(inputs) == self.n_in
        values = [0.0] * len(self.neurons)
        first = 0
        conn = 0
        outputs = []
        for li, size in enumerate(self.layers):
            for j in range(size):
                idx = first + j
                n_inputs, fn, steep = self.neurons[idx]
                if j == size - 1:
                    values[idx] = 1.0          # the bias neuron
                elif li == 0:
                    values[idx] = float(inputs[j])
                else:
                    s = 0.0
                    for _ in range(n_inputs):
                        to, w = self.connections[conn]
                        s += w * values[to]
                        conn += 1
                    s *= steep
                    limit = 150.0 / steep
                    s = max(-limit, min(limit, s))
                    values[idx] = self._activate(fn, s)
                if li == len(self.layers) - 1 and j < size - 1:
                    outputs.append(values[idx])
            # a bias neuron carries no connections in the file
            first += size
        return outputs


def read_fann_data(path):
    """FANN training data: [(inputs, outputs)]."""
    tokens = Path(path).read_text().split()
    n, n_in, n_out = int(tokens[0]), int(tokens[1]), int(tokens[2])
    vals = [float(t) for t in tokens[3:]]
    rows = []
    for r in range(n):
        base = r * (n_in + n_out)
        rows.append((vals[base:base + n_in], vals[base + n_in:base + n_in + n_out]))
    return rows


# --------------------------------------------------------------------------
# MQTT (paho-mqtt 1.6)

class MqttClient:
    """A paho client on its own network thread; received messages queue up
    as (topic, payload bytes, retain flag)."""

    def __init__(self, broker, client_id):
        self._queue = queue.Queue()
        self._connected = threading.Event()
        self.client = mqtt.Client(client_id=client_id, clean_session=True,
                                  protocol=mqtt.MQTTv311)
        self.client.on_connect = lambda c, u, f, rc: rc == 0 and self._connected.set()
        self.client.on_message = lambda c, u, m: self._queue.put(
            (m.topic, bytes(m.payload), bool(m.retain)))
        self.client.connect(HOST, broker.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(5):
            self.close()
            raise TimeoutError("paho client did not connect to the broker")

    def subscribe(self, topic, qos=1):
        result, mid = self.client.subscribe(topic, qos)
        assert result == 0, f"subscribe {topic}: {result}"

    def publish(self, topic, payload, qos=1, retain=False):
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=5)
        assert info.is_published(), f"publish to {topic} not acknowledged"

    def next_message(self, timeout=5.0):
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no MQTT message within {timeout}s") from None

    def close(self):
        # Disconnecting first wakes the network thread, so it ends at once.
        self.client.disconnect()
        self.client.loop_stop()

"""pytest fixtures of the integration tests (machinery in edgefleet_fixtures.py).

  broker       mosquitto on a free loopback port (one per test file)
  server       edgefleet-server init + serve against the broker (one per test
               file); .url, .admin_token, .data_dir, .cli(), .cli_json(), ...
  make_server  a factory for extra servers, stopped at the end of the test
  thyroid_net  a real FANN network trained once per run on thyroid.train

When a test fails, the captured stderr of every server and broker that is
running is appended to its report. A sanitizer report in a server's stderr
fails the test that ran it.
"""

import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import edgefleet_fixtures as ef  # noqa: E402

# Servers and brokers alive now, for failure reports.
_LIVE_SERVERS = []
_LIVE_BROKERS = []


def _tail(text, limit=12000):
    return text if len(text) <= limit else "...\n" + text[-limit:]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for srv in list(_LIVE_SERVERS):
            rep.sections.append((f"edgefleet-server stderr ({srv.stderr_path})",
                                 _tail(srv.log_text(), 6000)))
        for b in list(_LIVE_BROKERS):
            try:
                text = b.log_path.read_text(errors="replace")
            except OSError:
                text = ""
            rep.sections.append((f"mosquitto log ({b.log_path})", _tail(text, 4000)))


def _start_server(workdir, broker, extra_args=()):
    # A missing binary fails the test (it never skips): set EF_BIN_DIR.
    for path in (ef.server_bin(), ef.cli_bin()):
        assert os.access(path, os.X_OK), f"{path} is not built (EF_BIN_DIR?)"
    srv = ef.Server(workdir, broker, extra_args)
    _LIVE_SERVERS.append(srv)
    return srv


def _stop_server(srv):
    """Stops srv and fails if it crashed or a sanitizer spoke."""
    alive = srv.alive()
    rc = srv.stop()
    if srv in _LIVE_SERVERS:
        _LIVE_SERVERS.remove(srv)
    log = srv.log_text()
    report = ef.sanitizer_report(log)
    assert report is None, f"edgefleet-server sanitizer report:\n{report}"
    assert alive, f"edgefleet-server died during the tests (status {rc}):\n{_tail(log)}"
    assert rc == 0, f"edgefleet-server exited {rc} on SIGTERM:\n{_tail(log)}"


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    b = ef.Broker(tmp_path_factory.mktemp("broker"))
    _LIVE_BROKERS.append(b)
    yield b
    _LIVE_BROKERS.remove(b)
    b.stop()


@pytest.fixture(scope="module")
def server(request, broker, tmp_path_factory):
    """The module's server, serving with the module's SERVER_ARGS when it
    sets them (a fast engine tick, say)."""
    srv = _start_server(tmp_path_factory.mktemp("server"), broker,
                        getattr(request.module, "SERVER_ARGS", ()))
    yield srv
    _stop_server(srv)


@pytest.fixture
def make_server(broker, tmp_path_factory):
    started = []

    def make(extra_args=()):
        srv = _start_server(tmp_path_factory.mktemp("server"), broker, extra_args)
        started.append(srv)
        return srv
    yield make
    for srv in started:
        _stop_server(srv)


@pytest.fixture(scope="session")
def thyroid_net(tmp_path_factory):
    out = tmp_path_factory.mktemp("nets") / "thyroid.net"
    trainer = ef.TEST_BIN_DIR / "ef-train-fixture"
    p = subprocess.run([str(trainer), str(ef.THYROID_TRAIN), str(out), "8", "30"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"ef-train-fixture failed:\n{p.stdout}\n{p.stderr}"
    assert out.stat().st_size > 0
    return out


@pytest.fixture(scope="session")
def thyroid_net_b(tmp_path_factory):
    """A second, different network of the same shape (another seed)."""
    out = tmp_path_factory.mktemp("nets") / "thyroid-b.net"
    trainer = ef.TEST_BIN_DIR / "ef-train-fixture"
    p = subprocess.run([str(trainer), str(ef.THYROID_TRAIN), str(out), "6", "20", "7"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"ef-train-fixture failed:\n{p.stdout}\n{p.stderr}"
    return out

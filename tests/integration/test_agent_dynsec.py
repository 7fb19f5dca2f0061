"""An agent on a broker that runs mosquitto's dynamic-security plugin (no
anonymous clients): enrollment hands it its own broker credentials, it keeps
them in its identity file, connects with them and converges, reporting
through its own identity (test_broker_identity.py's DynsecBroker).
"""

import json
import stat

import pytest

pytest.register_assert_rewrite("agent_fixtures")
import agent_fixtures as af  # noqa: E402
import conftest  # noqa: E402
import edgefleet_fixtures as ef  # noqa: E402
from test_broker_identity import Client, DynsecBroker, log_events  # noqa: E402

pytest_plugins = ["agent_fixtures"]

MODEL = "thyroid"
DEV = "dyn-1"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """This module's broker: the dynamic-security one."""
    b = DynsecBroker(tmp_path_factory.mktemp("dynsec-broker"))
    conftest._LIVE_BROKERS.append(b)
    yield b
    conftest._LIVE_BROKERS.remove(b)
    b.stop()


@pytest.fixture(scope="module")
def managed(server):
    ef.wait_until(lambda: log_events(server, "dynsec_managed"), 10,
                  what="the server finds the dynamic-security plugin")
    return server


def test_agent_gets_its_own_broker_identity_and_converges_with_it(managed, broker, agent,
                                                                  thyroid_net):
    server = managed
    assert server.push(MODEL, thyroid_net)["version"] == 1
    # The broker URL without credentials: the agent's come from enrollment.
    a = agent(DEV, mqtt_url=f"mqtt://{ef.HOST}:{broker.port}")
    ev = a.wait_log("enrolled", timeout=15)
    assert ev["broker_identity"] == "own", ev
    ident_path = a.data_dir / "identity.json"
    assert stat.S_IMODE(ident_path.stat().st_mode) == 0o600
    ident = json.loads(ident_path.read_text())
    assert ident["mqtt_username"] == DEV, ident
    assert ident["mqtt_password"].startswith("efm_"), "no broker password kept"
    assert DEV in broker.client_names()
    a.wait_log("broker_connected", timeout=15)
    log = broker.log_path.read_text(errors="replace")
    assert f"as {DEV} " in log and f"u'{DEV}'" in log, log[-2000:]

    server.cli_json("assign", f"{MODEL}@1", "--device", DEV)
    # Committed as the server hears it: reported over the device's own identity.
    a.wait_slot(MODEL, 1, "committed", timeout=30)
    assert a.infer(af.thyroid_rows(1)[0][0])["model"] == f"{MODEL}@1"
    observer = Client(broker.port, "admin", broker.admin_password, "it-dyn-observer")
    try:
        assert observer.connack == 0
        observer.subscribe(af.topic(DEV, "status"))
        t, payload, retained = observer.next_message()
        assert (t, payload, retained) == (af.topic(DEV, "status"), b"online", True)
    finally:
        observer.close()
    # Its credentials work after a restart too (kept, not enrolled again).
    since = a.log_size()
    a.restart()
    a.wait_log("broker_connected", since=since, timeout=15)
    assert not a.events("enrolled", since)
    assert a.infer(af.thyroid_rows(1)[0][0])["model"] == f"{MODEL}@1"

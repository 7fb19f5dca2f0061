"""schema/openapi.yaml tells the truth about the running server: the same
routes as `edgefleet-server routes`, served byte for byte at
/api/v1/openapi.yaml, and each operation's x-edgefleet-access is what the
server enforces (401 without a token, 403 for a token of the wrong kind)."""

import re
import subprocess

import pytest
import yaml

import edgefleet_fixtures as ef

OPENAPI = ef.SOURCE_DIR / "schema" / "openapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def normalise(path):
    """/a/{name}/b/{id} -> /a/{}/b/{}: parameter names do not matter."""
    return re.sub(r"\{[^}/]+\}", "{}", path)


def openapi_doc():
    with open(OPENAPI, encoding="utf-8") as f:
        return yaml.safe_load(f)


def openapi_operations():
    """{(METHOD, path template): operation}."""
    ops = {}
    for path, item in openapi_doc()["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                ops[(method.upper(), path)] = item[method]
    return ops


def server_routes():
    p = subprocess.run([ef.server_bin(), "routes"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    routes = []
    for line in p.stdout.splitlines():
        if not line.strip():
            continue
        method, path = line.split()
        routes.append((method, path))
    return routes


def test_server_routes_equal_the_openapi_paths():
    routes = server_routes()
    assert len(routes) == len(set(routes)), "edgefleet-server routes lists a route twice"
    served = {(m, normalise(p)) for m, p in routes}
    described = {(m, normalise(p)) for m, p in openapi_operations()}
    assert served - described == set(), "routes missing from schema/openapi.yaml"
    assert described - served == set(), "operations in schema/openapi.yaml the server lacks"


def test_route_parameters_are_spelled_as_in_openapi():
    served = {(m, p) for m, p in server_routes()}
    described = set(openapi_operations())
    assert served == described


def test_openapi_is_served_byte_for_byte(server):
    r = server.request("GET", "/api/v1/openapi.yaml")
    assert r.status == 200, r
    assert r.body == OPENAPI.read_bytes()
    assert "yaml" in (r.header("content-type") or "")
    yaml.safe_load(r.body)


def concrete(path):
    """A request path for a template; the values need not exist."""
    return (path.replace("{name}", "thyroid").replace("{version}", "1")
            .replace("{id}", "1"))


def access_cases():
    for (method, path), op in sorted(openapi_operations().items()):
        yield pytest.param(method, path, tuple(op.get("x-edgefleet-access", [])),
                           id=f"{method} {path}")


@pytest.mark.parametrize("method,path,access", list(access_cases()))
def test_server_enforces_the_documented_access(server, method, path, access):
    """Without a token: 401 unless `anyone`. With a viewer token: 403 when
    the operation is not for viewers (nor anyone), anything but 401/403 when
    it is. No request here gets past the access check with a body, so
    nothing changes."""
    assert access, f"{method} {path} has no x-edgefleet-access"
    url = concrete(path)
    headers = {"Content-Length": "0", "Connection": "close"}
    anon = server.raw(ef.request_head(method, url, headers))
    if "anyone" in access:
        assert anon.status not in (401, 403), anon
    else:
        ef.assert_error(anon, 401, "unauthenticated")
    if "viewer" not in access and "anyone" not in access:
        viewer = server.create_token("viewer")
        r = server.raw(ef.request_head(method, url, {**headers,
                                                     "Authorization": f"Bearer {viewer}"}))
        ef.assert_error(r, 403, "forbidden")
    assert server.healthz_ok()

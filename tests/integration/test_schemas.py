"""Checks schema/openapi.yaml and schema/json/*.schema.json.

The OpenAPI description must be well formed (every operation with an
operationId and responses, every path parameter declared, every $ref
resolvable), must list exactly the routes of docs/rest.md with the access
the table gives, and its components must agree with the JSON Schemas of the
manifest, the assignment, the envelope and the error body. Each JSON Schema
must be a self-consistent draft 2020-12 schema that accepts a sample
document and refuses broken ones.

Instances are validated by `validate()` below, a small validator of the
keyword subset these files use (a test checks they use no other keyword);
when python3-jsonschema is installed the same checks also run through it.
Needs only the standard library and python3-yaml.
"""

import base64
import copy
import functools
import json
import os
import re
from pathlib import Path

import pytest
import yaml

try:
    import jsonschema
except ImportError:  # python3-jsonschema is optional
    jsonschema = None

ROOT = Path(os.environ.get("EF_SOURCE_DIR") or Path(__file__).resolve().parents[2])
OPENAPI = ROOT / "schema" / "openapi.yaml"
JSON_DIR = ROOT / "schema" / "json"
REST_MD = ROOT / "docs" / "rest.md"

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SCHEMA_FILES = ("manifest", "assignment", "envelope", "reported", "status", "error")
UNAUTHENTICATED = {"/healthz", "/metrics", "/api/v1/openapi.yaml", "/api/v1/keys"}
# Statuses docs/rest.md and the brief of the API allow an operation to answer.
ALLOWED_STATUSES = {"200", "201", "204", "304", "400", "401", "403", "404", "405", "409",
                    "413", "415", "422", "500"}


# --------------------------------------------------------------------------
# Loading

@functools.lru_cache(maxsize=None)
def load_openapi():
    """The parsed description, shared by the tests (which never change it)."""
    with open(OPENAPI, encoding="utf-8") as f:
        return yaml.safe_load(f)


def load_json_schema(name):
    with open(JSON_DIR / f"{name}.schema.json", encoding="utf-8") as f:
        return json.load(f)


def operations(doc):
    """Yields (path, method, path item, operation) for every operation."""
    for path, item in doc["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item, item[method]


def resolve(doc, ref):
    """Follows a local JSON pointer ("#/a/b") in doc; KeyError if it dangles."""
    if not ref.startswith("#"):
        raise KeyError(f"non-local $ref {ref}")
    node = doc
    for token in ref[1:].split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(token)]
        else:
            node = node[token]
    return node


def deref(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(doc, node["$ref"])
    return node


def all_refs(node, where="#"):
    """Yields (location, $ref value) for every $ref under node."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield where, value
            else:
                yield from all_refs(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from all_refs(value, f"{where}/{i}")


def rest_md_routes():
    """The route table of docs/rest.md: {(METHOD, path): set of callers}."""
    routes = {}
    row = re.compile(r"^\|\s*(GET|POST|PUT|PATCH|DELETE)\s*\|\s*`([^`]+)`\s*\|([^|]*)\|")
    with open(REST_MD, encoding="utf-8") as f:
        for line in f:
            m = row.match(line)
            if not m:
                continue
            method, path, who = m.groups()
            path = path.replace("{v}", "{version}")
            callers = set()
            for part in who.split(","):
                part = re.sub(r"\(.*?\)", "", part).strip()
                callers.add({"enrollment token": "enrollment"}.get(part, part))
            routes[(method, path)] = callers
    return routes


# --------------------------------------------------------------------------
# A validator for the keyword subset the schemas use (draft 2020-12, and the
# OpenAPI 3.0 dialect with `nullable` when oas=True).

ANNOTATIONS = {"$schema", "$id", "$defs", "$comment", "title", "description", "default",
               "example", "examples", "format", "contentEncoding", "contentMediaType",
               "readOnly", "writeOnly", "deprecated"}
ASSERTIONS = {"$ref", "type", "const", "enum", "properties", "required",
              "additionalProperties", "minProperties", "items", "minItems", "maxItems",
              "minimum", "maximum", "minLength", "maxLength", "pattern", "allOf", "anyOf",
              "oneOf", "nullable"}
KNOWN_KEYWORDS = ANNOTATIONS | ASSERTIONS


def _type_ok(value, name):
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or \
            (isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "array":
        return isinstance(value, list)
    if name == "object":
        return isinstance(value, dict)
    raise AssertionError(f"unknown type {name}")


def validate(schema, value, root=None, oas=False, where="$"):
    """Returns a list of error strings; empty when value is valid."""
    root = schema if root is None else root
    if schema is True or schema == {}:
        return []
    if schema is False:
        return [f"{where}: nothing is allowed here"]
    unknown = set(schema) - KNOWN_KEYWORDS
    assert not unknown, f"validator does not know {sorted(unknown)}"
    errors = []
    if "$ref" in schema:
        # In draft 2020-12 $ref sits beside other keywords; OpenAPI 3.0 ignores them.
        errors += validate(resolve(root, schema["$ref"]), value, root, oas, where)
        if oas:
            return errors
    if value is None and oas and schema.get("nullable"):
        return errors
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_ok(value, t) for t in types):
            return errors + [f"{where}: {value!r} is not of type {types}"]
    if "const" in schema and not (value == schema["const"] and
                                  type(value) is type(schema["const"])):
        errors.append(f"{where}: {value!r} is not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{where}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{where}: longer than {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if _type_ok(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} is below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} is above {schema['maximum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{where}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                errors += validate(schema["items"], item, root, oas, f"{where}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{where}: missing required {key!r}")
        if len(value) < schema.get("minProperties", 0):
            errors.append(f"{where}: fewer than {schema['minProperties']} members")
        extra = schema.get("additionalProperties", True)
        for key, member in value.items():
            if key in props:
                errors += validate(props[key], member, root, oas, f"{where}.{key}")
            elif extra is False:
                errors.append(f"{where}: unexpected member {key!r}")
            elif isinstance(extra, dict):
                errors += validate(extra, member, root, oas, f"{where}.{key}")
    for sub in schema.get("allOf", []):
        errors += validate(sub, value, root, oas, where)
    if "anyOf" in schema and not any(not validate(s, value, root, oas, where)
                                     for s in schema["anyOf"]):
        errors.append(f"{where}: matches none of anyOf")
    if "oneOf" in schema:
        matches = sum(1 for s in schema["oneOf"] if not validate(s, value, root, oas, where))
        if matches != 1:
            errors.append(f"{where}: matches {matches} of oneOf, not exactly 1")
    return errors


def json_schema_errors(name, value):
    """Errors of value against schema/json/NAME.schema.json, by both validators."""
    schema = load_json_schema(name)
    errors = validate(schema, value)
    if jsonschema is not None:
        lib = jsonschema.Draft202012Validator(schema)
        lib_errors = [e.message for e in lib.iter_errors(value)]
        assert bool(errors) == bool(lib_errors), \
            f"validators disagree on {name}: ours {errors}, jsonschema {lib_errors}"
    return errors


def oas_errors(component, value):
    doc = load_openapi()
    return validate(doc["components"]["schemas"][component], value, root=doc, oas=True)


# --------------------------------------------------------------------------
# Sample documents

SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
SIG = base64.b64encode(bytes(range(64))).decode()


def sample_manifest():
    histogram = {"edges": [0.0, 0.25, 0.5, 0.75, 1.0], "fractions": [0.1, 0.4, 0.4, 0.1]}
    return {
        "format": 1,
        "name": "iris",
        "version": 3,
        "backend": "fann",
        "device_class": None,
        "artifact": {"sha256": SHA, "size": 4096},
        "input": {"size": 2, "features": ["petal_length", "petal_width"]},
        "output": {"size": 3, "labels": ["setosa", "versicolor", "virginica"]},
        "baseline": {"features": [histogram, histogram],
                     "output": [histogram, histogram, histogram]},
        "test_vectors": [{"input": [0.1, 0.2], "output": [0.9, 0.05, 0.05],
                          "tolerance": 0.01}],
        "metrics": {"accuracy": 0.96, "mse": 0.02},
        "lineage": {"parent_version": 2, "dataset_id": "iris-2026-11", "trigger": "drift"},
        "created_at": "2026-11-22T10:00:00.123Z",
    }


def sample_assignment():
    base = "/api/v1/models/iris/versions/3"
    return {
        "device_id": "pi-01",
        "seq": 7,
        "issued_at": "2026-11-22T10:00:00.123Z",
        "slots": {
            "production": {
                "model": "iris", "version": 3,
                "manifest_url": base + "/manifest",
                "signature_url": base + "/manifest.sig",
                "artifact_url": "http://127.0.0.1:8080" + base + "/artifact",
                "sha256": SHA, "size": 4096, "rollout_id": None,
            },
        },
    }


def sample_envelope():
    payload = json.dumps(sample_assignment(), sort_keys=True, separators=(",", ":"))
    return {"payload": base64.b64encode(payload.encode()).decode(), "signature": SIG}


SAMPLES = {
    "manifest": sample_manifest,
    "assignment": sample_assignment,
    "envelope": sample_envelope,
    "reported": lambda: {"slot": "production", "model": "iris", "version": 3,
                         "state": "failed", "reason": "self-test: vector 0 off by 0.2",
                         "seq": 7},
    "status": lambda: "online",
    "error": lambda: {"error": {"code": "no_assignment", "message": "no assignment"}},
}


def mutate(doc, path, value=None, delete=False):
    """A deep copy of doc with the member at path (a list of keys) replaced or deleted."""
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


BROKEN = [
    ("manifest", ["format"], 2, False),
    ("manifest", ["version"], 0, False),
    ("manifest", ["version"], "3", False),
    ("manifest", ["backend"], "onnx", False),
    ("manifest", ["device_class"], 5, False),
    ("manifest", ["artifact", "sha256"], SHA.upper(), False),
    ("manifest", ["artifact", "sha256"], SHA[:63], False),
    ("manifest", ["artifact", "size"], None, True),
    ("manifest", ["input", "features"], [1, 2], False),
    ("manifest", ["baseline", "features", 0, "edges"], [0.0], False),
    ("manifest", ["test_vectors", 0, "tolerance"], -1, False),
    ("manifest", ["lineage", "parent_version"], "2", False),
    ("manifest", ["lineage", "trigger"], None, True),
    ("manifest", ["created_at"], "yesterday", False),
    ("manifest", ["created_at"], None, True),
    ("manifest", ["signed_by"], "me", False),
    ("assignment", ["seq"], 0, False),
    ("assignment", ["device_id"], "pi/01", False),
    ("assignment", ["slots", "production"], None, True),
    ("assignment", ["slots", "canary"], {}, False),
    ("assignment", ["slots", "production", "sha256"], "nope", False),
    ("assignment", ["slots", "production", "artifact_url"], "file:///etc/passwd", False),
    ("assignment", ["slots", "production", "rollout_id"], None, True),
    ("envelope", ["signature"], "c2ln", False),
    ("envelope", ["payload"], "not base64!", False),
    ("envelope", ["payload"], None, True),
    ("reported", ["state"], "pending", False),
    ("reported", ["slot"], "canary", False),
    ("reported", ["version"], None, True),
    ("reported", ["device_id"], "pi-01", False),
    ("error", ["error", "code"], "Not Found", False),
    ("error", ["error", "message"], None, True),
]


# --------------------------------------------------------------------------
# openapi.yaml: structure

def test_openapi_parses_as_3_0_3():
    doc = load_openapi()
    assert doc["openapi"] == "3.0.3"
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["paths"]


def test_every_ref_resolves():
    for doc, label in [(load_openapi(), "openapi.yaml")] + \
            [(load_json_schema(n), f"{n}.schema.json") for n in SCHEMA_FILES]:
        for where, ref in all_refs(doc):
            assert ref.startswith("#/"), f"{label} {where}: non-local $ref {ref}"
            try:
                resolve(doc, ref)
            except (KeyError, IndexError, ValueError):
                pytest.fail(f"{label} {where}: $ref {ref} does not resolve")


def test_nullable_sits_beside_type():
    # OpenAPI 3.0.3: nullable only adds null to a `type` in the same schema object.
    def walk(node, where):
        if isinstance(node, dict):
            if node.get("nullable"):
                assert "type" in node, f"{where}: nullable without type"
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")
    walk(load_openapi(), "#")


def test_every_operation_has_an_operation_id_and_responses():
    ids = []
    for path, method, _, op in operations(load_openapi()):
        assert op.get("operationId"), f"{method.upper()} {path}: no operationId"
        assert re.fullmatch(r"[a-z][A-Za-z0-9]*", op["operationId"])
        assert op.get("responses"), f"{method.upper()} {path}: no responses"
        assert op.get("summary"), f"{method.upper()} {path}: no summary"
        ids.append(op["operationId"])
    assert len(ids) == len(set(ids)), "duplicate operationId"


def test_every_path_parameter_is_declared():
    doc = load_openapi()
    names = {"name", "version", "id"}
    for path, method, item, op in operations(doc):
        in_template = re.findall(r"\{([^}]+)\}", path)
        assert set(in_template) <= names, f"{path}: parameter names must be {names}"
        declared = {}
        # Operation-level parameters override path-level ones of the same name and place.
        for p in item.get("parameters", []) + op.get("parameters", []):
            p = deref(doc, p)
            assert p.get("name") and p.get("in") and "schema" in p, f"{path}: bad parameter {p}"
            declared[(p["name"], p["in"])] = p
        path_params = {n for (n, where) in declared if where == "path"}
        assert path_params == set(in_template), \
            f"{method.upper()} {path}: declared {sorted(path_params)}, template {in_template}"
        for name in in_template:
            assert declared[(name, "path")].get("required") is True, \
                f"{path}: path parameter {name} must be required"


def test_parameter_schemas_by_resource():
    doc = load_openapi()
    for path, method, item, op in operations(doc):
        params = {p["name"]: p for p in (deref(doc, p) for p in
                                         item.get("parameters", []) + op.get("parameters", []))
                  if p["in"] == "path"}
        if "version" in params:
            assert deref(doc, params["version"]["schema"])["type"] == "integer"
        if "id" in params:
            expect = "integer" if path.startswith("/api/v1/tokens/") else "string"
            assert deref(doc, params["id"]["schema"])["type"] == expect, path


def test_response_statuses_are_the_allowed_ones():
    for path, method, _, op in operations(load_openapi()):
        codes = set(op["responses"])
        assert codes <= ALLOWED_STATUSES, f"{method.upper()} {path}: {codes - ALLOWED_STATUSES}"
        assert any(c.startswith("2") for c in codes), f"{method.upper()} {path}: no success"
        assert "500" in codes, f"{method.upper()} {path}: no 500"


def test_error_responses_use_the_error_schema():
    doc = load_openapi()
    error = "#/components/schemas/Error"
    for path, method, _, op in operations(doc):
        for code, response in op["responses"].items():
            if code[0] not in "45":
                continue
            response = deref(doc, response)
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": error}, f"{method.upper()} {path} {code}"
    for name, response in doc["components"]["responses"].items():
        media = response["content"]["application/json"]
        assert media["schema"] == {"$ref": error}, name
        assert not oas_errors("Error", media["example"]), name


def test_error_examples_carry_the_status_code_family():
    doc = load_openapi()
    family = {"400": {"bad_request", "malformed_json"}, "401": {"unauthenticated"},
              "403": {"forbidden"}, "404": {"not_found", "no_route", "no_assignment"},
              "405": {"method_not_allowed"},
              "409": {"conflict", "model_exists", "device_exists", "version_not_increasing", "ring_exists"},
              "413": {"payload_too_large"}, "415": {"unsupported_media_type"},
              "422": {"unprocessable", "bad_signature", "hash_mismatch"}, "500": {"internal"}}
    for path, method, _, op in operations(doc):
        for code, response in op["responses"].items():
            example = deref(doc, response).get("content", {}) \
                .get("application/json", {}).get("example")
            if code in family and example:
                assert example["error"]["code"] in family[code], f"{method.upper()} {path}"


def test_authenticated_operations_answer_401_and_403():
    for path, method, _, op in operations(load_openapi()):
        if op.get("security", None) == []:
            assert not {"401", "403"} & set(op["responses"]), path
        else:
            assert {"401", "403"} <= set(op["responses"]), f"{method.upper()} {path}"


def test_body_operations_answer_400_413_415():
    for path, method, _, op in operations(load_openapi()):
        if "requestBody" in op:
            assert op["requestBody"].get("required") is True, path
            assert {"400", "413", "415", "422"} <= set(op["responses"]), \
                f"{method.upper()} {path}"
        else:
            assert "415" not in op["responses"], f"{method.upper()} {path}"


def test_json_request_bodies_are_closed_objects():
    doc = load_openapi()
    for path, method, _, op in operations(doc):
        content = op.get("requestBody", {}).get("content", {})
        for media, body in content.items():
            schema = deref(doc, body["schema"])
            assert schema.get("type") == "object", f"{method.upper()} {path}"
            assert schema.get("additionalProperties") is False, \
                f"{method.upper()} {path}: unknown members must be refused"


def test_security_schemes_are_bearer_tokens():
    doc = load_openapi()
    schemes = doc["components"]["securitySchemes"]
    assert set(schemes) == {"apiToken", "deviceToken", "enrollToken"}
    for scheme in schemes.values():
        assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert doc["security"] == [{"apiToken": []}]
    for path, method, _, op in operations(doc):
        for requirement in op.get("security", doc["security"]):
            assert set(requirement) <= set(schemes), path


def test_unauthenticated_routes():
    doc = load_openapi()
    for path, method, _, op in operations(doc):
        public = op.get("security", doc["security"]) == []
        assert public == (path in UNAUTHENTICATED), f"{method.upper()} {path}"


# --------------------------------------------------------------------------
# openapi.yaml against docs/rest.md

def test_paths_are_exactly_the_routes_of_rest_md():
    documented = set(rest_md_routes())
    described = {(m.upper(), p) for p, m, _, _ in operations(load_openapi())}
    assert documented, "no route table found in docs/rest.md"
    assert described - documented == set(), "in openapi.yaml, not in docs/rest.md"
    assert documented - described == set(), "in docs/rest.md, not in openapi.yaml"


def test_access_matches_rest_md():
    doc = load_openapi()
    routes = rest_md_routes()
    scheme_of = {"anyone": None, "viewer": "apiToken", "operator": "apiToken",
                 "admin": "apiToken", "device": "deviceToken", "enrollment": "enrollToken"}
    for path, method, _, op in operations(doc):
        callers = routes[(method.upper(), path)]
        assert set(op["x-edgefleet-access"]) == callers, f"{method.upper()} {path}"
        schemes = {s for req in op.get("security", doc["security"]) for s in req}
        assert schemes == {scheme_of[c] for c in callers} - {None}, f"{method.upper()} {path}"


def test_desired_state_supports_conditional_requests():
    doc = load_openapi()
    op = doc["paths"]["/api/v1/devices/{id}/desired"]["get"]
    params = [deref(doc, p) for p in op["parameters"]]
    assert any(p["name"] == "If-None-Match" and p["in"] == "header" for p in params)
    for code in ("200", "304"):
        assert "ETag" in op["responses"][code]["headers"], code
    assert "content" not in op["responses"]["304"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == \
        {"$ref": "#/components/schemas/Envelope"}
    assert not oas_errors("Envelope", sample_envelope())


def test_artifact_and_signature_media_types():
    paths = load_openapi()["paths"]
    base = "/api/v1/models/{name}/versions/{version}"
    artifact = paths[base + "/artifact"]["get"]["responses"]["200"]
    assert "application/octet-stream" in artifact["content"]
    assert "ETag" in artifact["headers"]
    assert "text/plain" in paths[base + "/manifest.sig"]["get"]["responses"]["200"]["content"]
    assert "application/json" in paths[base + "/manifest"]["get"]["responses"]["200"]["content"]


def test_upload_is_multipart_with_the_four_parts():
    doc = load_openapi()
    body = doc["paths"]["/api/v1/models/{name}/versions"]["post"]["requestBody"]
    assert list(body["content"]) == ["multipart/form-data"]
    media = body["content"]["multipart/form-data"]
    schema = deref(doc, media["schema"])
    assert set(schema["properties"]) == {"artifact", "meta", "manifest", "signature"}
    assert schema["required"] == ["artifact"]
    assert schema["properties"]["artifact"]["format"] == "binary"
    assert set(media["encoding"]) == set(schema["properties"])
    assert media["encoding"]["meta"]["contentType"] == "application/json"


def test_created_statuses_follow_rest_md():
    paths = load_openapi()["paths"]
    created = [("post", "/api/v1/models"), ("post", "/api/v1/models/{name}/versions"),
               ("post", "/api/v1/enroll-tokens"), ("post", "/api/v1/enroll"),
               ("post", "/api/v1/rings"), ("post", "/api/v1/tokens")]
    for method, path in created:
        assert "201" in paths[path][method]["responses"], path
    for path in ("/api/v1/devices/{id}", "/api/v1/tokens/{id}"):
        assert set(paths[path]["delete"]["responses"]) & {"200", "201", "204"} == {"204"}
    assert "200" in paths["/api/v1/assignments"]["post"]["responses"]


# --------------------------------------------------------------------------
# openapi.yaml against the JSON Schemas

CONSTRAINTS = ("pattern", "minimum", "maximum", "minLength", "maxLength", "minItems",
               "maxItems", "minProperties")


def shape(node, root, oas, seen=()):
    """A comparable outline of a schema: types (with null), enum, constraints,
    members, required, closed or open."""
    if isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if ref in seen:
            return ("recursive", ref)
        return shape(resolve(root, ref), root, oas, seen + (ref,))
    if isinstance(node, dict) and "allOf" in node and len(node["allOf"]) == 1:
        # OpenAPI 3.0's way to make a referenced schema nullable: type and
        # nullable beside a one-element allOf.
        inner = shape(node["allOf"][0], root, oas, seen)
        if oas and node.get("nullable"):
            inner = dict(inner, types=tuple(sorted(set(inner["types"]) | {"null"})))
        return inner
    types = node.get("type")
    types = set(types) if isinstance(types, list) else {types} if types else set()
    if oas and node.get("nullable"):
        types.add("null")
    enum = node.get("enum")
    if "const" in node:
        enum = [node["const"]]
        types.add({bool: "boolean", int: "integer", str: "string"}[type(node["const"])])
    out = {"types": tuple(sorted(types)), "enum": tuple(enum) if enum else None}
    for key in CONSTRAINTS:
        if key in node:
            out[key] = node[key]
    if "properties" in node:
        out["properties"] = {k: shape(v, root, oas, seen)
                             for k, v in sorted(node["properties"].items())}
        out["required"] = tuple(sorted(node.get("required", [])))
        out["closed"] = node.get("additionalProperties") is False
    if "items" in node:
        out["items"] = shape(node["items"], root, oas, seen)
    return out


@pytest.mark.parametrize("component,name", [("Manifest", "manifest"),
                                            ("Assignment", "assignment"),
                                            ("Envelope", "envelope"),
                                            ("Error", "error")])
def test_openapi_components_match_json_schemas(component, name):
    doc = load_openapi()
    json_schema = load_json_schema(name)
    assert shape(doc["components"]["schemas"][component], doc, True) == \
        shape(json_schema, json_schema, False)


@pytest.mark.parametrize("component,name", [("Manifest", "manifest"),
                                            ("Assignment", "assignment"),
                                            ("Envelope", "envelope"),
                                            ("Error", "error")])
def test_openapi_components_agree_with_json_schemas_on_samples(component, name):
    good = SAMPLES[name]()
    assert oas_errors(component, good) == []
    for schema_name, path, value, delete in BROKEN:
        if schema_name != name:
            continue
        bad = mutate(good, path, value, delete)
        assert bool(oas_errors(component, bad)) == bool(json_schema_errors(name, bad)), \
            f"{component} and {name}.schema.json disagree on {path} = {value!r}"


def test_version_meta_uses_the_manifest_parts():
    doc = load_openapi()
    schemas = doc["components"]["schemas"]
    meta = schemas["VersionMeta"]["properties"]
    manifest = schemas["Manifest"]["properties"]
    # The keys server/manifest_build.c accepts (manifest_meta_keys).
    assert set(meta) == {"description", "backend", "device_class", "features", "labels",
                         "test_vectors", "baseline", "metrics", "lineage", "version"}
    for key in set(meta) & set(manifest):
        assert shape(meta[key], doc, True) == shape(manifest[key], doc, True), key


def test_device_slot_states_and_reported_states_agree():
    doc = load_openapi()
    states = doc["components"]["schemas"]["ActionState"]["enum"]
    reported = load_json_schema("reported")["properties"]["state"]["enum"]
    assert set(reported) == (set(states) - {"pending"}) | {"staged", "self-test"}


# --------------------------------------------------------------------------
# JSON Schemas

def walk_schemas(node, where="#"):
    """Yields (location, subschema) for every subschema of a JSON Schema."""
    if not isinstance(node, dict):
        return
    yield where, node
    for key in ("properties", "$defs"):
        for name, sub in node.get(key, {}).items():
            yield from walk_schemas(sub, f"{where}/{key}/{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from walk_schemas(node[key], f"{where}/{key}")
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(node.get(key, [])):
            yield from walk_schemas(sub, f"{where}/{key}/{i}")


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_json_schema_is_draft_2020_12(name):
    schema = load_json_schema(name)
    assert schema["$schema"] == DRAFT_2020_12
    assert schema["$id"] == f"urn:edgefleet:schema:v1:{name}"
    assert schema.get("title") and schema.get("description")
    if jsonschema is not None:
        jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_json_schema_is_self_consistent(name):
    schema = load_json_schema(name)
    for where, sub in walk_schemas(schema):
        unknown = set(sub) - KNOWN_KEYWORDS - {"nullable"}
        assert not unknown, f"{name} {where}: keywords {sorted(unknown)}"
        assert "nullable" not in sub, f"{name} {where}: nullable is OpenAPI, use a type list"
        required = sub.get("required", [])
        assert len(required) == len(set(required)), f"{name} {where}: duplicate required"
        if "properties" in sub or required:
            assert set(required) <= set(sub.get("properties", {})), \
                f"{name} {where}: required {sorted(set(required) - set(sub['properties']))}" \
                " not in properties"
        if "pattern" in sub:
            re.compile(sub["pattern"])
        if "enum" in sub:
            assert len(sub["enum"]) == len(set(map(json.dumps, sub["enum"]))), where
        for lo, hi in (("minimum", "maximum"), ("minLength", "maxLength"),
                       ("minItems", "maxItems")):
            if lo in sub and hi in sub:
                assert sub[lo] <= sub[hi], f"{name} {where}: {lo} > {hi}"


def test_json_schema_ids_are_unique():
    ids = [load_json_schema(n)["$id"] for n in SCHEMA_FILES]
    assert len(ids) == len(set(ids))
    assert sorted(p.name for p in JSON_DIR.glob("*.schema.json")) == \
        sorted(f"{n}.schema.json" for n in SCHEMA_FILES)


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_json_schema_accepts_its_sample(name):
    assert json_schema_errors(name, SAMPLES[name]()) == []


@pytest.mark.parametrize("name,path,value,delete", BROKEN,
                         ids=[f"{b[0]}:{'.'.join(map(str, b[1]))}={b[2]!r}" for b in BROKEN])
def test_json_schema_refuses_broken_documents(name, path, value, delete):
    assert json_schema_errors(name, mutate(SAMPLES[name](), path, value, delete)) != []


def test_status_is_the_bare_words():
    assert json_schema_errors("status", "offline") == []
    for bad in ("Online", "", "gone", None, 1):
        assert json_schema_errors("status", bad) != []


def test_envelope_payload_is_an_assignment():
    envelope = sample_envelope()
    payload = json.loads(base64.b64decode(envelope["payload"], validate=True))
    assert json_schema_errors("assignment", payload) == []
    assert oas_errors("Assignment", payload) == []


def test_manifest_allows_any_class_and_unlabelled_output():
    manifest = sample_manifest()
    manifest["device_class"] = "rpi4"
    manifest["output"]["labels"] = []
    manifest["backend"] = "fann-fixed"
    manifest["lineage"] = {"parent_version": None, "dataset_id": None, "trigger": None}
    manifest["test_vectors"] = []
    manifest["metrics"] = {}
    assert json_schema_errors("manifest", manifest) == []
    assert oas_errors("Manifest", manifest) == []


def test_shadow_slot_and_rollout_id():
    assignment = sample_assignment()
    shadow = dict(assignment["slots"]["production"], version=4, rollout_id="12")
    assignment["slots"]["shadow"] = shadow
    assert json_schema_errors("assignment", assignment) == []
    assert oas_errors("Assignment", assignment) == []


def test_own_validator_catches_what_it_claims():
    # The fallback validator must not pass everything: a few direct checks.
    schema = {"type": "object", "required": ["a"], "additionalProperties": False,
              "properties": {"a": {"type": ["integer", "null"], "minimum": 1}},
              "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}
    assert validate(schema, {"a": 1}) == []
    assert validate(schema, {"a": None}) == []
    assert validate(schema, {"a": 0}) != []
    assert validate(schema, {"a": True}) != []
    assert validate(schema, {"a": 1, "b": 2}) != []
    assert validate(schema, {}) != []
    assert validate({"const": 1}, 1.5) != []
    assert validate({"type": "string", "pattern": "^x$"}, "y") != []
    assert validate({"type": "string", "nullable": True}, None, oas=True) == []
    assert validate({"type": "string"}, None, oas=True) != []

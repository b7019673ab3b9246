"""Helpers shared by test_openapi.py and test_fuzz.py: Flask rules as OpenAPI paths, the
operation for a route, and a small validator for the JSON Schema subset the spec uses
(type, nullable, enum, pattern, lengths, bounds, required, properties,
additionalProperties, items, $ref, allOf, anyOf, oneOf, not)."""
import re

AUTOMATIC_METHODS = {"HEAD", "OPTIONS"}  # Werkzeug/Flask add these to every rule
NOT_API_ENDPOINTS = {"static"}  # Flask's own /static/<path:filename>; eLife serves no files


def camel(name):
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def openapi_path(rule):
    """'/orders/<order_number>' -> '/orders/{orderNumber}'."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: "{" + camel(m.group(1)) + "}", rule)


def app_operations(app):
    """{(openapi path, method)} for every route the app serves, HEAD and OPTIONS aside."""
    ops = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in NOT_API_ENDPOINTS:
            continue
        for method in rule.methods - AUTOMATIC_METHODS:
            ops.add((openapi_path(rule.rule), method))
    return ops


def spec_operations(spec):
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    return {(path, m.upper()) for path, item in spec["paths"].items() for m in item if m in methods}


def operation(spec, path, method):
    return spec["paths"][path][method.lower()]


def resolve(spec, schema):
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/"), ref
        node = spec
        for part in ref[2:].split("/"):
            node = node[part]
        schema = node
    return schema


def _type_ok(value, t):
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list)
    if t == "string":
        return isinstance(value, str)
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "boolean":
        return isinstance(value, bool)
    raise AssertionError(f"unknown type {t}")


def errors(value, schema, spec, at="$"):
    """The ways `value` does not match `schema` (an empty list when it does)."""
    schema = resolve(spec, schema)
    out = []
    if value is None:
        if schema.get("nullable") or "type" not in schema:
            return out
        return [f"{at}: null where {schema['type']} is required"]
    for sub in schema.get("allOf", ()):
        out += errors(value, sub, spec, at)
    if "anyOf" in schema and not any(not errors(value, s, spec, at) for s in schema["anyOf"]):
        out.append(f"{at}: matches none of anyOf")
    if "oneOf" in schema and sum(not errors(value, s, spec, at) for s in schema["oneOf"]) != 1:
        out.append(f"{at}: does not match exactly one of oneOf")
    if "not" in schema and not errors(value, schema["not"], spec, at):
        out.append(f"{at}: matches a schema it must not")
    t = schema.get("type")
    if t and not _type_ok(value, t):
        return out + [f"{at}: {type(value).__name__} where {t} is required"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{at}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(f"{at}: {value!r} does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0):
            out.append(f"{at}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append(f"{at}: longer than {schema['maxLength']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{at}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            out.append(f"{at}: {value} > {schema['maximum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                out.append(f"{at}: {name} is missing")
        for name, v in value.items():
            if name in props:
                out += errors(v, props[name], spec, f"{at}.{name}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{at}: {name} is not allowed")
            elif isinstance(schema.get("additionalProperties"), dict):
                out += errors(v, schema["additionalProperties"], spec, f"{at}.{name}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            out += errors(v, schema["items"], spec, f"{at}[{i}]")
    return out

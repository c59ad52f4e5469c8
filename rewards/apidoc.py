"""docs/api.md, written from the service's own OpenAPI document, so the two cannot disagree:

    python -m rewards.apidoc > docs/api.md

`tests/test_openapi.py` fails when docs/api.md is not what this prints.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import Any

HEADER = """\
<!-- Generated from the OpenAPI document by `python -m rewards.apidoc > docs/api.md`; do not edit by hand. -->
"""
PROBLEM = "application/problem+json"


def document() -> dict[str, Any]:
    """The OpenAPI document of the app with its plugins, built without touching a database."""
    os.environ.setdefault("DATABASE_URL", "postgresql://localhost/unused")  # create_app reads settings only
    from rewards.app import create_app

    return create_app().openapi_schema.to_schema()


def _name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_of(schema: dict[str, Any]) -> str:
    """A schema in words: `string (date-time)`, `array of [LineIn](#linein)`, `integer or null`."""
    if "$ref" in schema:
        name = _name(schema["$ref"])
        return f"[{name}](#{name.lower()})"
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return type_of(schema["allOf"][0])
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " or ".join(type_of(s) for s in schema[key])
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        return f"object of {type_of(schema['additionalProperties'] or {})}"
    return f"{kind} ({schema['format']})" if "format" in schema else kind


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def rules_of(schema: dict[str, Any]) -> str:
    """The schema's constraints in words."""
    words = []
    for key, text in (("minimum", "≥ {}"), ("maximum", "≤ {}"), ("minLength", "at least {} character"),
                      ("maxLength", "at most {} character"), ("minItems", "at least {} item"),
                      ("maxItems", "at most {} item")):
        if key in schema:
            count = _number(schema[key])
            words.append(text.format(count) + ("s" if key.endswith(("Length", "Items")) and count != "1" else ""))
    if "pattern" in schema:
        words.append(f"matches `{schema['pattern']}`")
    if "default" in schema:
        words.append(f"default `{json.dumps(schema['default'])}`")
    return "; ".join(words)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def _scopes(operation: dict[str, Any]) -> str:
    roles = [role for requirement in operation.get("security") or [] for roles in requirement.values() for role in roles]
    return ", ".join(f"`{r}`" for r in roles) if roles else "none (public)"


def _anchor(method: str, path: str) -> str:
    text = f"{method} {path}".lower()
    return "".join(c for c in text.replace(" ", "-") if c.isalnum() or c in "-_")


def render(doc: dict[str, Any]) -> str:
    out = [HEADER, f"# {doc['info']['title']}: the HTTP API (version {doc['info']['version']})", ""]
    out += [doc["info"]["description"].strip(), ""]
    out += ["The live document is served at `/schema/openapi.json` and shown by Swagger UI at `/schema`",
            "(its files come with the package: the page needs no network). A client can be generated",
            "from the document, e.g. `openapi-python-client generate --url http://127.0.0.1:8000/schema/openapi.json`.",
            ""]
    out += ["## Routes", "", "| route | what | scopes (any of) |", "| --- | --- | --- |"]
    for method, path, operation in operations(doc):
        out.append(f"| [`{method} {path}`](#{_anchor(method, path)}) | {_cell(operation['summary'])} "
                   f"| {_scopes(operation)} |")
    out += ["", "`guest` is a guest token, and only for the member named in the path.", ""]
    out += _errors(doc)
    tags = {tag["name"]: tag.get("description", "") for tag in doc.get("tags", [])}
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for method, path, operation in operations(doc):
        by_tag.setdefault((operation.get("tags") or ["other"])[0], []).append((method, path, operation))
    for tag, listed in by_tag.items():
        out += [f"## {tag[0].upper() + tag[1:]}", ""]
        if tags.get(tag):
            out += [tags[tag], ""]
        for method, path, operation in listed:
            out += _operation(method, path, operation)
    out += ["## Schemas", ""]
    for name, schema in sorted(doc["components"]["schemas"].items()):
        out += _schema(name, schema)
    return "\n".join(out).rstrip() + "\n"


def _errors(doc: dict[str, Any]) -> list[str]:
    codes: dict[tuple[int, str], str] = {}
    for _, _, operation in operations(doc):
        for status, response in operation["responses"].items():
            for example in ((response.get("content") or {}).get(PROBLEM) or {}).get("examples", {}).values():
                codes[(int(status), example["value"]["code"])] = example["value"]["title"]
    out = ["## Errors", "",
           "Every error is an `application/problem+json` document ([Problem](#problem)): `type`, `title`,",
           "`status`, `detail` and a stable `code`, with `field` naming the request field at fault for",
           "`validation_error`. Nothing is written when a request is refused. The codes:", "",
           "| status | code | meaning |", "| --- | --- | --- |"]
    out += [f"| {status} | `{code}` | {_cell(title)} |" for (status, code), title in sorted(codes.items())]
    return [*out, ""]


def _operation(method: str, path: str, operation: dict[str, Any]) -> list[str]:
    summary, description = operation["summary"], operation.get("description", "")
    lead = "" if description.startswith(summary) else f"**{summary}.** "
    out = [f"### {method} {path}", "", lead + description, ""]
    parameters = operation.get("parameters") or []
    if parameters:
        out += ["| parameter | in | type | required | rules |", "| --- | --- | --- | --- | --- |"]
        for p in parameters:
            schema = p.get("schema", {})
            rules = "; ".join(filter(None, [p.get("description") or schema.get("description", ""), rules_of(schema)]))
            out.append(f"| `{p['name']}` | {p['in']} | {type_of(schema)} | {'yes' if p.get('required') else 'no'} "
                       f"| {_cell(rules)} |")
        out.append("")
    body = operation.get("requestBody")
    if body:
        for media, content in body["content"].items():
            out += [f"Request body ({media}): {type_of(content['schema'])}", ""]
            for example in content["schema"].get("examples", [])[:1]:
                out += ["```json", _json(example), "```", ""]
    out += ["| status | answer |", "| --- | --- |"]
    for status, response in sorted(operation["responses"].items()):
        contents = response.get("content") or {}
        kinds = ", ".join(f"{type_of(c['schema'])} ({m})" if m != "application/json" else type_of(c["schema"])
                          for m, c in contents.items())
        out.append(f"| {status} | {_cell(response.get('description', ''))}{' — ' + kinds if kinds else ''} |")
    out.append("")
    for status, response in operation["responses"].items():  # the route's own success status comes first
        if not status.startswith("2"):
            continue
        for media, content in (response.get("content") or {}).items():
            for example in list((content.get("examples") or {}).values())[:1]:
                value = example["value"]
                block = value if isinstance(value, str) else _json(value)
                out += [f"Example answer ({status}):", "", "```" + ("json" if media.endswith("json") else ""),
                        block.rstrip(), "```", ""]
            break
        break
    return out


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    out = [f"### {name}", ""]
    if schema.get("description"):
        out += [schema["description"], ""]
    properties = schema.get("properties") or {}
    if not properties:
        return [*out, type_of(schema), ""]
    required = set(schema.get("required", []))
    out += ["| field | type | required | rules |", "| --- | --- | --- | --- |"]
    for field, spec in properties.items():
        rules = "; ".join(filter(None, [spec.get("description", ""), rules_of(spec)]))
        out.append(f"| `{field}` | {type_of(spec)} | {'yes' if field in required else 'no'} | {_cell(rules)} |")
    return [*out, ""]


def main() -> None:
    sys.stdout.write(render(document()))


if __name__ == "__main__":
    main()

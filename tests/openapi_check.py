"""Checking answers against the extension's OpenAPI document (with
jsonschema_rs), for the tests of every route that the document describes."""

from __future__ import annotations

from typing import Any

import jsonschema_rs


def document(client: Any, prefix: str = "/api") -> dict[str, Any]:
    response = client.get(f"{prefix}/openapi.json")
    assert response.status_code == 200
    assert response.is_json
    return response.json  # type: ignore[no-any-return]


def node_pointer(ref: str) -> list[str]:
    return [part.replace("~1", "/").replace("~0", "~") for part in ref.removeprefix("#/").split("/")]


def check(doc: dict[str, Any], path: str, method: str, response: Any) -> None:
    """``response`` (a test client response to ``method path``) is one the document allows."""
    operation = doc["paths"][path][method]
    assert str(response.status_code) in operation["responses"], (path, method, response.status_code, response.json)
    declared = operation["responses"][str(response.status_code)]
    if "$ref" in declared:
        pointer = node_pointer(declared["$ref"])
        declared = doc
        for part in pointer:
            declared = declared[part]
    assert response.mimetype == "application/json"
    schema = declared["content"]["application/json"]["schema"]
    validator = jsonschema_rs.Draft202012Validator({**schema, "components": doc["components"]})
    errors = [error.message for error in validator.iter_errors(response.json)]
    assert not errors, (path, method, response.status_code, errors)
    for header, declaration in declared.get("headers", {}).items():
        # Declared headers are checked unless explicitly not always sent ("required": false).
        if declaration.get("required", True):
            assert header in response.headers, (path, method, header)

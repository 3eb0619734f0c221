"""The OpenAPI 3.1 document of the extension's JSON routes, served at
``<prefix>/openapi.json``.

:func:`build` collects the routes' descriptions (see :mod:`flask_apitokens.openapi`)
from the issuing methods' list (:data:`~flask_apitokens.methods.ISSUING_METHODS`),
the JSON views, the leak routes and the OAuth2 server, and keeps only the
operations the application really serves (a route switched off is not in the
document). It sits above every module that describes routes; none imports it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify

from .methods import ISSUING_METHODS
from .oauth2 import openapi as oauth2_openapi
from .openapi import (
    NO_CREDENTIAL,
    SCHEMAS,
    SECURITY_SCHEMES,
    error_responses,
    json_response,
    operation,
    scopes_schema,
)
from .state import state
from .views import api, leaks

_RULE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def openapi_path(rule: str) -> str:
    """``/api/tokens/<token_id>`` -> ``/api/tokens/{token_id}``."""
    return _RULE_ARGUMENT.sub(r"{\1}", rule)


def served_operations(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path, lower-case method) of every rule the application serves."""
    served = set()
    for rule in app.url_map.iter_rules():
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                served.add((openapi_path(rule.rule), method.lower()))
    return served


def _route_modules() -> list[Any]:
    """Every module that describes routes, in one explicit list."""
    return [sys.modules[__name__], api, leaks, oauth2_openapi]


def build(app: Flask) -> dict[str, Any]:
    """The document for ``app``: only the operations it serves."""
    settings = state(app).settings
    served = served_operations(app)
    paths: dict[str, Any] = {}
    used_tags: set[str] = set()
    modules = _route_modules()
    described: list[tuple[str, Mapping[str, Any]]] = [
        (getattr(module, "OPENAPI_PREFIX", settings["URL_PREFIX"]), module.OPENAPI) for module in modules]
    described += [(settings["URL_PREFIX"], method.openapi) for method in ISSUING_METHODS]
    # A module may describe its tags (``OPENAPI_TAGS``); only tags in use are kept.
    tags = [tag for module in modules for tag in getattr(module, "OPENAPI_TAGS", [])]
    for prefix, routes in described:
        for path, item in routes.items():
            full = prefix + path
            for method, op in item.items():
                if (full, method) in served:
                    paths.setdefault(full, {})[method] = op
                    used_tags.update(op.get("tags", ()))
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "flask-apitokens",
            "version": "1",
            "description": "API access tokens: issuing, checking, listing, rotating and revoking them.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {**SCHEMAS, "Scopes": scopes_schema(list(settings.scopes)),
                        "FormScopes": scopes_schema(list(settings.scopes), nullable=False)},
            "responses": error_responses(),
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
    if in_use := [tag for tag in tags if tag["name"] in used_tags]:
        document["tags"] = in_use
    return document


def serve() -> Response:
    """``GET <prefix>/openapi.json``."""
    return jsonify(build(current_app._get_current_object()))  # type: ignore[attr-defined]


def register(blueprint: Blueprint) -> None:
    """Serve the document on the JSON blueprint."""
    blueprint.add_url_rule("/openapi.json", "openapi", serve)


#: This module's own route, collected like any other.
OPENAPI: dict[str, Any] = {
    "/openapi.json": {"get": operation(
        "This document", tag="meta", security=NO_CREDENTIAL,
        responses={200: json_response("The OpenAPI 3.1 document", {"type": "object", "required": ["openapi"]})},
    )},
}

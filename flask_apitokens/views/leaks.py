"""Routes for leaked credentials, on the JSON blueprint:

- ``POST /api/credentials/revoke``: anyone who found credentials of this
  application posts ``{"credentials": [...]}``; live ones are revoked. Always
  ``202`` with the same body, so the route tells nobody what was live.
- ``POST /api/secret-scanning`` (``APITOKENS_SECRET_SCANNING``): GitHub's
  secret scanning partner endpoint; signed alerts in, labels out.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request

from .. import errors, leaks, secret_scanning
from .. import openapi as oa
from ..ratelimit import rate_limited
from ..state import state
from ..web import read_body

if TYPE_CHECKING:
    from ..state import State

#: The one answer of the report route.
ACCEPTED = {"status": "accepted",
            "message": "Thank you. Every live credential of this application in the report is now revoked."}


@rate_limited()
def report_credentials() -> Response:
    body = read_body(form=False)
    texts = body.get("credentials")
    if (not isinstance(texts, list) or not texts or len(texts) > leaks.MAX_REPORTED
            or not all(isinstance(text, str) for text in texts)):
        raise errors.BadRequest(f"Send {{\"credentials\": [...]}}: a list of 1 to {leaks.MAX_REPORTED} strings.",
                                code="invalid_field")
    leaks.revoke_reported(state().service, texts, reporter=request.remote_addr, source="report")
    response = jsonify(ACCEPTED)
    response.status_code = 202
    return response


def _key_store(st: State) -> secret_scanning.KeyStore:
    if st.scanning_keys is None:
        st.scanning_keys = secret_scanning.KeyStore(st.settings["SECRET_SCANNING_KEYS_URL"],
                                                    timeout=st.settings["SECRET_SCANNING_TIMEOUT"])
    return st.scanning_keys  # type: ignore[no-any-return]


def _raw_body() -> bytes:
    """The exact bytes GitHub signed, within APITOKENS_MAX_BODY_SIZE (413 past it)."""
    limit = state().settings["MAX_BODY_SIZE"]
    if request.content_length is not None and request.content_length > limit:
        raise errors.PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise errors.PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    return data


def secret_scanning_alert() -> Response:
    st = state()
    body = _raw_body()
    # Verified before the body is parsed: nothing of an unsigned body is looked at.
    secret_scanning.verify(_key_store(st), body, request.headers.get("Github-Public-Key-Identifier"),
                           request.headers.get("Github-Public-Key-Signature"))
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise errors.BadRequest("The body is not valid JSON.", code="invalid_json") from None
    alerts = secret_scanning.parse_alerts(data, leaks.MAX_REPORTED)
    revoked = leaks.revoke_reported(st.service, [alert["token"] for alert in alerts], reporter=request.remote_addr,
                                    source="secret_scanning",
                                    urls={alert["token"]: alert["url"] for alert in alerts})
    # GitHub's documented answer: one label per match, the token named by its SHA-256.
    return jsonify([{"token_hash": secret_scanning.token_hash(alert["token"]), "token_type": alert["type"],
                     "label": "true_positive" if alert["token"] in revoked else "false_positive"}
                    for alert in alerts])


def register(blueprint: Blueprint, state: State) -> None:
    blueprint.add_url_rule("/credentials/revoke", "report_credentials", report_credentials, methods=["POST"])
    if state.settings["SECRET_SCANNING"]:
        blueprint.add_url_rule("/secret-scanning", "secret_scanning", secret_scanning_alert, methods=["POST"])


_ACCEPTED_SCHEMA = {"type": "object", "required": ["status", "message"],
                    "properties": {"status": {"const": "accepted"}, "message": oa.TEXT}}
_LABELS = {"type": "array", "items": {
    "type": "object", "required": ["token_hash", "token_type", "label"],
    "properties": {"token_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "token_type": oa.TEXT,
                   "label": {"enum": ["true_positive", "false_positive"]}}}}

#: The routes, for the OpenAPI document (see :mod:`flask_apitokens.openapi`).
OPENAPI = {
    "/credentials/revoke": {"post": oa.operation(
        "Report leaked credentials: each live one is revoked", tag="leaks", security=oa.NO_CREDENTIAL,
        description="No authentication. Always 202 with the same body, whatever was found.",
        body={"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["credentials"],
            "properties": {"credentials": {"type": "array", "minItems": 1, "maxItems": leaks.MAX_REPORTED,
                                           "items": {"type": "string"}}}}}}},
        responses={202: oa.json_response("The report was taken (the same answer whatever it held)",
                                         _ACCEPTED_SCHEMA)},
        errors=(400, 413, 415, 429, 503),
    )},
    "/secret-scanning": {"post": oa.operation(
        "GitHub's secret scanning partner endpoint (APITOKENS_SECRET_SCANNING)", tag="leaks",
        security=oa.NO_CREDENTIAL,
        description="Signed by GitHub (Github-Public-Key-Identifier, Github-Public-Key-Signature); "
                    "400 invalid_signature when the signature does not verify.",
        parameters=[{"name": name, "in": "header", "required": True, "schema": oa.TEXT}
                    for name in ("Github-Public-Key-Identifier", "Github-Public-Key-Signature")],
        body={"required": True, "content": {"application/json": {"schema": {"type": "array", "items": {
            "type": "object", "required": ["token"],
            "properties": {"token": oa.TEXT, "type": oa.TEXT, "url": oa.TEXT, "source": oa.TEXT}}}}}},
        responses={200: oa.json_response("One label per match, the token named by its SHA-256", _LABELS)},
        errors=(400, 413, 503),
    )},
}

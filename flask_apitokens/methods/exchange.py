"""``POST /api/api_tokens``: Deskpro's not-recommended email/password exchange.

Needs no credential of its own; answers ``{"person_id", "token", "expiresOn"}``.
Accounts without a local password (LDAP, OAuth) get the same 401 as a wrong
password. ``APITOKENS_PASSWORD_EXCHANGE = False`` removes the route (404).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Response

from .. import openapi as oa
from ..ratelimit import rate_limited
from ..state import state
from ..web import MAX_LOGIN_LENGTH, MAX_PASSWORD_LENGTH, issue_options, read_body, text_field, token_response
from .userpass import check_password_login

if TYPE_CHECKING:
    from ..state import State


@rate_limited(account="email")
def exchange_password() -> Response:
    body = read_body(form=False)
    email = text_field(body, "email", max_length=MAX_LOGIN_LENGTH)
    password = text_field(body, "password", max_length=MAX_PASSWORD_LENGTH)
    user = check_password_login(email, password, method="exchange", by_email=True)
    issued = state().service.issue(user, via="exchange", **issue_options(body))
    return token_response(issued, person_id=issued.info.user_id)


def register(blueprint: Blueprint, state: State) -> None:
    blueprint.add_url_rule("/api_tokens", "password_exchange", exchange_password, methods=["POST"])


#: The route, for the OpenAPI document (see :mod:`flask_apitokens.openapi`).
OPENAPI = {"/api_tokens": {"post": oa.operation(
    "A token for an email and password (not recommended)", tag="issue", security=oa.NO_CREDENTIAL,
    description="JSON only. Accounts without a local password get the same 401 as a wrong password.",
    body=oa.password_login_body("email", form=False),
    responses={200: oa.json_response("The new token, shown once", {
        "allOf": [oa.ref("IssuedToken"), {"type": "object", "required": ["person_id"],
                                          "properties": {"person_id": oa.PERSON_ID}}]})},
    errors=(400, 401, 413, 415, 429, 503),
)}}

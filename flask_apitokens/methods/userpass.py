"""``POST /api/authenticate/userpass``: a token for a username and password
(Insight.io's "creation before authentication"). Form fields or JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Response

from .. import errors
from .. import openapi as oa
from ..ratelimit import rate_limited
from ..state import state
from ..web import (
    MAX_LOGIN_LENGTH,
    MAX_PASSWORD_LENGTH,
    issue_options,
    read_body,
    refused,
    text_field,
    token_response,
)

if TYPE_CHECKING:
    from ..state import State


def check_password_login(login: str, password: str, *, method: str, by_email: bool = False):  # noqa: ANN201
    """The active user with this local password, or 401 invalid_credentials; the
    same error, and about the same time, for a wrong user and a wrong password."""
    user = state().users.authenticate(login, password, by_email=by_email)
    if user is None:
        raise refused(method, login, errors.InvalidCredentials())
    return user


@rate_limited(account="username")
def authenticate_userpass() -> Response:
    body = read_body()
    username = text_field(body, "username", max_length=MAX_LOGIN_LENGTH)
    password = text_field(body, "password", max_length=MAX_PASSWORD_LENGTH)
    user = check_password_login(username, password, method="userpass")
    issued = state().service.issue(user, via="userpass", **issue_options(body))
    return token_response(issued)


def register(blueprint: Blueprint, state: State) -> None:
    blueprint.add_url_rule("/authenticate/userpass", "userpass", authenticate_userpass, methods=["POST"])


#: The route, for the OpenAPI document (see :mod:`flask_apitokens.openapi`).
OPENAPI = {"/authenticate/userpass": {"post": oa.operation(
    "A token for a username and password", tag="issue", security=oa.NO_CREDENTIAL,
    description="Form fields or JSON. A wrong user and a wrong password get the same 401.",
    body=oa.password_login_body("username"),
    responses={200: oa.json_response("The new token, shown once", oa.ref("IssuedToken"))},
    errors=(400, 401, 413, 415, 429, 503),
)}}

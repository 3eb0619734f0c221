"""The JSON blueprint: the issuing methods' routes, ``/me`` and token management."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request
from flask_login import current_user

from .. import errors, recent_uses
from .. import openapi as oa
from ..credentials import get_current_token, token_owner
from ..decorators import require_credential
from ..leaks import revoke_all as revoke_everything
from ..methods import ISSUING_METHODS
from ..service import PERSONAL_KINDS
from ..state import state
from ..web import json_blueprint, refuse_cross_site, token_response
from . import leaks

if TYPE_CHECKING:
    from ..state import State

_TOKENS_SCOPE = frozenset(("tokens",))


def _caller(scopes: frozenset[str] = frozenset()) -> tuple[Any, Any]:
    """(user, token info or None) for a session or a credential with ``scopes``."""
    require_credential(scopes, allow_session=True)
    info = get_current_token()
    user = token_owner(info) if info is not None else current_user._get_current_object()
    if user is None:
        raise errors.InvalidToken()
    return user, info


def me() -> Response:
    user, info = _caller()
    body = state().users.profile(user)
    body["token"] = info.to_json() if info is not None else None
    return jsonify(body)


def list_tokens() -> Response:
    user, _ = _caller(_TOKENS_SCOPE)
    tokens = state().service.list(state().users.user_id(user))
    uses = recent_uses.for_tokens(state().db.session, state().models, [info.id for info in tokens])
    return jsonify(tokens=[{**info.to_json(), "recentUses": recent_uses.to_json(uses[info.id])} for info in tokens])


def _changing_caller() -> tuple[Any, Any]:
    """_caller for the routes that change credentials: a cookie session from
    another site is refused, as on ``POST /api/token``."""
    user, info = _caller(_TOKENS_SCOPE)
    if info is None:
        refuse_cross_site("change tokens")
    return user, info


def revoke_token(token_id: str) -> Response:
    user, _ = _changing_caller()
    # API keys are the administrator's to revoke, not their holder's.
    revoked = state().service.revoke([token_id], user_id=state().users.user_id(user), kinds=PERSONAL_KINDS)
    if not revoked:
        raise errors.NotFound("No such token.", code="token_not_found")
    return jsonify(revoked=revoked)


def revoke_all_tokens() -> Response:
    """Log out everywhere: every credential of the person (OAuth2 refresh tokens
    too, found by their own rows, not through access tokens a purge may have
    removed), and every OAuth2 approval and code not yet exchanged."""
    user, _ = _changing_caller()
    st = state()
    return jsonify(revoked=revoke_everything(st, st.users.user_id(user), reason="logout_everywhere"))


def rotate_token(token_id: str) -> Response:
    user, info = _changing_caller()
    issued = state().service.rotate(token_id, user=user, ip=request.remote_addr, presenter=info)
    return token_response(issued, id=issued.info.id, replaces=token_id)


def create_blueprint(state: State) -> Blueprint:
    blueprint = json_blueprint("apitokens_api", __name__)
    for method in ISSUING_METHODS:
        if method.enabled(state):
            method.register(blueprint, state)
    leaks.register(blueprint, state)
    blueprint.add_url_rule("/me", "me", me)
    blueprint.add_url_rule("/tokens", "list_tokens", list_tokens)
    blueprint.add_url_rule("/tokens", "revoke_all_tokens", revoke_all_tokens, methods=["DELETE"])
    blueprint.add_url_rule("/tokens/<token_id>", "revoke_token", revoke_token, methods=["DELETE"])
    blueprint.add_url_rule("/tokens/<token_id>/rotate", "rotate_token", rotate_token, methods=["POST"])
    return blueprint


_TOKEN_LIST = {"type": "object", "required": ["tokens"],
               "properties": {"tokens": {"type": "array", "items": oa.ref("TokenInfo")}}}
_REVOKED = {"type": "object", "required": ["revoked"], "properties": {"revoked": {"type": "array", "items": oa.TEXT}}}
_ME = {"type": "object", "required": ["person_id", "username", "email", "token"], "properties": {
    "person_id": oa.PERSON_ID, "username": {"type": ["string", "null"]}, "email": {"type": ["string", "null"]},
    "organization": {"type": ["string", "null"]}, "is_admin": {"type": "boolean"},
    "token": {"oneOf": [oa.ref("TokenInfo"), {"type": "null"}]}}}
_TOKEN_ID_PARAMETER = [{"name": "token_id", "in": "path", "required": True, "schema": oa.TEXT}]
_MANAGE = "A session cookie, or a credential with the 'tokens' scope."
_CHANGE = _MANAGE + " A cookie-session request from another site is refused (403 cross_site_request)."

#: The routes of this module, for the OpenAPI document (see :mod:`flask_apitokens.openapi`).
OPENAPI = {
    "/me": {"get": oa.operation(
        "The current person, and the credential in use", tag="account", security=oa.SESSION_OR_CREDENTIAL,
        responses={200: oa.json_response("The person; token is null for a session", _ME)},
        errors=(401, 403, 503),
    )},
    "/tokens": {
        "get": oa.operation(
            "The caller's usable tokens, newest first (never a secret)", tag="manage",
            security=oa.SESSION_OR_CREDENTIAL, description=_MANAGE,
            responses={200: oa.json_response("The tokens", _TOKEN_LIST)}, errors=(401, 403, 503),
        ),
        "delete": oa.operation(
            "Log out everywhere: revoke every token, user-token and OAuth2 access and refresh token of the "
            "caller, forget the OAuth2 apps they approved and spend their codes (API keys stay)", tag="manage",
            security=oa.SESSION_OR_CREDENTIAL, description=_CHANGE,
            responses={200: oa.json_response("The ids revoked", _REVOKED)}, errors=(401, 403, 503),
        ),
    },
    "/tokens/{token_id}": {"delete": oa.operation(
        "Revoke one of the caller's tokens, the tokens made with it and its whole rotation family", tag="manage",
        security=oa.SESSION_OR_CREDENTIAL, description=_CHANGE, parameters=_TOKEN_ID_PARAMETER,
        responses={200: oa.json_response("The ids revoked", _REVOKED)}, errors=(401, 403, 404, 503),
    )},
    "/tokens/{token_id}/rotate": {"post": oa.operation(
        "A new token with the same name and scopes; the old one works for APITOKENS_ROTATION_GRACE seconds",
        tag="manage", security=oa.SESSION_OR_CREDENTIAL, parameters=_TOKEN_ID_PARAMETER,
        description=_CHANGE + " A credential must hold every scope of the token rotated (else 403 "
                    "insufficient_scope; nothing changes), and the new token is its child. A token rotates "
                    "once: rotating it again is 409 token_reused, and its whole family is revoked.",
        responses={200: oa.json_response("The new token, shown once", {
            "allOf": [oa.ref("IssuedToken"), {"type": "object", "required": ["id", "replaces"],
                                              "properties": {"id": oa.TEXT, "replaces": oa.TEXT}}]})},
        errors=(401, 403, 404, 409, 503),
    )},
}

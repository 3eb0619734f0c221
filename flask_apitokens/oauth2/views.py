"""The ``/oauth/...`` routes and the RFC 8414 metadata document.

Authlib does the protocol; these views add the login redirect, the consent
page (an itsdangerous-signed field binds the form to the user and the exact
authorization request) and JSON errors for everything else.
"""

from __future__ import annotations

import hashlib
from typing import Any

from authlib.common.security import is_secure_transport
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from flask import Flask, Response, current_app, jsonify, redirect, render_template, request
from flask_login import current_user
from flask_login.utils import login_url
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.exceptions import MethodNotAllowed

from .. import crypto, errors
from ..credentials import get_current_token, session_user
from ..ratelimit import rate_limited
from ..web import http_error, json_blueprint
from .grants_store import approved_scopes
from .server import OAuth2Server

#: Seconds a consent page stays valid.
CONSENT_MAX_AGE = 600
#: Form fields of the consent page (kept apart from the OAuth2 query parameters).
CONSENT_FIELD, DECISION_FIELD = "apitokens_consent", "apitokens_decision"


# OPTIONS is routed too (Flask's automatic answer would advertise every routed method).
ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def wrong_method(*allowed: str) -> Response | None:
    """A JSON 405 when the request's method is not one of ``allowed``, and the
    answer to OPTIONS. Answered here rather than raised: an application-wide 405
    handler would win over the blueprint's."""
    if request.method in allowed:
        return None
    if request.method == "OPTIONS":
        answer = current_app.response_class(status=200)
        answer.headers["Allow"] = ", ".join([*allowed, "OPTIONS"])
        return answer
    return http_error(MethodNotAllowed(valid_methods=list(allowed)))


def _bad_request(message: str) -> Response:
    response = jsonify(error="invalid_request", error_description=message)
    response.status_code = 400
    return response


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def already_approved(state: Any, user: Any, client: Any, scope: str | None) -> bool:
    """Whether ``user`` approved ``client`` before for every scope asked now.
    ``prompt=consent`` (as in OpenID Connect) asks again anyway."""
    if request.args.get("prompt") == "consent":
        return False
    approved = approved_scopes(state, user, client.client_id)
    return approved is not None and approved.issuperset((scope or "").split())


def create_blueprint(app: Flask, state: Any) -> Any:
    server = OAuth2Server(app, state, state.oauth2_models)
    blueprint = json_blueprint("apitokens_oauth2", __name__, template_folder="../templates")
    # A key of its own, derived from the pepper (which always exists).
    signer = URLSafeTimedSerializer(crypto.derive_key(state.settings.pepper, "oauth2-consent"),
                                    salt="flask-apitokens oauth2 consent")

    def request_fingerprint(user_id: Any) -> str:
        # The OAuth2 parameters of this authorization request, in order.
        query = sorted((k, v) for k, v in request.args.items(multi=True))
        return hashlib.sha256(repr((str(user_id), query)).encode()).hexdigest()

    def login_redirect() -> Any:
        view = state.settings["LOGIN_VIEW"] or getattr(getattr(current_app, "login_manager", None), "login_view", None)
        if not view:
            raise errors.Unauthorized("Log in to approve this application.")
        return redirect(login_url(view, next_url=request.full_path))

    def protocol(call: Any) -> Response:
        """Run an Authlib call; its errors become its own OAuth2 JSON (or a
        redirect to the client when Authlib validated the redirect URI)."""
        try:
            return call()
        except OAuth2Error as error:
            return server.handle_error_response(None, error)
        except ValueError:
            # Authlib refuses to echo characters it may not put in an error
            # description (a hostile redirect_uri, say).
            return _bad_request("The request has parameters with characters that are not allowed.")

    @blueprint.route("/oauth/authorize", methods=ANY_METHOD)
    def authorize() -> Any:
        if (refused := wrong_method("GET", "POST")) is not None:
            return refused
        if not current_user.is_authenticated or get_current_token() is not None:
            return login_redirect()
        user = session_user()  # a deactivated person is logged out and refused (403)
        user_id = state.users.user_id(user)
        try:
            grant = server.get_consent_grant(end_user=user)
        except OAuth2Error as error:
            return server.handle_error_response(None, error)
        except ValueError:
            return _bad_request("The request has parameters with characters that are not allowed.")
        client = grant.client
        if request.method == "GET" and already_approved(state, user, client, grant.request.scope):
            # Approved before for these scopes (or more): no page, as GitHub and Google
            # do; "Apps you approved" on the token page takes the approval back.
            return protocol(lambda: server.create_authorization_response(grant_user=user, grant=grant))
        if request.method == "GET":
            scopes = (grant.request.scope or "").split()
            described = [(name, state.settings.scopes.get(name, "")) for name in scopes]
            page = render_template(
                "apitokens/oauth2_consent.html", client=client, scopes=described, user=user,
                consent_field=CONSENT_FIELD, decision_field=DECISION_FIELD,
                consent=signer.dumps(request_fingerprint(user_id)), action=request.full_path,
            )
            response = _no_store(Response(page, mimetype="text/html"))
            response.headers["X-Frame-Options"] = "DENY"
            response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
            return response
        try:
            signed = signer.loads(request.form.get(CONSENT_FIELD, ""), max_age=CONSENT_MAX_AGE)
        except BadSignature:
            signed = None
        if signed != request_fingerprint(user_id):
            raise errors.Forbidden("The consent form is missing, expired or was not made for this request; "
                                   "reload the page.", code="invalid_consent")
        approved = request.form.get(DECISION_FIELD) == "approve"
        return protocol(lambda: server.create_authorization_response(grant_user=user if approved else None,
                                                                     grant=grant))

    # Every method is routed to the views so that a wrong one gets a JSON 405
    # (a routing error would never reach the blueprint's error handlers).
    @blueprint.route("/oauth/token", methods=ANY_METHOD)
    @rate_limited()
    def issue_token() -> Any:
        if (refused := wrong_method("POST")) is not None:
            return refused
        return _no_store(protocol(server.create_token_response))

    @blueprint.route("/oauth/revoke", methods=ANY_METHOD)
    def revoke_token() -> Any:
        if (refused := wrong_method("POST")) is not None:
            return refused
        return protocol(lambda: server.create_endpoint_response("revocation"))

    @blueprint.route("/oauth/introspect", methods=ANY_METHOD)
    def introspect_token() -> Any:
        if (refused := wrong_method("POST")) is not None:
            return refused
        return _no_store(protocol(lambda: server.create_endpoint_response("introspection")))

    @blueprint.route("/.well-known/oauth-authorization-server", methods=ANY_METHOD)
    def metadata() -> Any:
        if (refused := wrong_method("GET", "HEAD")) is not None:
            return refused
        root = server.issuer()
        auth_methods = ["client_secret_basic", "client_secret_post", "none"]
        document = AuthorizationServerMetadata({
            "issuer": root,
            "authorization_endpoint": root + "/oauth/authorize",
            "token_endpoint": root + "/oauth/token",
            "revocation_endpoint": root + "/oauth/revoke",
            "introspection_endpoint": root + "/oauth/introspect",
            "scopes_supported": sorted(state.settings.scopes),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
        })
        if is_secure_transport(root):  # RFC 8414 wants https; a plain-http dev server still gets the document
            document.validate()
        return jsonify(dict(document))

    return blueprint

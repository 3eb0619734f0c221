"""``POST /api/authenticate/<provider>``: trade an access token from an OAuth
provider (GitHub, GitLab, Google, any OpenID Connect provider), with the email
it claims, for one of ours (Insight.io's "authenticate with a provider").

The provider is asked who owns the access token; ``email`` must be one of that
account's verified addresses. The local user is the one linked to that
provider account (``apitokens_identity``), else, when
``APITOKENS_PROVIDER_LINK_BY_EMAIL`` allows, the one with that email, else a
new one (see :mod:`flask_apitokens.identities`).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response

from .. import errors
from .. import openapi as oa
from ..identities import AccountTaken, IdentityLinks, OutsideIdentity
from ..providers import RESERVED_NAMES, ProviderAccount, ProviderConfig, ProviderRegistry, load_providers
from ..ratelimit import rate_limited
from ..state import state
from ..web import MAX_LOGIN_LENGTH, issue_options, read_body, refused, text_field, token_response

if TYPE_CHECKING:
    from ..state import State

log = logging.getLogger("flask_apitokens.providers")

# RFC 6750's b64token and every provider's token format fit in visible ASCII;
# anything else could not travel in an Authorization header anyway.
_ACCESS_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


# -- the request ------------------------------------------------------------------------------


def _access_token(body: dict[str, Any]) -> str:
    info = body.get("info")
    if info is None:
        raise errors.BadRequest("The field 'info' is required: {\"accessToken\": \"...\"}.", code="missing_field")
    if not isinstance(info, dict):
        raise errors.BadRequest("The field 'info' must be an object: {\"accessToken\": \"...\"}.",
                                code="invalid_field")
    token = info.get("accessToken")
    if token is None or token == "":
        raise errors.BadRequest("The field 'info.accessToken' is required.", code="missing_field")
    if not isinstance(token, str) or not _ACCESS_TOKEN.fullmatch(token):
        raise errors.BadRequest("The field 'info.accessToken' must be an access token (printable text, no spaces).",
                                code="invalid_field")
    return token


def _email(body: dict[str, Any]) -> str:
    email = text_field(body, "email", max_length=MAX_LOGIN_LENGTH)
    if not _EMAIL.fullmatch(email):
        raise errors.BadRequest("The field 'email' must be an email address.", code="invalid_field")
    return email


# -- the local user ---------------------------------------------------------------------------


def _conflict(provider: str) -> errors.AccountConflict:
    return errors.AccountConflict(
        f"A local account already uses this email; sign in to it another way, or ask an administrator "
        f"to link it to this {provider} account."
    )


def find_or_create_user(provider: str, account: ProviderAccount, email: str) -> Any:
    """The local user for ``account`` at ``provider``; ``email`` is one of its verified
    addresses. Links (and, if need be, creates) the user on first sight; flushes, does
    not commit."""
    st = state()
    users = st.users
    links = IdentityLinks(st.db.session, st.models.Identity, users)
    identity = OutsideIdentity(provider, account.subject, email)
    link = links.find(identity)
    if link is not None:
        if link.user is None:
            raise errors.InvalidCredentials("The local account linked to this provider account is gone.")
        link.row.email = email
        return link.user

    def make_user() -> Any:
        user = users.find_by_email(email)
        if user is None:
            return users.create_user(username=links.free_username(account.username, provider), email=email,
                                     display_name=account.display_name)
        if not st.settings["PROVIDER_LINK_BY_EMAIL"]:
            # Never hand an existing account to whoever controls a provider account with its address.
            raise AccountTaken()
        return user

    link = links.link_first(identity, make_user)
    if link is None or link.user is None:
        raise _conflict(provider)
    return link.user


# -- the route ---------------------------------------------------------------------------------


def _view(registry: ProviderRegistry):  # noqa: ANN202
    @rate_limited(account="email")
    def authenticate_provider(provider: str) -> Response:
        config: ProviderConfig | None = registry.get(provider)
        if config is None:
            if provider in RESERVED_NAMES:  # another method's route, switched off: answer as if unrouted
                raise errors.NotFound()
            raise errors.NotFound(f"No provider named {provider[:64]!r} is configured.", code="unknown_provider")
        body = read_body(form=False)
        email = _email(body)
        access_token = _access_token(body)
        options = issue_options(body)

        try:
            account = registry.account(config, access_token)
        except errors.Unauthorized as error:
            raise refused(provider, email, error) from None
        verified = account.verified(email)
        if verified is None:
            raise refused(provider, email, errors.Unauthorized(
                f"{email} is not a verified email address of that {provider} account.", code="email_not_verified"))

        st = state()
        try:
            user = find_or_create_user(provider, account, verified)
            if not st.users.is_active(user):
                raise refused(provider, email,
                              errors.Unauthorized("This account is disabled.", code="account_disabled"))
            issued = st.service.issue(user, via=provider, method="provider", **options)
        except BaseException:
            st.db.session.rollback()  # no user or link without its token
            raise
        return token_response(issued)

    return authenticate_provider


def register(blueprint: Blueprint, state: State) -> None:
    """Routed when APITOKENS_OAUTH_PROVIDERS names one (see ISSUING_METHODS); without
    one, no route: an unknown path under the prefix is a JSON 404."""
    registry = ProviderRegistry(load_providers(state.settings["OAUTH_PROVIDERS"]),
                                timeout=state.settings["PROVIDER_TIMEOUT"])
    # Routed for every name, so an unknown provider gets a JSON 404 that says so.
    blueprint.add_url_rule("/authenticate/<provider>", "provider", _view(registry), methods=["POST"])


#: The route, for the OpenAPI document (see :mod:`flask_apitokens.openapi`).
OPENAPI = {"/authenticate/{provider}": {"post": oa.operation(
    "A token for an account at an OAuth provider", tag="issue", security=oa.NO_CREDENTIAL,
    description="JSON only. The provider is asked who owns the access token; email must be a verified address of it.",
    parameters=[{"name": "provider", "in": "path", "required": True, "schema": oa.TEXT}],
    body=oa.credential_body({
        "email": oa.text(320, min_length=1),
        "info": {"type": "object", "required": ["accessToken"],
                 "properties": {"accessToken": oa.text(4096, min_length=1)}},
        **oa.ISSUE_FIELDS}, required=["email", "info"], form=False),
    responses={200: oa.json_response("The new token, shown once", oa.ref("IssuedToken"))},
    errors=(400, 401, 403, 404, 409, 413, 415, 429, 502, 503, 504),
)}}

"""What a provider says about the owner of an access token, and the errors a
kind module raises when the answer does not fit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .. import errors


@dataclass(frozen=True)
class ProviderAccount:
    """The owner of an access token at one provider."""

    #: The provider's stable id of the account (GitHub's numeric id, OIDC's ``sub``).
    subject: str
    #: A login name to give a new local user.
    username: str
    #: Only the addresses the provider says were verified.
    verified_emails: tuple[str, ...] = ()
    display_name: str | None = None

    def verified(self, email: str) -> str | None:
        """The provider's spelling of ``email`` if it is one of the verified
        addresses (compared without regard to case, as the user store's email
        lookup does), else None."""
        wanted = email.lower()
        return next((known for known in self.verified_emails if known.lower() == wanted), None)


def bad_answer(provider: str, what: str) -> errors.BadGateway:
    return errors.BadGateway(f"The provider {provider!r} answered {what}.", code="provider_error")


def token_refused(provider: str, why: str = "did not accept the access token") -> errors.Unauthorized:
    return errors.Unauthorized(f"The provider {provider!r} {why}.", code="invalid_provider_token")


def other_app(provider: str) -> errors.Unauthorized:
    """The provider vouches for the token, but it was issued to another OAuth app:
    whoever holds it (that app) must not log in here as its owner."""
    return errors.Unauthorized(f"The access token was issued to another application, not to this site's "
                               f"{provider!r} app.", code="token_not_for_this_app")


def text(value: Any, *, allow_empty: bool = False) -> bool:
    return isinstance(value, str) and (allow_empty or value != "") and "\x00" not in value


def account_id(value: Any) -> str | None:
    """A provider's account id as text: a whole number or a non-empty string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if text(value) and len(value) <= 255:
        return value
    return None


def emails(values: Iterable[Any]) -> tuple[str, ...]:
    return tuple(value for value in values if text(value) and "@" in value and len(value) <= 320)


class UserAPIKind:
    """A provider kind with a REST user API under ``api_base_url`` (GitHub, GitLab):
    ``GET user`` names the token's owner by an id and a login field."""

    login_field = "login"

    def __init__(self, config: Any, http: Any) -> None:
        self.config, self.http = config, http
        self.base = config.api_base_url or ""

    def fetch_user(self, access_token: str) -> tuple[dict[str, Any], str]:
        """The ``user`` object and its account id; 401 or 502 for a refusal or garbage."""
        name = self.config.name
        reply = self.http.get(name, self.base + "user", access_token=access_token)
        if reply.status == 403:
            raise token_refused(name, "does not let this access token read the account")
        if reply.status != 200:
            raise bad_answer(name, f"the user query with HTTP status {reply.status}")
        user = reply.data
        subject = account_id(user.get("id")) if isinstance(user, dict) else None
        if subject is None or not text(user.get(self.login_field)):
            raise bad_answer(name, f"the user query without an account id and {self.login_field}")
        return user, subject

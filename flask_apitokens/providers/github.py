"""GitHub (and GitHub Enterprise): ``GET /user`` says who owns the token,
``GET /user/emails`` which of their addresses are verified (it needs the
``user:email`` or ``user`` scope)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .account import ProviderAccount, account_id, bad_answer, emails, text, token_refused

if TYPE_CHECKING:
    from . import ProviderConfig
    from .http import ProviderHTTP


class Kind:
    def __init__(self, config: ProviderConfig, http: ProviderHTTP) -> None:
        self.config, self.http = config, http
        self.base = config.api_base_url or ""

    def account(self, access_token: str) -> ProviderAccount:
        name = self.config.name
        reply = self.http.get(name, self.base + "user", access_token=access_token)
        if reply.status == 403:
            raise token_refused(name, "does not let this access token read the account")
        if reply.status != 200:
            raise bad_answer(name, f"the user query with HTTP status {reply.status}")
        user = reply.data
        subject = account_id(user.get("id")) if isinstance(user, dict) else None
        if subject is None or not text(user.get("login")):
            raise bad_answer(name, "the user query without an account id and login")

        reply = self.http.get(name, self.base + "user/emails", access_token=access_token)
        if reply.status in (403, 404):
            # The token lacks the user:email scope: no address can be checked.
            verified: tuple[str, ...] = ()
        elif reply.status != 200:
            raise bad_answer(name, f"the email query with HTTP status {reply.status}")
        else:
            entries = reply.data
            if not isinstance(entries, list) or not all(
                isinstance(entry, dict) and text(entry.get("email")) and isinstance(entry.get("verified"), bool)
                for entry in entries
            ):
                raise bad_answer(name, "the email query with something other than a list of addresses")
            verified = emails(entry["email"] for entry in entries if entry["verified"] is True)
        display = user.get("name")
        return ProviderAccount(subject, user["login"], verified, display if text(display) else None)

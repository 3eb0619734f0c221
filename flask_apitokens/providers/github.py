"""GitHub (and GitHub Enterprise): ``GET /user`` says who owns the token,
``GET /user/emails`` which of their addresses are verified (it needs the
``user:email`` or ``user`` scope)."""

from __future__ import annotations

from urllib.parse import quote

from .account import ProviderAccount, UserAPIKind, bad_answer, emails, other_app, text


class Kind(UserAPIKind):
    def check_client(self, access_token: str) -> None:
        """GitHub's "check a token" API, authenticated as this site's OAuth app:
        404 for a token of another app (or none)."""
        name, client = self.config.name, self.config.client
        url = f"{self.base}applications/{quote(self.config.client_id or '', safe='')}/token"
        reply = self.http.post_as_client(name, url, client, json_body={"access_token": access_token})
        if reply.status in (404, 422):
            raise other_app(name)
        if reply.status != 200:
            raise bad_answer(name, f"the token check with HTTP status {reply.status}")
        app = reply.data.get("app") if isinstance(reply.data, dict) else None
        if not isinstance(app, dict):
            raise bad_answer(name, "the token check without the token's app")
        if app.get("client_id") != self.config.client_id:
            raise other_app(name)

    def account(self, access_token: str) -> ProviderAccount:
        name = self.config.name
        user, subject = self.fetch_user(access_token)

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

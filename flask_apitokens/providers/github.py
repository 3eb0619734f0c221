"""GitHub (and GitHub Enterprise): ``GET /user`` says who owns the token,
``GET /user/emails`` which of their addresses are verified (it needs the
``user:email`` or ``user`` scope)."""

from __future__ import annotations

from .account import ProviderAccount, UserAPIKind, bad_answer, emails, text


class Kind(UserAPIKind):
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

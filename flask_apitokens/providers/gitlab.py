"""GitLab (gitlab.com or self-hosted): ``GET /api/v4/user`` says who owns the
token and whether its primary address is confirmed (``confirmed_at``);
``GET /api/v4/user/emails`` adds the confirmed secondary addresses when the
token may read them."""

from __future__ import annotations

from .account import ProviderAccount, UserAPIKind, bad_answer, emails, other_app, text


def _confirmed(entry: dict) -> bool:
    return text(entry.get("confirmed_at"))


class Kind(UserAPIKind):
    login_field = "username"

    def check_client(self, access_token: str) -> None:
        """GitLab's (Doorkeeper's) ``GET /oauth/token/info`` names the token's app (``application.uid``)."""
        name = self.config.name
        instance = self.base[: -len("api/v4/")] if self.base.endswith("/api/v4/") else self.base
        reply = self.http.get(name, instance + "oauth/token/info", access_token=access_token)
        if reply.status != 200 or not isinstance(reply.data, dict):
            raise bad_answer(name, f"the token info query with HTTP status {reply.status}")
        application = reply.data.get("application")
        uid = application.get("uid") if isinstance(application, dict) else None
        if uid != self.config.client_id:
            raise other_app(name)

    def account(self, access_token: str) -> ProviderAccount:
        name = self.config.name
        user, subject = self.fetch_user(access_token)
        if user.get("email") is not None and not text(user["email"], allow_empty=True):
            raise bad_answer(name, "the user query with an email that is not text")
        addresses = [user["email"]] if user.get("email") and _confirmed(user) else []

        reply = self.http.get(name, self.base + "user/emails", access_token=access_token)
        if reply.status == 200:
            entries = reply.data
            if not isinstance(entries, list) or not all(
                isinstance(entry, dict) and text(entry.get("email")) for entry in entries
            ):
                raise bad_answer(name, "the email query with something other than a list of addresses")
            addresses += [entry["email"] for entry in entries if _confirmed(entry)]
        elif reply.status not in (403, 404):  # a token without read_user/api sees the primary address only
            raise bad_answer(name, f"the email query with HTTP status {reply.status}")
        display = user.get("name")
        return ProviderAccount(subject, user["username"], emails(addresses), display if text(display) else None)

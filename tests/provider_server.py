"""A real HTTP server on 127.0.0.1 that answers like the OAuth providers'
user APIs, for the tests of ``POST /api/authenticate/<provider>``.

One werkzeug app, three personalities over one set of accounts:

- GitHub at ``/github/`` (and GitHub Enterprise at ``/ghe/api/v3/``):
  ``GET user``, ``GET user/emails``;
- GitLab at ``/gitlab/api/v4/``: ``GET user``, ``GET user/emails``;
- OpenID Connect at ``/oidc/``: ``GET .well-known/openid-configuration``,
  ``GET userinfo``.

Each token belongs to an OAuth app (``client_id``); the server says which, as
the real ones do: GitHub's ``POST applications/<client_id>/token`` (Basic
auth as that app), GitLab's ``GET /gitlab/oauth/token/info``, Google's
``POST /oidc/tokeninfo`` (``aud``/``azp``) and RFC 7662 ``POST /oidc/introspect``
(Basic auth as a registered app).

It issues its own access tokens (:meth:`ProviderServer.token_for`), and can
be made slow (``delay``), made to misbehave (``fault``), and stopped.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

CONFIRMED_AT = "2024-01-02T03:04:05Z"


@dataclass
class Account:
    """A provider account. ``emails``: (address, verified), the primary first."""

    id: int
    login: str
    emails: list[tuple[str, bool]]
    name: str = ""


#: The OAuth app (client id, secret) the tests' site is registered as at every provider.
SITE_APP = ("site-app-id", "site-app-secret")
OTHER_APP = ("other-app-id", "other-app-secret")


@dataclass
class Grant:
    account: Account
    #: Whether the token may read the email list (GitHub's ``user:email`` scope).
    emails_scope: bool = True
    #: The OAuth app the token was issued to.
    client_id: str = SITE_APP[0]


#: Faults the server can be told to commit, on every path or on those under ``fault_path``.
FAULTS = ("nested", "html", "500", "503", "shape", "no-id", "huge", "redirect", "ratelimit", "401", "empty", "trickle",
          "trickle-length")


@dataclass
class ProviderServer:
    grants: dict[str, Grant] = field(default_factory=dict)
    #: Seconds to wait before answering (paths under ``delay_path``).
    delay: float = 0.0
    delay_path: str = "/"
    fault: str | None = None
    fault_path: str = "/"
    #: (path, Authorization header) of every request seen.
    calls: list[tuple[str, str | None]] = field(default_factory=list)
    #: GitHub's web login (``/github/login/oauth/...``): the OAuth app it knows
    #: (client id -> secret), and the account "logged in at GitHub" who approves it.
    web_clients: dict[str, str] = field(default_factory=dict)
    web_account: Account | None = None

    def __post_init__(self) -> None:
        self._codes: dict[str, tuple[str, str, Account]] = {}  # code -> (client id, redirect URI, account)
        self._wake = threading.Event()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- control -------------------------------------------------------------------------------
    def start(self) -> ProviderServer:
        self._server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._wake.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def reset(self) -> None:
        self._wake.set()  # ends the waits of slow answers still in progress
        self._wake = threading.Event()
        self.grants.clear()
        self.calls.clear()
        self.web_clients.clear()
        self.web_account = None
        self._codes.clear()
        self.delay, self.delay_path, self.fault, self.fault_path = 0.0, "/", None, "/"

    def token_for(self, account: Account, *, emails_scope: bool = True, client_id: str = SITE_APP[0]) -> str:
        """A new access token of ``account`` at this server, issued to the app ``client_id``."""
        token = "gho_" + secrets.token_urlsafe(24)
        self.grants[token] = Grant(account, emails_scope, client_id)
        return token

    def paths(self) -> list[str]:
        return [path for path, _ in self.calls]

    # -- the provider --------------------------------------------------------------------------
    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self._answer(Request(environ))(environ, start_response)

    def _answer(self, request: Request) -> Response:
        path = request.path
        self.calls.append((path, request.headers.get("Authorization")))
        if self.delay and path.startswith(self.delay_path):
            self._wake.wait(self.delay)
        if path.startswith("/github/login/oauth/"):
            return self._web_login(request, path.removeprefix("/github/login/oauth/"))
        if self.fault and path.startswith(self.fault_path):
            faulty = self._fault(self.fault, path)
            if faulty is not None:
                return faulty
        if request.method == "POST":
            return self._post(request, path)
        if request.method != "GET":
            return _json({"message": "Method not allowed"}, 405)
        if path == "/gitlab/oauth/token/info":
            grant = self._grant(request)
            if grant is None:
                return _json({"error": "invalid_token"}, 401)
            return _json({"resource_owner_id": grant.account.id, "scope": ["read_user"], "expires_in": 7200,
                          "application": {"uid": grant.client_id}, "created_at": 1700000000})

        if path == "/oidc/.well-known/openid-configuration":
            return _json(self._discovery())
        grant = self._grant(request)
        for prefix in ("/github/", "/ghe/api/v3/"):
            if path in (prefix + "user", prefix + "user/emails"):
                if grant is None:
                    return _json({"message": "Bad credentials", "documentation_url": "https://docs.github.com"}, 401)
                return self._github(grant, path.endswith("/emails"))
        if path in ("/gitlab/api/v4/user", "/gitlab/api/v4/user/emails"):
            if grant is None:
                return _json({"message": "401 Unauthorized"}, 401)
            return self._gitlab(grant, path.endswith("/emails"))
        if path == "/oidc/userinfo":
            if grant is None:
                return _json({"error": "invalid_token"}, 401,
                             {"WWW-Authenticate": 'Bearer error="invalid_token"'})
            return _json(self._userinfo(grant.account))
        return _json({"message": "Not Found"}, 404)

    def _web_login(self, request: Request, step: str) -> Response:
        """GitHub's OAuth web flow: ``authorize`` (the person, already logged in
        at GitHub, approves at once, or denies when no account is set) and
        ``access_token`` (the code for a token of the user API)."""
        if step == "authorize" and request.method == "GET":
            client_id, redirect_uri = request.args.get("client_id", ""), request.args.get("redirect_uri", "")
            if client_id not in self.web_clients:
                return Response("unknown client", 404)
            separator = "&" if "?" in redirect_uri else "?"
            state = request.args.get("state", "")
            if self.web_account is None:
                return Response(status=302, headers={
                    "Location": f"{redirect_uri}{separator}error=access_denied&state={state}"})
            code = secrets.token_urlsafe(16)
            self._codes[code] = (client_id, redirect_uri, self.web_account)
            return Response(status=302, headers={"Location": f"{redirect_uri}{separator}code={code}&state={state}"})
        if step == "access_token" and request.method == "POST":
            found = self._codes.pop(request.form.get("code", ""), None)
            client_id = request.form.get("client_id", "")
            secret = request.form.get("client_secret", "")
            if request.authorization is not None:  # client_secret_basic
                client_id, secret = request.authorization.username or "", request.authorization.password or ""
            if found is None or found[0] != client_id or self.web_clients.get(client_id) != secret:
                return _json({"error": "bad_verification_code"})  # GitHub answers 200 with an error
            return _json({"access_token": self.token_for(found[2]), "token_type": "bearer", "scope": "user:email"})
        return _json({"message": "Not Found"}, 404)

    def _post(self, request: Request, path: str) -> Response:
        """The token checks: which app a token was issued to."""
        apps = dict([SITE_APP, OTHER_APP])
        auth = request.authorization
        app_ok = auth is not None and auth.type == "basic" and apps.get(auth.username or "") == auth.password
        for prefix in ("/github/", "/ghe/api/v3/"):
            if path.startswith(prefix + "applications/") and path.endswith("/token"):
                client_id = path[len(prefix + "applications/"):-len("/token")]
                if not app_ok or auth is None or auth.username != client_id:
                    return _json({"message": "Requires authentication"}, 401)
                body = request.get_json(silent=True) or {}
                grant = self.grants.get(body.get("access_token", ""))
                if grant is None or grant.client_id != client_id:
                    return _json({"message": "Not Found"}, 404)
                return _json({"id": 1, "token": body["access_token"], "scopes": ["user:email"],
                              "app": {"client_id": grant.client_id, "name": "an app", "url": "https://example.net"},
                              "user": {"login": grant.account.login, "id": grant.account.id}})
        if path == "/oidc/tokeninfo":  # Google's
            grant = self.grants.get(request.form.get("access_token", ""))
            if grant is None:
                return _json({"error": "invalid_token", "error_description": "Invalid Value"}, 400)
            return _json({"aud": grant.client_id, "azp": grant.client_id, "sub": f"oidc-{grant.account.id}",
                          "scope": "openid email", "exp": "1900000000", "expires_in": "3599"})
        if path == "/oidc/introspect":  # RFC 7662
            if not app_ok:
                return _json({"error": "invalid_client"}, 401)
            grant = self.grants.get(request.form.get("token", ""))
            if grant is None:
                return _json({"active": False})
            return _json({"active": True, "client_id": grant.client_id, "sub": f"oidc-{grant.account.id}",
                          "token_type": "Bearer", "scope": "openid email"})
        return _json({"message": "Method not allowed"}, 405)

    def _grant(self, request: Request) -> Grant | None:
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return None
        return self.grants.get(token.strip())

    def _discovery(self) -> dict[str, Any]:
        base = self.url + "oidc"
        return {
            "issuer": base,
            "authorization_endpoint": base + "/authorize",
            "token_endpoint": base + "/token",
            "userinfo_endpoint": base + "/userinfo",
            "introspection_endpoint": base + "/introspect",
            "jwks_uri": base + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    @staticmethod
    def _github(grant: Grant, emails: bool) -> Response:
        account = grant.account
        if not emails:
            public = account.emails[0][0] if account.emails else None
            return _json({"id": account.id, "login": account.login, "name": account.name or None, "email": public,
                          "type": "User"})
        if not grant.emails_scope:
            return _json({"message": "Not Found"}, 404)
        return _json([{"email": address, "verified": verified, "primary": i == 0, "visibility": None}
                      for i, (address, verified) in enumerate(account.emails)])

    @staticmethod
    def _gitlab(grant: Grant, emails: bool) -> Response:
        account = grant.account
        if not emails:
            primary, verified = account.emails[0] if account.emails else (None, False)
            return _json({"id": account.id, "username": account.login, "name": account.name, "state": "active",
                          "email": primary, "confirmed_at": CONFIRMED_AT if verified else None})
        if not grant.emails_scope:
            return _json({"message": "403 Forbidden - insufficient_scope"}, 403)
        return _json([{"id": i, "email": address, "confirmed_at": CONFIRMED_AT if verified else None}
                      for i, (address, verified) in enumerate(account.emails[1:], start=1)])

    @staticmethod
    def _userinfo(account: Account) -> dict[str, Any]:
        primary, verified = account.emails[0] if account.emails else (None, False)
        claims: dict[str, Any] = {"sub": f"oidc-{account.id}", "preferred_username": account.login,
                                  "email_verified": verified}
        if primary:
            claims["email"] = primary
        if account.name:
            claims["name"] = account.name
        return claims

    def _fault(self, fault: str, path: str) -> Response | None:
        listing = path.endswith("/emails")
        if fault == "nested":  # JSON nested too deep for Python's parser
            return Response("[" * 100_000 + "]" * 100_000, 200, mimetype="application/json")
        if fault == "html":
            return Response("<html><body>Whoops, we'll be right back</body></html>", 200, mimetype="text/html")
        if fault in ("500", "503", "401"):
            return _json({"message": "fault"}, int(fault))
        if fault == "shape":
            return _json({"emails": "not a list"} if listing else ["not", "an", "object"])
        if fault == "no-id":
            return _json([{"address": "x@example.com"}] if listing else {"login": "who", "username": "who"})
        if fault == "huge":
            return _json({"padding": "x" * (2 * 1024 * 1024)})
        if fault == "redirect":
            return Response("", 302, headers={"Location": "http://127.0.0.1:9/elsewhere"})
        if fault == "ratelimit":
            return _json({"message": "API rate limit exceeded"}, 403, {"X-RateLimit-Remaining": "0"})
        if fault == "trickle":  # answers at once, then sends its body a byte every 0.1 s
            wake = self._wake

            def body() -> Any:
                for byte in '{"id": 1, "login": "slow", "username": "slow", "sub": "slow"}':
                    if wake.wait(0.1):
                        return
                    yield byte.encode()

            return Response(body(), 200, mimetype="application/json")
        if fault == "trickle-length":  # the same, with a Content-Length (no chunked encoding)
            wake = self._wake
            text = b'{"id": 1, "login": "slow", "username": "slow", "sub": "slow"}'

            def sized() -> Any:
                for i in range(len(text)):
                    if wake.wait(0.1):
                        return
                    yield text[i:i + 1]

            return Response(sized(), 200, mimetype="application/json", headers={"Content-Length": str(len(text))})
        if fault == "empty":
            return Response("", 200, mimetype="application/json")
        raise AssertionError(f"unknown fault {fault!r}")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status, headers=headers, mimetype="application/json")


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: An account with verified and unverified addresses.
OCTO = Account(1001, "octocat", [("octo@example.net", True), ("octo@old.example", False),
                                 ("octo@work.example", True)], name="The Octocat")


def providers_config(url: str) -> dict[str, Any]:
    """APITOKENS_OAUTH_PROVIDERS naming every kind this server speaks, at ``url``."""
    return {
        "github": {"api_base_url": url + "github/"},
        "gitlab": {"api_base_url": url + "gitlab"},  # the instance's address: /api/v4/ is added
        "google": {"userinfo_endpoint": url + "oidc/userinfo"},
        "corp": {"server_metadata_url": url + "oidc/.well-known/openid-configuration"},
        "ghe": {"kind": "github", "api_base_url": url + "ghe/api/v3"},
    }


def exchange(client: Any, provider: str, token: str, email: str, **extra: Any) -> Any:
    """POST the provider exchange of the tests' host."""
    return client.post(f"/api/authenticate/{provider}", json={"email": email, "info": {"accessToken": token},
                                                                **extra})

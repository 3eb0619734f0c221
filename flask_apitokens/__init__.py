"""flask-apitokens: API access tokens for Flask applications."""

from .credentials import current_token, get_current_token
from .decorators import key_required, login_or_token_required, token_required
from .errors import APITokensError
from .extension import APITokens
from .service import IssuedToken, TokenInfo, TokenService
from .users import SQLAlchemyUserStore, UserStore

__all__ = [
    "APITokens",
    "APITokensError",
    "IssuedToken",
    "SQLAlchemyUserStore",
    "TokenInfo",
    "TokenService",
    "UserStore",
    "current_token",
    "get_current_token",
    "key_required",
    "login_or_token_required",
    "token_required",
]
__version__ = "0.1.0"

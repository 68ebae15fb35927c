"""Bearer tokens as Azure's ``POST /sts/v1.0/issueToken`` gives them: a JWT for a valid key, living
10 minutes, presented as ``Authorization: Bearer <jwt>`` (or ``?access_token=``) instead of the key.

HS256 (HMAC-SHA256) with the standard library: the gateway both signs and checks, so no public-key
machinery is needed. The secret is derived from the subscription key, so tokens outlive a gateway
restart and die with a key change; a gateway without a key signs with a secret of its own process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid

TOKEN_PATH = "/sts/v1.0/issueToken"
TOKEN_LIFETIME_S = 600  # Azure's: 10 minutes
_HEADER = {"alg": "HS256", "typ": "JWT"}


class TokenError(ValueError):
    """A token that is not ours, altered, or expired; the message says which."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def looks_like_token(value: str) -> bool:
    return value.count(".") == 2


class TokenIssuer:
    def __init__(self, key: str | None, lifetime_s: float = TOKEN_LIFETIME_S, clock=time.time):
        seed = key.encode() if key else secrets.token_bytes(32)
        self._secret = hmac.new(seed, b"parley-gateway issueToken", hashlib.sha256).digest()
        self.lifetime_s = lifetime_s
        self._clock = clock

    def issue(self) -> str:
        now = int(self._clock())
        claims = {"iss": "parley-gateway", "iat": now, "exp": now + int(self.lifetime_s), "jti": uuid.uuid4().hex}
        signing_input = f"{_b64(json.dumps(_HEADER).encode())}.{_b64(json.dumps(claims).encode())}"
        return f"{signing_input}.{self._sign(signing_input)}"

    def check(self, token: str) -> None:
        """Raises TokenError unless ``token`` is one we issued and it has not expired."""
        try:
            header, payload, signature = token.split(".")
            valid = hmac.compare_digest(signature.encode(), self._sign(f"{header}.{payload}").encode())
            algorithm = json.loads(_unb64(header)).get("alg") if valid else None
            expires = float(json.loads(_unb64(payload))["exp"]) if valid else 0.0
        except (ValueError, KeyError, TypeError, AttributeError):
            raise TokenError("the token is malformed") from None
        if not valid:
            raise TokenError("the token's signature is not valid")
        if algorithm != "HS256":
            raise TokenError("the token is not HS256")
        if self._clock() >= expires:
            raise TokenError("the token has expired; fetch a new one from /sts/v1.0/issueToken")

    def _sign(self, signing_input: str) -> str:
        return _b64(hmac.new(self._secret, signing_input.encode(), hashlib.sha256).digest())

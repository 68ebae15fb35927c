"""Where the service key comes from (file, environment, systemd credential) and the Azure token exchange.

The key is never part of the config file's values, so ``check-config`` and logs cannot leak it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.request
from pathlib import Path

from agent.uplink.azure_endpoints import own_token_url, token_url
from agent.uplink.translator_v1 import GATEWAY_DEFAULT_URL
from agent.uplink.config import UplinkConfig

log = logging.getLogger("parley.uplink")
TOKEN_REFRESH_S = 9 * 60  # tokens live 10 minutes


class CredentialError(RuntimeError):
    pass


def load_key(config: UplinkConfig) -> str | None:
    """The key, None when none is configured; CredentialError says what is wrong and what to do."""
    if config.key_file:
        try:
            key = Path(config.key_file).read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not a text file"
            raise CredentialError(f"{config.key_file!r} cannot be read ({why}); allowed: a file readable by this "
                                  "user holding the subscription key") from None
        if not key:
            raise CredentialError(f"{config.key_file!r} is empty; allowed: a file holding the subscription key")
        return key
    if config.key_env:
        value = os.environ.get(config.key_env, "").strip()
        if not value:
            raise CredentialError(f"environment variable {config.key_env} is not set (or empty); set it for the "
                                  "service (systemd: Environment= or EnvironmentFile=) or use uplink.key_file")
        return value
    credentials_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials_dir and (Path(credentials_dir) / config.key_credential).is_file():
        return (Path(credentials_dir) / config.key_credential).read_text().strip()
    return None


class TokenSource:
    """Exchanges the key for a bearer token and refreshes it before the 10-minute expiry."""

    def __init__(self, key: str, token_url: str, refresh_s: float = TOKEN_REFRESH_S):
        self._key = key
        self._url = token_url
        self._refresh_s = refresh_s
        self._token: str | None = None
        self._fetched_at = 0.0
        self._lock = threading.Lock()
        self.exchanges = 0

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() - self._fetched_at >= self._refresh_s:
                request = urllib.request.Request(self._url, data=b"", method="POST",
                                                 headers={"Ocp-Apim-Subscription-Key": self._key})
                with urllib.request.urlopen(request, timeout=10) as response:
                    self._token = response.read().decode().strip()
                self._fetched_at = time.monotonic()
                self.exchanges += 1
            return self._token

    def invalidate(self) -> None:
        """The service refused the token: the next ``token()`` exchanges the key again."""
        with self._lock:
            self._token = None


class AzureCredentials:
    """What the next USP handshake presents: a token while the exchange works, else the key.

    A refused handshake (401/403) first gets a fresh token (the cached one may be revoked or
    expired early), then the key itself; ``rejected()`` says whether something new is left to
    try, so only a refusal of everything is reported and backed off slowly.
    """

    def __init__(self, key: str | None, tokens: TokenSource | None):
        self._key = key
        self.tokens = tokens
        self._ladder = ("cached", "fresh", "key") if tokens else ("key",)
        self._step = 0

    def current(self) -> tuple[str, str] | None:
        """("token", t) | ("key", k) | None, evaluated at every connect."""
        if self._key is None:
            return None
        rung = self._ladder[self._step]
        if rung == "key":
            return ("key", self._key)
        tokens = self.tokens
        assert tokens is not None  # the ladder has its token rungs only with a token source
        if rung == "fresh":
            tokens.invalidate()
        try:
            return ("token", tokens.token())
        except OSError as exc:
            log.warning("token exchange failed (%s); trying the key itself", exc)
            return ("key", self._key)

    def rejected(self) -> bool:
        """The service refused what ``current()`` gave; True when the next connect presents something new."""
        if self._key is not None and self._step + 1 < len(self._ladder):
            self._step += 1
            return True
        self._step = min(1, len(self._ladder) - 1)  # after the long back-off: a fresh token first
        return False

    def accepted(self) -> None:
        self._step = 0


def azure_credentials(config: UplinkConfig) -> AzureCredentials:
    key = load_key(config)
    if key is None or not config.use_token:
        return AzureCredentials(key, None)
    exchange = config.token_url or (own_token_url(config.url or GATEWAY_DEFAULT_URL) if config.backend == "gateway"
                                    else token_url(config.region, config.url))
    assert exchange is not None  # UplinkConfig refuses azure's use_token with no token host to derive
    return AzureCredentials(key, TokenSource(key, exchange))

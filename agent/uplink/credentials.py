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

from agent.uplink.config import UplinkConfig

log = logging.getLogger("parley.uplink")
TOKEN_REFRESH_S = 9 * 60  # tokens live 10 minutes


class CredentialError(RuntimeError):
    pass


def load_key(config: UplinkConfig) -> str | None:
    if config.key_file:
        try:
            return Path(config.key_file).read_text().strip()
        except OSError as exc:
            raise CredentialError(f"uplink.key_file {config.key_file!r}: {exc.strerror}") from None
    if config.key_env:
        value = os.environ.get(config.key_env)
        if not value:
            raise CredentialError(f"uplink.key_env: environment variable {config.key_env} is not set")
        return value.strip()
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


def credential_provider(config: UplinkConfig):
    """() -> ("key", k) | ("token", t) | None, evaluated at every connect."""
    key = load_key(config)
    if key is None:
        return lambda: None
    if not config.use_token:
        return lambda: ("key", key)
    url = config.token_url or f"https://{config.region}.api.cognitive.microsoft.com/sts/v1.0/issueToken"
    source = TokenSource(key, url)

    def provide():
        try:
            return ("token", source.token())
        except OSError as exc:
            log.warning("token exchange failed (%s); trying the key itself", exc)
            return ("key", key)

    provide.source = source
    return provide

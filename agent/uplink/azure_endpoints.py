"""Azure Speech hosts: the USP URL for a region or an endpoint, and where a key is exchanged for a token.

Public cloud: ``{region}.s2s.speech.microsoft.com`` (v1 path, languages in the query) or
``{region}.stt.speech.microsoft.com`` (v2 path, languages in ``speech.context``); tokens from
``{region}.api.cognitive.microsoft.com``. Regions starting ``china`` live under ``azure.cn`` and
``usgov`` regions under ``azure.us`` / ``microsoft.us`` (the SDKs' host-suffix rule and the
sovereign-cloud endpoint tables). A custom domain (``NAME.cognitiveservices.azure.com``) issues
its own tokens, so a token host is derived from the endpoint when no region is given.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from parley_common.protocols.usp import USP_V1_PATH, USP_V2_PATH

TOKEN_PATH = "/sts/v1.0/issueToken"
# region prefix -> (speech host suffix, token host suffix); the first match wins, public last.
_CLOUDS = (("china", "speech.azure.cn", "api.cognitive.azure.cn"),
           ("usgov", "speech.azure.us", "api.cognitive.microsoft.us"),
           ("", "speech.microsoft.com", "api.cognitive.microsoft.com"))
# Speech hosts whose first label is the region, and custom-domain suffixes that serve their own tokens.
_REGIONAL_SPEECH_SUFFIXES = tuple("." + speech for _, speech, _ in _CLOUDS)
_CUSTOM_DOMAIN_SUFFIXES = (".cognitiveservices.azure.com", ".cognitiveservices.azure.cn",
                           ".cognitiveservices.azure.us")


def _cloud(region: str) -> tuple[str, str]:
    region = region.lower()
    return next((speech, token) for prefix, speech, token in _CLOUDS if region.startswith(prefix))


def region_url(region: str, endpoint_version: str) -> str:
    """The service URL for a region, without query: v1 ``s2s`` host or v2 ``stt`` host."""
    speech, _ = _cloud(region)
    if endpoint_version == "v2":
        return f"wss://{region}.stt.{speech}{USP_V2_PATH}"
    return f"wss://{region}.s2s.{speech}{USP_V1_PATH}"


def is_v2(url: str) -> bool:
    return urlsplit(url).path.rstrip("/").endswith(USP_V2_PATH)


def with_query(url: str, params: list[tuple[str, str]]) -> str:
    """``url`` with ``params`` appended, keeping its own query; a name it already has is not added again
    (the SDK's rule, so ``…/v1?profanity=raw&from=de-DE`` keeps both)."""
    parts = urlsplit(url)
    own = parse_qsl(parts.query, keep_blank_values=True)
    present = {name for name, _ in own}
    query = urlencode(own + [(name, value) for name, value in params if name not in present])
    return urlunsplit(parts._replace(query=query))


def endpoint_url(url: str, default_path: str = USP_V1_PATH) -> str:
    """A configured endpoint: a bare ``scheme://host[:port]`` gets ``default_path``; any other path is kept."""
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        parts = parts._replace(path=default_path)
    return urlunsplit(parts)


def own_token_url(url: str) -> str:
    """A Parley gateway issues its own tokens (the same ``/sts/v1.0/issueToken``), on its own host."""
    parts = urlsplit(url)
    return urlunsplit(("https" if parts.scheme == "wss" else "http", parts.netloc, TOKEN_PATH, "", ""))


def token_url(region: str | None, url: str | None) -> str | None:
    """Where the key is exchanged for a token, or None when neither a region nor the endpoint says.

    A region gives its cloud's regional token host; an endpoint on a custom domain is its own
    token host; an endpoint on a regional speech host names its region in the first label.
    """
    if region:
        return f"https://{region}.{_cloud(region)[1]}{TOKEN_PATH}"
    host = (urlsplit(url).hostname or "").lower() if url else ""
    if host.endswith(_CUSTOM_DOMAIN_SUFFIXES):
        return f"https://{host}{TOKEN_PATH}"
    if host.endswith(_REGIONAL_SPEECH_SUFFIXES):
        return token_url(host.split(".")[0], None)
    return None

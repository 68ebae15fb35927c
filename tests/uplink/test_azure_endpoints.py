"""Azure URLs, regions, sovereign clouds and token hosts, and what the azure backend puts in them."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from agent.cli import EXIT_INVALID, main
from agent.uplink.azure_endpoints import region_url, token_url
from agent.uplink.config import UplinkConfig
from agent.uplink.credentials import AzureCredentials
from agent.uplink.usp_client import UspSession

V1 = "/speech/translation/cognitiveservices/v1"
V2 = "/stt/speech/universal/v2"


@pytest.mark.parametrize("region, version, url", [
    ("westeurope", "v1", f"wss://westeurope.s2s.speech.microsoft.com{V1}"),
    ("westeurope", "v2", f"wss://westeurope.stt.speech.microsoft.com{V2}"),
    ("chinaeast2", "v1", f"wss://chinaeast2.s2s.speech.azure.cn{V1}"),
    ("chinanorth3", "v2", f"wss://chinanorth3.stt.speech.azure.cn{V2}"),
    ("usgovvirginia", "v1", f"wss://usgovvirginia.s2s.speech.azure.us{V1}"),
    ("usgovarizona", "v2", f"wss://usgovarizona.stt.speech.azure.us{V2}"),
])
def test_region_urls_public_and_sovereign(region, version, url):
    assert region_url(region, version) == url


@pytest.mark.parametrize("region, url, token", [
    ("westeurope", None, "https://westeurope.api.cognitive.microsoft.com/sts/v1.0/issueToken"),
    ("chinaeast2", None, "https://chinaeast2.api.cognitive.azure.cn/sts/v1.0/issueToken"),
    ("usgovvirginia", None, "https://usgovvirginia.api.cognitive.microsoft.us/sts/v1.0/issueToken"),
    (None, f"wss://my-speech.cognitiveservices.azure.com{V1}", "https://my-speech.cognitiveservices.azure.com/sts/v1.0/issueToken"),
    (None, f"wss://eastus.stt.speech.microsoft.com{V2}", "https://eastus.api.cognitive.microsoft.com/sts/v1.0/issueToken"),
    (None, f"wss://chinaeast2.s2s.speech.azure.cn{V1}", "https://chinaeast2.api.cognitive.azure.cn/sts/v1.0/issueToken"),
    (None, "ws://127.0.0.1:5318", None),
])
def test_token_hosts_follow_the_region_or_the_resources_own_host(region, url, token):
    assert token_url(region, url) == token


def protocol(**settings) -> UspSession:
    return UspSession(UplinkConfig(backend="azure", **settings), AzureCredentials(None, None))


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_a_query_in_the_configured_url_is_kept_and_its_parameters_not_doubled():
    url = protocol(url=f"wss://westeurope.s2s.speech.microsoft.com{V1}?profanity=raw&from=de-DE",
                   to_languages=("es", "ca")).url()
    assert urlsplit(url).path == V1 and url.count("?") == 1
    assert query(url) == {"profanity": ["raw"], "from": ["de-DE"], "to": ["es", "ca"], "features": ["texttospeech"],
                          "voice": ["es-ES-ElviraNeural"]}


def test_a_bare_host_gets_the_v1_path_and_a_region_the_configured_version():
    assert urlsplit(protocol(url="ws://127.0.0.1:5318").url()).path == V1
    assert protocol(region="chinaeast2", endpoint_version="v2").url() == f"wss://chinaeast2.stt.speech.azure.cn{V2}"
    assert protocol(region="westeurope").url().startswith(f"wss://westeurope.s2s.speech.microsoft.com{V1}?from=en-US")


@pytest.mark.parametrize("targets, voice, expected", [
    (("ja",), None, None),  # no Azure default known: none is invented (not ja-JA-Neural)
    (("zh-Hans", "es"), None, None),
    (("de", "fr"), None, "de-DE-KatjaNeural"),
    (("ja",), "ja-JP-NanamiNeural", "ja-JP-NanamiNeural"),
])
def test_voices_are_real_or_absent(targets, voice, expected):
    url = protocol(region="westeurope", to_languages=targets, voice=voice).url()
    assert query(url).get("voice") == ([expected] if expected else None)
    assert ("features" in query(url)) == bool(expected)


def test_check_config_rejects_use_token_without_a_token_host(tmp_path, capsys):
    bad = tmp_path / "agent.yaml"
    bad.write_text("uplink:\n  backend: azure\n  url: ws://10.0.0.5:5318\n  use_token: true\n")
    assert main(["check-config", str(bad)]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert f"{bad}:2: uplink" in err and "use_token needs token_url or region" in err
    good = tmp_path / "custom-domain.yaml"
    good.write_text(f"uplink:\n  backend: azure\n  url: wss://my-speech.cognitiveservices.azure.com{V1}\n"
                    "  use_token: true\n")
    assert main(["check-config", str(good)]) == 0

"""The gateway's shipped config and its command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from parley_common.typedyaml import ConfigError, load_yaml_config
from gateway.config import GatewayConfig


def test_shipped_gateway_yaml_is_the_defaults(repo_root):
    assert load_yaml_config(repo_root / "config" / "gateway.yaml", GatewayConfig) == GatewayConfig()


def test_bad_gateway_config_exits_78_naming_the_key(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text("limits:\n  max_sesions: 4\n")
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78
    assert f"{path}:2: limits.max_sesions" in proc.stderr and "did you mean 'max_sessions'" in proc.stderr


def test_public_bind_without_key_is_refused_from_the_command_line():
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78 and "not loopback" in proc.stderr


def test_a_model_that_is_neither_packaged_nor_a_directory_is_named_with_its_line(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text("recognition:\n  languages:\n    fr-FR:\n      model: /no/such/model\n")
    with pytest.raises(ConfigError) as error:
        load_yaml_config(path, GatewayConfig)
    assert f"{path}:4: recognition.languages.fr-FR" in str(error.value) and "tiny.en, base" in str(error.value)


def test_an_english_only_recognizer_for_spanish_is_refused(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text("recognition:\n  languages:\n    es-ES:\n      engine: pocketsphinx\n")
    with pytest.raises(ConfigError) as error:
        load_yaml_config(path, GatewayConfig)
    assert f"{path}:2: recognition: languages.es-ES: pocketsphinx" in str(error.value)


def test_finals_decode_with_each_languages_beam(tmp_path):
    from gateway.engines.recognizers import Recognizers

    path = tmp_path / "gateway.yaml"
    path.write_text("recognition:\n  processes: 1\n  languages:\n    en-US: {}\n    es-ES:\n      model: base\n      beam_size: 3\n")
    config = load_yaml_config(path, GatewayConfig)
    assert GatewayConfig().recognition.languages["es-ES"].beam_size == 5  # the shipped default
    assert GatewayConfig().recognition.languages["en-US"].beam_size == 1
    recognizers = Recognizers(config.recognition)
    try:
        beams = {code: recognizers.open_stream(code)._options.beam_size for code in ("en-US", "es-ES")}
    finally:
        recognizers.whisper.close()
    assert beams == {"en-US": 1, "es-ES": 3}


@pytest.mark.parametrize("beam", [0, 11])
def test_a_beam_out_of_range_is_named_with_its_line(tmp_path, beam):
    path = tmp_path / "gateway.yaml"
    path.write_text(f"recognition:\n  languages:\n    es-ES:\n      model: base\n      beam_size: {beam}\n")
    with pytest.raises(ConfigError, match=f"{path}:5: recognition.languages.es-ES.beam_size"):
        load_yaml_config(path, GatewayConfig)

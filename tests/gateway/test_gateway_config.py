"""The gateway's shipped config and its command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from parley_common.typedyaml import ConfigError, load_yaml_config
from gateway.config import GatewayConfig
from gateway.engines.whisper_models import ModelError, default_cache_dir, resolve_model


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
    path.write_text("recognition:\n  processes: 1\n  languages:\n    en-US:\n      beam_size: 1\n    es-ES:\n      model: base\n      beam_size: 3\n")
    config = load_yaml_config(path, GatewayConfig)
    assert GatewayConfig().recognition.languages["es-ES"].beam_size == 5  # the shipped default
    assert GatewayConfig().recognition.languages["en-US"].beam_size == 5
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


def check_config(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "--check-config", *args],
                          capture_output=True, text=True, timeout=60)


def test_check_config_passes_the_shipped_file_and_names_a_bad_key_with_its_line(repo_root, tmp_path):
    good = check_config("--config", str(repo_root / "config" / "gateway.yaml"))
    assert good.returncode == 0 and "configuration OK" in good.stdout, good.stderr
    path = tmp_path / "gateway.yaml"
    path.write_text("limits:\n  max_sesions: 4\n")
    bad = check_config("--config", str(path))
    assert bad.returncode == 1 and f"{path}:2: limits.max_sesions" in bad.stderr and "Traceback" not in bad.stderr


def test_check_config_finds_a_model_cache_that_cannot_be_written_and_a_missing_key_file(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    path = tmp_path / "gateway.yaml"
    path.write_text(f"subscription_key_file: {tmp_path / 'no-key'}\nrecognition:\n  model_cache_dir: {blocker / 'cache'}\n")
    done = check_config("--config", str(path))
    assert done.returncode == 1, done.stdout
    assert f"{blocker}" in done.stderr and "model_cache_dir" in done.stderr and "no-key" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unwritable_model_cache_is_a_model_error_not_a_traceback(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ModelError, match="model_cache_dir"):
        resolve_model("base", blocker / "cache")


def test_the_units_cache_directory_is_the_default(monkeypatch, tmp_path):
    monkeypatch.setenv("CACHE_DIRECTORY", str(tmp_path))
    assert default_cache_dir() == tmp_path / "whisper"


HIDE_SILERO = """
import importlib.machinery, sys
class Hide:  # the silero-vad wheel as if it were not installed (a spec without files)
    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, None) if name == "silero_vad" else None
sys.meta_path.insert(0, Hide())
import gateway.cli
sys.exit(gateway.cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("argv, status", [(["--check-config"], 1), ([], 78)], ids=["check-config", "run"])
def test_the_endpointing_vads_missing_model_is_found_before_any_session(argv, status):
    done = subprocess.run([sys.executable, "-c", HIDE_SILERO, *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == status and "recognition.vad" in done.stderr and "silero-vad" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr

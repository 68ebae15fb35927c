"""The generic YAML -> frozen dataclass loader that both the agent and the gateway use."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, field
from typing import Literal

import pytest

from parley_common.typedyaml import ConfigError, load_yaml_config, to_plain


@dataclass(frozen=True)
class Inner:
    mode: Literal["fast", "slow"] = "fast"
    level: int = field(default=2, metadata={"min": 0, "max": 3})


@dataclass(frozen=True)
class Outer:
    inner: Inner = field(default_factory=Inner)
    names: tuple[str, ...] = ("a",)
    voices: dict[str, str] = field(default_factory=dict)
    gain_db: float = 0.0
    token: str | None = field(default=None, metadata={"secret": True})
    enabled: bool = True


def load(text: str) -> Outer:
    return load_yaml_config("t.yaml", Outer, text=text)


def issues_of(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load(text)
    return {i.key_path: f"{i.line}|{i.message}" for i in caught.value.issues}


def test_empty_file_and_no_file_give_defaults():
    assert load("") == Outer()
    assert load_yaml_config(None, Outer) == Outer()


def test_values_convert_to_declared_types_and_result_is_immutable():
    config = load("inner:\n  mode: slow\nnames: [x, y]\nvoices: {es: es-la}\ngain_db: 3\n")
    assert config.inner.mode == "slow" and config.names == ("x", "y")
    assert config.voices == {"es": "es-la"} and config.gain_db == 3.0 and isinstance(config.gain_db, float)
    with pytest.raises(FrozenInstanceError):
        config.gain_db = 1.0


def test_every_problem_is_reported_at_once_with_its_line():
    found = issues_of("inner:\n  mdoe: slow\n  level: 9\nenabled: maybe\nnames: oops\n")
    assert found["inner.mdoe"].startswith("2|unknown key (did you mean 'mode'?)")
    assert found["inner.level"] == "3|9 is out of range; allowed: from 0 to 3"
    assert found["enabled"].startswith("4|expected true/false")
    assert found["names"].startswith("5|expected a list")


def test_bool_is_not_accepted_as_a_number_and_duplicates_are_rejected():
    assert issues_of("gain_db: true\n")["gain_db"].startswith("1|expected a number")
    assert "key given twice" in issues_of("gain_db: 1\ngain_db: 2\n")["gain_db"]


def test_secrets_are_redacted_only_when_asked():
    config = load("token: hunter2\n")
    assert to_plain(config)["token"] == "***"
    assert to_plain(config, redact=False)["token"] == "hunter2"
    assert "hunter2" not in repr(to_plain(config))


def test_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_yaml_config(tmp_path / "missing.yaml", Outer)
    assert "cannot read" in str(caught.value)

"""The uplink: utterances out to a speech-translation service, results back as events."""

from __future__ import annotations

import os
from typing import Callable

from agent.queues import Sink
from agent.uplink.config import UplinkConfig
from agent.uplink.connection import Uplink
from agent.uplink.credentials import azure_credentials, load_key
from agent.uplink.protocol import Session
from agent.uplink.translator_v1 import TranslatorV1Session
from agent.uplink.usp_client import UspSession


def make_uplink(config: UplinkConfig, results: Sink,
                expected_language: Callable[[int], str | None] | None = None) -> Uplink:
    """The configured backend: ``gateway``/``translator-v1`` speak Translator v1, ``azure`` speaks USP, and
    so does the gateway when each utterance's language is to be identified (``identify_languages``).
    ``expected_language(utterance_id)``: the language a seat predicts, for the gateway to weigh."""
    session: Session
    if config.backend == "azure" or config.identify_languages:
        session = UspSession(config, azure_credentials(config), expected_language)
    else:
        session = TranslatorV1Session(config, load_key(config))
    return Uplink(config, results, session, spool_dir=spool_dir(config))


def spool_dir(config: UplinkConfig) -> str | None:
    """``uplink.spool_dir``, else ``spool`` in the unit's StateDirectory when systemd runs us."""
    if config.spool_dir:
        return config.spool_dir
    state = os.environ.get("STATE_DIRECTORY")
    return os.path.join(state.split(":")[0], "spool") if state else None


__all__ = ["Uplink", "UplinkConfig", "make_uplink"]

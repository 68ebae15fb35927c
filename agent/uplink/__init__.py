"""The uplink: utterances out to a speech-translation service, results back as events."""

from __future__ import annotations

import queue

from agent.uplink.config import UplinkConfig
from agent.uplink.connection import Uplink
from agent.uplink.credentials import azure_credentials, load_key
from agent.uplink.translator_v1 import TranslatorV1Protocol
from agent.uplink.usp_client import UspProtocol


def make_uplink(config: UplinkConfig, results: queue.Queue) -> Uplink:
    """The configured backend: ``gateway``/``translator-v1`` speak Translator v1, ``azure`` speaks USP."""
    if config.backend == "azure":
        protocol = UspProtocol(config, azure_credentials(config))
    else:
        protocol = TranslatorV1Protocol(config, load_key(config))
    return Uplink(config, results, protocol)


__all__ = ["Uplink", "UplinkConfig", "make_uplink"]

"""Parley gateway: an offline speech-translation server speaking the Translator v1 and Azure USP protocols."""

from parley_common import __version__  # one version for the one distribution

__all__ = ["__version__"]

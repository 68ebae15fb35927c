"""Parley gateway: an offline speech-translation server speaking the Translator v1 and Azure USP protocols."""

__version__ = "0.1.0"

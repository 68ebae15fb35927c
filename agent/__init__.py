"""Parley device agent: capture -> DSP -> VAD/segmenter -> uplink -> results -> outputs."""

__version__ = "0.1.0"

"""Parley device agent: capture -> DSP -> VAD/segmenter -> uplink -> results -> outputs."""

from parley_common import __version__  # one version for the one distribution

__all__ = ["__version__"]

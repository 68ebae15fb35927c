"""Helpers the test packages share (speech, signals, a talker, a fault proxy); imported as ``tests.support``."""

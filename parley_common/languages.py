"""Language tags as both sides compare them."""

from __future__ import annotations


def base_language(code: str) -> str:
    """``es-ES`` -> ``es``; ``zh-Hans`` -> ``zh``: what a translation target or a voice is matched on."""
    return code.replace("_", "-").split("-")[0].lower()

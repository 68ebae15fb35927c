"""Where the shared test recordings live (never copied into the repository)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the checkout (or $PARLEY_SHARED_DATA), if present."""
    candidate = Path(os.environ.get("PARLEY_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    return candidate if candidate.is_dir() else None

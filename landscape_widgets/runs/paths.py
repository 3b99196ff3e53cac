"""Where the package keeps what it computes: trained demo models and run stores."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$LANDSCAPE_WIDGETS_CACHE``, else ``~/.cache/landscape_widgets`` (created)."""
    root = os.environ.get("LANDSCAPE_WIDGETS_CACHE") or Path.home() / ".cache" / "landscape_widgets"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path

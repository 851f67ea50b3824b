"""Fine-Tuning Lab: an offline stand-in for Gemini tuning, and the helpers the lessons use.

This module stays import-light (standard library only) so that
``python3 -m tunelab.bootstrap`` works before anything is installed.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["connect", "data_path", "set_language", "ROOT"]

ROOT = Path(__file__).resolve().parents[1]


def data_path(name: str = "") -> Path:
    """Absolute path of a course data file, wherever the notebook runs (override: TUNELAB_DATA)."""
    base = Path(os.environ.get("TUNELAB_DATA", ROOT / "data"))
    path = base / name
    if name and not path.exists():
        raise FileNotFoundError(f"course data file {name!r} not found in {base}")
    return path


def set_language(lang: str) -> str:
    """Messages of checks, hints, the panel and plots in ``lang`` ("en" or "ru")."""
    from tunelab.i18n import set_language as _set

    return _set(lang)


def connect(endpoint: str | None = None, *, time_scale: float | None = None) -> str:
    """Start (or reuse) the local tuning emulator and point google.generativeai at it.

    Returns the endpoint URL; see :func:`tunelab.emulator.server.connect`. The import is
    deferred so that ``import tunelab`` stays light.
    """
    from tunelab.emulator.server import connect as _connect

    return _connect(endpoint, time_scale=time_scale)

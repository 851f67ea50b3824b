"""Fine-Tuning Lab: an offline stand-in for Gemini tuning, and the helpers the lessons use.

This module stays import-light (standard library only) so that
``python3 -m tunelab.bootstrap`` works before anything is installed.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["connect", "count", "data_path", "num", "set_language", "ROOT"]

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


def num(value: object, spec: str = "") -> str:
    """A number as the edition's reader writes it: ``num(0.001)`` is "0.001" in English and
    «0,001» in Russian; ``num(206170, ",")`` is "206,170" / «206 170» (:func:`tunelab.i18n.num`)."""
    from tunelab.i18n import num as _num

    return _num(value, spec)


def count(n: int, noun: str) -> str:
    """``n`` with its noun: "5 epochs" / «5 эпох», "2 models" / «2 модели»."""
    from tunelab.i18n import count as _count

    return _count(n, noun)


def connect(endpoint: str | None = None, *, time_scale: float | None = None) -> str:
    """Start (or reuse) the local tuning emulator and point google.generativeai at it.

    Returns the endpoint URL; see :func:`tunelab.emulator.server.connect`. The import is
    deferred so that ``import tunelab`` stays light.
    """
    from tunelab.emulator.server import connect as _connect

    return _connect(endpoint, time_scale=time_scale)

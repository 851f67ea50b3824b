"""Jupyter server hooks for the student's JupyterLab (configured by ``tunelab.bootstrap``).

Why: when JupyterLab opens a notebook and its kernel starts, it copies the kernel's details
into the notebook's metadata (``kernelspec.display_name`` becomes "Python 3 (ipykernel)",
``language_info`` gains the Python version, the lexer, the MIME type). That marks a notebook
the student has not touched as changed, and the next autosave rewrites the lesson with
metadata that depends on the student's machine. :func:`keep_released_metadata` keeps the
notebook's own ``kernelspec`` and ``language_info`` on save, so an opened, unedited notebook is
saved byte for byte as it was; cells, outputs and every other field are saved as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Notebook-level metadata that JupyterLab fills in from the running kernel.
KERNEL_METADATA = ("kernelspec", "language_info")


def keep_released_metadata(model: dict[str, Any], path: str, contents_manager: Any, **_) -> None:
    """``ContentsManager.pre_save_hook``: keep the file's kernel metadata when saving it.

    Only an existing notebook saved with the same kernel (same ``kernelspec.name``) is touched;
    a new notebook, a kernel switch or a file that cannot be read is saved unchanged.
    """
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    try:
        os_path = Path(contents_manager._get_os_path(path))
        on_disk = json.loads(os_path.read_text(encoding="utf-8")).get("metadata", {})
    except (AttributeError, OSError, ValueError):
        return
    metadata = model["content"].setdefault("metadata", {})
    if not isinstance(on_disk, dict) or not isinstance(metadata, dict):
        return
    old_spec, new_spec = on_disk.get("kernelspec"), metadata.get("kernelspec")
    if not isinstance(old_spec, dict) or not isinstance(new_spec, dict):
        return
    if old_spec.get("name") != new_spec.get("name"):
        return  # the student chose another kernel: save what they chose
    for key in KERNEL_METADATA:
        if key in on_disk:
            metadata[key] = on_disk[key]

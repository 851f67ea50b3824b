"""The one entry point the grader calls in a student's kernel.

The grader sends a cell ``import tunelab.checks.probe as p; p.run(NONCE, MODULE, PART,
PAYLOAD, globals())``. The answer is one line on stdout: the nonce, then wire JSON. The
kernel may be hostile and may print anything; the grader only believes a line that starts
with the nonce and decodes into valid wire data, and it judges that data itself.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

from tunelab.checks import wire


def run(nonce: str, module: str, part: str, payload: str, namespace: dict[str, Any]) -> None:
    """Run ``tunelab.checks.MODULE.PROBES[PART]`` on the decoded payload; print its answer."""
    try:
        checks = importlib.import_module(f"tunelab.checks.{module}")
        with wire.one_answer():
            result = checks.PROBES[part](namespace, json.loads(payload))
    except Exception as exc:  # noqa: BLE001 (the grader words it)
        result = wire.error(exc)
    sys.stdout.flush()
    sys.stdout.write(f"\n{nonce}{wire.dumps(result)}\n")
    sys.stdout.flush()

"""Probes any assignment can use: read a global, or call a function on JSON arguments.

For checkers whose inputs are plain JSON (numbers, strings, lists): the grader's tests of the
grading pipeline use them, and so can a new assignment before it needs pandas inputs.
"""

from __future__ import annotations

from typing import Any

from tunelab.checks import wire


def probe_variable(ns: dict, payload: dict) -> Any:
    """The global ``payload["name"]`` as wire data (a NameError if it is not defined)."""
    name = payload["name"]
    if name not in ns:
        return wire.error(NameError(f"{name} is not defined (run its cell first)"))
    return wire.encode(ns[name])


def probe_call(ns: dict, payload: dict) -> list:
    """``ns[name](*args)`` for each argument list in ``payload["calls"]``."""
    fn = ns.get(payload["name"])
    out = []
    for args in payload["calls"]:
        if not callable(fn):
            out.append(wire.error(NameError(f"{payload['name']} is not defined")))
            continue
        try:
            out.append(wire.encode(fn(*args)))
        except Exception as exc:  # noqa: BLE001 (judged by the grader)
            out.append(wire.error(exc))
    return out


PROBES = {"variable": probe_variable, "call": probe_call}

"""Plain JSON between a student's kernel and the grader: the only thing a check trusts.

Why: a value a student's code returns may be an object whose ``==`` always succeeds, a
``float`` subclass whose ``-`` lies, or a Series with a patched ``tolist``. The grader must
never call a method of such an object. So the kernel side *encodes* every result into JSON
(:func:`encode`) and the grader *decodes* it (:func:`decode`) into values of exact built-in
types it created itself, checked with ``type(x) is ...``. A lying encoder can only produce
wrong data, never a passing verdict: the comparison happens after decoding, outside the
kernel, against answers the kernel never sees.

The format (every JSON object is tagged, so a student's dict cannot pose as a tag):

* ``null``, ``true``/``false``, finite numbers, strings, lists;
* ``{"t": "float", "v": "nan" | "inf" | "-inf"}`` for non-finite floats;
* ``{"t": "series", "index": [...], "values": [...]}`` for a pandas Series;
* ``{"t": "dict", "items": [[key, value], ...]}`` for a dict with str keys;
* ``{"t": "error", "type": "ValueError", "message": "..."}`` when the call raised;
* ``{"t": "other", "type": "list_iterator", "text": "..."}`` for anything else, and for a
  list, Series or dict with more elements than the answer has left (:func:`one_answer`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any

MAX_TEXT = 2_000  # characters kept of any string (messages, reprs, labels)
MAX_ITEMS = 200_000  # elements in one list, Series or dict, and in one probe's whole answer
MAX_DEPTH = 8
MAX_INT_BITS = 10_000  # about 3,000 digits: below Python's int-to-str limit (4,300 digits)
MAX_BYTES = 16 * 1024 * 1024  # one probe's whole answer


class WireError(ValueError):
    """The kernel's answer is not valid wire data (malformed, too big, wrong types)."""


# -- kernel side ------------------------------------------------------------------------------
_left: list[int] = []  # elements the answer being encoded may still carry (empty: no answer)


@contextmanager
def one_answer() -> Iterator[None]:
    """Count every list, Series and dict element encoded inside against one budget.

    Why: a probe answers many hidden cases at once, and the grader refuses an answer over
    MAX_BYTES. Without one budget a function that returns five million numbers per case
    kept the kernel busy encoding them until the probe's timeout; with it, the rest of the
    answer is named "too large" at once and the part fails in a second.
    """
    _left.append(MAX_ITEMS)
    try:
        yield
    finally:
        _left.pop()


def _too_large(kind: str, n: int) -> dict | None:
    """Wire data naming a container of ``n`` items that is over the budget, else None
    (and the items are counted)."""
    left = _left[-1] if _left else MAX_ITEMS
    if n > left:
        return {"t": "other", "type": kind, "text": f"{n:,} items: too large for an answer"}
    if _left:
        _left[-1] = left - n
    return None


def encode(value: Any, depth: int = 0) -> Any:
    """Turn a student's value into wire data (runs in the student's kernel)."""
    import numpy as np
    import pandas as pd

    if depth > MAX_DEPTH:
        return {"t": "other", "type": "nested too deeply", "text": ""}
    if type(value) is int and value.bit_length() > MAX_INT_BITS:
        return {"t": "other", "type": "int", "text": "an integer of thousands of digits"}
    if value is None or type(value) in (bool, str, int):
        return value[:MAX_TEXT] if type(value) is str else value
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return encode(int(value), depth)
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isfinite(number):
            return number
        return {
            "t": "float",
            "v": "nan" if math.isnan(number) else ("inf" if number > 0 else "-inf"),
        }
    if isinstance(value, str):
        return str(value)[:MAX_TEXT]
    if isinstance(value, pd.Series):
        if over := _too_large("Series", len(value)):
            return over
        return {
            "t": "series",
            "index": [encode(x, depth + 1) for x in list(value.index)],
            "values": [encode(x, depth + 1) for x in list(value.to_numpy())],
        }
    if isinstance(value, dict):
        if over := _too_large("dict", len(value)):
            return over
        return {
            "t": "dict",
            "items": [
                [str(k)[:MAX_TEXT], encode(v, depth + 1)]
                for k, v in islice(value.items(), MAX_ITEMS)
            ],
        }
    if isinstance(value, list | tuple):
        if over := _too_large(type(value).__name__[:100], len(value)):
            return over
        return [encode(x, depth + 1) for x in islice(value, MAX_ITEMS)]
    try:
        text = repr(value)[:200]
    except Exception:  # noqa: BLE001 (a hostile __repr__)
        text = ""
    return {"t": "other", "type": type(value).__name__[:100], "text": text}


def error(exc: BaseException) -> dict:
    """Wire data for an exception a student's function raised."""
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001
        message = ""
    lines = message.strip().splitlines()
    return {
        "t": "error",
        "type": type(exc).__name__[:100],
        "message": (lines[0] if lines else "")[:300],
    }


def dumps(value: Any) -> str:
    """JSON text of already-encoded wire data (kernel side)."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


# -- grader side ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    """A decoded pandas Series: the grader's own tuples of exact built-in values."""

    index: tuple
    values: tuple


@dataclass(frozen=True)
class Raised:
    """The student's function raised ``type`` with ``message``."""

    type: str
    message: str


@dataclass(frozen=True)
class Other:
    """A value of a type the wire does not carry (named, never used)."""

    type: str
    text: str


def decode_text(text: str) -> Any:
    """Decode one probe's JSON answer into exact built-in values (raises WireError)."""
    if len(text) > MAX_BYTES:
        raise WireError(f"the answer is {len(text):,} characters, over {MAX_BYTES:,}")

    def no_constants(name: str) -> Any:
        raise WireError(f"the answer contains the bare constant {name}")

    try:
        raw = json.loads(text, parse_constant=no_constants)
    except (ValueError, RecursionError) as err:  # JSONDecodeError, an int too long
        raise WireError(f"the answer is not valid JSON ({err})") from None
    return decode(raw)


def decode(raw: Any, depth: int = 0) -> Any:
    """Validate JSON-parsed wire data and build the grader's values from it."""
    if depth > MAX_DEPTH + 2:
        raise WireError("the answer is nested too deeply")
    kind = type(raw)
    if raw is None or kind is bool or kind is int:
        return raw
    if kind is float:
        if not math.isfinite(raw):
            raise WireError("a non-finite float must be tagged")
        return raw
    if kind is str:
        return raw[:MAX_TEXT]
    if kind is list:
        if len(raw) > MAX_ITEMS:
            raise WireError(f"a list has {len(raw):,} items, over {MAX_ITEMS:,}")
        return [decode(x, depth + 1) for x in raw]
    if kind is not dict:
        raise WireError(f"unexpected JSON type {kind.__name__}")
    tag = raw.get("t")
    if tag == "float":
        v = raw.get("v")
        if v == "nan":
            return math.nan
        if v in ("inf", "-inf"):
            return math.inf if v == "inf" else -math.inf
        raise WireError(f"bad float tag {v!r}")
    if tag == "series":
        index, values = raw.get("index"), raw.get("values")
        if type(index) is not list or type(values) is not list or len(index) != len(values):
            raise WireError("a Series needs index and values lists of the same length")
        return Series(
            tuple(_scalar(decode(x, depth + 1)) for x in index),
            tuple(_scalar(decode(x, depth + 1)) for x in values),
        )
    if tag == "dict":
        items = raw.get("items")
        if type(items) is not list:
            raise WireError("a dict needs an items list")
        out: dict[str, Any] = {}
        for pair in items:
            if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str:
                raise WireError("a dict item must be [str, value]")
            out[pair[0]] = decode(pair[1], depth + 1)
        return out
    if tag == "error":
        return Raised(_text(raw.get("type")), _text(raw.get("message")))
    if tag == "other":
        return Other(_text(raw.get("type")), _text(raw.get("text")))
    raise WireError(f"unknown tag {tag!r}")


def _scalar(value: Any) -> Any:
    if value is None or type(value) in (bool, int, float, str):
        return value
    raise WireError("Series elements must be numbers, strings or null")


def _text(value: Any) -> str:
    return value[:MAX_TEXT] if type(value) is str else ""


def describe(value: Any, lang: str | None = None, *, hidden: bool = False) -> str:
    """Short words for what a student's function gave back, for a message (in ``lang``).

    ``hidden``: the value answered a hidden input, so only its kind is named (a type, an
    exception's class), never its content: a student's function can put anything derived
    from the hidden input into what it returns or raises.
    """
    from tunelab.i18n import tr

    if hidden:
        return describe_kind(value, lang)
    if isinstance(value, Raised):
        if value.message:
            return tr(
                "it raised {t}: {m}",
                "возникло исключение {t}: {m}",
                lang,
                t=value.type,
                m=value.message,
            )
        return tr("it raised {t}", "возникло исключение {t}", lang, t=value.type)
    if isinstance(value, Other):
        return tr("a {t}", "объект типа {t}", lang, t=value.type)
    if isinstance(value, Series):
        n = len(value.values)
        return tr("a Series of {n} value(s)", "Series из {n} знач.", lang, n=n)
    if type(value) is float:
        return f"{value:.6g}"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def describe_kind(value: Any, lang: str | None = None) -> str:
    """The kind of a decoded value only ("a str", "it raised ValueError"): safe to show."""
    from tunelab.i18n import tr

    if isinstance(value, Raised):
        return tr("it raised {t}", "возникло исключение {t}", lang, t=value.type)
    if isinstance(value, Other):
        return tr("a {t}", "объект типа {t}", lang, t=value.type)
    if isinstance(value, Series):
        return tr("a Series", "Series", lang)
    if value is None:
        return "None"
    names = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}
    return tr("a {t}", "значение типа {t}", lang, t=names.get(type(value), "value"))


def as_float(value: Any) -> float | None:
    """``value`` as a float if it is a wire number that a float can hold, else None.

    Why: the wire carries ints of any size (JSON has no limit), and ``float(10**400)``
    raises OverflowError; every number a check uses goes through here first.
    """
    if not is_number(value):
        return None
    try:
        return float(value)
    except (OverflowError, ValueError):
        return None


def finite_in(value: Any, lo: float, hi: float, *, above: bool = False) -> float | None:
    """The number as a float when it is finite and ``lo <= x <= hi`` (``lo < x`` if
    ``above``); None otherwise. The one range check for numbers decoded from the wire."""
    number = as_float(value)
    if number is None or not math.isfinite(number):
        return None
    if number > hi or number < lo or (above and number == lo):
        return None
    return number


def is_whole(value: Any) -> bool:
    """An int (numpy integers arrive as int), never a bool."""
    return type(value) is int


def is_number(value: Any) -> bool:
    return type(value) in (int, float)


def same_float(a: Any, b: Any, *, rtol: float = 1e-9, atol: float = 1e-12) -> bool:
    """Equal as floats, NaN equal to NaN; both must be numbers (never a student object)."""
    a, b = as_float(a), as_float(b)
    if a is None or b is None:
        return False
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rtol, abs_tol=atol)

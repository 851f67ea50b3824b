"""IPython extension loaded into every sandboxed student kernel: cap what one cell prints.

Why: a submission that prints 50 MB (an accidental ``print(big_frame)`` in a loop, or on
purpose) would otherwise push all of it through ZeroMQ into the grader, the autograded
notebook and the feedback page. The kernel itself stops forwarding text once a cell has
printed ``$GRADER_MAX_CELL_OUTPUT`` characters and says so once.

An error is capped the same way: its message and each line of its traceback. An exception
whose message holds a whole data frame is an honest mistake too, and its error message
(message and traceback, twice: on IOPub and in the reply) would exceed the largest message
the grader accepts (``SandboxedKernelClient.max_message_mb``), which then drops it, so the
cell would wait for its timeout and the kernel be restarted.

This is a courtesy for honest mistakes; the grader enforces its own caps on what it accepts
(a hostile kernel can unload this).
"""

from __future__ import annotations

import os
import sys

NOTE = (
    "\n... output truncated by the grader: this cell printed more than {n} characters ...\n",
    "\n... вывод обрезан: эта ячейка напечатала больше {n} {chars} ...\n",
)
ERROR_NOTE = (
    " ... (truncated by the grader: over {n} characters)",
    " ... (обрезано: длиннее {n} {chars})",
)


def _note(texts: tuple[str, str], limit: int) -> str:
    """English, or Russian where the notebook chose it (through tunelab, if it is loaded:
    this file imports nothing a submission could shadow)."""
    i18n = sys.modules.get("tunelab.i18n")
    try:
        if i18n is not None and i18n.get_language() == "ru":
            chars = i18n.plural_ru(limit, "символа", "символов", "символов")  # after «больше»
            return texts[1].format(n=i18n.num(limit), chars=chars)
    except Exception:  # noqa: BLE001 (a courtesy: fall back to English)
        pass
    return texts[0].format(n=limit)


class _Budget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.noted = False

    def reset(self, *_args) -> None:
        self.used = 0
        self.noted = False

    def wrap(self, write):
        def limited_write(text):
            if not isinstance(text, str):
                return write(text)
            room = self.limit - self.used
            if room <= 0:
                if not self.noted:
                    self.noted = True
                    write(_note(NOTE, self.limit))
                return len(text)
            if len(text) > room:
                write(text[:room])
                self.used = self.limit
                self.noted = True
                write(_note(NOTE, self.limit))
                return len(text)
            self.used += len(text)
            return write(text)

        return limited_write


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + _note(ERROR_NOTE, limit)


def cap_errors(show, limit: int):
    """Wrap the shell's ``_showtraceback``: the exception's message (read again for the
    reply) and each traceback line keep at most ``limit`` characters."""

    def capped(etype, evalue, stb):
        try:
            message = str(evalue)
            if len(message) > limit:
                evalue.args = (_cut(message, limit),)
        except Exception:  # noqa: BLE001 (an exception that will not say or change its message)
            pass
        if isinstance(stb, list):
            stb = [_cut(line, limit) if isinstance(line, str) else line for line in stb]
        return show(etype, evalue, stb)

    return capped


def load_ipython_extension(ipython) -> None:
    limit = int(os.environ.get("GRADER_MAX_CELL_OUTPUT", "1000000"))
    budget = _Budget(limit)
    ipython.events.register("pre_run_cell", budget.reset)
    for stream in (sys.stdout, sys.stderr):
        stream.write = budget.wrap(stream.write)
    if hasattr(ipython, "_showtraceback"):
        ipython._showtraceback = cap_errors(ipython._showtraceback, limit)

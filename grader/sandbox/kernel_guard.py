"""IPython extension loaded into every sandboxed student kernel: cap what one cell prints.

Why: a submission that prints 50 MB (an accidental ``print(big_frame)`` in a loop, or on
purpose) would otherwise push all of it through ZeroMQ into the grader, the autograded
notebook and the feedback page. The kernel itself stops forwarding text once a cell has
printed ``$GRADER_MAX_CELL_OUTPUT`` characters and says so once. This is a courtesy for
honest mistakes; the grader enforces its own caps on what it accepts (a hostile kernel
can unload this).
"""

from __future__ import annotations

import os
import sys

NOTE = "\n... output truncated by the grader: this cell printed more than {} characters ...\n"


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
                    write(NOTE.format(self.limit))
                return len(text)
            if len(text) > room:
                write(text[:room])
                self.used = self.limit
                self.noted = True
                write(NOTE.format(self.limit))
                return len(text)
            self.used += len(text)
            return write(text)

        return limited_write


def load_ipython_extension(ipython) -> None:
    limit = int(os.environ.get("GRADER_MAX_CELL_OUTPUT", "1000000"))
    budget = _Budget(limit)
    ipython.events.register("pre_run_cell", budget.reset)
    for stream in (sys.stdout, sys.stderr):
        stream.write = budget.wrap(stream.write)

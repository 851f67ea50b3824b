"""The hostile neighbour of the grader's isolation tests and benchmarks: a CPU hog.

Why one place: ``tests/test_grader_adversarial.py`` (an honest grade beside a hog is the same
as alone) and ``tests/benchmarks/bench_grader.py`` (the honest one's time beside a hog as a
ratio to its time alone) must attack with the same hog, or their figures stop describing the
same thing.
"""

from __future__ import annotations


def cpu_hog(seconds: int) -> str:
    """A graded answer cell that forks 8 busy processes in sessions of their own (escaping the
    kernel's process group) and keeps the kernel busy itself for ``seconds`` wall seconds."""
    if not isinstance(seconds, int) or seconds <= 0:
        raise ValueError(f"cpu_hog: seconds must be a positive whole number, not {seconds!r}")
    return f"""
import os, time
for _ in range(8):
    if os.fork() == 0:
        os.setsid()
        while True:
            pass
_t0 = time.time()
while time.time() - _t0 < {seconds}:
    pass
"""

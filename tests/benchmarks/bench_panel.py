"""Time the hyperparameter panel's redraw: slider value in, new PNG and summary out.

Why: the lesson promises that both loss curves "update at once" when a slider moves. A redraw
is simulate + draw + PNG encode in the kernel; this script measures it over a sweep of
settings, from a 50-example job to a 400,000-step one, and fails when the median exceeds
the budget.

    .venv/bin/python tests/benchmarks/bench_panel.py
"""

from __future__ import annotations

import statistics
import sys
import time

BUDGET_MS = 500.0  # "well under a second" for the median redraw

SWEEP = [
    {},
    {"learning_rate_multiplier": 4.0},
    {"learning_rate_multiplier": 4.0, "batch_size": 1},
    {"learning_rate_multiplier": 0.05},
    {"epoch_count": 1},
    {"n_examples": 100, "epoch_count": 20},
    {"batch_size": 32},
    {"noise": 0.3},
    {"n_examples": 20000, "epoch_count": 20, "batch_size": 1},
    {"n_examples": 50, "epoch_count": 1, "batch_size": 32},
]


def main() -> int:
    start = time.perf_counter()
    from tunelab.panel import HyperparameterPanel, PanelSettings

    panel = HyperparameterPanel()
    print(f"import + first draw: {(time.perf_counter() - start) * 1000:.0f} ms")
    panel.redraw_ms.clear()
    for _ in range(3):
        for change in SWEEP:
            panel.settings = PanelSettings()  # each change starts from the defaults
            panel.set(**change) if change else panel.redraw()
    times = panel.redraw_ms
    median, worst = statistics.median(times), max(times)
    p90 = statistics.quantiles(times, n=10)[-1]
    print(f"{len(times)} redraws: median {median:.0f} ms, p90 {p90:.0f} ms, max {worst:.0f} ms")
    if median > BUDGET_MS:
        print(f"median redraw over the {BUDGET_MS:.0f} ms budget")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

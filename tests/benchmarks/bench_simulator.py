"""Benchmark the simulator: a 10,000-step curve and 1,000 scenario draws.

Run: .venv/bin/python tests/benchmarks/bench_simulator.py [--repeats N]
Why: the emulator simulates a job on every create call and the graded tests draw hundreds of
scenario runs, so both must stay in the millisecond range on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

from tunelab.scenarios import LABELS, sample_run
from tunelab.simulator import DatasetProfile, Hyperparameters, simulate, total_steps


def bench_curve(repeats: int) -> list[float]:
    profile = DatasetProfile(8000, noise=0.1)
    hp = Hyperparameters(epoch_count=5, batch_size=4, learning_rate_multiplier=1.0)
    assert total_steps(8000, 5, 4) == 10_000
    simulate(profile, hp, 0)  # warm-up (imports, caches)
    times = []
    for seed in range(repeats):
        t0 = time.perf_counter()
        simulate(profile, hp, seed)
        times.append(time.perf_counter() - t0)
    return times


def bench_samples(count: int) -> float:
    t0 = time.perf_counter()
    for i in range(count):
        sample_run(LABELS[i % len(LABELS)], 10_000 + i)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=51, help="runs of the 10,000-step curve")
    parser.add_argument("--samples", type=int, default=1000, help="sample_run calls")
    args = parser.parse_args()

    times = bench_curve(args.repeats)
    print(
        f"simulate, 10,000 steps: median {statistics.median(times) * 1e3:.2f} ms, "
        f"min {min(times) * 1e3:.2f} ms, max {max(times) * 1e3:.2f} ms ({args.repeats} runs)"
    )
    total = bench_samples(args.samples)
    print(
        f"sample_run x {args.samples} (all labels in turn): {total:.2f} s total, "
        f"{total / args.samples * 1e3:.2f} ms each"
    )


if __name__ == "__main__":
    main()

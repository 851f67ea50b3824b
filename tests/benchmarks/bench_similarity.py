"""Benchmark: the similarity report's time for a class, measured and extrapolated to 1,000.

    .venv/bin/python tests/benchmarks/bench_similarity.py [--students 100] [--copies 3]

Writes STUDENTS synthetic ``sql_overfitting`` submissions (honest and varied, COPIES of them
disguised copies of a classmate: ``tests/similarity_class.py``) into a temporary instructor
folder and runs ``grader.results.similarity.write_similarity`` on them, as ``python -m grader
similarity`` does. Prints the time of each phase (reading the notebooks, fingerprinting,
comparing the pairs that share a fingerprint, writing the pages), whether every planted pair
was flagged and no other, and the extrapolation to 1,000 submissions: reading and
fingerprinting grow with the class (linear), comparing with the number of pairs that share
something (at most quadratic; the measured share of such pairs is used).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()

    import nbformat
    from similarity_class import demo_class
    from test_similarity import _notebook

    import grader.results.similarity as sim
    from grader.stores.course import Course

    started = time.perf_counter()
    import copydetect.detector  # noqa: F401 (its import is a one-off cost, timed apart)

    import_s = time.perf_counter() - started
    students, planted = demo_class(args.students, seed=args.seed, copies=args.copies)
    with tempfile.TemporaryDirectory(prefix="bench-similarity-") as tmp:
        course = Course.from_env(REPO, Path(tmp) / "instructor")
        for student, cells in students.items():
            folder = course.submitted / student / "sql_overfitting"
            folder.mkdir(parents=True)
            nbformat.write(_notebook(cells), folder / "sql_overfitting.ipynb")

        # the phases, timed one by one (the same calls write_similarity makes)
        t0 = time.perf_counter()
        notebooks, _ = sim._submissions(course, "sql_overfitting")
        codes = {s: sim.answer_code(nbs[0]) for s, nbs in notebooks.items()}
        boiler = sim.boilerplate_code(course, "sql_overfitting")
        t1 = time.perf_counter()
        base = sim._boilerplate_hashes(boiler)
        prints = {s: sim._fingerprint(code, base) for s, code in codes.items()}
        t2 = time.perf_counter()
        flagged, pairs, compared, _ = sim.compare_code(codes, boiler)
        t3 = time.perf_counter()
        # compare_code fingerprints again: its comparing share is its time minus t2 - t1
        compare_s = max(0.0, (t3 - t2) - (t2 - t1))
        del prints

        t4 = time.perf_counter()
        report = sim.write_similarity(course, "sql_overfitting")
        total = time.perf_counter() - t4

    n = len(students)
    all_pairs = n * (n - 1) // 2
    share = compared / all_pairs if all_pairs else 0.0
    read_s, print_s = t1 - t0, t2 - t1
    per_doc = (read_s + print_s) / n
    per_pair = compare_s / compared if compared else 0.0
    big = 1000
    big_pairs = big * (big - 1) // 2
    est = big * per_doc + big_pairs * share * per_pair + (total - read_s - print_s - compare_s)
    found = sorted((p.a, p.b) for p in report.flagged)
    print(f"class: {n} submissions ({args.copies} disguised copies), load {os.getloadavg()[0]:.1f}")
    print(f"copydetect import (once per process): {import_s:.2f} s")
    print(f"read notebooks + release:   {read_s:7.2f} s  ({1000 * read_s / n:.1f} ms each)")
    print(f"fingerprint (pygments):     {print_s:7.2f} s  ({1000 * print_s / n:.1f} ms each)")
    print(
        f"compare pairs:              {compare_s:7.2f} s  ({compared} of {all_pairs} pairs share "
        f"a fingerprint, {share:.0%}; {1e6 * per_pair:.0f} us per pair)"
    )
    print(f"write_similarity end to end:{total:7.2f} s (pages for {len(report.flagged)} pair(s))")
    print(f"planted pairs flagged: {found == sorted(planted)} ({len(found)} flagged)")
    if report.context:
        closest = report.context[0].similarity
        print(f"closest honest pair: {closest:.2f} (threshold {sim.THRESHOLD})")
    print(
        f"extrapolated to {big}: {big * per_doc:.0f} s reading+fingerprinting + "
        f"{big_pairs * share * per_pair:.0f} s comparing ({big_pairs * share:,.0f} pairs) = "
        f"about {est / 60:.1f} min"
    )
    return 0 if found == sorted(planted) else 1


if __name__ == "__main__":
    raise SystemExit(main())

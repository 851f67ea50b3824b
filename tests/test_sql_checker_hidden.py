"""The sql_overfitting checker on its own, in process: order, oracles, plans (issue 14).

Fast companions of tests/test_grader_adversarial.py (which grades real submissions in the
sandbox): the checker's parts are called with a probe that runs in this process
(``tunelab.checks.sql_overfitting.roundtrip``, exactly what the kernel side does), so many
seeds and many candidate answers cost seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from grader.verdicts.trusted import Context, load_checker
from tunelab.checks import sql_overfitting as C

ROOT = Path(__file__).resolve().parents[1]
CHECKER = load_checker(ROOT, "sql_overfitting")
MOD = sys.modules["_grader_checker_sql_overfitting"]
MASTER = {
    c.metadata["nbgrader"]["grade_id"]: c.source
    for c in nbformat.read(
        ROOT / "solutions" / "sql_overfitting" / "sql_overfitting.ipynb", as_version=4
    ).cells
    if c.metadata.get("nbgrader", {}).get("grade_id")
}


def honest() -> dict:
    ns: dict = {"pd": pd, "np": np, "LABELS": C.LABELS}
    for part in ("p1", "p2", "p3", "p5"):
        exec(MASTER[f"{part}-answer"], ns)
    return ns


def judge(grade_id: str, ns: dict, seed: int = 7, lang: str = "en"):
    ctx = Context(
        grade_id,
        seed,
        lambda module, part, payload: C.roundtrip(part, ns, payload),
        "sql_overfitting",
        ROOT,
        lang=lang,
    )
    return CHECKER.judge(grade_id, ctx)


# -- hidden cases carry no order ------------------------------------------------------------------
def counters(ns: dict) -> dict:
    """Answers by call position or call count, each right where the old fixed order put the
    case its shortcut gets wrong (see ORDER_AND_COUNT in test_grader_adversarial.py)."""
    calls = {"p1": 0, "p2": 0, "p3": 0, "p5": 0}
    edges2, edges3 = [2, 2, 3, 4, None, None, None, 1], [2, 2, 3, 4, 20]

    def epoch_mean_loss(snapshots):
        calls["p1"] += 1
        frame = snapshots if calls["p1"] == 2 else snapshots.fillna(0)
        return frame.groupby("epoch")["mean_loss"].mean().sort_index().astype(float)

    def plateau_epoch(losses, tol=0.01):
        calls["p2"] += 1
        if calls["p2"] <= len(edges2):
            return edges2[calls["p2"] - 1]
        values = losses.to_numpy(dtype=float)
        for i in range(len(values) - 1):
            if values[i] - values[i + 1] < tol:
                return int(losses.index[i])
        return None

    def best_epoch(validation):
        calls["p3"] += 1
        if calls["p3"] <= len(edges3):
            return edges3[calls["p3"] - 1]
        return int(validation.dropna().idxmin())

    def classify_curve(train, validation=None):
        if len(train) == 0:
            raise ValueError("empty")
        calls["p5"] += 1
        return C.LABELS[min((calls["p5"] - 1) // 80, 4)]

    return {
        "epoch_mean_loss": epoch_mean_loss,
        "plateau_epoch": plateau_epoch,
        "best_epoch": best_epoch,
        "classify_curve": classify_curve,
        "_calls": calls,
    }


@pytest.mark.parametrize("seed", [1, 2])
def test_answers_by_call_position_or_count_fail_every_part(seed: int) -> None:
    for grade_id in ("p1-check", "p2-check", "p3-check", "p5-check"):
        verdict = judge(grade_id, counters({}), seed)
        assert not verdict.passed, (grade_id, verdict.message)


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_the_honest_answers_pass_the_shuffled_cases(lang: str) -> None:
    ns = honest()
    for grade_id in ("p1-check", "p2-check", "p3-check", "p5-check"):
        verdict = judge(grade_id, ns, 11, lang)
        assert verdict.passed, (grade_id, verdict.message)


def test_every_part_shuffles_its_cases() -> None:
    """The position of each kind of case changes from seed to seed (edge cases included)."""
    seen: dict[str, set] = {}

    def recorder(part: str):
        def probe(module, name, payload):
            cases = payload.get("cases") or payload.get("frames")
            first = json.dumps(cases[0], sort_keys=True)[:200]
            seen.setdefault(part, set()).add(first)
            return C.roundtrip(name, honest(), payload)

        return probe

    for seed in range(4):
        for grade_id in ("p1-check", "p2-check", "p3-check"):
            CHECKER.judge(
                grade_id,
                Context(grade_id, seed, recorder(grade_id), "sql_overfitting", ROOT),
            )
    for grade_id, firsts in seen.items():
        assert len(firsts) >= 3, grade_id  # the first case differs between seeds


def test_hidden_failures_name_no_value() -> None:
    """A wrong answer on hidden cases is described by its kind, never its content (which
    may carry the hidden input) or the reference value."""
    ns = {"best_epoch": lambda v: "LEAK " + v.to_json()}
    verdict = judge("p3-check", ns)
    assert not verdict.passed and "LEAK" not in verdict.message and "a str" in verdict.message
    ns = {"plateau_epoch": lambda v, tol=0.01: 999}
    message = judge("p2-check", ns).message
    assert "999" not in message and "expected epoch" not in message
    ns = {"epoch_mean_loss": lambda f: (_ for _ in ()).throw(ValueError(f.to_json()))}
    message = judge("p1-check", ns).message
    assert "ValueError" in message and '"mean_loss"' not in message and "{" not in message


# -- no oracle ships ------------------------------------------------------------------------------
@pytest.mark.slow
def test_no_function_of_the_package_passes_a_graded_part(tmp_path: Path) -> None:
    """The oracle-leak sweep: every function and method of tunelab that fits an answer's
    signature, called on the hidden inputs through the checker; none may pass."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "oracle_sweep.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("SWEEP ")), None)
    assert line is not None, done.stderr[-2000:]
    report = json.loads(line.removeprefix("SWEEP "))
    print(report)
    assert report["candidates"] > 300
    for grade_id in ("p1-check", "p2-check", "p3-check", "p5-check", "p7-check"):
        assert report[grade_id]["tried"] > 0, grade_id
        assert report[grade_id]["passed"] == [], (grade_id, report[grade_id]["passed"])


# -- parts agree -----------------------------------------------------------------------------------
PLAN = {"epoch_count": 5, "batch_size": 4, "learning_rate": 0.001}


@pytest.mark.parametrize(
    ("plan", "passed", "phrase"),
    [
        (PLAN, True, "end the overfitting"),
        ({**PLAN, "learning_rate": 1e-05}, False, "cannot learn"),
        ({**PLAN, "epoch_count": 20}, False, "overfit again"),
        ({**PLAN, "learning_rate": 10**400}, False, "not a finite number"),
        ({**PLAN, "learning_rate": 0.005}, False, "would not finish"),
        ({"epoch_count": 5, "batch_size": 4, "learning_rate_multiplier": 1.0}, True, "passed"),
    ],
)
def test_part_6_judges_a_plan_by_what_it_would_do(plan, passed, phrase) -> None:
    verdict = judge("p6-check", {"next_run": plan})
    assert verdict.passed is passed and phrase in verdict.message, verdict.message
    ru = judge("p6-check", {"next_run": plan}, lang="ru")
    assert ru.passed is passed and "learning rate" not in ru.message


GRID = [
    {"epoch_count": e, "batch_size": b, "learning_rate": lr}
    for e in (2, 3, 4, 5, 6, 8, 10)
    for b in (2, 4, 8)
    for lr in (0.0005, 0.001, 0.002)
]


@pytest.mark.slow
def test_the_best_plan_is_best_and_part_8_agrees_with_every_passed_part_6() -> None:
    """No plan of a wide grid beats BEST_PLAN by more than a point; every plan Part 6 passes
    is, on Part 8's own measure (60 held-out questions, the student's model id), clearly better
    than the 20-epoch model, so Part 8 never blames a plan Part 6 accepted."""
    oracle = MOD._oracle(ROOT)
    best = oracle.outcome(MOD.BEST_PLAN).accuracy
    data = MOD._data(ROOT)
    heldout = data["heldout"].drop_duplicates("text_input")
    rows = heldout.sample(n=60, random_state=3)
    questions, refs = list(rows["text_input"]), list(rows["output"])
    old_answers = oracle.answers(MOD.FIRST_MODEL, MOD.FIRST_RUN, questions)
    old = MOD.ref_accuracy(
        data["db"], questions, refs, dict(zip(questions, old_answers, strict=True))
    )
    passed = 0
    for plan in GRID:
        got = oracle.outcome(plan)
        assert got.accuracy is None or got.accuracy <= best + 0.01, (plan, got.accuracy, best)
        if MOD.plan_problem(ROOT, plan, "en") is None:
            passed += 1
            for name in ("tunedModels/next-run-a1b2", "tunedModels/sql-rerun-77"):
                new_answers = oracle.answers(name, plan, questions)
                new = MOD.ref_accuracy(
                    data["db"], questions, refs, dict(zip(questions, new_answers, strict=True))
                )
                assert new >= old + 0.3, (plan, name, new, old)
    assert passed >= 10

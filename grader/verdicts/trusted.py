"""Trusted verdicts: each graded part is decided here, in the grader, never in the student's kernel.

Why: nbgrader runs hidden tests in the student's kernel and scores a test cell by its
outputs, so a student's code that hooks IPython, returns always-equal objects or patches
numpy decides its own grade. Here the kernel only ever produces *data*:

1. For every test cell the grader asks the assignment's checker (``solutions/ASSIGNMENT/
   checker.py``: hidden inputs and reference answers, never mounted in the sandbox) for a
   verdict. The checker sends inputs into the kernel through :meth:`Context.probe`, which
   runs ``tunelab.checks.probe`` there and reads back one line of wire JSON.
2. :mod:`tunelab.checks.wire` decodes that line into values of exact built-in types; the
   checker compares them with its own answers and never calls a student object's method.
3. The verdict, not the cell's outputs, is the score (:class:`grader.verdicts.
   saveverdicts.SaveVerdicts`); the test cell's outputs are replaced by the verdict's words, so the
   feedback page shows which part failed and a hint, never hidden inputs or test code.

Hidden inputs come from a per-submission seed drawn at grading time and stored with the
grade, so a regrade reproduces them and no two cohorts share them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from tunelab.checks import wire

CHECKER_FILE = "checker.py"


class CheckerError(RuntimeError):
    """An assignment has no usable trusted checker: a course problem, not a student's."""


class ProbeFailed(RuntimeError):
    """The kernel gave no valid answer to a probe (crashed, timed out, printed garbage)."""


@dataclass
class Verdict:
    """The grader's decision on one graded part, in words for the student."""

    passed: bool
    message: str
    notes: list[str] = field(default_factory=list)

    @classmethod
    def ok(cls, message: str) -> Verdict:
        return cls(True, message)

    @classmethod
    def fail(cls, message: str) -> Verdict:
        return cls(False, message)


#: How a checker reaches the kernel: (module, part, payload) -> decoded wire value.
ProbeFn = Callable[[str, str, Any], Any]


@dataclass
class Context:
    """What a checker gets for one part of one submission."""

    grade_id: str
    seed: int
    probe_fn: ProbeFn
    module: str
    course_root: Path
    notes: list[str] = field(default_factory=list)
    #: the submission's edition ("en" or "ru", from its notebook metadata): the verdict's language
    lang: str = "en"
    #: the id the submission was collected under ("" for the master's preflight): per-student
    #: variants (the quiz) are judged under it, never under an id the notebook claims
    student: str = ""
    #: answers of :meth:`probe_once`, shared by the parts of one submission while its kernel
    #: lives (the grader gives every part the same dict and empties it at a restart)
    memo: dict[str, Any] = field(default_factory=dict)

    def rng(self, salt: str = "") -> np.random.Generator:
        """A generator fixed by the submission's seed and the part (and an optional salt)."""
        digest = hashlib.sha256(f"{self.seed}|{self.grade_id}|{salt}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "big"))

    def probe(self, part: str, payload: Any) -> Any:
        """Run ``tunelab.checks.MODULE.PROBES[part]`` in the kernel; its decoded answer."""
        return self.probe_fn(self.module, part, payload)

    def probe_once(self, part: str, payload: Any) -> Any:
        """:meth:`probe`, asked of the kernel once per submission: for parts that all read
        the same state after the last cell (the quiz's ``answers``), instead of one probe
        (a kernel round trip) each. An answer that failed is not kept: the next part asks."""
        import json

        key = f"{part}|{json.dumps(payload, sort_keys=True)}"
        if key not in self.memo:
            self.memo[key] = self.probe(part, payload)
        return self.memo[key]

    def data_path(self, relative: str) -> Path:
        return self.course_root / "data" / relative


@dataclass
class Checker:
    """A loaded ``checker.py``: its grade ids, its probe module and its check functions."""

    assignment: str
    path: Path
    module: str
    checks: dict[str, Callable[[Context], Verdict]]
    sha256: str
    #: modules the assignment's kernels import that no import statement of the master shows
    #: (``PRELOAD``, optional): the zygote imports them too (:mod:`grader.sandbox.preload`)
    preload: tuple[str, ...] = ()

    def judge(self, grade_id: str, ctx: Context) -> Verdict:
        check = self.checks.get(grade_id)
        if check is None:
            raise CheckerError(
                f"{self.path} has no check for the test cell {grade_id!r}; add it to CHECKS"
            )
        verdict = check(ctx)
        if not isinstance(verdict, Verdict):
            raise CheckerError(f"{self.path}: CHECKS[{grade_id!r}] returned {verdict!r}")
        verdict.notes = ctx.notes + verdict.notes
        return verdict


def unjudgeable(grade_id: str, lang: str = "en") -> str:
    """The failure of a part whose answer the checker could not judge (it raised).

    Why: a checker meets answers nobody foresaw (``10**400`` where a float was expected, a
    letter string where one letter was); that is the answer's problem, so it fails its own
    part with words the student can act on, and every other part is still graded.
    """
    from tunelab.i18n import tr

    return tr(
        "{part}: your answer could not be judged (it is not in the form the assignment asks "
        "for), so this part is marked as failed; the other parts were graded. Run the check "
        "cell below the answer: it names what is wrong with the answer's form.",
        "{part}: ваш ответ не удалось оценить (он не в той форме, которую требует задание), "
        "поэтому эта часть не засчитана; остальные части оценены. Выполните ячейку проверки "
        "под ответом: она назовёт, что не так с формой ответа.",
        lang,
        part=grade_id,
    )


def checker_path(course_root: Path, assignment: str) -> Path:
    return course_root / "solutions" / assignment / CHECKER_FILE


def load_checker(course_root: Path, assignment: str) -> Checker:
    """Import ``solutions/ASSIGNMENT/checker.py`` (a module with MODULE and CHECKS)."""
    path = checker_path(course_root, assignment)
    if not path.is_file():
        raise CheckerError(
            f"{path} is missing: every graded assignment needs a trusted checker (its hidden "
            "tests), since the grader never scores a test cell by its outputs"
        )
    name = f"_grader_checker_{assignment.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CheckerError(f"{path} cannot be imported")
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    writes, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ in solutions/
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise CheckerError(f"{path} failed to import: {type(err).__name__}: {err}") from err
    finally:
        sys.dont_write_bytecode = writes
    checks = getattr(module, "CHECKS", None)
    probes = getattr(module, "MODULE", None)
    if not isinstance(checks, dict) or not isinstance(probes, str):
        raise CheckerError(f"{path} must define MODULE (a str) and CHECKS (a dict)")
    preload = getattr(module, "PRELOAD", ())
    if not isinstance(preload, tuple | list) or not all(isinstance(m, str) for m in preload):
        raise CheckerError(f"{path}: PRELOAD must be a tuple of module names (str)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Checker(assignment, path, probes, checks, digest, tuple(preload))


def new_seed() -> int:
    """A fresh hidden-input seed, drawn at grading time (never reused across cohorts)."""
    return secrets.randbits(62)


def parse_answer(text: str, nonce: str) -> Any:
    """The decoded wire value on the first stdout line starting with ``nonce``."""
    for line in text.splitlines():
        if line.startswith(nonce):
            try:
                return wire.decode_text(line[len(nonce) :])
            except wire.WireError as err:
                raise ProbeFailed(f"the kernel's answer was not valid: {err}") from None
    raise ProbeFailed("the kernel gave no answer to the check")


def probe_code(nonce: str, module: str, part: str, payload: Any) -> str:
    """The one line of code a probe runs in the kernel (payload as a JSON string literal)."""
    import json

    text = json.dumps(payload, separators=(",", ":"))
    return (
        "__import__('tunelab.checks.probe', fromlist=['run']).run("
        f"{nonce!r}, {module!r}, {part!r}, {text!r}, globals())"
    )

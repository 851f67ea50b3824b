"""Rebuild every course data file from code, byte for byte.

    .venv/bin/python data/build.py            # (re)write the files under data/
    .venv/bin/python data/build.py --check    # rebuild into a temp dir and compare; exit 1 on drift
    .venv/bin/python data/build.py --out DIR  # write a fresh copy somewhere else

Why generated, not hand-made: the lessons, the graded scenario and the tests must agree on
every number. Everything here comes from seeded generators in ``tunelab`` (the domain
grammars and the training simulator), so one command reproduces it and ``--check`` proves
the committed files are what the code produces. Text files are compared byte for byte; the
SQLite database is compared by its ``iterdump()`` SQL, because SQLite writes its own library
version into the file header (see data/README.md).
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent
ROOT = DATA.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tunelab import scenarios  # noqa: E402
from tunelab.domains import nl_sql, tech_support  # noqa: E402
from tunelab.domains._grammar import Pair  # noqa: E402

# The service's limits (the emulator enforces them; the lessons quote them).
from tunelab.emulator.store import MAX_INPUT_CHARS, MAX_OUTPUT_CHARS  # noqa: E402
from tunelab.simulator import SimulatedRun  # noqa: E402

# ---------------------------------------------------------------- parameters
NL_SQL_TRAIN = 500
NL_SQL_HELDOUT = 120
NL_SQL_SEED = 0
TECH_EXAMPLES = 300
TECH_SEED = 0
DIRTY_SEED = 7
# Lesson 09 (real training): NL->SQL questions labelled two ways, see build_real_training.
REAL_PRETRAIN = 1400  # 1,200 to train on + 200 to validate on
REAL_TARGET = 400  # 200 to fine-tune on + 200 to validate on
REAL_PRETRAIN_SEED = 21
REAL_TARGET_SEED = 22
FLOAT_FORMAT = "%.6g"

# Directories whose every file is generated (anything else there is reported as stale).
GENERATED_DIRS = ("nl_sql", "runs", "real_training")


# ------------------------------------------------------------------- helpers
def _jsonl_line(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False) + "\n"


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def _examples(pairs: Sequence[Pair]) -> str:
    return "".join(_jsonl_line({"text_input": p.question, "output": p.answer}) for p in pairs)


# ---------------------------------------------------------------------- nl_sql
def build_nl_sql(out: Path) -> None:
    folder = out / "nl_sql"
    folder.mkdir(parents=True, exist_ok=True)
    nl_sql.build_database(folder / "shop.sqlite", seed=nl_sql.DEFAULT_DB_SEED)
    _write_text(folder / "schema.sql", nl_sql.SCHEMA_SQL)
    train, heldout = nl_sql.split_pairs(NL_SQL_TRAIN, NL_SQL_HELDOUT, seed=NL_SQL_SEED)
    _write_text(folder / "train.jsonl", _examples(train))
    _write_text(folder / "heldout.jsonl", _examples(heldout))


# ---------------------------------------------------------------- tech support
_LOG_LINE = (
    "2024-11-{day:02d} {h:02d}:{m:02d}:{s:02d} netbox kernel: wlan0: deauthenticated from "
    "{mac} (reason {reason}), retrying association on channel {ch}\n"
)


def _router_log(rng: np.random.Generator, min_chars: int) -> str:
    lines: list[str] = []
    size = 0
    while size <= min_chars:
        line = _LOG_LINE.format(
            day=int(rng.integers(1, 29)),
            h=int(rng.integers(24)),
            m=int(rng.integers(60)),
            s=int(rng.integers(60)),
            mac=":".join(f"{int(b):02x}" for b in rng.integers(0, 256, 6)),
            reason=int(rng.choice([3, 4, 7, 15])),
            ch=int(rng.choice([1, 6, 11, 36, 44, 149])),
        )
        lines.append(line)
        size += len(line)
    return "".join(lines)


def _chat_transcript(rng: np.random.Generator, min_chars: int) -> str:
    turns = (
        "Customer: It still does not work.",
        "Agent: Could you unplug it for 30 seconds and plug it back in?",
        "Customer: Done, the light is orange now.",
        "Agent: Thank you. Please wait two minutes while it restarts.",
        "Customer: Now it is blinking green.",
        "Agent: That means it is looking for a signal. Is the grey cable firmly connected?",
    )
    parts: list[str] = []
    size = 0
    while size <= min_chars:
        turn = turns[int(rng.integers(len(turns)))] + "\n"
        parts.append(turn)
        size += len(turn)
    return "".join(parts)


def _dirty_lines(
    clean: Sequence[Pair], spare: Sequence[Pair], rng: np.random.Generator
) -> tuple[list[str], list[dict]]:
    """The clean lines with planted defects inserted; returns (lines, manifest defects).

    Every defect line is built from a *spare* example (or copies a clean line, for
    duplicates), so dropping exactly the planted lines gives back the clean dataset.
    """
    spare_iter = iter(spare)

    def obj(p: Pair) -> dict[str, str]:
        return {"text_input": p.question, "output": p.answer}

    def single_quoted(p: Pair) -> str:
        q, a = p.question.replace("'", ""), p.answer.replace("'", "")
        return "{'text_input': '" + q + "', 'output': '" + a + "'}\n"

    def unescaped_quotes(p: Pair) -> str:
        q = p.question.replace("?", ' - it says "offline"?', 1)
        return '{"text_input": "' + q + '", "output": ' + json.dumps(p.answer) + "}\n"

    # (kind, fields a validator should name, detail, line builder from one spare example)
    table: list[tuple[str, list[str], str, Callable[[Pair], str]]] = [
        ("json_syntax", [], "missing closing brace", lambda p: json.dumps(obj(p))[:-1] + "\n"),
        ("json_syntax", [], "single-quoted keys and strings (a Python dict, not JSON)",
         single_quoted),
        ("json_syntax", [], "trailing comma before the closing brace",
         lambda p: json.dumps(obj(p))[:-1] + ",}\n"),
        ("json_syntax", ["text_input"], "unescaped double quotes inside the text_input string",
         unescaped_quotes),
        ("missing_field", ["output"], "no output field",
         lambda p: _jsonl_line({"text_input": p.question})),
        ("missing_field", ["text_input"], "no text_input field",
         lambda p: _jsonl_line({"output": p.answer})),
        ("empty_field", ["text_input"], "text_input is empty",
         lambda p: _jsonl_line({"text_input": "", "output": p.answer})),
        ("empty_field", ["output"], "output is empty",
         lambda p: _jsonl_line({"text_input": p.question, "output": ""})),
        ("empty_field", ["output"], "output is whitespace only",
         lambda p: _jsonl_line({"text_input": p.question, "output": "   \n"})),
        ("wrong_key", ["text_input"], "'input' instead of 'text_input'",
         lambda p: _jsonl_line({"input": p.question, "output": p.answer})),
        ("wrong_key", ["output"], "'response' instead of 'output'",
         lambda p: _jsonl_line({"text_input": p.question, "response": p.answer})),
        ("wrong_key", ["text_input", "output"],
         "'prompt'/'completion' instead of 'text_input'/'output' (another provider's format)",
         lambda p: _jsonl_line({"prompt": p.question, "completion": p.answer})),
    ]  # fmt: skip
    for _ in range(2):
        log = _router_log(rng, MAX_INPUT_CHARS + 500)
        table.append((
            "input_too_long", ["text_input"],
            f"text_input over {MAX_INPUT_CHARS} characters (a pasted router log)",
            lambda p, log=log: _jsonl_line(
                {"text_input": p.question + " Here is my router log:\n" + log, "output": p.answer}
            ),
        ))  # fmt: skip
    for _ in range(2):
        chat = _chat_transcript(rng, MAX_OUTPUT_CHARS + 300)
        table.append((
            "output_too_long", ["output"],
            f"output over {MAX_OUTPUT_CHARS} characters (a pasted chat transcript)",
            lambda p, chat=chat: _jsonl_line(
                {"text_input": p.question, "output": p.answer + "\n\nPrevious chat:\n" + chat}
            ),
        ))  # fmt: skip
    builders = [
        (kind, fields, detail, make(next(spare_iter))) for kind, fields, detail, make in table
    ]
    n_duplicates = 3

    # Positions in the clean sequence after which each defect is inserted (spread out).
    total = len(builders) + n_duplicates
    slots = np.sort(rng.choice(np.arange(5, len(clean)), size=total, replace=False))
    order = rng.permutation(total)

    lines: list[str] = []
    defects: list[dict] = []
    line_of_clean: dict[int, int] = {}
    planned = {int(slots[i]): kinds_idx for i, kinds_idx in enumerate(order)}
    for idx, pair in enumerate(clean):
        lines.append(_jsonl_line(obj(pair)))
        line_of_clean[idx] = len(lines)
        if idx not in planned:
            continue
        k = int(planned[idx])
        if k < len(builders):
            kind, fields, detail, text = builders[k]
            lines.append(text)
            defects.append({"line": len(lines), "kind": kind, "fields": fields, "detail": detail})
        else:
            src = int(rng.integers(0, idx + 1))
            lines.append(lines[line_of_clean[src] - 1])
            defects.append(
                {
                    "line": len(lines),
                    "kind": "duplicate",
                    "fields": [],
                    "detail": f"exact copy of line {line_of_clean[src]}",
                    "duplicate_of": line_of_clean[src],
                }
            )
    return lines, defects


def build_tech_support(out: Path) -> None:
    pairs = tech_support.generate_pairs(TECH_EXAMPLES + 40, TECH_SEED, split="train")
    clean, spare = pairs[:TECH_EXAMPLES], pairs[TECH_EXAMPLES:]
    _write_text(out / "tuned_data_v1.jsonl", _examples(clean))

    lines, defects = _dirty_lines(clean, spare, np.random.default_rng(DIRTY_SEED))
    _write_text(out / "tuned_data_dirty.jsonl", "".join(lines))
    counts: dict[str, int] = {}
    for d in defects:
        counts[d["kind"]] = counts.get(d["kind"], 0) + 1
    manifest = {
        "file": "tuned_data_dirty.jsonl",
        "clean_source": "tuned_data_v1.jsonl",
        "description": (
            "Planted defects in tuned_data_dirty.jsonl (1-based line numbers). Every other "
            "line is a valid example; dropping exactly these lines gives tuned_data_v1.jsonl."
        ),
        "required_fields": ["text_input", "output"],
        "limits": {"max_input_chars": MAX_INPUT_CHARS, "max_output_chars": MAX_OUTPUT_CHARS},
        "total_lines": len(lines),
        "valid_lines": len(lines) - len(defects),
        "kinds": dict(sorted(counts.items())),
        "defects": defects,
    }
    _write_text(out / "dirty_manifest.json", json.dumps(manifest, indent=2) + "\n")


# ------------------------------------------------------------ real training
def answer_kind(sql: str) -> str:
    """What kind of result a query returns: the fine-tuning task's label (read off the SQL)."""
    upper = sql.upper()
    if "GROUP BY" in upper:
        return "per_group"
    if "LIMIT" in upper:
        return "top_n"
    if re.match(r"SELECT COUNT", upper):
        return "count"
    if re.match(r"SELECT (ROUND\()?(SUM|AVG|MIN|MAX)", upper):
        return "amount"
    return "list"


def build_real_training(out: Path) -> None:
    """Two labelled question sets for lesson 09's real network.

    Pre-training (broad): a shop question -> which of the 39 SQL templates answers it.
    Fine-tuning (narrow, related, different): a question about *new* cities, products and
    customers (held-out split) -> what kind of result it asks for (count, amount, list,
    top_n, per_group). Disjoint from the pre-training questions and queries.
    """
    folder = out / "real_training"
    pre = nl_sql.generate_pairs(REAL_PRETRAIN, REAL_PRETRAIN_SEED, split="train")
    target = nl_sql.generate_pairs(REAL_TARGET, REAL_TARGET_SEED, split="heldout", exclude=pre)

    def lines(pairs: Sequence[Pair], label: Callable[[Pair], str]) -> str:
        return "".join(
            _jsonl_line({"text_input": p.question, "output": p.answer, "label": label(p)})
            for p in pairs
        )

    _write_text(folder / "pretrain.jsonl", lines(pre, lambda p: p.template))
    _write_text(folder / "target.jsonl", lines(target, lambda p: answer_kind(p.answer)))


# ------------------------------------------------------------------------ runs
def _fmt(x: float) -> str:
    return FLOAT_FORMAT % x


def run_csv(run: SimulatedRun) -> str:
    """step,epoch,mean_loss,validation_loss; validation only on each epoch's last step."""
    step = np.asarray(run.step)
    epoch = np.asarray(run.epoch)
    loss = np.asarray(run.mean_loss, dtype=float)
    val = np.asarray(run.validation_loss, dtype=float)
    last_of_epoch = np.r_[epoch[1:] != epoch[:-1], True]
    rows = ["step,epoch,mean_loss,validation_loss\n"]
    for i in range(len(step)):
        v = _fmt(val[int(epoch[i]) - 1]) if last_of_epoch[i] else ""
        rows.append(f"{int(step[i])},{int(epoch[i])},{_fmt(loss[i])},{v}\n")
    return "".join(rows)


def build_runs(out: Path) -> None:
    runs = dict(scenarios.pattern_examples())
    runs["sql_20_epochs"] = scenarios.sql_scenario_run()
    index = {}
    for name, run in runs.items():
        _write_text(out / "runs" / f"{name}.csv", run_csv(run))
        index[name] = {
            "file": f"{name}.csv",
            "profile": asdict(run.profile),
            "hparams": asdict(run.hparams),
            "seed": int(run.seed),
            "total_steps": int(run.total_steps),
            "diverged_step": None if run.diverged_step is None else int(run.diverged_step),
            "failure": run.failure,
        }
    _write_text(out / "runs" / "index.json", json.dumps(index, indent=2) + "\n")


# ---------------------------------------------------------------------- driver
BUILDERS = (build_nl_sql, build_tech_support, build_runs, build_real_training)


def build_all(out: Path) -> list[Path]:
    """Write every generated file under ``out``; returns their paths relative to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for builder in BUILDERS:
        builder(out)
    return sorted(
        p.relative_to(out) for p in out.rglob("*") if p.is_file() and not p.name.endswith(".tmp")
    )


def sqlite_dump(path: Path) -> list[str]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def same_content(a: Path, b: Path) -> bool:
    """Byte equality for text files; equal SQL dump for SQLite databases."""
    if not (a.is_file() and b.is_file()):
        return False
    if a.suffix == ".sqlite":
        try:
            return sqlite_dump(a) == sqlite_dump(b)
        except sqlite3.DatabaseError:
            return False
    return a.read_bytes() == b.read_bytes()


def stale_files(target: Path, produced: Sequence[Path]) -> list[Path]:
    wanted = set(produced)
    out = []
    for folder in GENERATED_DIRS:
        for p in sorted((target / folder).rglob("*")) if (target / folder).is_dir() else []:
            if p.is_file() and p.relative_to(target) not in wanted:
                out.append(p.relative_to(target))
    return out


def check(target: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="tunelab-data-") as tmp:
        fresh = Path(tmp)
        produced = build_all(fresh)
        problems = []
        for rel in produced:
            committed = target / rel
            if not committed.exists():
                problems.append(f"missing: {rel}")
            elif not same_content(fresh / rel, committed):
                problems.append(f"differs: {rel}")
        stale = stale_files(target, produced)
        problems += [f"stale (not produced by build.py): {rel}" for rel in stale]
    if problems:
        print(f"data/build.py --check: {len(problems)} file(s) out of date in {target}:")
        for line in problems:
            print(f"  {line}")
        print("Rebuild with: .venv/bin/python data/build.py")
        return 1
    print(f"data/build.py --check: all {len(produced)} generated files are up to date.")
    return 0


def build_into(target: Path) -> int:
    """Rebuild into ``target``, replacing only files whose content changed."""
    with tempfile.TemporaryDirectory(prefix="tunelab-data-") as tmp:
        fresh = Path(tmp)
        produced = build_all(fresh)
        changed = 0
        for rel in produced:
            dest = target / rel
            if same_content(fresh / rel, dest):
                continue  # keeps an equal .sqlite untouched across SQLite versions
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes((fresh / rel).read_bytes())
            changed += 1
            print(f"wrote {dest}")
    for rel in stale_files(target, produced):
        print(f"warning: {target / rel} is not produced by build.py (delete it?)")
    print(f"{len(produced)} files generated, {changed} changed.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--out", type=Path, default=DATA, help="target directory (default: data/)")
    args = parser.parse_args(argv)
    if args.check:
        return check(args.out)
    return build_into(args.out)


if __name__ == "__main__":
    raise SystemExit(main())

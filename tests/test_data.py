"""data/: committed files are exactly what data/build.py produces, with the promised shape."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tunelab import scenarios
from tunelab.domains import find_domain, nl_sql, tech_support

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
MAX_INPUT, MAX_OUTPUT = 40_000, 5_000
RUN_NAMES = (*scenarios.LABELS, "sql_20_epochs")


def _load_build():
    spec = importlib.util.spec_from_file_location("tunelab_data_build", DATA / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load_build()


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


# ---------------------------------------------------------------- rebuild == committed
def test_build_check_passes_on_committed_data():
    result = subprocess.run(
        [sys.executable, str(DATA / "build.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    build.build_all(out)
    return out


def test_check_reports_each_kind_of_drift(fresh_copy, tmp_path, capsys):
    target = tmp_path / "data"
    shutil.copytree(fresh_copy, target)
    assert build.check(target) == 0
    with open(target / "nl_sql" / "train.jsonl", "a", encoding="utf-8") as fh:
        fh.write("\n")
    (target / "runs" / "healthy.csv").unlink()
    (target / "runs" / "old_run.csv").write_text("step\n")
    conn = sqlite3.connect(target / "nl_sql" / "shop.sqlite")
    conn.execute("UPDATE products SET price = price + 1 WHERE product_id = 1")
    conn.commit()
    conn.close()
    capsys.readouterr()
    assert build.check(target) == 1
    report = capsys.readouterr().out
    assert "differs: nl_sql/train.jsonl" in report
    assert "missing: runs/healthy.csv" in report
    assert "stale (not produced by build.py): runs/old_run.csv" in report
    assert "differs: nl_sql/shop.sqlite" in report
    assert "differs: runs/sql_20_epochs.csv" not in report
    # Rebuilding in place repairs it (the stale file is only reported, never deleted).
    build.build_into(target)
    (target / "runs" / "old_run.csv").unlink()
    assert build.check(target) == 0


def test_sqlite_is_compared_by_content_not_bytes(fresh_copy, tmp_path):
    target = tmp_path / "data"
    shutil.copytree(fresh_copy, target)
    db = target / "nl_sql" / "shop.sqlite"
    before = db.read_bytes()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA page_size = 8192")
    conn.execute("VACUUM")
    conn.close()
    assert db.read_bytes() != before  # different file bytes ...
    assert build.check(target) == 0  # ... same database
    build.build_into(target)
    assert db.read_bytes() != before  # an equal database is left untouched


def test_rebuild_is_byte_identical(tmp_path, fresh_copy):
    second = tmp_path / "again"
    build.build_all(second)
    for rel in build.build_all(fresh_copy):
        assert (second / rel).read_bytes() == (fresh_copy / rel).read_bytes(), rel


# -------------------------------------------------------------------------------- nl_sql
@pytest.fixture(scope="module")
def sql_train():
    return _jsonl(DATA / "nl_sql" / "train.jsonl")


@pytest.fixture(scope="module")
def sql_heldout():
    return _jsonl(DATA / "nl_sql" / "heldout.jsonl")


def test_sql_datasets_shape(sql_train, sql_heldout):
    assert len(sql_train) == 500
    assert len(sql_heldout) >= 100
    for row in sql_train + sql_heldout:
        assert list(row) == ["text_input", "output"]
        assert row["text_input"].strip() and row["output"].strip()
    assert len({r["text_input"] for r in sql_train}) == len(sql_train)
    train_q = {r["text_input"] for r in sql_train}
    train_sql = {r["output"] for r in sql_train}
    assert not train_q & {r["text_input"] for r in sql_heldout}
    assert not train_sql & {r["output"] for r in sql_heldout}
    assert find_domain(sql_train) is nl_sql.DOMAIN


def test_sql_heldout_has_unseen_slot_values(sql_train, sql_heldout):
    train_text = " ".join(r["text_input"] for r in sql_train)
    unseen = [
        r
        for r in sql_heldout
        if any(city in r["text_input"] for city in nl_sql.HELDOUT_CITIES)
        or any(p in r["text_input"] for p in nl_sql.HELDOUT_PRODUCTS)
        or any(c in r["text_input"] for c in nl_sql.HELDOUT_CUSTOMERS)
    ]
    assert len(unseen) >= 30
    for city in nl_sql.HELDOUT_CITIES:
        assert city not in train_text


def test_every_reference_sql_runs_on_the_database(sql_train, sql_heldout):
    db = DATA / "nl_sql" / "shop.sqlite"
    for row in sql_train + sql_heldout:
        assert nl_sql.DOMAIN.reference(row["text_input"]) == row["output"]
        rows = nl_sql.execute_sql(db, row["output"])
        assert rows, f"empty result: {row['text_input']}"


def test_database_matches_schema_file():
    db = sqlite3.connect(f"{(DATA / 'nl_sql' / 'shop.sqlite').as_uri()}?mode=ro", uri=True)
    ref = sqlite3.connect(":memory:")
    ref.executescript((DATA / "nl_sql" / "schema.sql").read_text())
    query = "SELECT type, name, sql FROM sqlite_master ORDER BY name"
    try:
        assert db.execute(query).fetchall() == ref.execute(query).fetchall()
        counts = {
            t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("customers", "products", "orders", "order_items")
        }
        assert counts["customers"] == 160 and counts["products"] == len(nl_sql.PRODUCTS)
        assert counts["orders"] > 800 and counts["order_items"] > counts["orders"]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        db.close()
        ref.close()


# -------------------------------------------------------------------------- tech support
def test_tech_support_dataset(tmp_path):
    rows = _jsonl(DATA / "tuned_data_v1.jsonl")
    assert len(rows) == 300
    assert len({(r["text_input"], r["output"]) for r in rows}) == 300
    for row in rows:
        assert list(row) == ["text_input", "output"]
        assert 0 < len(row["text_input"]) <= MAX_INPUT and 0 < len(row["output"]) <= MAX_OUTPUT
        assert tech_support.DOMAIN.reference(row["text_input"]) == row["output"]
    assert find_domain(rows) is tech_support.DOMAIN
    topics = {tech_support.DOMAIN.template_of(r["text_input"]) for r in rows}
    assert topics == {t.key for t in tech_support.TEMPLATES}


# --------------------------------------------------------------------------- dirty data
@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((DATA / "dirty_manifest.json").read_text())


@pytest.fixture(scope="module")
def dirty_lines() -> list[str]:
    with open(DATA / "tuned_data_dirty.jsonl", encoding="utf-8", newline="") as fh:
        return fh.read().splitlines()


def _exhibits(kind: str, text: str, defect: dict, lines: list[str]) -> bool:
    """Independent check that a line really has the planted defect."""
    if kind == "json_syntax":
        try:
            json.loads(text)
        except json.JSONDecodeError:
            return True
        return False
    row = json.loads(text)
    fields = defect["fields"]
    if kind == "missing_field":
        return all(f not in row for f in fields) and len(row) == 1
    if kind == "empty_field":
        return all(isinstance(row.get(f), str) and not row[f].strip() for f in fields)
    if kind == "wrong_key":
        return all(f not in row for f in fields) and len(row) == 2
    if kind == "duplicate":
        return text == lines[defect["duplicate_of"] - 1] and defect["duplicate_of"] < defect["line"]
    if kind == "input_too_long":
        return len(row["text_input"]) > MAX_INPUT and 0 < len(row["output"]) <= MAX_OUTPUT
    if kind == "output_too_long":
        return len(row["output"]) > MAX_OUTPUT and 0 < len(row["text_input"]) <= MAX_INPUT
    raise AssertionError(f"unknown defect kind {kind}")


def test_manifest_defects_are_at_their_lines(manifest, dirty_lines):
    assert manifest["total_lines"] == len(dirty_lines)
    assert manifest["limits"] == {"max_input_chars": MAX_INPUT, "max_output_chars": MAX_OUTPUT}
    kinds = {
        "json_syntax",
        "missing_field",
        "empty_field",
        "wrong_key",
        "duplicate",
        "input_too_long",
        "output_too_long",
    }
    assert set(manifest["kinds"]) == kinds
    assert all(n >= 2 for n in manifest["kinds"].values())
    for defect in manifest["defects"]:
        text = dirty_lines[defect["line"] - 1]
        assert _exhibits(defect["kind"], text, defect, dirty_lines), defect


def test_all_other_dirty_lines_are_clean_and_restore_v1(manifest, dirty_lines):
    bad = {d["line"] for d in manifest["defects"]}
    assert len(bad) == len(manifest["defects"]) == manifest["total_lines"] - manifest["valid_lines"]
    kept = [line for i, line in enumerate(dirty_lines, start=1) if i not in bad]
    v1 = (DATA / "tuned_data_v1.jsonl").read_text(encoding="utf-8").splitlines()
    assert kept == v1


def _reference_validator(lines: list[str]) -> dict[int, str]:
    """A straightforward validator, as a student would write: line -> first problem found."""
    problems: dict[int, str] = {}
    seen: set[str] = set()
    for n, text in enumerate(lines, start=1):
        try:
            row = json.loads(text)
        except json.JSONDecodeError:
            problems[n] = "json_syntax"
            continue
        keys = set(row)
        if keys != {"text_input", "output"}:
            problems[n] = "missing_field" if len(keys) == 1 else "wrong_key"
        elif not row["text_input"].strip() or not row["output"].strip():
            problems[n] = "empty_field"
        elif len(row["text_input"]) > MAX_INPUT:
            problems[n] = "input_too_long"
        elif len(row["output"]) > MAX_OUTPUT:
            problems[n] = "output_too_long"
        elif text in seen:
            problems[n] = "duplicate"
        seen.add(text)
    return problems


def test_a_validator_finds_exactly_the_manifest(manifest, dirty_lines):
    found = _reference_validator(dirty_lines)
    assert found == {d["line"]: d["kind"] for d in manifest["defects"]}
    assert (
        _reference_validator(
            (DATA / "tuned_data_v1.jsonl").read_text(encoding="utf-8").splitlines()
        )
        == {}
    )


# --------------------------------------------------------------------------------- runs
def _read_run(name: str) -> list[dict[str, str]]:
    with open(DATA / "runs" / f"{name}.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("name", RUN_NAMES)
def test_run_csv_shape(name):
    rows = _read_run(name)
    index = json.loads((DATA / "runs" / "index.json").read_text())[name]
    assert list(rows[0]) == ["step", "epoch", "mean_loss", "validation_loss"]
    steps = [int(r["step"]) for r in rows]
    epochs = [int(r["epoch"]) for r in rows]
    assert steps == list(range(1, len(rows) + 1)) and len(rows) == index["total_steps"]
    assert epochs[0] == 1 and all(b - a in (0, 1) for a, b in zip(epochs, epochs[1:], strict=False))
    assert epochs[-1] == index["hparams"]["epoch_count"]
    for i, row in enumerate(rows):
        last_of_epoch = i == len(rows) - 1 or epochs[i + 1] != epochs[i]
        assert (row["validation_loss"] != "") == last_of_epoch, (name, row)
        float(row["mean_loss"])  # parses (may be nan after a divergence)


def test_sql_20_epochs_matches_the_scenario():
    rows = _read_run("sql_20_epochs")
    run = scenarios.sql_scenario_run()
    assert len(rows) == run.total_steps == 2500  # 500 examples x 20 epochs / batch 4
    loss = np.array([float(r["mean_loss"]) for r in rows])
    np.testing.assert_allclose(loss, run.mean_loss, rtol=1e-5)
    epochs = np.array([int(r["epoch"]) for r in rows])
    train = np.array([loss[epochs == e].mean() for e in range(1, 21)])
    val = np.array([float(r["validation_loss"]) for r in rows if r["validation_loss"]])
    np.testing.assert_allclose(val, run.validation_loss, rtol=1e-5)
    np.testing.assert_allclose(train, run.per_epoch()["train_loss"], rtol=1e-4)
    # The graded story: ~0.3 at epoch 5, ~0.001 at epoch 20, validation lowest near epoch 5.
    assert 0.15 < train[4] < 0.45
    assert train[19] < 0.005
    assert 3 <= int(np.argmin(val)) + 1 <= 8
    assert val[-1] > 2 * val.min()

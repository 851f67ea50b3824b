"""tunelab.domains: grammars round-trip, degrade really breaks answers, splits are disjoint."""

from __future__ import annotations

import random
import sqlite3
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunelab import domains
from tunelab.domains import find_domain, get_domain, nl_sql, normalise, tech_support

SQL = nl_sql.DOMAIN
TECH = tech_support.DOMAIN


@pytest.fixture(scope="module")
def shop() -> sqlite3.Connection:
    conn = nl_sql.connect_memory()
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def sql_split():
    return nl_sql.split_pairs()


@pytest.fixture(scope="module")
def tech_pairs():
    return tech_support.generate_pairs(300, 0, split="train")


def _every_phrasing(module, per_phrasing: int = 6):
    """Pairs covering every phrasing of every template, with prefixes/suffixes mixed in."""
    rng = np.random.default_rng(3)
    grammar = module.GRAMMAR
    for template in grammar.templates:
        for phrasing in template.phrasings:
            for _ in range(per_phrasing):
                yield grammar.sample(template, rng, "all", phrasing=phrasing)


# ------------------------------------------------------------------ grammar round trip
@pytest.mark.parametrize("module", [nl_sql, tech_support], ids=["nl_sql", "tech_support"])
def test_reference_round_trips_every_phrasing(module):
    for pair in _every_phrasing(module):
        assert module.DOMAIN.reference(pair.question) == pair.answer, pair.question
        assert module.DOMAIN.template_of(pair.question) == pair.template


def test_reference_round_trips_course_split(sql_split):
    train, heldout = sql_split
    for pair in train + heldout:
        assert SQL.reference(pair.question) == pair.answer, pair.question


def test_reference_round_trips_tech_dataset(tech_pairs):
    for pair in tech_pairs:
        assert TECH.reference(pair.question) == pair.answer


@pytest.mark.parametrize("module", [nl_sql, tech_support], ids=["nl_sql", "tech_support"])
def test_phrasings_of_a_template_share_slots(module):
    # degrade/answer indexing relies on every phrasing using the same placeholders.
    for template in module.TEMPLATES:
        sets = {frozenset(template.placeholders(p)) for p in template.phrasings}
        assert len(sets) == 1, template.key


def test_whitespace_is_normalised_but_nothing_else():
    q = "How many customers live in Lisbon?"
    sql = "SELECT COUNT(*) FROM customers WHERE city = 'Lisbon'"
    assert SQL.reference(q) == sql
    assert SQL.reference("  How many\tcustomers \n live in   Lisbon?  ") == sql
    assert normalise(" a \n b ") == "a b"
    # Matching is exact otherwise: case, punctuation and unknown values are not in the grammar.
    assert SQL.reference(q.lower()) is None
    assert SQL.reference(q.rstrip("?")) is None
    assert SQL.reference("How many customers live in Atlantis?") is None
    assert not SQL.recognises("")
    assert SQL.reference(None) is None  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_foreign_text_is_not_recognised(text):
    # Arbitrary text must be rejected cleanly (no exception, no accidental match).
    assert SQL.reference(text) is None and not SQL.recognises(text)
    assert TECH.reference(text) is None and not TECH.recognises(text)
    assert find_domain(text) is None


def test_constraints_are_respected_by_parser():
    assert SQL.reference("Which products cost between $20 and $50?") is not None
    assert SQL.reference("Which products cost between $50 and $20?") is None


# --------------------------------------------------------------------------- find_domain
def test_find_domain_for_prompts_and_datasets(sql_split, tech_pairs):
    train, _ = sql_split
    assert find_domain(train[0].question) is SQL
    assert find_domain(tech_pairs[0].question) is TECH
    assert find_domain("Write a haiku about autumn.") is None
    assert find_domain([{"text_input": p.question, "output": p.answer} for p in train]) is SQL
    rest = [{"textInput": p.question, "output": p.answer} for p in tech_pairs]
    assert find_domain(rest) is TECH
    assert find_domain([(p.question, p.answer) for p in tech_pairs]) is TECH
    assert find_domain([]) is None
    assert find_domain(42) is None
    # A dirty dataset keeps its domain while most examples are well formed ...
    mixed = [{"text_input": p.question} for p in tech_pairs[:8]] + [{"input": "x"}] * 2
    assert find_domain(mixed) is TECH
    # ... and loses it when most are not.
    assert find_domain([{"text_input": "hello"}] * 6 + mixed[:3]) is None
    assert get_domain("nl_sql") is SQL and get_domain("tech_support") is TECH
    with pytest.raises(KeyError, match="unknown domain"):
        get_domain("poetry")


def test_baseline_quality():
    assert SQL.baseline_quality == pytest.approx(0.3)
    assert TECH.baseline_quality == pytest.approx(0.4)
    assert {d.name for d in domains.DOMAINS} == {"nl_sql", "tech_support"}


# ------------------------------------------------------------------------------ degrade
def test_sql_degrade_never_executes(sql_split, shop):
    train, heldout = sql_split
    rngs = [np.random.default_rng(0), random.Random(1), np.random.default_rng(99)]
    executed = []
    for pair in train + heldout:
        for rng in rngs:
            garbage = SQL.degrade(pair.answer, rng)
            assert garbage and garbage != pair.answer
            try:
                nl_sql.execute_sql(shop, garbage)
            except sqlite3.Error:
                continue
            executed.append(garbage)
    assert executed == []


def test_sql_degrade_handles_odd_input(shop):
    rng = np.random.default_rng(5)
    for answer in ["", "SELECT", "not sql at all", "SELECT 1", "SELECT name FROM customers"]:
        for _ in range(20):
            with pytest.raises(sqlite3.Error):
                nl_sql.execute_sql(shop, SQL.degrade(answer, rng))


def test_sql_degrade_looks_like_overfit_output(sql_split):
    """Garbage should mostly keep SQL shape and often carry memorised training fragments."""
    train, _ = sql_split
    rng = np.random.default_rng(1)
    outs = [SQL.degrade(p.answer, rng) for p in train[:200]]
    assert sum(o.startswith(("SELECT", "SELET", "SLECT")) for o in outs) > 150
    assert len(set(outs)) > 180
    kinds = {
        "unbalanced": sum(o.count("(") != o.count(")") for o in outs),
        "misspelt": sum(
            any(w in o.split() for w in ("FORM", "JION", "SELET", "WHEN")) for o in outs
        ),
    }
    assert all(v > 5 for v in kinds.values()), kinds


def test_degrade_is_deterministic(sql_split, tech_pairs):
    train, _ = sql_split
    a = [SQL.degrade(p.answer, np.random.default_rng(7)) for p in train[:50]]
    b = [SQL.degrade(p.answer, np.random.default_rng(7)) for p in train[:50]]
    assert a == b
    c = [TECH.degrade(p.answer, random.Random(3)) for p in tech_pairs[:50]]
    d = [TECH.degrade(p.answer, random.Random(3)) for p in tech_pairs[:50]]
    assert c == d


def test_tech_degrade_is_wrong_but_plausible(tech_pairs):
    rng = np.random.default_rng(0)
    same_topic = other_topic = 0
    for pair in tech_pairs:
        for _ in range(3):
            wrong = TECH.degrade(pair.answer, rng)
            assert wrong and wrong != pair.answer
            assert wrong != TECH.reference(pair.question)
            topic = TECH.template_of(pair.question)
            index, _ = tech_support._answer_index()
            if wrong in index:
                if index[wrong][0].key == topic:
                    same_topic += 1
                else:
                    other_topic += 1
    assert same_topic > 100 and other_topic > 100
    assert TECH.degrade("something unknown", rng) != "something unknown"


# ------------------------------------------------------------------------- the NL->SQL split
def test_course_split_is_disjoint_and_uses_unseen_values(sql_split):
    train, heldout = sql_split
    assert len(train) == 500 and len(heldout) >= 100
    assert not {p.question for p in train} & {p.question for p in heldout}
    assert not {p.answer for p in train} & {p.answer for p in heldout}
    reserved = (
        set(nl_sql.HELDOUT_CITIES) | set(nl_sql.HELDOUT_PRODUCTS) | set(nl_sql.HELDOUT_CUSTOMERS)
    )
    reserved |= set(nl_sql.HELDOUT_CATEGORIES)

    def uses_reserved(pair):
        return any(f"'{value}'" in pair.answer for value in reserved) or any(
            f"${p}" in pair.question for p in nl_sql._HELDOUT_PRICES
        )

    assert not any(uses_reserved(p) for p in train)
    assert sum(uses_reserved(p) for p in heldout) >= 0.3 * len(heldout)
    assert len({p.template for p in train}) == len(nl_sql.TEMPLATES)


def test_generated_sql_returns_meaningful_rows(sql_split, shop):
    train, heldout = sql_split
    for pair in train + heldout:
        rows = nl_sql.execute_sql(shop, pair.answer)
        assert rows, pair.question
        assert not (len(rows) == 1 and all(v in (None, 0) for v in rows[0])), pair.question


def test_generate_pairs_is_deterministic():
    assert nl_sql.generate_pairs(40, 3) == nl_sql.generate_pairs(40, 3)
    assert nl_sql.generate_pairs(40, 3) != nl_sql.generate_pairs(40, 4)
    assert tech_support.generate_pairs(40, 3) == tech_support.generate_pairs(40, 3)


def test_generate_pairs_reports_exhaustion():
    with pytest.raises(ValueError, match="ran out of distinct pairs"):
        tech_support.generate_pairs(100_000, 0, split="train")


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError, match="unknown split"):
        nl_sql.generate_pairs(5, 0, split="validation")


# --------------------------------------------------------------------------- execute_sql
def test_execute_sql_is_read_only_and_bounded(tmp_path):
    db = nl_sql.build_database(tmp_path / "shop.sqlite")
    assert nl_sql.execute_sql(db, "SELECT COUNT(*) FROM products") == [(len(nl_sql.PRODUCTS),)]
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        nl_sql.execute_sql(db, "DROP TABLE orders")
    with pytest.raises(sqlite3.Error):
        nl_sql.execute_sql(db, "SELECT 1; SELECT 2")
    runaway = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT COUNT(*) FROM n"
    )
    start = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        nl_sql.execute_sql(db, runaway, timeout=0.3)
    assert time.monotonic() - start < 5
    with pytest.raises(FileNotFoundError, match="missing.sqlite"):
        nl_sql.execute_sql(tmp_path / "missing.sqlite", "SELECT 1")


def test_database_content_depends_only_on_seed(tmp_path):
    a = nl_sql.build_database(tmp_path / "a.sqlite", seed=5)
    b = nl_sql.build_database(tmp_path / "b.sqlite", seed=5)
    c = nl_sql.build_database(tmp_path / "c.sqlite", seed=6)

    def dump(p):
        conn = sqlite3.connect(p)
        try:
            return list(conn.iterdump())
        finally:
            conn.close()

    assert dump(a) == dump(b)
    assert dump(a) != dump(c)


# --------------------------------------------------------------------------------- speed
@pytest.mark.parametrize("module", [nl_sql, tech_support], ids=["nl_sql", "tech_support"])
def test_reference_is_fast(module):
    prompts = [p.question for p in _every_phrasing(module, per_phrasing=25)]
    prompts += [p + " (new)" for p in prompts[:200]]  # misses must be fast too
    start = time.perf_counter()
    for prompt in prompts:
        module.DOMAIN.reference(prompt)
    rate = len(prompts) / (time.perf_counter() - start)
    assert rate > 10_000, f"{module.__name__}: {rate:.0f} reference() calls/s"

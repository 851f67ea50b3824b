"""A tiny template grammar: generate (question, answer) pairs and parse questions back.

Why a grammar rather than a lookup table: the emulator must answer *held-out* prompts the
way a well-tuned model would. Because every question of a domain comes from a template
with slots, parsing a new question recovers its slot values and so its correct answer,
which is what lets a simulated model "generalise" to prompts it never saw.

Phrasings are written like ``"Which {category} products cost less than {price}?"``; a
placeholder ``{low:price}`` names the group ``low`` filled from the slot type ``price``.
Answers are ``str.format`` strings receiving one :class:`SlotValue` per placeholder, so
``{month.start}`` reads the ``start`` attribute of the chosen month.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Grammar", "Pair", "Slot", "SlotValue", "Template", "normalise"]


def normalise(text: str) -> str:
    """Collapse runs of whitespace and trim: prompts are matched exactly after this."""
    return " ".join(text.split())


class SlotValue(SimpleNamespace):
    """One value of a slot: ``surface`` (how questions say it) plus answer-side attributes."""

    surface: str
    value: Any

    def __str__(self) -> str:  # lets answers write {city} as well as {city.value}
        return str(self.value)


@dataclass(frozen=True)
class Slot:
    """A slot type: its values, and which of them are reserved for held-out questions."""

    name: str
    values: tuple[SlotValue, ...]
    reserved: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        counts = Counter(v.surface for v in self.values)
        repeated = sorted(s for s, n in counts.items() if n > 1)
        if repeated:
            raise ValueError(f"slot {self.name!r} has duplicate surface forms: {repeated}")
        unknown = self.reserved - counts.keys()
        if unknown:
            raise ValueError(f"slot {self.name!r}: reserved values {sorted(unknown)} unknown")

    @classmethod
    def simple(
        cls, name: str, pairs: Iterable[tuple[str, Any]], reserved: Iterable[str] = ()
    ) -> Slot:
        """A slot whose values are plain (surface, value) pairs."""
        return cls(
            name, tuple(SlotValue(surface=s, value=v) for s, v in pairs), frozenset(reserved)
        )

    def pattern(self) -> str:
        # Longest first so "$100" is tried before "$10" (fullmatch would backtrack anyway).
        alts = sorted((v.surface for v in self.values), key=lambda s: (-len(s), s))
        return "|".join(re.escape(a) for a in alts)

    def lookup(self) -> dict[str, SlotValue]:
        return {v.surface: v for v in self.values}

    def pool(self, split: str) -> tuple[tuple[SlotValue, ...], tuple[SlotValue, ...]]:
        """(ordinary, reserved) values available to a split."""
        if split == "train":
            return tuple(v for v in self.values if v.surface not in self.reserved), ()
        if split == "heldout":
            reserved = tuple(v for v in self.values if v.surface in self.reserved)
            return self.values, reserved
        if split == "all":
            return self.values, ()
        raise ValueError(f"unknown split {split!r} (expected 'train', 'heldout' or 'all')")


@dataclass(frozen=True)
class Template:
    """One question type: several phrasings, one answer format, optional slot constraint."""

    key: str
    phrasings: tuple[str, ...]
    answer: str
    constraint: Callable[[Mapping[str, SlotValue]], bool] | None = None

    def placeholders(self, phrasing: str) -> list[tuple[str, str]]:
        """(group name, slot type) for every placeholder of a phrasing, in order."""
        out = []
        for _, name, spec, _ in string.Formatter().parse(phrasing):
            if name is not None:
                out.append((name, spec or name))
        return out


class Pair(NamedTuple):
    """A generated example; a tuple so ``(question, answer)`` unpacking also works."""

    question: str
    answer: str
    template: str


@dataclass
class _Compiled:
    regex: re.Pattern[str]
    template: Template
    groups: list[tuple[str, dict[str, SlotValue]]]


def _first_word(text: str) -> str:
    return text.split(" ", 1)[0]


@dataclass
class Grammar:
    """Templates + slots, with optional prefixes/suffixes (greetings, sign-offs) around them."""

    templates: Sequence[Template]
    slots: Mapping[str, Slot]
    prefixes: Sequence[str] = ("",)
    suffixes: Sequence[str] = ("",)
    _buckets: dict[str, list[_Compiled]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        keys = [t.key for t in self.templates]
        if len(set(keys)) != len(keys):
            raise ValueError("template keys must be unique")
        if "" not in self.prefixes or "" not in self.suffixes:
            raise ValueError("prefixes and suffixes must include the empty string")
        for template in self.templates:
            for phrasing in template.phrasings:
                self._compile(template, phrasing)

    def _compile(self, template: Template, phrasing: str) -> None:
        parts: list[str] = []
        groups: list[tuple[str, dict[str, SlotValue]]] = []
        for literal, name, spec, _ in string.Formatter().parse(phrasing):
            parts.append(re.escape(literal))
            if name is None:
                continue
            slot_type = spec or name
            if slot_type not in self.slots:
                raise ValueError(f"template {template.key!r}: unknown slot type {slot_type!r}")
            slot = self.slots[slot_type]
            parts.append(f"(?P<{name}>{slot.pattern()})")
            groups.append((name, slot.lookup()))
        if phrasing != normalise(phrasing):
            raise ValueError(f"template {template.key!r}: phrasing has stray whitespace")
        compiled = _Compiled(re.compile("".join(parts)), template, groups)
        first = _first_word(phrasing)
        bucket = "" if "{" in first else first
        self._buckets.setdefault(bucket, []).append(compiled)

    # ----------------------------------------------------------------- parsing
    def _match_core(self, core: str) -> tuple[Template, dict[str, SlotValue]] | None:
        for bucket in (_first_word(core), ""):
            for comp in self._buckets.get(bucket, ()):
                m = comp.regex.fullmatch(core)
                if m is None:
                    continue
                values = {name: table[m.group(name)] for name, table in comp.groups}
                if comp.template.constraint is None or comp.template.constraint(values):
                    return comp.template, values
        return None

    def parse(self, prompt: str) -> tuple[Template, dict[str, SlotValue]] | None:
        """The template and slot values behind a prompt, or None if it is not in the grammar."""
        text = normalise(prompt)
        for prefix in self.prefixes:
            if not text.startswith(prefix):
                continue
            rest = text[len(prefix) :]
            for suffix in self.suffixes:
                if suffix and not rest.endswith(suffix):
                    continue
                core = rest[: len(rest) - len(suffix)] if suffix else rest
                if core:
                    found = self._match_core(core)
                    if found is not None:
                        return found
        return None

    def answer_for(self, prompt: str) -> str | None:
        found = self.parse(prompt)
        if found is None:
            return None
        template, values = found
        return template.answer.format(**values)

    # -------------------------------------------------------------- generation
    def sample(
        self,
        template: Template,
        rng: np.random.Generator,
        split: str,
        reserved_share: float = 0.5,
        *,
        phrasing: str | None = None,
    ) -> Pair:
        """One random question of a template (slot values drawn from the split's pools)."""
        if phrasing is None:
            phrasing = template.phrasings[int(rng.integers(len(template.phrasings)))]
        for _ in range(100):
            values: dict[str, SlotValue] = {}
            for name, slot_type in template.placeholders(phrasing):
                ordinary, reserved = self.slots[slot_type].pool(split)
                pool = reserved if reserved and rng.random() < reserved_share else ordinary
                values[name] = pool[int(rng.integers(len(pool)))]
            if template.constraint is None or template.constraint(values):
                break
        else:
            raise RuntimeError(f"template {template.key!r}: constraint never satisfied")
        core = "".join(
            literal + (values[name].surface if name is not None else "")
            for literal, name, _, _ in string.Formatter().parse(phrasing)
        )
        prefix = self.prefixes[int(rng.integers(len(self.prefixes)))]
        suffix = self.suffixes[int(rng.integers(len(self.suffixes)))]
        return Pair(prefix + core + suffix, template.answer.format(**values), template.key)

    def generate(
        self,
        n: int,
        rng: np.random.Generator,
        *,
        split: str = "all",
        exclude_questions: Collection[str] = (),
        exclude_answers: Collection[str] = (),
        unique_answers: bool = False,
        accept: Callable[[Pair], bool] | None = None,
        max_tries_per_template: int = 200,
    ) -> list[Pair]:
        """``n`` distinct pairs, cycling over templates so every type is represented.

        A template that cannot yield a new acceptable pair after ``max_tries_per_template``
        draws is dropped from the cycle (small slot spaces run out before big ones).
        """
        active = list(self.templates)
        seen_q = set(exclude_questions)
        seen_a = set(exclude_answers)
        out: list[Pair] = []
        while len(out) < n:
            if not active:
                raise ValueError(
                    f"the grammar ran out of distinct pairs after {len(out)} of {n} "
                    f"(split={split!r})"
                )
            order = [active[i] for i in rng.permutation(len(active))]
            for template in order:
                if len(out) >= n:
                    break
                for _ in range(max_tries_per_template):
                    pair = self.sample(template, rng, split)
                    if pair.question in seen_q or pair.answer in exclude_answers:
                        continue
                    if unique_answers and pair.answer in seen_a:
                        continue
                    if accept is not None and not accept(pair):
                        continue
                    seen_q.add(pair.question)
                    seen_a.add(pair.answer)
                    out.append(pair)
                    break
                else:
                    active.remove(template)
        return out

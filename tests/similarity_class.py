"""A synthetic class of honest-but-varied ``sql_overfitting`` submissions, and planted copies.

Why: the similarity report must flag a copied pair and no honest pair. Honest students write
the same short functions in a handful of ways, pick their own thresholds and names, and order
their checks differently; a copier renames variables, reformats and rewrites comments. This
module writes both, as answer-cell sources keyed by grade id, from a seeded generator (the
same class every run). Used by tests/test_similarity.py and tests/benchmarks/bench_similarity.py.
"""

from __future__ import annotations

import ast
import builtins
import io
import keyword
import random
import tokenize

SIGNATURES = {
    "p1-answer": 'def epoch_mean_loss(snapshots: pd.DataFrame) -> pd.Series:\n    """Mean of '
    '``mean_loss`` over each epoch\'s steps, indexed by epoch (ascending)."""\n',
    "p2-answer": "def plateau_epoch(epoch_losses: pd.Series, tol: float = 0.01) -> int | None:\n"
    '    """First epoch whose loss improves by less than ``tol`` into the next epoch, or '
    'None."""\n',
    "p3-answer": "def best_epoch(validation_loss: pd.Series) -> int:\n"
    '    """Epoch with the lowest validation loss (earliest on a tie; NaN ignored)."""\n',
    "p5-answer": "def classify_curve(train: pd.Series, validation: pd.Series | None = None) -> "
    'str:\n    """The lesson\'s label (one of LABELS) for a per-epoch loss curve."""\n',
    "p7-answer": "def execution_accuracy(model_name: str, heldout: pd.DataFrame, db_path: str) "
    '-> float:\n    """Share of held-out questions whose generated SQL returns the reference '
    'rows (multiset)."""\n',
}

P1 = [
    '    return snapshots.groupby("epoch")["mean_loss"].mean().sort_index().astype(float)\n',
    "    {t} = {{}}\n    {c} = {{}}\n"
    '    for {e}, {l} in zip(snapshots["epoch"], snapshots["mean_loss"]):\n'
    "        {t}[{e}] = {t}.get({e}, 0.0) + {l}\n        {c}[{e}] = {c}.get({e}, 0) + 1\n"
    "    {k} = sorted({t})\n"
    "    return pd.Series([{t}[x] / {c}[x] for x in {k}], index={k}, dtype=float)\n",
    '    {t} = snapshots.pivot_table(index="epoch", values="mean_loss", aggfunc="mean")\n'
    '    return {t}["mean_loss"].sort_index().astype(float)\n',
    "    {t} = {{}}\n"
    '    for {e}, {g} in snapshots.groupby("epoch"):\n'
    '        {t}[int({e})] = float({g}["mean_loss"].mean())\n'
    "    return pd.Series({t}, dtype=float).sort_index()\n",
]
P2 = [
    "    {s} = epoch_losses.sort_index()\n    {k} = list({s}.index)\n"
    "    {v} = {s}.to_numpy(dtype=float)\n    for {i} in range(len({v}) - 1):\n"
    "        if {v}[{i}] - {v}[{i} + 1] < tol:\n            return int({k}[{i}])\n"
    "    return None\n",
    "    {s} = epoch_losses.sort_index()\n    {g} = -{s}.diff().shift(-1)\n"
    "    {h} = {g}[{g} < tol]\n    if len({h}) == 0:\n        return None\n"
    "    return int({h}.index[0])\n",
    "    {s} = epoch_losses.sort_index()\n"
    "    for ({e}, {a}), {b} in zip({s}.items(), {s}.iloc[1:]):\n"
    "        if not {a} - {b} >= tol:\n            return int({e})\n    return None\n",
    "    {s} = epoch_losses.sort_index()\n    {i} = 0\n    while {i} + 1 < len({s}):\n"
    "        if {s}.iloc[{i}] - {s}.iloc[{i} + 1] < tol:\n"
    "            return int({s}.index[{i}])\n        {i} += 1\n    return None\n",
]
P3 = [
    "    {v} = validation_loss.dropna()\n    if {v}.empty:\n"
    '        raise ValueError("no validation loss")\n    return int({v}.sort_index().idxmin())\n',
    '    {b}, {m} = None, float("inf")\n'
    "    for {e}, {x} in validation_loss.sort_index().items():\n"
    "        if {x} == {x} and {x} < {m}:\n            {b}, {m} = {e}, {x}\n"
    '    if {b} is None:\n        raise ValueError("every validation loss is NaN")\n'
    "    return int({b})\n",
    "    {v} = validation_loss[validation_loss.notna()].sort_index()\n"
    '    if len({v}) == 0:\n        raise ValueError("empty")\n'
    "    return int({v}.index[{v}.to_numpy().argmin()])\n",
]
P7 = [
    "    {m} = genai.GenerativeModel(model_name)\n    {c} = sqlite3.connect(db_path)\n"
    "    {n} = 0\n"
    '    for {q}, {r} in zip(heldout["text_input"], heldout["output"]):\n'
    "        {s} = {m}.generate_content({q}).text\n"
    "        {w} = collections.Counter({c}.execute({r}).fetchall())\n"
    "        try:\n            {g} = collections.Counter({c}.execute({s}).fetchall())\n"
    "        except sqlite3.Error:\n            continue\n"
    "        if {g} == {w}:\n            {n} += 1\n"
    "    {c}.close()\n    return {n} / len(heldout)\n",
    "    def {f}({c}, {s}):\n        try:\n"
    "            return sorted(map(repr, {c}.execute({s}).fetchall()))\n"
    "        except sqlite3.Error:\n            return None\n"
    "    {m} = genai.GenerativeModel(model_name)\n"
    "    with sqlite3.connect(db_path) as {c}:\n"
    "        {h} = [\n"
    "            {f}({c}, {m}.generate_content({r}.text_input).text) == {f}({c}, {r}.output)\n"
    "            for {r} in heldout.itertuples()\n        ]\n"
    "    return sum({h}) / len({h})\n",
    "    {m} = genai.GenerativeModel(model_name)\n    {c} = sqlite3.connect(db_path)\n"
    "    {h} = []\n    for {i} in range(len(heldout)):\n"
    "        {r} = heldout.iloc[{i}]\n"
    '        {w} = pd.read_sql_query({r}["output"], {c})\n'
    "        try:\n"
    '            {g} = pd.read_sql_query({m}.generate_content({r}["text_input"]).text, {c})\n'
    "            {h}.append(sorted({g}.itertuples(index=False)) == "
    "sorted({w}.itertuples(index=False)))\n"
    "        except Exception:\n            {h}.append(False)\n"
    "    {c}.close()\n    return float(sum({h})) / max(len({h}), 1)\n",
]
P8 = [
    "{o} = genai.create_tuned_model(\n    source_model=BASE_MODEL,\n"
    '    training_data=train_set.to_dict("records"),\n    display_name="{d}",\n'
    "    **next_run,\n)\nnew_model_name = {o}.result().name\n",
    "{p} = dict(next_run)\n{o} = genai.create_tuned_model(\n"
    '    BASE_MODEL, train_set.to_dict(orient="records"), display_name="{d}", '
    'epoch_count={p}["epoch_count"],\n    batch_size={p}["batch_size"], '
    'learning_rate={p}["learning_rate"]\n)\n{t} = {o}.result()\nnew_model_name = {t}.name\n',
]

# classify_curve: blocks in a student's own order, each in one of two forms, own thresholds.
P5_BLOCKS = {
    "div": [
        '    if not np.isfinite({v}).all():\n        return "divergence"\n'
        "    {k} = int(np.argmin({v}))\n"
        "    if {k} >= 1 and {v}[-1] > {A} * {v}[{k}] and len({v}) - {k} >= {B}:\n"
        '        return "divergence"\n',
        '    if np.isnan({v}).any() or np.isinf({v}).any():\n        return "divergence"\n'
        "    {lo} = {v}.min()\n    {pos} = list({v}).index({lo})\n"
        "    if 0 < {pos} < len({v}) - {B} and {v}[-1] / {lo} > {A}:\n"
        '        return "divergence"\n',
    ],
    "noconv": [
        "    {lg} = np.log(np.maximum({v}, 1e-12))\n    {st} = np.diff({lg})\n"
        "    {net} = {lg}[0] - {lg}[-1]\n"
        "    if {net} < {C} or np.abs({st}).sum() - abs({net}) > {D} * {net}:\n"
        '        return "no_convergence"\n',
        "    {drop} = ({v}[0] - {v}[-1]) / {v}[0]\n"
        "    {jumps} = sum(1 for {a}, {b} in zip({v}, {v}[1:]) if {b} > {a})\n"
        '    if {drop} < {C} or {jumps} > len({v}) * {D}:\n        return "no_convergence"\n',
    ],
    "over": [
        '    if {v}[-1] < {E}:\n        return "overfitting"\n'
        "    if validation is not None:\n"
        "        {val} = pd.Series(validation, dtype=float).dropna().to_numpy()\n"
        "        if len({val}) > 1 and {val}[-1] - {val}.min() > {F}:\n"
        '            return "overfitting"\n',
        "    {tiny} = {v}[-1] <= {E}\n"
        "    {rising} = validation is not None and (\n"
        "        pd.Series(validation).dropna().iloc[-1] - pd.Series(validation).min() > {F}\n"
        '    )\n    if {tiny} or {rising}:\n        return "overfitting"\n',
    ],
    "under": [
        "    {half} = {v}[len({v}) // 2 :]\n"
        "    {slope} = np.polyfit(np.arange(len({half})), {half}, 1)[0]\n"
        '    if {slope} < -{G} and {v}[-1] > {H}:\n        return "underfitting"\n',
        "    {last} = {v}[-{J}:]\n"
        "    if ({last}[0] - {last}[-1]) / {last}[0] > {G} and {v}[-1] > {H}:\n"
        '        return "underfitting"\n',
    ],
}
P5_HEAD = [
    "    {v} = pd.Series(train, dtype=float).sort_index().to_numpy()\n",
    "    {v} = np.asarray(train.sort_index(), dtype=float)\n",
]

NAMES = [
    "vals",
    "values",
    "arr",
    "xs",
    "losses",
    "curve",
    "data",
    "seq",
    "ys",
    "series",
    "pts",
    "nums",
    "lst",
    "items",
    "tbl",
    "res",
    "out",
    "acc",
    "total",
    "cnt",
    "counts",
    "sums",
    "keys",
    "epochs",
    "ep",
    "e",
    "i",
    "j",
    "k",
    "idx",
    "pos",
    "best",
    "low",
    "high",
    "mid",
    "cur",
    "prev",
    "nxt",
    "diff",
    "gain",
    "gains",
    "delta",
    "step",
    "steps",
    "lg",
    "logs",
    "net",
    "waste",
    "tail",
    "head",
    "half",
    "last",
    "first",
    "slope",
    "fit",
    "q",
    "r",
    "s",
    "row",
    "rows",
    "ref",
    "gen",
    "got",
    "want",
    "conn",
    "con",
    "cur2",
    "db",
    "model",
    "mdl",
    "hits",
    "hit",
    "ok",
    "good",
    "n",
    "m",
    "t",
    "g",
    "h",
    "w",
    "f",
    "fn",
    "check",
    "run",
    "op",
    "job",
    "res2",
    "tmp",
    "buf",
    "box",
    "bag",
    "grp",
    "group",
    "part",
    "chunk",
    "frame",
    "df",
    "sr",
    "v1",
    "v2",
    "a",
    "b",
    "c",
    "d",
    "x",
    "y",
    "z",
]


def _names(rng: random.Random, count: int) -> list[str]:
    return rng.sample(NAMES, count)


def _fill(template: str, rng: random.Random) -> str:
    fields = {
        name
        for _, name, _, _ in __import__("string").Formatter().parse(template)
        if name and name.islower()
    }
    names = dict(zip(sorted(fields), _names(rng, len(fields)), strict=True))
    return template.format(**names)


def _p5(rng: random.Random) -> str:
    numbers = {
        "A": f"{rng.uniform(1.3, 3.0):.2f}",
        "B": str(rng.randint(2, 4)),
        "C": f"{rng.uniform(0.1, 0.45):.3f}",
        "D": f"{rng.uniform(0.3, 0.8):.2f}",
        "E": f"{rng.uniform(0.01, 0.09):.3f}",
        "F": f"{rng.uniform(0.1, 0.4):.2f}",
        "G": f"{rng.uniform(0.01, 0.12):.3f}",
        "H": f"{rng.uniform(0.15, 0.5):.2f}",
        "J": str(rng.randint(3, 5)),
    }
    order = ["div", "noconv", "over", "under"]
    if rng.random() < 0.5:
        order[2], order[3] = order[3], order[2]
    body = rng.choice(P5_HEAD)
    body += "".join(rng.choice(P5_BLOCKS[block]) for block in order)
    body += '    return "healthy"\n'
    text = body.replace("{A}", numbers["A"])
    for key, value in numbers.items():
        text = text.replace("{" + key + "}", value)
    fields = sorted({f for f in __import__("re").findall(r"\{([a-z]+)\}", text)})
    names = dict(zip(fields, _names(rng, len(fields)), strict=True))
    for key, value in names.items():
        text = text.replace("{" + key + "}", value)
    return text


def honest_submission(rng: random.Random) -> dict[str, str]:
    """One student's answer cells (grade id -> source), written their own way."""
    cells = {}
    for gid, options in (("p1-answer", P1), ("p2-answer", P2), ("p3-answer", P3)):
        cells[gid] = SIGNATURES[gid] + _fill(rng.choice(options), rng)
    cells["p4-answer"] = f'DIAGNOSIS = "{rng.choice(["overfitting", "overfitting", "healthy"])}"'
    cells["p5-answer"] = SIGNATURES["p5-answer"] + _p5(rng)
    epochs = rng.randint(3, 7)
    batch = rng.choice([4, 8, 16])
    rate = rng.choice(["0.001", "0.0005", "0.002", "1e-3"])
    cells["p6-answer"] = (
        f'next_run = {{"epoch_count": {epochs}, "batch_size": {batch}, "learning_rate": {rate}}}'
    )
    cells["p7-answer"] = SIGNATURES["p7-answer"] + _fill(rng.choice(P7), rng)
    name = rng.choice(["rerun", "NL to SQL v2", "sql-fixed", "second try", "early stop"])
    cells["p8-answer"] = _fill(rng.choice(P8).replace("{d}", name), rng) + "print(new_model_name)"
    return cells


def _locals(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
    keep = {"new_model_name", "next_run", "DIAGNOSIS", "tol", "snapshots", "epoch_losses"}
    keep |= {"validation_loss", "train", "validation", "model_name", "heldout", "db_path"}
    return {n for n in found - keep if not keyword.iskeyword(n) and not hasattr(builtins, n)}


def disguised_copy(cells: dict[str, str], rng: random.Random) -> dict[str, str]:
    """A copy as a student makes it: every local renamed, blank lines and comments changed."""
    out = {}
    for gid, source in cells.items():
        names = sorted(_locals(source))
        new = {n: f"my_{n}_{rng.randint(1, 99)}" for n in names}
        tokens = list(tokenize.generate_tokens(io.StringIO(source + "\n").readline))
        pieces = []
        for i, tok in enumerate(tokens):
            text = tok.string
            after_dot = i > 0 and tokens[i - 1].string == "."
            if tok.type == tokenize.NAME and text in new and not after_dot:
                text = new[text]
            if tok.type == tokenize.COMMENT:
                text = "# " + rng.choice(["my own idea", "checked this", "works"])
            pieces.append(tok._replace(string=text))
        code = tokenize.untokenize(pieces)
        lines = []
        for line in code.split("\n"):
            lines.append(line.rstrip())
            if line.strip().endswith(")") and rng.random() < 0.3:
                lines.append("")
            if line.strip().startswith("return") and rng.random() < 0.3:
                lines.insert(len(lines) - 1, line[: len(line) - len(line.lstrip())] + "# done")
        out[gid] = "\n".join(lines).rstrip("\n")
    return out


def demo_class(size: int, seed: int = 14, copies: int = 1) -> tuple[dict[str, dict], list[tuple]]:
    """``size`` students (``copies`` of them copying a classmate); the planted pairs."""
    rng = random.Random(seed)
    students = {f"s{i:04d}": honest_submission(rng) for i in range(size - copies)}
    planted = []
    sources = rng.sample(sorted(students), copies)
    for i, source in enumerate(sources):
        copier = f"c{i:04d}"
        students[copier] = disguised_copy(students[source], rng)
        planted.append(tuple(sorted((source, copier))))
    return students, planted

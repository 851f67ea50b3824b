"""Tuned models, their tuning jobs and SQLite persistence -- everything except HTTP.

Why it looks like this
----------------------
* **Lazy progress.** A job never runs in the background. Its record stores when it started and
  how many wall seconds one training step takes; every request computes "how far is it now"
  from the wall clock. Hundreds of concurrent jobs cost nothing, and a job keeps "running"
  while the server is down: after a restart with ``--state`` it is exactly where the clock says.
* **Deterministic.** Losses come from :mod:`tunelab.simulator`, seeded from the model id and
  the training data, so the same request always produces the same curve.
* **Time compression.** The simulated job takes ``0.2 s + 0.25 s x batch_size`` per step (a
  500-example, 5-epoch, batch-4 job: 625 steps, 12.5 simulated minutes). ``time_scale`` is
  simulated seconds per wall second (default 100, env ``TUNELAB_TIME_SCALE``): that job then
  finishes in 7.5 wall seconds. The scale is frozen into each job when it is created.
* **Fast reads.** The snapshot JSON of a job is rendered once; a GET slices the prefix of the
  steps completed so far, so polling a 10,000-step job stays cheap.

* **Hyperparameters** are echoed with defaults filled (5 epochs; batch 4 / lr 0.001, or 16 /
  0.0002 from 2,000 examples on). A ``learningRateMultiplier`` is accepted and reported as the
  learning rate it resolves to (see :func:`resolved_learning_rate` for why).

JSON in and out follows proto3 JSON (camelCase names, default values omitted), the format the
REST transport of both SDKs reads and writes.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import math
import os
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from tunelab.emulator import catalog
from tunelab.emulator import errors as E
from tunelab.emulator.generation import normalise_prompt
from tunelab.i18n import tr

TUNED_MODEL_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.TunedModel"
METADATA_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.CreateTunedModelMetadata"

ID_PATTERN = r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?"
_ID_RE = re.compile(ID_PATTERN)

MIN_EXAMPLES = 20
MAX_INPUT_CHARS = 40_000
MAX_OUTPUT_CHARS = 5_000
MAX_DATASET_BYTES = 4 * 1024 * 1024
MAX_DISPLAY_NAME = 40
EPOCH_RANGE = (1, 100)
BATCH_RANGE = (1, 64)
MAX_LEARNING_RATE = 1.0
MAX_MULTIPLIER = 100.0

#: Simulated seconds one step takes: fixed overhead + per example in the batch.
SIM_STEP_OVERHEAD = 0.2
SIM_SECONDS_PER_EXAMPLE = 0.25
DEFAULT_TIME_SCALE = 100.0

UPDATABLE_FIELDS = {
    "displayName": "display_name",
    "description": "description",
    "temperature": "temperature",
    "topP": "top_p",
    "topK": "top_k",
}


def default_time_scale() -> float:
    """``TUNELAB_TIME_SCALE`` (simulated seconds per wall second) or the default 100."""
    raw = os.environ.get("TUNELAB_TIME_SCALE", "").strip()
    if not raw:
        return DEFAULT_TIME_SCALE
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"TUNELAB_TIME_SCALE must be a positive number, got {raw!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"TUNELAB_TIME_SCALE must be a positive number, got {raw!r}")
    return value


def sim_step_seconds(batch_size: int) -> float:
    """Simulated duration of one training step."""
    return SIM_STEP_OVERHEAD + SIM_SECONDS_PER_EXAMPLE * batch_size


def rfc3339(ts: float) -> str:
    """Wall-clock seconds -> the RFC 3339 UTC form Google APIs use (microsecond precision)."""
    dt = _dt.datetime.fromtimestamp(ts, tz=_dt.UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _num(x: float) -> float | int:
    """A float for JSON: integral values print as ints (1 not 1.0), like Google's encoder."""
    return int(x) if float(x).is_integer() and abs(x) < 2**53 else float(x)


_SNAKE = re.compile(r"_([a-z0-9])")


def camelize(obj: Any) -> Any:
    """Proto3 JSON accepts snake_case and lowerCamelCase names; normalise to camelCase."""
    if isinstance(obj, dict):
        return {_SNAKE.sub(lambda m: m.group(1).upper(), k): camelize(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [camelize(v) for v in obj]
    return obj


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


# --- request schema checks (the real front end rejects unknown names) ----------------------
_SCHEMA: dict[str, dict[str, str | None]] = {
    "TunedModel": {
        "name": None,
        "baseModel": None,
        "tunedModelSource": "TunedModelSource",
        "displayName": None,
        "description": None,
        "temperature": None,
        "topP": None,
        "topK": None,
        "state": None,
        "createTime": None,
        "updateTime": None,
        "tuningTask": "TuningTask",
        "readerProjectNumbers": None,
    },
    "TunedModelSource": {"tunedModel": None, "baseModel": None},
    "TuningTask": {
        "startTime": None,
        "completeTime": None,
        "snapshots": None,
        "trainingData": "Dataset",
        "hyperparameters": "Hyperparameters",
    },
    "Dataset": {"examples": "TuningExamples"},
    "TuningExamples": {"examples": "TuningExample[]"},
    "TuningExample": {"textInput": None, "output": None},
    "Hyperparameters": {
        "learningRate": None,
        "learningRateMultiplier": None,
        "epochCount": None,
        "batchSize": None,
    },
}


def _check_names(obj: Any, message: str, path: str) -> None:
    """Reject unknown JSON names with the front end's wording ("Unknown name ... at ...")."""
    if obj is None:
        return
    if not isinstance(obj, dict):
        raise E.InvalidArgument(
            tr(
                "Invalid JSON payload received. Invalid value at '{path}' ({message}), {value}",
                "Получен некорректный JSON. Недопустимое значение в '{path}' ({message}), {value}",
                path=path,
                message=message,
                value=_dumps(obj)[:80],
            )
        )
    schema = _SCHEMA[message]
    for key, value in obj.items():
        if key not in schema:
            raise E.InvalidArgument(
                tr(
                    "Invalid JSON payload received. Unknown name \"{name}\" at '{path}': "
                    "Cannot find field.",
                    "Получен некорректный JSON. Неизвестное имя \"{name}\" в '{path}': "
                    "такого поля нет.",
                    name=_snake(key),
                    path=path,
                )
            )
        sub = schema[key]
        if sub is None:
            continue
        if sub.endswith("[]"):
            if not isinstance(value, list):
                raise E.InvalidArgument(
                    tr(
                        "Invalid JSON payload received. Invalid value at '{path}.{name}' "
                        "(repeated {type}), expected a list",
                        "Получен некорректный JSON. Недопустимое значение в '{path}.{name}' "
                        "(repeated {type}): ожидался список",
                        path=path,
                        name=_snake(key),
                        type=sub[:-2],
                    )
                )
            for i, item in enumerate(value):
                _check_names(item, sub[:-2], f"{path}.{_snake(key)}[{i}]")
        else:
            _check_names(value, sub, f"{path}.{_snake(key)}")


def _typed(value: Any, kind: str, path: str) -> Any:
    """Coerce a JSON scalar like the proto parser does (ints may arrive as "5" strings)."""
    bad = E.InvalidArgument(
        tr(
            "Invalid value at '{path}' ({type}), {value}",
            "Недопустимое значение в '{path}' ({type}), {value}",
            path=path,
            type="TYPE_INT32" if kind == "int" else "TYPE_FLOAT",
            value=_dumps(value),
        )
    )
    if isinstance(value, bool) or value is None:
        raise bad
    if kind == "int":
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise bad from None
        if isinstance(value, float):
            if not value.is_integer():
                raise bad
            value = int(value)
        if not isinstance(value, int):
            raise bad
        return value
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise bad from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise bad
    return float(value)


#: The course's Russian terms for the bounded fields, added to the Russian range errors.
_FIELD_TERMS_RU = {
    "epoch_count": "число эпох",
    "batch_size": "размер батча",
    "learning_rate": "скорость обучения",
    "learning_rate_multiplier": "множитель скорости обучения",
    "temperature": "температура",
}


def _bounded(
    value: Any, kind: str, path: str, lo: float, hi: float | None = None, *, above: bool = False
) -> Any:
    """``_typed`` plus a range check (``lo <= x <= hi``; ``lo < x`` if ``above``; no ``hi``:
    unbounded) whose error names the field, the value and the range."""
    x = _typed(value, kind, path)
    if (x <= lo if above else x < lo) or (hi is not None and x > hi):
        if hi is None:
            rule = tr(">= {lo:g}", ">= {lo:g}", lo=lo)
        elif above:
            rule = tr(
                "greater than {lo:g} and at most {hi:g}",
                "больше {lo:g} и не больше {hi:g}",
                lo=lo,
                hi=hi,
            )
        else:
            rule = tr("between {lo:g} and {hi:g}", "от {lo:g} до {hi:g}", lo=lo, hi=hi)
        shown = f"{x:g}" if kind == "float" else str(x)
        term = _FIELD_TERMS_RU.get(path.rsplit(".", 1)[-1])
        raise E.InvalidArgument(
            tr(
                "{path}: {shown} is out of range; it must be {rule}",
                "{path}{term}: значение {shown} вне допустимого диапазона; "
                "допустимы значения {rule}",
                path=path,
                term=f" ({term})" if term else "",
                shown=shown,
                rule=rule,
            )
        )
    return x


def _text(value: Any, field: str, limit: int | None = None) -> str:
    """An optional string field of a TunedModel ("" when absent), type- and length-checked."""
    value = value or ""
    if not isinstance(value, str):
        raise E.InvalidArgument(
            tr(
                "Invalid value at 'tuned_model.{field}' (TYPE_STRING), {value}",
                "Недопустимое значение в 'tuned_model.{field}' (TYPE_STRING), {value}",
                field=field,
                value=_dumps(value)[:80],
            )
        )
    if limit is not None and len(value) > limit:
        raise E.InvalidArgument(
            tr(
                "tuned_model.{field}: {label} is {n} characters; the limit is {limit}",
                "tuned_model.{field}: символов в поле: {n}; допустимо не больше {limit}",
                field=field,
                label=field.replace("_", " "),
                n=len(value),
                limit=limit,
            )
        )
    return value


@dataclass
class TunedModelRecord:
    """What the store keeps about one tuned model (all times are wall-clock epoch seconds)."""

    model_id: str
    base_model: str
    display_name: str
    description: str
    temperature: float
    top_p: float
    top_k: int
    hyperparameters: dict[str, Any]  # as requested (camelCase), defaults filled
    examples: list[list[str]]  # [text_input, output]
    create_time: float
    step_seconds: float  # wall seconds per training step (time scale frozen in)
    total_steps: int
    seed: int
    operation_id: str
    source_tuned_model: str | None = None
    patch_time: float | None = None
    revision: int = 0  # bumped by every update; part of the rendering cache key
    reader_project_numbers: list[int] = field(default_factory=list)
    cancel_time: float | None = None  # CancelOperation (v1 only) stops the job here

    @property
    def name(self) -> str:
        return f"tunedModels/{self.model_id}"

    @property
    def operation_name(self) -> str:
        return f"{self.name}/operations/{self.operation_id}"


@dataclass
class Plan:
    """The simulated run of one record, rendered once (cached by the store)."""

    run: Any
    stop_step: int  # the step at which the job ends (total_steps, or the divergence step)
    failure: str | None
    visible: int  # snapshots that can ever be shown (finite losses up to stop_step)
    blob: str  # all visible snapshot objects, comma-joined
    ends: list[int]  # ends[k]: length of blob holding the first k snapshots
    memory: dict[str, str]  # normalised training prompt -> training output
    extras: dict[str, Any] = field(default_factory=dict)

    def snapshots_json(self, k: int) -> str:
        return "[" + self.blob[: self.ends[min(k, self.visible)]] + "]"


@dataclass
class Progress:
    """Where a job is at one instant."""

    state: str  # CREATING | ACTIVE | FAILED
    completed_steps: int
    shown: int  # snapshots visible now
    complete_time: float | None
    update_time: float
    cancelled: bool = False


def _default_simulate(examples: list[list[str]], hp: dict[str, Any], seed: int) -> Any:
    from tunelab import simulator as sim

    profile = sim.DatasetProfile.from_examples(
        [{"text_input": i, "output": o} for i, o in examples]
    )
    lr, mult = hp.get("learningRate"), hp.get("learningRateMultiplier")
    if mult is not None:
        # The API's multiplier scales the size-dependent default learning rate; the simulator's
        # multiplier is relative to 0.001. Same number below LARGE_DATASET_THRESHOLD (then keep
        # the student's own terms in failure messages), otherwise hand over the real rate.
        actual = resolved_learning_rate(hp, len(examples))
        if not math.isclose(actual, mult * sim.DEFAULT_LEARNING_RATE, rel_tol=1e-12):
            lr, mult = actual, None
    hparams = sim.Hyperparameters(
        epoch_count=hp["epochCount"],
        batch_size=hp["batchSize"],
        learning_rate=lr,
        learning_rate_multiplier=mult,
    )
    return sim.simulate(profile, hparams, seed=seed)


def resolved_learning_rate(hp: Mapping[str, Any], n_examples: int) -> float:
    """The learning rate a job trains with: ``learningRate``, or multiplier x the default.

    Responses report this value as ``learningRate`` even when the request gave
    ``learningRateMultiplier`` (proto: "Actual learning rate := learning_rate_multiplier *
    default learning rate"). Echoing the multiplier instead would break google-generativeai
    0.8.6: its ``Hyperparameters`` dataclass has no such field, so ``get_tuned_model`` and
    ``list_tuned_models`` would raise TypeError for that model.
    """
    if hp.get("learningRateMultiplier") is not None:
        from tunelab import simulator as sim

        default = sim.default_learning_rate(n_examples)
        return float(hp["learningRateMultiplier"]) * default
    return float(hp["learningRate"])


def _default_hparams(n_examples: int) -> dict[str, Any]:
    from tunelab import simulator as sim

    d = sim.default_hyperparameters(n_examples)
    return {"epochCount": d.epoch_count, "batchSize": d.batch_size, "learningRate": d.learning_rate}


def _total_steps(n: int, epochs: int, batch: int) -> int:
    from tunelab import simulator as sim

    return int(sim.total_steps(n, epochs, batch))


class Store:
    """All tuned models of one emulator, optionally persisted to a SQLite file."""

    def __init__(
        self,
        state_path: str | os.PathLike | None = None,
        *,
        time_scale: float | None = None,
        clock: Callable[[], float] = time.time,
        simulate: Callable[[list[list[str]], dict[str, Any], int], Any] | None = None,
        cache_size: int = 64,
    ) -> None:
        self.time_scale = float(time_scale) if time_scale is not None else default_time_scale()
        if not (math.isfinite(self.time_scale) and self.time_scale > 0):
            raise ValueError(f"time_scale must be a positive number, got {time_scale!r}")
        self.clock = clock
        self._simulate = simulate or _default_simulate
        self._lock = threading.RLock()
        self._models: dict[str, TunedModelRecord] = {}
        self._plans: OrderedDict[str, Plan] = OrderedDict()
        self._cache_size = cache_size
        self._db: sqlite3.Connection | None = None
        if state_path is not None:
            self._db = sqlite3.connect(os.fspath(state_path), check_same_thread=False)
            try:
                self._load()
            except (sqlite3.DatabaseError, TypeError, ValueError) as exc:
                self.close()
                raise ValueError(
                    f"{os.fspath(state_path)}: not an emulator state file ({exc}); pass a new "
                    "path or one an earlier emulator wrote"
                ) from None

    # --- persistence -----------------------------------------------------------------------
    def _load(self) -> None:
        assert self._db is not None
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS tuned_models "
            "(id TEXT PRIMARY KEY, create_time REAL NOT NULL, doc TEXT NOT NULL)"
        )
        self._db.commit()
        for (doc,) in self._db.execute("SELECT doc FROM tuned_models ORDER BY create_time, id"):
            rec = TunedModelRecord(**json.loads(doc))
            self._models[rec.model_id] = rec

    def _save(self, rec: TunedModelRecord) -> None:
        if self._db is None:
            return
        self._db.execute(
            "INSERT OR REPLACE INTO tuned_models (id, create_time, doc) VALUES (?, ?, ?)",
            (rec.model_id, rec.create_time, json.dumps(asdict(rec))),
        )
        self._db.commit()

    def _forget(self, model_id: str) -> None:
        if self._db is None:
            return
        self._db.execute("DELETE FROM tuned_models WHERE id = ?", (model_id,))
        self._db.commit()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # --- create ----------------------------------------------------------------------------
    def create(
        self, body: Mapping[str, Any], tuned_model_id: str | None = None
    ) -> TunedModelRecord:
        """Validate a CreateTunedModel request and start the (simulated) job."""
        body = camelize(dict(body or {}))
        _check_names(body, "TunedModel", "tuned_model")
        if tuned_model_id is not None and tuned_model_id != "":
            if not isinstance(tuned_model_id, str) or not _ID_RE.fullmatch(tuned_model_id):
                raise E.InvalidArgument(
                    tr(
                        "tuned_model_id: {id!r} is not a valid id; it must match {pattern} "
                        "(1-40 characters: lowercase letters, digits and hyphens, starting with "
                        "a letter and ending with a letter or digit)",
                        "tuned_model_id: {id!r} — недопустимый id; он должен соответствовать "
                        "{pattern} (от 1 до 40 символов: строчные латинские буквы, цифры и "
                        "дефисы; первый символ — буква, последний — буква или цифра)",
                        id=tuned_model_id,
                        pattern=ID_PATTERN,
                    )
                )
        else:
            tuned_model_id = None

        base, source = self._resolve_source(body)
        display_name = _text(body.get("displayName"), "display_name", MAX_DISPLAY_NAME)
        description = _text(body.get("description"), "description")
        sampling = self._sampling(body, base)

        task = body.get("tuningTask")
        if not task:
            raise E.InvalidArgument(
                tr(
                    "tuned_model.tuning_task: a tuning task is required",
                    "tuned_model.tuning_task: нужно задание дообучения (tuning_task) с обучающими "
                    "примерами",
                )
            )
        examples = self._examples(task)
        hp = self._hyperparameters(task.get("hyperparameters") or {}, len(examples))

        with self._lock:
            now = self.clock()
            if tuned_model_id is None:
                tuned_model_id = self._generated_id(display_name, examples)
            elif tuned_model_id in self._models:
                raise E.AlreadyExists(
                    tr(
                        "tuned_model_id: tunedModels/{id} already exists; "
                        "choose another id or delete the existing model first",
                        "tuned_model_id: дообученная модель tunedModels/{id} уже существует; "
                        "выберите другой id или сначала удалите существующую модель",
                        id=tuned_model_id,
                    )
                )
            seed = _seed(tuned_model_id, examples, hp)
            total = _total_steps(len(examples), hp["epochCount"], hp["batchSize"])
            op_id = hashlib.sha256(f"{tuned_model_id}|{now!r}".encode()).hexdigest()
            op_id = _base36(int(op_id[:16], 16))[:12]
            rec = TunedModelRecord(
                model_id=tuned_model_id,
                base_model=base,
                source_tuned_model=source,
                display_name=display_name,
                description=description,
                temperature=sampling["temperature"],
                top_p=sampling["topP"],
                top_k=sampling["topK"],
                hyperparameters=hp,
                examples=examples,
                create_time=now,
                step_seconds=sim_step_seconds(hp["batchSize"]) / self.time_scale,
                total_steps=total,
                seed=seed,
                operation_id=op_id,
                reader_project_numbers=[int(x) for x in body.get("readerProjectNumbers") or []],
            )
            self.plan(rec)  # simulate now: a simulator error surfaces on create, not on poll
            self._models[rec.model_id] = rec
            self._save(rec)
        return rec

    def _resolve_source(self, body: Mapping[str, Any]) -> tuple[str, str | None]:
        base = body.get("baseModel")
        src = body.get("tunedModelSource")
        if base and src:
            raise E.InvalidArgument(
                tr(
                    "tuned_model: base_model and tuned_model_source are both set; they are one "
                    "oneof (source_model), set only one",
                    "tuned_model: заданы и base_model, и tuned_model_source; они входят в один "
                    "oneof (source_model), задайте только одно из них",
                )
            )
        if src:
            name = src.get("tunedModel") or ""
            parent = self._models.get(name.removeprefix("tunedModels/"))
            if not name.startswith("tunedModels/") or parent is None:
                raise E.NotFound(
                    tr(
                        "tuned_model.tuned_model_source.tuned_model: {name} is not found",
                        "tuned_model.tuned_model_source.tuned_model: дообученная модель {name} "
                        "не найдена",
                        name=name or tr("(empty)", "(пусто)"),
                    )
                )
            return parent.base_model, name
        if not base:
            raise E.InvalidArgument(
                tr(
                    "tuned_model.base_model: a base model is required, e.g. {example}",
                    "tuned_model.base_model: нужно указать базовую модель, например {example}",
                    example=catalog.DEFAULT_TUNING_BASE,
                )
            )
        if not isinstance(base, str):
            raise E.InvalidArgument(
                tr(
                    "Invalid value at 'tuned_model.base_model' (TYPE_STRING), {value}",
                    "Недопустимое значение в 'tuned_model.base_model' (TYPE_STRING), {value}",
                    value=_dumps(base),
                )
            )
        model = catalog.find(base) if base.startswith("models/") else None
        if model is None:
            raise E.NotFound(
                tr(
                    "tuned_model.base_model: {base} is not found for API version v1beta. Call "
                    "ListModels to see the available models and their supported methods.",
                    "tuned_model.base_model: модель {base} не найдена в версии API v1beta. "
                    "Вызовите ListModels, чтобы увидеть доступные модели и их методы.",
                    base=base,
                )
            )
        if not model.tunable:
            tunable = ", ".join(m.name for m in catalog.BASE_MODELS if m.tunable)
            raise E.InvalidArgument(
                tr(
                    "tuned_model.base_model: {name} does not support createTunedModel; "
                    "models that can be tuned: {tunable}",
                    "tuned_model.base_model: {name} не поддерживает createTunedModel; "
                    "модели, которые можно настраивать: {tunable}",
                    name=model.name,
                    tunable=tunable,
                )
            )
        return model.name, None

    def _sampling(self, body: Mapping[str, Any], base: str) -> dict[str, Any]:
        model = catalog.find(base)
        assert model is not None
        out = {"temperature": model.temperature, "topP": model.top_p, "topK": model.top_k}
        for key, kind, fname, lo, hi in (
            ("temperature", "float", "temperature", 0.0, model.max_temperature),
            ("topP", "float", "top_p", 0.0, 1.0),
            ("topK", "int", "top_k", 1, None),
        ):
            if body.get(key) is not None:
                out[key] = _bounded(body[key], kind, f"tuned_model.{fname}", lo, hi)
        return out

    def _examples(self, task: Mapping[str, Any]) -> list[list[str]]:
        path = "tuned_model.tuning_task.training_data"
        data = task.get("trainingData")
        if not data:
            raise E.InvalidArgument(
                tr(
                    "{path}: training data is required; the request carried no examples "
                    "(google-genai 3.6.1 drops TuningDataset.examples for the Gemini API: pass "
                    "them with http_options extra_body, see tunelab.emulator docs)",
                    "{path}: нужны обучающие данные, а в запросе нет ни одного обучающего примера "
                    "(google-genai 3.6.1 отбрасывает TuningDataset.examples для Gemini API: "
                    "передайте их через extra_body в http_options, см. документацию "
                    "tunelab.emulator)",
                    path=path,
                )
            )
        listed = (data.get("examples") or {}).get("examples") or []
        path += ".examples.examples"
        if len(listed) < MIN_EXAMPLES:
            raise E.InvalidArgument(
                tr(
                    "{path}: {n} examples were given; at least {min} are required",
                    "{path}: передано обучающих примеров: {n}; нужно не меньше {min}",
                    path=path,
                    n=len(listed),
                    min=MIN_EXAMPLES,
                )
            )
        examples: list[list[str]] = []
        size = 0
        for i, ex in enumerate(listed):
            text_input, output = ex.get("textInput"), ex.get("output")
            for fname, value, limit in (
                ("text_input", text_input, MAX_INPUT_CHARS),
                ("output", output, MAX_OUTPUT_CHARS),
            ):
                where = f"{path}[{i}].{fname}"
                if value is None or value == "":
                    raise E.InvalidArgument(
                        tr(
                            "{where}: {name} is required and must not be empty",
                            "{where}: поле {name} обязательно и не должно быть пустым",
                            where=where,
                            name=fname,
                        )
                    )
                if not isinstance(value, str):
                    raise E.InvalidArgument(
                        tr(
                            "Invalid value at '{where}' (TYPE_STRING), {value}",
                            "Недопустимое значение в '{where}' (TYPE_STRING), {value}",
                            where=where,
                            value=_dumps(value)[:80],
                        )
                    )
                if len(value) > limit:
                    raise E.InvalidArgument(
                        tr(
                            "{where}: {name} is {n} characters; the limit is {limit:,}",
                            "{where}: символов в поле {name}: {n}; допустимо не больше {limit}",
                            where=where,
                            name=fname,
                            n=len(value),
                            limit=limit,
                        )
                    )
            size += len(text_input.encode()) + len(output.encode())
            examples.append([text_input, output])
        if size > MAX_DATASET_BYTES:
            raise E.InvalidArgument(
                tr(
                    "tuned_model.tuning_task.training_data: the examples hold {mb:.2f} MB "
                    "of text; the limit is {limit} MB",
                    "tuned_model.tuning_task.training_data: в обучающих примерах {mb:.2f} МБ "
                    "текста; допустимо не больше {limit} МБ",
                    mb=size / 2**20,
                    limit=MAX_DATASET_BYTES // 2**20,
                )
            )
        return examples

    def _hyperparameters(self, raw: Mapping[str, Any], n_examples: int) -> dict[str, Any]:
        path = "tuned_model.tuning_task.hyperparameters"
        defaults = _default_hparams(n_examples)
        hp: dict[str, Any] = {}
        for key, fname, (lo, hi) in (
            ("epochCount", "epoch_count", EPOCH_RANGE),
            ("batchSize", "batch_size", BATCH_RANGE),
        ):
            if raw.get(key) is None:
                hp[key] = defaults[key]
            else:
                hp[key] = _bounded(raw[key], "int", f"{path}.{fname}", lo, hi)
        lr, mult = raw.get("learningRate"), raw.get("learningRateMultiplier")
        if lr is not None and mult is not None:
            raise E.InvalidArgument(
                tr(
                    "{path}: learning_rate and learning_rate_multiplier are both set; they are "
                    "one oneof (learning_rate_option), set only one",
                    "{path}: заданы и learning_rate (скорость обучения), и "
                    "learning_rate_multiplier (множитель скорости обучения); они входят в один "
                    "oneof (learning_rate_option), задайте только один из них",
                    path=path,
                )
            )
        if mult is not None:
            where = f"{path}.learning_rate_multiplier"
            hp["learningRateMultiplier"] = _bounded(
                mult, "float", where, 0, MAX_MULTIPLIER, above=True
            )
        elif lr is not None:
            where = f"{path}.learning_rate"
            hp["learningRate"] = _bounded(lr, "float", where, 0, MAX_LEARNING_RATE, above=True)
        else:
            hp["learningRate"] = defaults["learningRate"]
        return hp

    def _generated_id(self, display_name: str, examples: list[list[str]]) -> str:
        """``<display-name-slug>-<4 digits>``, the style the service used, deterministic."""
        slug = re.sub(r"[^a-z0-9]+", "-", display_name.lower()).strip("-")
        slug = re.sub(r"^[^a-z]+", "", slug)[:34].rstrip("-") or "tuned-model"
        digest = hashlib.sha256(_dumps([display_name, examples[:50]]).encode()).digest()
        for attempt in range(10_000):
            n = int.from_bytes(hashlib.sha256(digest + attempt.to_bytes(4, "big")).digest()[:4])
            candidate = f"{slug}-{n % 10_000:04d}"
            if candidate not in self._models:
                return candidate
        raise E.Internal("could not find a free tuned model id")  # pragma: no cover

    # --- read ------------------------------------------------------------------------------
    def get(self, model_id: str) -> TunedModelRecord:
        rec = self._models.get(model_id)
        if rec is None:
            raise E.NotFound(
                tr(
                    "Tuned model tunedModels/{id} does not exist.",
                    "Дообученная модель tunedModels/{id} не существует.",
                    id=model_id,
                )
            )
        return rec

    def records(self) -> list[TunedModelRecord]:
        with self._lock:
            return sorted(self._models.values(), key=lambda r: (r.create_time, r.model_id))

    def list(
        self, page_size: int | None, page_token: str | None
    ) -> tuple[list[TunedModelRecord], str | None]:
        return paginate(self.records(), page_size, page_token, default=10, key=_record_key)

    def plan(self, rec: TunedModelRecord) -> Plan:
        """The rendered simulated run of a record (cached; cheap after the first call)."""
        key = _plan_key(rec)
        plan = self._plans.get(key)
        if plan is not None:
            self._plans.move_to_end(key)
            return plan
        run = self._simulate(rec.examples, rec.hyperparameters, rec.seed)
        plan = _render_plan(rec, run)
        with self._lock:
            self._plans[key] = plan
            while len(self._plans) > self._cache_size:
                self._plans.popitem(last=False)
        return plan

    def progress(
        self, rec: TunedModelRecord, now: float | None = None, *, plan: Plan | None = None
    ) -> Progress:
        """Where ``rec``'s job is at ``now`` (pass ``plan`` when the caller already holds it)."""
        plan = self.plan(rec) if plan is None else plan
        now = self.clock() if now is None else now
        elapsed = max(0.0, now - rec.create_time)
        stop, end = plan.stop_step, rec.create_time + plan.stop_step * rec.step_seconds
        cancelled = rec.cancel_time is not None and rec.cancel_time < end and rec.cancel_time <= now
        if cancelled:
            # Cancelled: the job stops at the step it had reached; the model is FAILED.
            assert rec.cancel_time is not None
            stop = int((rec.cancel_time - rec.create_time) / rec.step_seconds + 1e-9)
            end = rec.cancel_time
        done = min(stop, int(elapsed / rec.step_seconds + 1e-9))
        if done >= stop:
            state = "FAILED" if plan.failure or cancelled else "ACTIVE"
            complete: float | None = end
            updated = end
        else:
            state, complete = "CREATING", None
            updated = rec.create_time + done * rec.step_seconds
        if rec.patch_time is not None:
            updated = max(updated, rec.patch_time)
        return Progress(state, done, min(done, plan.visible), complete, updated, cancelled)

    # --- JSON rendering --------------------------------------------------------------------
    def tuned_model_json(self, rec: TunedModelRecord, now: float | None = None) -> str:
        plan = self.plan(rec)
        prog = self.progress(rec, now, plan=plan)
        # Polls between two training steps get the same bytes: keep the last rendering.
        key = (prog.shown, prog.state, prog.update_time, rec.revision)
        cached = plan.extras.get("model_json")
        if cached is not None and cached[0] == key:
            return cached[1]
        text = _tuned_model_json(rec, plan, prog)
        plan.extras["model_json"] = (key, text)
        return text

    def operation_json(self, rec: TunedModelRecord, now: float | None = None) -> str:
        plan = self.plan(rec)
        prog = self.progress(rec, now, plan=plan)
        key = (prog.completed_steps, prog.state, prog.update_time, rec.revision)
        cached = plan.extras.get("operation_json")
        if cached is not None and cached[0] == key:
            return cached[1]
        text = self._operation_json(rec, plan, prog)
        plan.extras["operation_json"] = (key, text)
        return text

    def _operation_json(self, rec: TunedModelRecord, plan: Plan, prog: Progress) -> str:
        snaps = plan.snapshots_json(prog.shown)
        meta = {"@type": METADATA_TYPE, "tunedModel": rec.name, "totalSteps": rec.total_steps}
        if prog.completed_steps:
            meta["completedSteps"] = prog.completed_steps
            meta["completedPercent"] = _num(
                round(100.0 * prog.completed_steps / rec.total_steps, 4)
            )
        meta_json = _dumps(meta)
        if prog.shown:
            meta_json = meta_json[:-1] + ',"snapshots":' + snaps + "}"
        out = '{"name":' + _dumps(rec.operation_name) + ',"metadata":' + meta_json
        if prog.state == "CREATING":
            return out + "}"
        out += ',"done":true'
        if prog.state == "FAILED":
            err = {"code": E.Internal.grpc_code, "message": plan.failure}
            if prog.cancelled:
                err = {"code": 1, "message": "Operation cancelled."}  # google.rpc CANCELLED
            return out + ',"error":' + _dumps(err) + "}"
        model = _tuned_model_json(rec, plan, prog, type_url=True)
        return out + ',"response":' + model + "}"

    # --- update / delete -------------------------------------------------------------------
    def update(
        self, model_id: str, body: Mapping[str, Any], update_mask: list[str] | None
    ) -> TunedModelRecord:
        body = camelize(dict(body or {}))
        _check_names(body, "TunedModel", "tuned_model")
        with self._lock:
            rec = self.get(model_id)
            if update_mask:
                paths = [camelize({p.strip(): None}).popitem()[0] for p in update_mask]
            else:
                paths = [k for k in UPDATABLE_FIELDS if k in body]
            if not paths:
                raise E.InvalidArgument(
                    tr(
                        "update_mask: no field to update; list the fields to change, e.g. "
                        "updateMask=displayName,description",
                        "update_mask: нечего обновлять; перечислите поля, которые нужно "
                        "изменить, например updateMask=displayName,description",
                    )
                )
            base = catalog.find(rec.base_model)
            changes: dict[str, Any] = {}
            for path in paths:
                if path not in UPDATABLE_FIELDS:
                    allowed = ", ".join(_snake(k) for k in UPDATABLE_FIELDS)
                    raise E.InvalidArgument(
                        tr(
                            "update_mask: field {field!r} cannot be updated; updatable "
                            "fields: {allowed}",
                            "update_mask: поле {field!r} нельзя изменить; изменяемые поля: "
                            "{allowed}",
                            field=_snake(path),
                            allowed=allowed,
                        )
                    )
                value = body.get(path)
                if path == "displayName":
                    value = _text(value, "display_name", MAX_DISPLAY_NAME)
                elif path == "description":
                    value = _text(value, "description")
                elif value is None:
                    continue
                else:
                    assert base is not None
                    value = self._sampling({path: value}, base.name)[path]
                changes[UPDATABLE_FIELDS[path]] = value
            for attr, value in changes.items():
                setattr(rec, attr, value)
            rec.patch_time = self.clock()
            rec.revision += 1
            self._save(rec)
            return rec

    def cancel(self, model_id: str) -> TunedModelRecord:
        """CancelOperation: best effort, as google.longrunning defines it -- a running job stops
        at its current step (model state FAILED, operation error code 1 CANCELLED); a finished
        one is left as it is (the call still succeeds)."""
        with self._lock:
            rec = self.get(model_id)
            if rec.cancel_time is None and self.progress(rec).state == "CREATING":
                rec.cancel_time = self.clock()
                rec.revision += 1
                self._save(rec)
            return rec

    def delete(self, model_id: str) -> None:
        with self._lock:
            rec = self.get(model_id)
            del self._models[model_id]
            self._plans.pop(_plan_key(rec), None)
            self._forget(model_id)


def _plan_key(rec: TunedModelRecord) -> str:
    return f"{rec.model_id}|{rec.create_time!r}|{rec.seed}"


def _record_key(rec: TunedModelRecord) -> list[Any]:
    return [rec.create_time, rec.model_id]


def paginate(
    items: list[Any],
    page_size: Any,
    page_token: Any,
    *,
    default: int,
    key: Callable[[Any], list[Any]],
) -> tuple[list[Any], str | None]:
    """One page of ``items`` (sorted by ``key``) after the opaque token, and the next token.

    The token names the last item returned (not an offset), so deleting a model between two
    pages neither repeats nor skips one.
    """
    if page_size in (None, ""):
        size = default
    else:
        try:
            size = int(page_size)
        except (TypeError, ValueError):
            raise E.InvalidArgument(
                tr(
                    "Invalid value at 'page_size' (TYPE_INT32), {value}",
                    "Недопустимое значение в 'page_size' (TYPE_INT32), {value}",
                    value=_dumps(page_size),
                )
            ) from None
        if size < 0:
            raise E.InvalidArgument(
                tr(
                    "page_size: {size} is negative; it must be >= 0",
                    "page_size: {size} — отрицательное число; значение должно быть >= 0",
                    size=size,
                )
            )
        size = min(size or default, 1000)
    start = 0
    if page_token:
        try:
            raw = base64.urlsafe_b64decode(page_token.encode() + b"==")
            after = json.loads(raw.decode())
            if not (isinstance(after, dict) and isinstance(after.get("after"), list)):
                raise ValueError
            marker = tuple(after["after"])
            start = next((i for i, x in enumerate(items) if tuple(key(x)) > marker), len(items))
        except (ValueError, UnicodeDecodeError, TypeError):
            raise E.InvalidArgument(
                tr(
                    "page_token: {token!r} is not a valid page token; pass the nextPageToken "
                    "of a previous list response",
                    "page_token: {token!r} — недопустимый токен страницы; передайте "
                    "nextPageToken из предыдущего ответа list",
                    token=page_token,
                )
            ) from None
    page = items[start : start + size]
    if start + size >= len(items) or not page:
        return page, None
    token = base64.urlsafe_b64encode(_dumps({"after": key(page[-1])}).encode()).decode()
    return page, token.rstrip("=")


def _base36(n: int) -> str:
    chars = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = chars[r] + out
    return out or "0"


def _seed(model_id: str, examples: list[list[str]], hp: Mapping[str, Any]) -> int:
    digest = hashlib.sha256(_dumps([model_id, examples, dict(sorted(hp.items()))]).encode())
    return int.from_bytes(digest.digest()[:4], "big")


_F32_MAX = 3.4028234663852886e38


def _render_plan(rec: TunedModelRecord, run: Any) -> Plan:
    total = int(run.total_steps)
    if total != rec.total_steps:
        raise E.Internal(
            f"simulator disagrees on total steps ({total} != {rec.total_steps}) for {rec.name}"
        )
    diverged = getattr(run, "diverged_step", None)
    failure = getattr(run, "failure", None)
    if diverged is not None:
        stop = max(1, min(int(diverged), total))
        failure = failure or f"training diverged at step {stop}"
    else:
        stop, failure = total, None
    steps = [int(s) for s in run.step[:stop]]
    epochs = [int(e) for e in run.epoch[:stop]]
    losses = [float(x) for x in run.mean_loss[:stop]]
    parts: list[str] = []
    ends = [0]
    length = 0
    for i, (s, e, loss) in enumerate(zip(steps, epochs, losses, strict=True)):
        if not (math.isfinite(loss) and abs(loss) <= _F32_MAX):
            break
        t = rfc3339(rec.create_time + (i + 1) * rec.step_seconds)
        frag = f'{{"step":{s},"epoch":{e},"meanLoss":{loss:.7g},"computeTime":"{t}"}}'
        if parts:
            length += 1
        parts.append(frag)
        length += len(frag)
        ends.append(length)
    memory: dict[str, str] = {}
    for text_input, output in rec.examples:
        memory.setdefault(normalise_prompt(text_input), output)
    return Plan(
        run=run,
        stop_step=stop,
        failure=failure,
        visible=len(parts),
        blob=",".join(parts),
        ends=ends,
        memory=memory,
    )


def _tuned_model_json(
    rec: TunedModelRecord, plan: Plan, prog: Progress, *, type_url: bool = False
) -> str:
    head: dict[str, Any] = {}
    if type_url:
        head["@type"] = TUNED_MODEL_TYPE
    if rec.source_tuned_model:
        head["tunedModelSource"] = {
            "tunedModel": rec.source_tuned_model,
            "baseModel": rec.base_model,
        }
    else:
        head["baseModel"] = rec.base_model
    head["name"] = rec.name
    if rec.display_name:
        head["displayName"] = rec.display_name
    if rec.description:
        head["description"] = rec.description
    head["temperature"] = _num(rec.temperature)
    head["topP"] = _num(rec.top_p)
    head["topK"] = rec.top_k
    head["state"] = prog.state
    head["createTime"] = rfc3339(rec.create_time)
    head["updateTime"] = rfc3339(prog.update_time)
    task: dict[str, Any] = {"startTime": rfc3339(rec.create_time)}
    if prog.complete_time is not None:
        task["completeTime"] = rfc3339(prog.complete_time)
    task["hyperparameters"] = {
        "epochCount": rec.hyperparameters["epochCount"],
        "batchSize": rec.hyperparameters["batchSize"],
        "learningRate": _num(
            float(f"{resolved_learning_rate(rec.hyperparameters, len(rec.examples)):.6g}")
        ),
    }
    head["tuningTask"] = task
    if rec.reader_project_numbers:
        head["readerProjectNumbers"] = [str(x) for x in rec.reader_project_numbers]
    text = _dumps(head)
    if prog.shown:
        marker = '"hyperparameters":'
        i = text.rindex(marker)
        text = text[:i] + '"snapshots":' + plan.snapshots_json(prog.shown) + "," + text[i:]
    return text

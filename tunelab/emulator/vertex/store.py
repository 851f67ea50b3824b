"""Vertex AI tuning jobs: state, lazy progress, checkpoints, SQLite persistence (no HTTP).

Same ideas as :mod:`tunelab.emulator.store` (the Gemini API service):

* **Lazy progress.** A record keeps its create time and the wall seconds per step; every read
  computes where the job is now. Jobs "run" while the server is down.
* **Time compression and states.** 120 simulated seconds pass before training (the emulator's
  figure; real jobs often wait minutes): ``JOB_STATE_PENDING`` for the first 20, then
  ``JOB_STATE_RUNNING`` with the detail state ``tuningJobState`` (a real ``TuningJob`` field,
  "the detail state of the tuning job while the overall JobState is running")
  ``TUNING_JOB_STATE_PROCESSING_DATASET`` for 60 and ``..._WAITING_FOR_CAPACITY`` for 40. Then
  it trains ``ceil(n x epochs / batch)`` steps of ``0.2 s + 0.25 s x batch`` simulated time
  each (``..._TUNING``), and spends 30 s in ``..._POST_PROCESSING`` before
  ``JOB_STATE_SUCCEEDED``. ``..._WAITING_FOR_QUOTA`` exists on the real service; the emulator
  never waits for quota. ``time_scale`` (default ``$TUNELAB_TIME_SCALE`` or 100) divides every
  figure; it is frozen into each job at creation.
* **Datasets, like the real service.** The request is checked at once: a URI that is not a
  ``gs://.../*.jsonl`` object, or (the emulator's choice) an object that does not exist, is a
  400/404 ``ClientError``. The file's *contents* are read while the job runs: a malformed line,
  too few examples or an empty validation file ends the job ``JOB_STATE_FAILED`` at the end of
  ``PROCESSING_DATASET``, with the reason (file, line, field) in ``error`` (code 3,
  INVALID_ARGUMENT: the emulator's code and wording).
* **Deterministic.** Curves come from :mod:`tunelab.simulator`, seeded by the base model, the
  training examples and the hyperparameters: the same request gives the same curve. Vertex
  exposes no batch size for Gemini models; the emulator trains with the simulator's default
  (4, or 16 from 2,000 examples on) and the learning rate ``learningRateMultiplier x`` its
  default. ``adapterSize`` is validated and echoed but does not change the simulated curve.
* **Cancel** (``:cancel``) freezes the job at the step it had reached: state
  ``JOB_STATE_CANCELLING`` for 10 simulated seconds (the emulator's figure; the real service
  may pass through it, and a cancel is best-effort), then ``JOB_STATE_CANCELLED``,
  ``error.code`` 1 (CANCELLED, as for every cancelled Vertex job) and,
  the emulator's choice following the course's needs, a ``tunedModel`` with the checkpoints of
  the epochs completed before the cancel (none -> no tunedModel).
* **Checkpoints.** One per completed epoch (``exportLastCheckpointOnly``: the last only), each
  with its own endpoint; the tuned model's endpoint is the last checkpoint's. Generating
  against a checkpoint answers with THAT epoch's simulated held-out quality.

Names: ``projects/PROJECT_NUMBER/locations/LOCATION/tuningJobs/ID`` like Vertex (responses use
the project *number*; the emulator derives a stable 12-digit number from the project id and
accepts either in requests). Express mode (API key, no project) uses a project number derived
from the key and location ``us-central1`` (emulator's choice).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tunelab.emulator import errors as E
from tunelab.emulator.generation import normalise_prompt, trained_domain
from tunelab.emulator.store import (
    _default_simulate,
    _dumps,
    camelize,
    default_time_scale,
    paginate,
    rfc3339,
    sim_step_seconds,
)
from tunelab.emulator.vertex import catalog, datasets
from tunelab.emulator.vertex.buckets import Buckets
from tunelab.i18n import tr

PENDING_SIM_SECONDS = 120.0  # from create to the first training step (see the docstring)
# Where the phases of those 120 s end, as fractions (so old state files keep their timing):
QUEUED_FRACTION = 20 / 120  # JOB_STATE_PENDING
DATASET_FRACTION = 80 / 120  # ... then RUNNING / PROCESSING_DATASET, then WAITING_FOR_CAPACITY
POST_FRACTION = 30 / 120  # POST_PROCESSING after the last step
CANCELLING_FRACTION = 10 / 120  # CANCELLING after a cancel request
EPOCH_RANGE = (1, 100)
MULTIPLIER_RANGE = (0.0, 100.0)
MAX_DISPLAY_NAME = 128
EXPRESS_LOCATION = "us-central1"

PENDING = "JOB_STATE_PENDING"
RUNNING = "JOB_STATE_RUNNING"
SUCCEEDED = "JOB_STATE_SUCCEEDED"
FAILED = "JOB_STATE_FAILED"
CANCELLED = "JOB_STATE_CANCELLED"
CANCELLING = "JOB_STATE_CANCELLING"
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)
# TuningJob.tuningJobState, the detail state while RUNNING
WAITING_FOR_QUOTA = "TUNING_JOB_STATE_WAITING_FOR_QUOTA"  # real; never simulated
PROCESSING_DATASET = "TUNING_JOB_STATE_PROCESSING_DATASET"
WAITING_FOR_CAPACITY = "TUNING_JOB_STATE_WAITING_FOR_CAPACITY"
TUNING = "TUNING_JOB_STATE_TUNING"
POST_PROCESSING = "TUNING_JOB_STATE_POST_PROCESSING"

_TOP_FIELDS = {
    "baseModel",
    "supervisedTuningSpec",
    "tunedModelDisplayName",
    "description",
    "labels",
}
_OTHER_SPECS = (
    "preferenceOptimizationSpec",
    "distillationSpec",
    "reinforcementTuningSpec",
    "partnerModelTuningSpec",
    "fullFineTuningSpec",
    "veoTuningSpec",
    "preTunedModel",
)
_SPEC_FIELDS = {
    "trainingDatasetUri",
    "validationDatasetUri",
    "hyperParameters",
    "exportLastCheckpointOnly",
    "tuningMode",
}
_HP_FIELDS = {"epochCount", "learningRateMultiplier", "adapterSize", "batchSize", "learningRate"}


def project_number(project: str) -> str:
    """A stable 12-digit project number for a project id (a number is kept as it is)."""
    if project.isdigit():
        return project
    digest = int.from_bytes(hashlib.sha256(f"project|{project}".encode()).digest()[:8], "big")
    return str(100_000_000_000 + digest % 900_000_000_000)


def express_project(api_key: str) -> str:
    """The project number that stands for an API key's express-mode project (emulator)."""
    return project_number(f"express-mode-key|{api_key}")


def _numeric_id(*parts: Any, digits: int = 19) -> str:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    n = int.from_bytes(digest[:8], "big") % (9 * 10 ** (digits - 1))
    return str(10 ** (digits - 1) + n)


@dataclass
class VertexJobRecord:
    """What the store keeps about one tuning job (times are wall-clock epoch seconds)."""

    job_id: str
    project: str  # project number
    location: str
    base_model: str  # as requested
    display_name: str
    description: str
    labels: dict[str, str]
    training_uri: str
    validation_uri: str | None
    epoch_count: int
    multiplier: float
    adapter_size: int
    export_last_only: bool
    batch_size: int
    examples: list[list[str]]
    data_stats: dict[str, Any]
    create_time: float
    pending_seconds: float
    step_seconds: float
    total_steps: int
    seed: int
    cancel_time: float | None = None
    validation_count: int = 0
    #: why the dataset's contents were refused (the job fails while processing its dataset)
    dataset_error: str | None = None

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    @property
    def name(self) -> str:
        return f"{self.parent}/tuningJobs/{self.job_id}"

    @property
    def model_name(self) -> str:
        return f"{self.parent}/models/{_numeric_id('model', self.job_id)}@1"

    def endpoint_id(self, epoch: int) -> str:
        return _numeric_id("endpoint", self.job_id, epoch)

    def endpoint(self, epoch: int) -> str:
        return f"{self.parent}/endpoints/{self.endpoint_id(epoch)}"

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The simulator's view (see the module docstring for the batch size)."""
        return {
            "epochCount": self.epoch_count,
            "batchSize": self.batch_size,
            "learningRateMultiplier": self.multiplier,
        }


@dataclass
class Plan:
    """The simulated run of one job, rendered once."""

    run: Any
    stop_step: int
    failure: str | None
    epoch_end: list[int]  # epoch_end[e-1]: the step that completes epoch e
    memory: dict[str, str]
    domain: str | None
    train_blob: str = ""
    train_ends: list[int] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)


@dataclass
class Progress:
    state: str
    completed_steps: int
    epochs_done: int
    start_time: float | None
    end_time: float | None
    update_time: float
    detail: str | None = None  # tuningJobState while RUNNING


class VertexStore:
    """Every Vertex tuning job of one emulator (optionally persisted next to the Gemini ones)."""

    def __init__(
        self,
        state_path: str | os.PathLike | None = None,
        *,
        buckets: Buckets | None = None,
        time_scale: float | None = None,
        clock: Callable[[], float] = time.time,
        cache_size: int = 64,
    ) -> None:
        self.time_scale = float(time_scale) if time_scale is not None else default_time_scale()
        if not (math.isfinite(self.time_scale) and self.time_scale > 0):
            raise ValueError(f"time_scale must be a positive number, got {time_scale!r}")
        self.buckets = buckets if buckets is not None else Buckets.for_state(state_path)
        self.clock = clock
        self._lock = threading.RLock()
        self._jobs: dict[str, VertexJobRecord] = {}
        self._endpoints: dict[str, tuple[str, int]] = {}
        self._plans: OrderedDict[str, Plan] = OrderedDict()
        self._cache_size = cache_size
        self._db: sqlite3.Connection | None = None
        if state_path is not None:
            self._db = sqlite3.connect(os.fspath(state_path), check_same_thread=False)
            try:
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS vertex_tuning_jobs "
                    "(id TEXT PRIMARY KEY, create_time REAL NOT NULL, doc TEXT NOT NULL)"
                )
                self._db.commit()
                rows = self._db.execute(
                    "SELECT doc FROM vertex_tuning_jobs ORDER BY create_time, id"
                ).fetchall()
                for (doc,) in rows:
                    self._index(VertexJobRecord(**json.loads(doc)))
            except (sqlite3.DatabaseError, TypeError, ValueError) as exc:
                self.close()
                raise ValueError(
                    f"{os.fspath(state_path)}: not an emulator state file ({exc})"
                ) from None

    # --- persistence -----------------------------------------------------------------------
    def _index(self, rec: VertexJobRecord) -> None:
        self._jobs[rec.job_id] = rec
        for epoch in range(1, rec.epoch_count + 1):
            self._endpoints[rec.endpoint_id(epoch)] = (rec.job_id, epoch)

    def _save(self, rec: VertexJobRecord) -> None:
        if self._db is None:
            return
        self._db.execute(
            "INSERT OR REPLACE INTO vertex_tuning_jobs (id, create_time, doc) VALUES (?, ?, ?)",
            (rec.job_id, rec.create_time, json.dumps(asdict(rec))),
        )
        self._db.commit()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self.buckets.close()

    # --- create ----------------------------------------------------------------------------
    def create(self, body: Mapping[str, Any], project: str, location: str) -> VertexJobRecord:
        """Validate a CreateTuningJob request, read its datasets and start the simulated job."""
        body = camelize(dict(body or {}))
        for key in _OTHER_SPECS:
            if body.get(key):
                raise E.InvalidArgument(
                    tr(
                        "tuning_job.{field}: only supervised tuning (supervisedTuningSpec) "
                        "is emulated",
                        "tuning_job.{field}: эмулятор моделирует только дообучение с учителем "
                        "(supervisedTuningSpec)",
                        field=_snake(key),
                    )
                )
        _unknown(body, _TOP_FIELDS | set(_OTHER_SPECS), "tuning_job")
        base = body.get("baseModel")
        if not base or not isinstance(base, str):
            raise E.InvalidArgument(
                tr(
                    "tuning_job.base_model: a base model is required, e.g. {base!r}",
                    "tuning_job.base_model: нужна базовая модель, например {base!r}",
                    base=catalog.DEFAULT_BASE,
                )
            )
        model = catalog.find(base)
        if model is None:
            known = ", ".join(m.model_id for m in catalog.MODELS)
            raise E.InvalidArgument(
                tr(
                    "tuning_job.base_model: {base!r} is not supported for supervised tuning; "
                    "supported base models: {known}",
                    "tuning_job.base_model: {base!r} нельзя дообучать с учителем; "
                    "поддерживаемые базовые модели: {known}",
                    base=base,
                    known=known,
                )
            )
        display = body.get("tunedModelDisplayName") or ""
        if not isinstance(display, str) or len(display) > MAX_DISPLAY_NAME:
            raise E.InvalidArgument(
                tr(
                    "tuning_job.tuned_model_display_name: at most {n} characters",
                    "tuning_job.tuned_model_display_name: не больше {n} символов",
                    n=MAX_DISPLAY_NAME,
                )
            )
        labels = body.get("labels") or {}
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise E.InvalidArgument(
                tr(
                    "tuning_job.labels: a map of strings to strings is required",
                    "tuning_job.labels: нужен словарь, где и ключи, и значения — строки",
                )
            )
        spec = body.get("supervisedTuningSpec")
        if not isinstance(spec, dict) or not spec:
            raise E.InvalidArgument(
                tr(
                    "tuning_job.supervised_tuning_spec: required (training_dataset_uri at least)",
                    "tuning_job.supervised_tuning_spec: обязательное поле (нужен хотя бы "
                    "training_dataset_uri)",
                )
            )
        if spec.get("evaluationConfig") is not None:
            raise E.InvalidArgument(
                "tuning_job.supervised_tuning_spec.evaluation_config: per-checkpoint evaluation "
                "(results in evaluate_dataset_runs) exists on the real service but is not "
                "emulated; the emulator reports the eval loss of a validation_dataset instead "
                "(tunelab.emulator.vertex.metrics)"
            )
        _unknown(spec, _SPEC_FIELDS, "tuning_job.supervised_tuning_spec")
        hp_raw = spec.get("hyperParameters") or {}
        if not isinstance(hp_raw, dict):
            raise E.InvalidArgument(
                tr(
                    "tuning_job.supervised_tuning_spec.hyper_parameters: object",
                    "tuning_job.supervised_tuning_spec.hyper_parameters: нужен объект",
                )
            )
        _unknown(hp_raw, _HP_FIELDS, "tuning_job.supervised_tuning_spec.hyper_parameters")
        hp_path = "tuning_job.supervised_tuning_spec.hyper_parameters"
        for key in ("batchSize", "learningRate"):
            if hp_raw.get(key) is not None:
                raise E.InvalidArgument(
                    tr(
                        "{path}.{field}: only available for open models; Gemini models are "
                        "tuned with learning_rate_multiplier (and epoch_count, adapter_size)",
                        "{path}.{field}: есть только у открытых моделей; модели Gemini "
                        "дообучают с learning_rate_multiplier (а также epoch_count, adapter_size)",
                        path=hp_path,
                        field=_snake(key),
                    )
                )
        epochs, multiplier, adapter = self._hyperparameters(hp_raw, model, hp_path)

        # The request is checked now (URI form, a .jsonl object that exists); the files'
        # contents while the job runs: a bad file fails the job, as on the real service.
        spec_path = "tuning_job.supervised_tuning_spec"
        train_uri = spec.get("trainingDatasetUri")
        train_field = f"{spec_path}.training_dataset_uri"
        train_bytes = self.buckets.read(_jsonl_uri(train_uri, train_field), train_field)
        val_uri = spec.get("validationDatasetUri") or None
        val_bytes = None
        if val_uri is not None:
            val_field = f"{spec_path}.validation_dataset_uri"
            val_bytes = self.buckets.read(_jsonl_uri(val_uri, val_field), val_field)
        dataset_error = None
        val_count = 0
        try:
            train = datasets.parse(train_bytes, train_uri, role="training")
            if val_bytes is not None:
                val_count = len(datasets.parse(val_bytes, val_uri, role="validation").examples)
        except E.ApiError as exc:
            dataset_error = exc.message
            train = datasets.Dataset(train_uri, [], [], [], [], 0)

        from tunelab import simulator as sim

        n = len(train.examples)
        batch = sim.default_hyperparameters(max(n, 1)).batch_size
        total = sim.total_steps(n, epochs, batch) if n else 0
        hp_seed = {"epochCount": epochs, "learningRateMultiplier": multiplier}
        seed_src = _dumps([catalog.model_id(base), train.examples, hp_seed])
        seed = int.from_bytes(hashlib.sha256(seed_src.encode()).digest()[:4], "big")
        with self._lock:
            now = self.clock()
            job_id = _numeric_id(project, location, len(self._jobs), now, seed)
            while job_id in self._jobs:  # pragma: no cover - astronomically unlikely
                job_id = _numeric_id(job_id)
            rec = VertexJobRecord(
                job_id=job_id,
                project=project,
                location=location,
                base_model=base,
                display_name=display,
                description=str(body.get("description") or ""),
                labels=dict(labels),
                training_uri=train_uri,
                validation_uri=val_uri,
                epoch_count=epochs,
                multiplier=multiplier,
                adapter_size=adapter,
                export_last_only=bool(spec.get("exportLastCheckpointOnly")),
                batch_size=batch,
                examples=train.examples,
                data_stats=datasets.data_stats(train, total) if n else {},
                create_time=now,
                pending_seconds=PENDING_SIM_SECONDS / self.time_scale,
                step_seconds=sim_step_seconds(batch) / self.time_scale,
                total_steps=total,
                seed=seed,
                validation_count=val_count,
                dataset_error=dataset_error,
            )
            if dataset_error is None:
                self.plan(rec)  # simulate now: a simulator error surfaces on create
            self._index(rec)
            self._save(rec)
        return rec

    def _hyperparameters(
        self, raw: Mapping[str, Any], model: catalog.VertexModel, path: str
    ) -> tuple[int, float, int]:
        epochs = 5
        if raw.get("epochCount") is not None:
            epochs = _int(raw["epochCount"], f"{path}.epoch_count")
            if not EPOCH_RANGE[0] <= epochs <= EPOCH_RANGE[1]:
                raise E.InvalidArgument(
                    tr(
                        "{path}.epoch_count: {epochs} is out of range; it must be between "
                        "{lo} and {hi} (emulator's limit)",
                        "{path}.epoch_count (число эпох): значение {epochs} вне допустимого "
                        "диапазона; нужно от {lo} до {hi} (предел эмулятора)",
                        path=path,
                        epochs=epochs,
                        lo=EPOCH_RANGE[0],
                        hi=EPOCH_RANGE[1],
                    )
                )
        multiplier = 1.0
        if raw.get("learningRateMultiplier") is not None:
            value = raw["learningRateMultiplier"]
            try:
                multiplier = float(value)
            except (TypeError, ValueError):
                multiplier = float("nan")
            if isinstance(value, bool) or not (
                math.isfinite(multiplier)
                and MULTIPLIER_RANGE[0] < multiplier <= MULTIPLIER_RANGE[1]
            ):
                raise E.InvalidArgument(
                    tr(
                        "{path}.learning_rate_multiplier: {value!r} is out of range; it must be "
                        "greater than 0 and at most {hi:g}",
                        "{path}.learning_rate_multiplier (множитель скорости обучения): значение "
                        "{value!r} вне допустимого диапазона; нужно больше 0 и не больше {hi:g}",
                        path=path,
                        value=value,
                        hi=MULTIPLIER_RANGE[1],
                    )
                )
        adapter = model.default_adapter
        if raw.get("adapterSize") not in (None, "ADAPTER_SIZE_UNSPECIFIED"):
            name = raw["adapterSize"]
            if name not in catalog.ADAPTER_SIZES:
                raise E.InvalidArgument(
                    tr(
                        "Invalid value at '{path}.adapter_size' ({type}), {name}",
                        "Недопустимое значение в '{path}.adapter_size' ({type}): {name}",
                        path=path,
                        type="type.googleapis.com/google.cloud.aiplatform.v1beta1."
                        "SupervisedHyperParameters.AdapterSize",
                        name=json.dumps(name),
                    )
                )
            adapter = catalog.ADAPTER_SIZES[name]
            if adapter not in model.adapter_sizes:
                allowed = ", ".join(catalog.adapter_name(s) for s in model.adapter_sizes)
                raise E.InvalidArgument(
                    tr(
                        "{path}.adapter_size: {name} is not supported for base model "
                        "{model}; supported adapter sizes: {allowed}",
                        "{path}.adapter_size: {name} не поддерживается для базовой модели "
                        "{model}; допустимые размеры адаптера: {allowed}",
                        path=path,
                        name=name,
                        model=model.model_id,
                        allowed=allowed,
                    )
                )
        return epochs, multiplier, adapter

    # --- read ------------------------------------------------------------------------------
    def get(self, job_id: str, project: str, location: str) -> VertexJobRecord:
        rec = self._jobs.get(job_id)
        if rec is None or rec.project != project or rec.location != location:
            name = f"projects/{project}/locations/{location}/tuningJobs/{job_id}"
            raise E.NotFound(
                tr(
                    "The TuningJob does not exist: {name}",
                    "Задания дообучения (TuningJob) не существует: {name}",
                    name=name,
                )
            )
        return rec

    def list(
        self, project: str, location: str, page_size: Any, page_token: Any
    ) -> tuple[list[VertexJobRecord], str | None]:
        with self._lock:
            recs = [
                r for r in self._jobs.values() if (r.project, r.location) == (project, location)
            ]
        recs.sort(key=_list_key)  # newest first, like the console
        return paginate(recs, page_size, page_token, default=50, key=_list_key)

    def records(self) -> list[VertexJobRecord]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda r: (r.create_time, r.job_id))

    def endpoint(
        self, endpoint_id: str, project: str, location: str
    ) -> tuple[VertexJobRecord, int]:
        """The job and checkpoint epoch an endpoint serves; NotFound until it is deployed."""
        hit = self._endpoints.get(endpoint_id)
        name = f"projects/{project}/locations/{location}/endpoints/{endpoint_id}"
        if hit is not None:
            rec = self._jobs[hit[0]]
            if (rec.project, rec.location) == (project, location):
                epochs = [e for e, _ in self.checkpoints(rec)]
                if hit[1] in epochs:
                    return rec, hit[1]
        raise E.NotFound(
            tr("Endpoint `{name}` not found.", "Эндпоинт `{name}` не найден.", name=name)
        )

    def plan(self, rec: VertexJobRecord) -> Plan:
        key = f"{rec.job_id}|{rec.create_time!r}|{rec.seed}"
        plan = self._plans.get(key)
        if plan is not None:
            self._plans.move_to_end(key)
            return plan
        run = _default_simulate(rec.examples, rec.hyperparameters, rec.seed)
        epochs = np.asarray(run.epoch)
        ends = [
            int(np.searchsorted(epochs, e, side="right")) for e in range(1, rec.epoch_count + 1)
        ]
        diverged = getattr(run, "diverged_step", None)
        stop = rec.total_steps if diverged is None else max(1, min(int(diverged), rec.total_steps))
        failure = None if diverged is None else (run.failure or f"training diverged at step {stop}")
        memory: dict[str, str] = {}
        for prompt, answer in rec.examples:
            memory.setdefault(normalise_prompt(prompt), answer)
        plan = Plan(run, stop, failure, ends, memory, trained_domain(rec.examples))
        parts: list[str] = []
        ends_json = [0]
        length = 0
        for i in range(stop):
            loss = float(run.mean_loss[i])
            if not math.isfinite(loss):
                break
            t = rfc3339(rec.create_time + rec.pending_seconds + (i + 1) * rec.step_seconds)
            frag = (
                f'{{"step":{int(run.step[i])},"epoch":{int(run.epoch[i])},'
                f'"loss":{loss:.7g},"time":"{t}"}}'
            )
            length += len(frag) + (1 if parts else 0)
            parts.append(frag)
            ends_json.append(length)
        plan.train_blob, plan.train_ends = ",".join(parts), ends_json
        with self._lock:
            self._plans[key] = plan
            while len(self._plans) > self._cache_size:
                self._plans.popitem(last=False)
        return plan

    def progress(self, rec: VertexJobRecord, now: float | None = None) -> Progress:
        """Where the job is at ``now``: its state, detail state and completed steps."""
        now = self.clock() if now is None else now
        cancel = rec.cancel_time
        if cancel is None or now < cancel:
            return self._natural(rec, now)
        at_cancel = self._natural(rec, cancel)  # training froze when the cancel arrived
        done_at = cancel + rec.pending_seconds * CANCELLING_FRACTION
        if now < done_at:
            return Progress(
                CANCELLING,
                at_cancel.completed_steps,
                at_cancel.epochs_done,
                at_cancel.start_time,
                None,
                cancel,
            )
        return Progress(
            CANCELLED,
            at_cancel.completed_steps,
            at_cancel.epochs_done,
            at_cancel.start_time,
            done_at,
            done_at,
        )

    def _natural(self, rec: VertexJobRecord, now: float) -> Progress:
        """The job's progress at ``now`` had nobody cancelled it."""
        queued_end = rec.create_time + rec.pending_seconds * QUEUED_FRACTION
        dataset_end = rec.create_time + rec.pending_seconds * DATASET_FRACTION
        start = rec.create_time + rec.pending_seconds
        if now < queued_end:
            return Progress(PENDING, 0, 0, None, None, rec.create_time)
        if now < dataset_end:
            return Progress(RUNNING, 0, 0, queued_end, None, queued_end, PROCESSING_DATASET)
        if rec.dataset_error is not None:
            return Progress(FAILED, 0, 0, queued_end, dataset_end, dataset_end)
        if now < start:
            return Progress(RUNNING, 0, 0, queued_end, None, dataset_end, WAITING_FOR_CAPACITY)
        plan = self.plan(rec)
        done = min(plan.stop_step, int(max(0.0, now - start) / rec.step_seconds + 1e-9))
        epochs_done = sum(1 for end in plan.epoch_end if end <= done)
        trained = start + plan.stop_step * rec.step_seconds
        if done < plan.stop_step:
            update = start + done * rec.step_seconds
            return Progress(RUNNING, done, epochs_done, queued_end, None, update, TUNING)
        if plan.failure:
            return Progress(FAILED, done, 0, queued_end, trained, trained)
        finish = trained + rec.pending_seconds * POST_FRACTION
        if now < finish:
            return Progress(RUNNING, done, epochs_done, queued_end, None, trained, POST_PROCESSING)
        return Progress(SUCCEEDED, done, epochs_done, queued_end, finish, finish)

    def checkpoints(
        self, rec: VertexJobRecord, prog: Progress | None = None
    ) -> list[tuple[int, int]]:
        """(epoch, step) of the checkpoints the job exposes now."""
        prog = self.progress(rec) if prog is None else prog
        if prog.state not in (SUCCEEDED, CANCELLED) or prog.epochs_done == 0:
            return []
        plan = self.plan(rec)
        out = [(e, plan.epoch_end[e - 1]) for e in range(1, prog.epochs_done + 1)]
        return out[-1:] if rec.export_last_only else out

    # --- cancel ----------------------------------------------------------------------------
    def cancel(self, rec: VertexJobRecord) -> None:
        with self._lock:
            prog = self.progress(rec)
            if prog.state == CANCELLING:
                return  # already being cancelled (the emulator: a repeated cancel is a no-op)
            if prog.state in TERMINAL:
                raise E.FailedPrecondition(
                    tr(
                        "Cannot cancel tuning job {name} in state {state}; only pending "
                        "or running jobs can be cancelled.",
                        "Нельзя отменить задание дообучения {name} в состоянии {state}: отменить "
                        "можно только задание, которое ждёт запуска или выполняется.",
                        name=rec.name,
                        state=prog.state,
                    )
                )
            rec.cancel_time = self.clock()
            self._save(rec)

    # --- rendering -------------------------------------------------------------------------
    def job_dict(self, rec: VertexJobRecord, now: float | None = None) -> dict[str, Any]:
        prog = self.progress(rec, now)
        out: dict[str, Any] = {"name": rec.name}
        if rec.display_name:
            out["tunedModelDisplayName"] = rec.display_name
        if rec.description:
            out["description"] = rec.description
        out["baseModel"] = rec.base_model
        spec: dict[str, Any] = {"trainingDatasetUri": rec.training_uri}
        if rec.validation_uri:
            spec["validationDatasetUri"] = rec.validation_uri
        spec["hyperParameters"] = {
            "epochCount": str(rec.epoch_count),
            "learningRateMultiplier": rec.multiplier,
            "adapterSize": catalog.adapter_name(rec.adapter_size),
        }
        if rec.export_last_only:
            spec["exportLastCheckpointOnly"] = True
        out["supervisedTuningSpec"] = spec
        out["state"] = prog.state
        if prog.detail is not None:
            out["tuningJobState"] = prog.detail
        out["createTime"] = rfc3339(rec.create_time)
        if prog.start_time is not None:
            out["startTime"] = rfc3339(prog.start_time)
        if prog.end_time is not None:
            out["endTime"] = rfc3339(prog.end_time)
        out["updateTime"] = rfc3339(prog.update_time)
        if prog.state == FAILED and rec.dataset_error is not None:
            out["error"] = {"code": E.InvalidArgument.grpc_code, "message": rec.dataset_error}
        elif prog.state == FAILED:
            out["error"] = {"code": E.Internal.grpc_code, "message": self.plan(rec).failure}
        elif prog.state == CANCELLED:
            out["error"] = {"code": 1, "message": "CANCELED"}
        if rec.labels:
            out["labels"] = rec.labels
        ckpts = self.checkpoints(rec, prog)
        if ckpts:
            out["tunedModel"] = {
                "model": rec.model_name,
                "endpoint": rec.endpoint(ckpts[-1][0]),
                "checkpoints": [
                    {
                        "checkpointId": str(e),
                        "epoch": str(e),
                        "step": str(s),
                        "endpoint": rec.endpoint(e),
                    }
                    for e, s in ckpts
                ],
            }
        if prog.start_time is not None and rec.dataset_error is None:
            out["tuningDataStats"] = rec.data_stats
            out["experiment"] = (
                f"{rec.parent}/metadataStores/default/contexts/tuning-experiment-{rec.job_id}"
            )
            out["tuningJobMetadata"] = {"completedEpochCount": str(prog.epochs_done)}
        return out

    def job_json(self, rec: VertexJobRecord, now: float | None = None) -> str:
        prog = self.progress(rec, now)
        if rec.dataset_error is not None:
            return _dumps(self.job_dict(rec, now))
        plan = self.plan(rec)
        key = (prog.state, prog.detail, prog.completed_steps, prog.update_time, rec.cancel_time)
        cached = plan.cache.get("job")
        if cached is not None and cached[0] == key:
            return cached[1]
        text = _dumps(self.job_dict(rec, now))
        plan.cache["job"] = (key, text)
        return text

    def metrics_json(self, rec: VertexJobRecord, now: float | None = None) -> str:
        """EMULATOR-ONLY: the loss curves Vertex shows in the console / Vertex AI Experiments.

        ``trainingLoss``: one point per completed step; ``validationLoss``: one per completed
        epoch, only when the job has a validation dataset.
        """
        prog = self.progress(rec, now)
        if rec.dataset_error is not None:  # the job failed before its first step
            out = '{"emulatorOnly":true,"name":' + json.dumps(rec.name)
            out += ',"state":"' + prog.state + '","trainingLoss":[]'
            return out + (',"validationLoss":[]}' if rec.validation_uri else "}")
        plan = self.plan(rec)
        k = min(prog.completed_steps, len(plan.train_ends) - 1)
        out = '{"emulatorOnly":true,"name":' + json.dumps(rec.name)
        out += ',"state":"' + prog.state + '","trainingLoss":['
        out += plan.train_blob[: plan.train_ends[k]] + "]"
        if rec.validation_uri:
            vals = []
            for e in range(1, prog.epochs_done + 1):
                loss = float(plan.run.validation_loss[e - 1])
                if math.isfinite(loss):
                    step = plan.epoch_end[e - 1]
                    vals.append(f'{{"epoch":{e},"step":{step},"loss":{loss:.7g}}}')
            out += ',"validationLoss":[' + ",".join(vals) + "]"
        return out + "}"

    def quality(self, rec: VertexJobRecord, epoch: int) -> float:
        """Simulated held-out quality of the checkpoint after ``epoch``."""
        return float(self.plan(rec).run.heldout_quality[epoch - 1])


def _jsonl_uri(uri: Any, field: str) -> str:
    """The request-time check of a dataset URI: a ``gs://`` URI of a ``.jsonl`` object."""
    from tunelab.emulator.vertex.buckets import parse_gs_uri

    parse_gs_uri(uri, field)
    if not str(uri).lower().endswith(".jsonl"):
        raise E.InvalidArgument(
            tr(
                "{field}: {uri!r} is not a JSONL file; the dataset must be a .jsonl object in "
                "Cloud Storage (gs://BUCKET/PATH.jsonl)",
                "{field}: {uri!r} — не файл JSONL; набор данных для дообучения должен быть "
                "объектом .jsonl в Cloud Storage (gs://BUCKET/PATH.jsonl)",
                field=field,
                uri=uri,
            )
        )
    return str(uri)


def _list_key(rec: VertexJobRecord) -> list[Any]:
    return [-rec.create_time, rec.job_id]


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _unknown(obj: Mapping[str, Any], allowed: set[str], path: str) -> None:
    for key in obj:
        if key not in allowed:
            raise E.InvalidArgument(
                tr(
                    "Invalid JSON payload received. Unknown name \"{name}\" at '{path}': "
                    "Cannot find field.",
                    "Получен некорректный JSON: неизвестное поле \"{name}\" в '{path}'.",
                    name=_snake(key),
                    path=path,
                )
            )


def _bad_int(path: str, value: Any) -> str:
    return tr(
        "Invalid value at '{path}' (TYPE_INT64), {value}",
        "Недопустимое значение в '{path}' (нужно целое число, TYPE_INT64): {value}",
        path=path,
        value=json.dumps(value),
    )


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool):
        raise E.InvalidArgument(_bad_int(path, value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise E.InvalidArgument(_bad_int(path, value)) from None
    if not number.is_integer():
        raise E.InvalidArgument(_bad_int(path, value))
    return int(number)

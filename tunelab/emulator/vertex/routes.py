"""HTTP handlers of the emulated Vertex AI tuning service (mounted by :mod:`..app`).

=======  =====================================================================  =================
POST     /{v}/projects/P/locations/L/tuningJobs                                 CreateTuningJob
GET      /{v}/projects/P/locations/L/tuningJobs (pageSize, pageToken)           ListTuningJobs
GET      /{v}/projects/P/locations/L/tuningJobs/ID                              GetTuningJob
POST     /{v}/projects/P/locations/L/tuningJobs/ID:cancel                       CancelTuningJob
GET      /{v}/projects/P/locations/L/tuningJobs/ID:emulatorMetrics              EMULATOR-ONLY
POST     /{v}/projects/P/locations/L/endpoints/E:generateContent                a checkpoint
POST     /{v}/projects/P/locations/L/endpoints/E:streamGenerateContent          ... streamed
POST     /{v}/projects/P/locations/L/endpoints/E:countTokens                    CountTokens
POST     /{v}/projects/P/locations/L/publishers/google/models/M:generateContent base model
POST     /upload/storage/v1/b/BUCKET/o?uploadType=media&name=OBJECT             GCS media upload
=======  =====================================================================  =================

``{v}`` is ``v1`` or ``v1beta1``. Express mode (an API key instead of OAuth credentials) drops
the ``projects/P/locations/L/`` prefix: ``/v1beta1/tuningJobs``, ``/v1beta1/publishers/...``.
Errors use the Google JSON error shape of :mod:`tunelab.emulator.errors`, so google-genai
raises its real ``errors.ClientError`` (4xx) / ``errors.ServerError`` (5xx).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tunelab.emulator import errors as E
from tunelab.emulator import generation
from tunelab.emulator.store import _dumps
from tunelab.emulator.vertex import catalog
from tunelab.emulator.vertex.store import (
    EXPRESS_LOCATION,
    VertexStore,
    express_project,
    project_number,
)
from tunelab.i18n import tr

JSON_TYPE = "application/json; charset=UTF-8"
_SEG = r"([^/:]+)"
_PARENT = rf"(?:projects/{_SEG}/locations/{_SEG}/)?"
_VERTEX_PATH = re.compile(
    r"/(?:v1beta1/.*|v1/(?:projects|tuningJobs|endpoints|publishers)(?:[/:].*)?|"
    r"upload/storage/.*|storage/.*)"
)


def _no_auth() -> str:
    return tr(
        "Request is missing required authentication credential. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential. (The emulator accepts any bearer "
        "token or API key, e.g. google.oauth2.credentials.Credentials(token='offline-emulator').)",
        "В запросе нет обязательных учётных данных: нужен токен доступа OAuth 2, cookie входа "
        "или другие действительные учётные данные. (Эмулятор принимает любой bearer-токен или "
        "ключ API, например google.oauth2.credentials.Credentials(token='offline-emulator').)",
    )


Handler = Callable[..., Any]


class Call:
    """What a Vertex handler needs from the request."""

    def __init__(self, request: Request, body: bytes, version: str) -> None:
        self.query = request.query_params
        self.headers = request.headers
        self.version = version
        self.body = body

    def json(self) -> dict:
        if not self.body.strip():
            return {}
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise E.InvalidArgument(
                tr(
                    "Invalid JSON payload received. {exc}",
                    "Получен некорректный JSON. {exc}",
                    exc=exc,
                )
            ) from None
        if not isinstance(data, dict):
            raise E.InvalidArgument(
                tr(
                    "Invalid JSON payload received. Expected an object.",
                    "Получен некорректный JSON: ожидался объект.",
                )
            )
        return data

    def api_key(self) -> str:
        return self.headers.get("x-goog-api-key") or self.query.get("key") or ""


class VertexApi:
    """Routes and handlers bound to one :class:`VertexStore`."""

    def __init__(self, store: VertexStore) -> None:
        self.store = store
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        for method, pattern, handler in (
            ("POST", "tuningJobs", self.create),
            ("GET", "tuningJobs", self.list),
            ("GET", f"tuningJobs/{_SEG}", self.get),
            ("POST", f"tuningJobs/{_SEG}:cancel", self.cancel),
            ("GET", f"tuningJobs/{_SEG}:emulatorMetrics", self.metrics),
            ("POST", f"endpoints/{_SEG}:generateContent", self.generate_endpoint),
            ("POST", f"endpoints/{_SEG}:streamGenerateContent", self.stream_endpoint),
            ("POST", f"endpoints/{_SEG}:countTokens", self.count_tokens_endpoint),
            ("POST", f"publishers/google/models/{_SEG}:generateContent", self.generate_base),
            ("POST", f"publishers/google/models/{_SEG}:streamGenerateContent", self.stream_base),
            ("POST", f"publishers/google/models/{_SEG}:countTokens", self.count_tokens_base),
        ):
            self.routes.append((method, re.compile(rf"/(v1beta1|v1)/{_PARENT}{pattern}"), handler))
        self.routes.append(
            ("POST", re.compile(r"/upload/storage/(v1)/b/([^/]+)/o"), self.upload_object)
        )

    # --- dispatch --------------------------------------------------------------------------
    @staticmethod
    def owns(path: str) -> bool:
        """Whether a path belongs to Vertex AI / Cloud Storage (not the Gemini API)."""
        return _VERTEX_PATH.fullmatch(path) is not None

    def find(self, method: str, path: str) -> tuple[Handler, str, tuple[Any, ...]]:
        matched = False
        for m, regex, handler in self.routes:
            match = regex.fullmatch(path)
            if match is None:
                continue
            if m == method:
                return handler, match.group(1), match.groups()[1:]
            matched = True
        if matched:
            raise E.NotFound(
                tr(
                    "Method {method} is not supported for {path}.",
                    "Метод {method} не поддерживается для {path}.",
                    method=method,
                    path=path,
                )
            )
        raise E.NotFound(
            tr(
                "The requested URL {path} was not found on this server. (The emulator serves "
                "Vertex AI tuningJobs, endpoints/*:generateContent and "
                "publishers/google/models/*:generateContent under /v1 and /v1beta1.)",
                "Запрошенный URL {path} не найден на этом сервере. (Эмулятор обслуживает "
                "tuningJobs Vertex AI, endpoints/*:generateContent и "
                "publishers/google/models/*:generateContent в /v1 и /v1beta1.)",
                path=path,
            )
        )

    async def dispatch(self, request: Request) -> Response:
        try:
            path = request.url.path
            handler, version, args = self.find(request.method, path)
            headers = request.headers
            if not (
                headers.get("authorization")
                or headers.get("x-goog-api-key")
                or request.query_params.get("key")
            ):
                raise E.Unauthenticated(_no_auth())
            body = await request.body() if request.method == "POST" else b""
            result = handler(Call(request, body, version), *args)
        except E.ApiError as err:
            return Response(content=err.to_json(), status_code=err.code, media_type=JSON_TYPE)
        if isinstance(result, Response):
            return result
        return Response(content=result, media_type=JSON_TYPE)

    def _parent(self, req: Call, project: str | None, location: str | None) -> tuple[str, str]:
        if project is None:
            key = req.api_key()
            if not key:
                raise E.InvalidArgument(
                    tr(
                        "Express mode (a path without projects/P/locations/L) needs an API key; "
                        "with OAuth credentials pass project= and location= to genai.Client",
                        "Экспресс-режиму (путь без projects/P/locations/L) нужен ключ API; с "
                        "учётными данными OAuth передайте genai.Client параметры project= и "
                        "location=",
                    )
                )
            return express_project(key), EXPRESS_LOCATION
        return project_number(project), location or ""

    # --- tuning jobs -----------------------------------------------------------------------
    def create(self, req: Call, project: str | None, location: str | None) -> str:
        number, loc = self._parent(req, project, location)
        rec = self.store.create(req.json(), number, loc)
        return self.store.job_json(rec)

    def list(self, req: Call, project: str | None, location: str | None) -> str:
        number, loc = self._parent(req, project, location)
        if (req.query.get("filter") or "").strip():
            raise E.InvalidArgument(
                tr(
                    "filter: the emulator does not implement list filters; list all jobs and "
                    "filter them in Python",
                    "filter: эмулятор не поддерживает фильтры списка; получите все задания и "
                    "отфильтруйте их в Python",
                )
            )
        recs, token = self.store.list(
            number, loc, req.query.get("pageSize"), req.query.get("pageToken")
        )
        out = '{"tuningJobs":[' + ",".join(self.store.job_json(r) for r in recs) + "]"
        if token:
            out += ',"nextPageToken":' + json.dumps(token)
        return out + "}"

    def _job(self, req: Call, project: str | None, location: str | None, job_id: str) -> Any:
        number, loc = self._parent(req, project, location)
        return self.store.get(job_id, number, loc)

    def get(self, req: Call, project: str | None, location: str | None, job_id: str) -> str:
        return self.store.job_json(self._job(req, project, location, job_id))

    def cancel(self, req: Call, project: str | None, location: str | None, job_id: str) -> str:
        self.store.cancel(self._job(req, project, location, job_id))
        return "{}"

    def metrics(self, req: Call, project: str | None, location: str | None, job_id: str) -> str:
        return self.store.metrics_json(self._job(req, project, location, job_id))

    # --- generation ------------------------------------------------------------------------
    def _generate_endpoint(
        self, req: Call, project: str | None, location: str | None, endpoint_id: str
    ) -> dict:
        number, loc = self._parent(req, project, location)
        rec, epoch = self.store.endpoint(endpoint_id, number, loc)
        plan = self.store.plan(rec)
        body = req.json()
        prompt = generation.contents_text(body.get("contents"))
        text = generation.answer(
            # One draw per (tuned model, prompt), shared by all checkpoints: a better checkpoint
            # answers every question a worse one answers, plus some.
            rec.model_name,
            prompt,
            quality=self.store.quality(rec, epoch),
            memory=plan.memory,
            trained_domain=plan.domain,
        )
        return _response(body, text, catalog.model_id(rec.base_model))

    def generate_endpoint(self, req: Call, *args: Any) -> str:
        return _dumps(self._generate_endpoint(req, *args))

    def stream_endpoint(self, req: Call, *args: Any) -> Response:
        return _stream(req, self._generate_endpoint(req, *args))

    def count_tokens_endpoint(
        self, req: Call, project: str | None, location: str | None, endpoint_id: str
    ) -> str:
        number, loc = self._parent(req, project, location)
        self.store.endpoint(endpoint_id, number, loc)
        return json.dumps({"totalTokens": _count(req.json())})

    def _base(self, model: str) -> catalog.VertexModel:
        found = catalog.find(model)
        if found is None:
            raise E.NotFound(
                tr(
                    "Publisher Model `publishers/google/models/{model}` was not found or your "
                    "project does not have access to it. (Emulator models: {known})",
                    "Модель издателя `publishers/google/models/{model}` не найдена, или у "
                    "вашего проекта нет к ней доступа. (Модели эмулятора: {known})",
                    model=model,
                    known=", ".join(m.model_id for m in catalog.MODELS),
                )
            )
        return found

    def _generate_base(self, req: Call, project: Any, location: Any, model: str) -> dict:
        self._parent(req, project, location)
        base = self._base(model)
        body = req.json()
        prompt = generation.contents_text(body.get("contents"))
        text = generation.answer(f"publishers/google/models/{base.model_id}", prompt)
        return _response(body, text, base.model_id)

    def generate_base(self, req: Call, *args: Any) -> str:
        return _dumps(self._generate_base(req, *args))

    def stream_base(self, req: Call, *args: Any) -> Response:
        return _stream(req, self._generate_base(req, *args))

    def count_tokens_base(self, req: Call, project: Any, location: Any, model: str) -> str:
        self._base(model)
        return json.dumps({"totalTokens": _count(req.json())})

    # --- Cloud Storage stand-in ------------------------------------------------------------
    def upload_object(self, req: Call, bucket: str) -> str:
        if req.query.get("uploadType", "media") != "media":
            raise E.InvalidArgument(
                tr(
                    "uploadType: the emulator implements uploadType=media only",
                    "uploadType: эмулятор поддерживает только uploadType=media",
                )
            )
        name = req.query.get("name")
        if not name:
            raise E.InvalidArgument(
                tr(
                    "name: the object name is required (?name=path/file.jsonl)",
                    "name: нужно имя объекта (?name=path/file.jsonl)",
                )
            )
        self.store.buckets.write(bucket, name, req.body)
        return json.dumps(
            {
                "kind": "storage#object",
                "id": f"{bucket}/{name}",
                "name": name,
                "bucket": bucket,
                "size": str(len(req.body)),
                "contentType": req.headers.get("content-type") or "application/octet-stream",
                "mediaLink": f"gs://{bucket}/{name}",
            }
        )


def _response(body: dict, text: str, model_version: str) -> dict:
    config = body.get("generationConfig") or body.get("generation_config") or {}
    return generation.generate_response(
        text,
        generation.count_tokens(generation.all_text(body.get("contents"))),
        model_version,
        config.get("maxOutputTokens"),
    )


def _stream(req: Call, payload: dict) -> Response:
    if req.query.get("alt") == "sse":
        return Response(
            content="data: " + json.dumps(payload) + "\r\n\r\n", media_type="text/event-stream"
        )
    return Response(content="[" + json.dumps(payload) + "]", media_type=JSON_TYPE)


def _count(body: dict) -> int:
    parts = [body.get("contents"), body.get("systemInstruction")]
    return generation.count_tokens(generation.all_text(parts))

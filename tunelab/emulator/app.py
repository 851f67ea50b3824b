"""HTTP <-> store: the Generative Language REST API (v1beta, mirrored under v1) on FastAPI.

One catch-all route dispatches on a regex table (moto's ``responses.py`` style). That keeps
Google's URL shapes (``models/x:generateContent``) explicit, serves every path under both
``/v1beta`` (google-generativeai) and ``/v1`` (google-genai's default API version), and makes
every failure -- even an unknown URL -- a Google-style JSON error the SDKs can map to their
exception classes.

Served:

=======  ==============================================  ======================================
GET      /v1beta/models                                  ListModels (pageSize, pageToken)
GET      /v1beta/models/{m}                              GetModel
POST     /v1beta/models/{m}:generateContent              GenerateContent (base model)
POST     /v1beta/models/{m}:streamGenerateContent        ... as a one-chunk stream (alt=sse too)
POST     /v1beta/models/{m}:countTokens                  CountTokens
POST     /v1beta/tunedModels?tunedModelId=ID             CreateTunedModel -> Operation
GET      /v1beta/tunedModels                             ListTunedModels (pageSize, pageToken)
GET      /v1beta/tunedModels/{id}                        GetTunedModel
PATCH    /v1beta/tunedModels/{id}?updateMask=...         UpdateTunedModel
DELETE   /v1beta/tunedModels/{id}                        DeleteTunedModel
POST     /v1beta/tunedModels/{id}:generateContent        GenerateContent (tuned model)
POST     /v1beta/tunedModels/{id}:streamGenerateContent  ... streamed
POST     /v1beta/tunedModels/{id}:countTokens            CountTokens
GET      /v1beta/tunedModels/{id}/operations             ListOperations of one model
GET      /v1beta/tunedModels/{id}/operations/{op}        GetOperation
GET      /v1beta/operations                              ListOperations (all tuning operations)
POST     /v1/tunedModels/{id}/operations/{op}:cancel     CancelOperation (v1 only, as Google)
=======  ==============================================  ======================================
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.routing import Route

from tunelab.emulator import catalog, generation
from tunelab.emulator import errors as E
from tunelab.emulator.store import Plan, Store, TunedModelRecord, paginate
from tunelab.emulator.vertex.routes import VertexApi
from tunelab.emulator.vertex.store import VertexStore
from tunelab.i18n import tr

JSON_TYPE = "application/json; charset=UTF-8"
_METHODS = ("GET", "POST", "PATCH", "DELETE", "PUT")
_WITH_BODY = frozenset({"POST", "PATCH", "PUT"})

_SEG = r"([^/:]+)"
Handler = Callable[..., Any]


class Api:
    """The request handlers, bound to one :class:`Store`."""

    def __init__(self, store: Store, *, poll_delay: float = 0.0) -> None:
        self.store = store
        self.poll_delay = poll_delay
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        for method, pattern, handler in (
            ("GET", "models", self.list_models),
            ("GET", f"models/{_SEG}", self.get_model),
            ("POST", f"models/{_SEG}:generateContent", self.generate_base),
            ("POST", f"models/{_SEG}:streamGenerateContent", self.stream_base),
            ("POST", f"models/{_SEG}:countTokens", self.count_tokens_base),
            ("POST", "tunedModels", self.create_tuned_model),
            ("GET", "tunedModels", self.list_tuned_models),
            ("GET", f"tunedModels/{_SEG}", self.get_tuned_model),
            ("PATCH", f"tunedModels/{_SEG}", self.update_tuned_model),
            ("DELETE", f"tunedModels/{_SEG}", self.delete_tuned_model),
            ("POST", f"tunedModels/{_SEG}:generateContent", self.generate_tuned),
            ("POST", f"tunedModels/{_SEG}:streamGenerateContent", self.stream_tuned),
            ("POST", f"tunedModels/{_SEG}:countTokens", self.count_tokens_tuned),
            ("GET", f"tunedModels/{_SEG}/operations", self.list_model_operations),
            ("GET", f"tunedModels/{_SEG}/operations/{_SEG}", self.get_operation),
            ("POST", f"tunedModels/{_SEG}/operations/{_SEG}:cancel", self.cancel_operation),
            ("GET", "operations", self.list_operations),
        ):
            self.routes.append((method, re.compile(rf"/(v1beta|v1)/{pattern}"), handler))

    # --- dispatch --------------------------------------------------------------------------
    def find(self, method: str, path: str) -> tuple[Handler, str, tuple[str, ...]]:
        """The handler for a request, the API version it used and the path's ids."""
        path_matched = False
        for m, regex, handler in self.routes:
            match = regex.fullmatch(path)
            if match is None:
                continue
            if m == method:
                return handler, match.group(1), match.groups()[1:]
            path_matched = True
        if path_matched:
            raise E.NotFound(
                tr(
                    "Method {method} is not supported for {path}.",
                    "Метод {method} не поддерживается для {path}.",
                    method=method,
                    path=path,
                )
            )
        if not re.match(r"/(v1beta|v1)/", path):
            raise E.NotFound(
                tr(
                    "{path} is not a Generative Language API path; the emulator serves "
                    "/v1beta/... and /v1/... (e.g. /v1beta/tunedModels)",
                    "{path} — не путь Generative Language API; эмулятор обслуживает "
                    "/v1beta/... и /v1/... (например, /v1beta/tunedModels)",
                    path=path,
                )
            )
        raise E.NotFound(
            tr(
                "The requested URL {path} was not found on this server.",
                "Запрошенный URL {path} не найден на этом сервере.",
                path=path,
            )
        )

    # --- models ----------------------------------------------------------------------------
    def list_models(self, req: Call) -> str:
        page, token = paginate(
            list(catalog.BASE_MODELS),
            req.query.get("pageSize"),
            req.query.get("pageToken"),
            default=50,
            key=lambda m: [catalog.BASE_MODELS.index(m)],
        )
        out: dict[str, Any] = {"models": [m.to_json() for m in page]}
        if token:
            out["nextPageToken"] = token
        return json.dumps(out)

    def _base(self, req: Call, model: str) -> catalog.BaseModel:
        found = catalog.find(model)
        if found is None:
            raise E.NotFound(
                tr(
                    "models/{model} is not found for API version {version}, or is not "
                    "supported for this method. Call ListModels to see the list of available "
                    "models and their supported methods.",
                    "Модель models/{model} не найдена в версии API {version} или не поддерживает "
                    "этот метод. Вызовите ListModels, чтобы увидеть список доступных моделей и их "
                    "методов.",
                    model=model,
                    version=req.version,
                )
            )
        return found

    def get_model(self, req: Call, model: str) -> str:
        return json.dumps(self._base(req, model).to_json())

    def generate_base(self, req: Call, model: str) -> str:
        return json.dumps(self._generate_base(req, model))

    def _generate_base(self, req: Call, model: str) -> dict:
        base = self._base(req, model)
        body = req.json()
        prompt = generation.contents_text(body.get("contents"))
        return _response(
            body, generation.answer(base.name, prompt), base.name.removeprefix("models/")
        )

    def stream_base(self, req: Call, model: str) -> Response:
        return _stream(req, self._generate_base(req, model))

    def count_tokens_base(self, req: Call, model: str) -> str:
        self._base(req, model)
        return json.dumps({"totalTokens": _count_request(req.json())})

    # --- tuned models ----------------------------------------------------------------------
    def create_tuned_model(self, req: Call) -> str:
        rec = self.store.create(req.json(), req.query.get("tunedModelId"))
        return self.store.operation_json(rec)

    def list_tuned_models(self, req: Call) -> str:
        records, token = self.store.list(req.query.get("pageSize"), req.query.get("pageToken"))
        return _page("tunedModels", [self.store.tuned_model_json(r) for r in records], token)

    def get_tuned_model(self, req: Call, model_id: str) -> str:
        return self.store.tuned_model_json(self.store.get(model_id))

    def update_tuned_model(self, req: Call, model_id: str) -> str:
        mask_raw = req.query.get("updateMask") or req.query.get("update_mask")
        paths = [p for p in (mask_raw or "").split(",") if p.strip()]
        paths += req.query_all("updateMask.paths") + req.query_all("update_mask.paths")
        rec = self.store.update(model_id, req.json(), paths)
        return self.store.tuned_model_json(rec)

    def delete_tuned_model(self, req: Call, model_id: str) -> str:
        self.store.delete(model_id)
        return "{}"

    def _tuned_ready(self, model_id: str) -> tuple[TunedModelRecord, Plan]:
        rec = self.store.get(model_id)
        plan = self.store.plan(rec)
        prog = self.store.progress(rec, plan=plan)
        if prog.state != "ACTIVE":
            if prog.state == "CREATING":
                extra = tr(
                    "it is still being tuned ({done}/{total} steps); wait until its state is "
                    "ACTIVE",
                    "она ещё настраивается (шаг {done} из {total}); дождитесь состояния ACTIVE",
                    done=prog.completed_steps,
                    total=rec.total_steps,
                )
            else:
                extra = tr(
                    "its tuning job failed; create a new tuned model",
                    "её задание дообучения завершилось с ошибкой; создайте новую дообученную "
                    "модель",
                )
            raise E.FailedPrecondition(
                tr(
                    "Tuned model {name} is not ready: {extra}.",
                    "Дообученная модель {name} не готова: {extra}.",
                    name=rec.name,
                    extra=extra,
                )
            )
        return rec, plan

    def _generate_tuned(self, req: Call, model_id: str) -> dict:
        rec, plan = self._tuned_ready(model_id)
        body = req.json()
        prompt = generation.contents_text(body.get("contents"))
        if "domain" not in plan.extras:
            plan.extras["domain"] = generation.trained_domain(rec.examples)
        text = generation.answer(
            rec.name,
            prompt,
            quality=float(plan.run.final_quality),
            memory=plan.memory,
            trained_domain=plan.extras["domain"],
        )
        return _response(body, text, rec.name)

    def generate_tuned(self, req: Call, model_id: str) -> str:
        return json.dumps(self._generate_tuned(req, model_id))

    def stream_tuned(self, req: Call, model_id: str) -> Response:
        return _stream(req, self._generate_tuned(req, model_id))

    def count_tokens_tuned(self, req: Call, model_id: str) -> str:
        self.store.get(model_id)
        return json.dumps({"totalTokens": _count_request(req.json())})

    # --- operations ------------------------------------------------------------------------
    def _operation_record(self, model_id: str, op_id: str) -> TunedModelRecord:
        try:
            rec = self.store.get(model_id)
        except E.NotFound:
            rec = None
        if rec is None or rec.operation_id != op_id:
            raise E.NotFound(
                tr(
                    "Operation tunedModels/{model_id}/operations/{op_id} does not exist.",
                    "Операция tunedModels/{model_id}/operations/{op_id} не существует.",
                    model_id=model_id,
                    op_id=op_id,
                )
            )
        return rec

    async def get_operation(self, req: Call, model_id: str, op_id: str) -> str:
        rec = self._operation_record(model_id, op_id)
        if self.poll_delay:
            await asyncio.sleep(self.poll_delay)
        return self.store.operation_json(rec)

    def list_model_operations(self, req: Call, model_id: str) -> str:
        rec = self.store.get(model_id)
        return '{"operations":[' + self.store.operation_json(rec) + "]}"

    def list_operations(self, req: Call) -> str:
        records, token = self.store.list(req.query.get("pageSize"), req.query.get("pageToken"))
        return _page("operations", [self.store.operation_json(r) for r in records], token)

    def cancel_operation(self, req: Call, model_id: str, op_id: str) -> str:
        """CancelOperation. The service's HTTP rules bind it for tuning operations in ``v1``
        only (``POST /v1/{name=tunedModels/*/operations/*}:cancel``); ``v1beta`` has no such
        URL, so it answers 404 like any unknown path. google-genai's ``tunings.cancel`` posts
        ``{name}:cancel``: with ``name="tunedModels/ID"`` that URL does not exist either (404);
        pass the operation name ``tunedModels/ID/operations/OP`` to cancel."""
        if req.version != "v1":
            raise E.NotFound(
                tr(
                    "The requested URL /{version}/tunedModels/{model_id}/operations/{op_id}"
                    ":cancel was not found on this server. (CancelOperation exists for tuning "
                    "operations under /v1 only.)",
                    "Запрошенный URL /{version}/tunedModels/{model_id}/operations/{op_id}"
                    ":cancel не найден на этом сервере. (CancelOperation для операций дообучения "
                    "есть только в /v1.)",
                    version=req.version,
                    model_id=model_id,
                    op_id=op_id,
                )
            )
        self._operation_record(model_id, op_id)
        self.store.cancel(model_id)
        return "{}"


class Call:
    """The parts of an HTTP request a handler needs (query, JSON body)."""

    def __init__(self, request: Request, body: bytes, version: str) -> None:
        self.query = request.query_params
        self.version = version
        self._body = body

    def query_all(self, key: str) -> list[str]:
        return list(self.query.getlist(key))

    def json(self) -> dict:
        if not self._body.strip():
            return {}
        try:
            data = json.loads(self._body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise E.InvalidArgument(
                tr(
                    "Invalid JSON payload received. {kind}: {exc}",
                    "Получен некорректный JSON. {kind}: {exc}",
                    kind=exc.__class__.__name__,
                    exc=exc,
                )
            ) from None
        if not isinstance(data, dict):
            raise E.InvalidArgument(
                tr(
                    "Invalid JSON payload received. Expected an object at the top level.",
                    "Получен некорректный JSON. На верхнем уровне ожидался объект.",
                )
            )
        return data


def _response(body: dict, text: str, model_version: str) -> dict:
    """The GenerateContentResponse for a request ``body`` answered with ``text``."""
    config = body.get("generationConfig") or body.get("generation_config") or {}
    return generation.generate_response(
        text,
        generation.count_tokens(generation.all_text(body.get("contents"))),
        model_version,
        config.get("maxOutputTokens"),
    )


def _page(field: str, items: list[str], token: str | None) -> str:
    """A List* response from already-rendered JSON objects (no re-parsing of cached text)."""
    out = "{" + json.dumps(field) + ":[" + ",".join(items) + "]"
    if token:
        out += ',"nextPageToken":' + json.dumps(token)
    return out + "}"


def _count_request(body: dict) -> int:
    inner = body.get("generateContentRequest") or body.get("generate_content_request")
    source = inner if isinstance(inner, dict) else body
    parts = [source.get("contents"), source.get("systemInstruction")]
    parts.append(source.get("system_instruction"))
    return generation.count_tokens(generation.all_text(parts))


def _stream(req: Call, payload: dict) -> Response:
    if req.query.get("alt") == "sse":
        return Response(
            content="data: " + json.dumps(payload) + "\r\n\r\n", media_type="text/event-stream"
        )
    return Response(content="[" + json.dumps(payload) + "]", media_type=JSON_TYPE)


def _no_key() -> str:
    return tr(
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API. "
        "(The emulator accepts any key, e.g. api_key='offline-emulator'.)",
        "Метод не принимает вызовы без идентификации вызывающего. Передайте ключ API "
        "или другое удостоверение потребителя API. "
        "(Эмулятор принимает любой ключ, например api_key='offline-emulator'.)",
    )


def create_app(
    store: Store | None = None, *, poll_delay: float = 0.0, vertex: VertexStore | None = None
) -> FastAPI:
    """The FastAPI application serving ``store`` (a fresh in-memory store by default) and the
    Vertex AI tuning service of ``vertex`` (:mod:`tunelab.emulator.vertex`)."""
    api = Api(store if store is not None else Store(), poll_delay=poll_delay)
    if vertex is None:
        vertex = VertexStore(time_scale=api.store.time_scale)
    vertex_api = VertexApi(vertex)
    app = FastAPI(
        title="Fine-Tuning Lab emulator (Generative Language API v1beta)",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # Offline course server: no OpenTelemetry (checking for providers costs ~15 us/request).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.api = api
    app.state.vertex_api = vertex_api

    async def dispatch(request: Request) -> Response:
        if vertex_api.owns(request.url.path):
            return await vertex_api.dispatch(request)
        try:
            headers = request.headers
            if not (
                headers.get("x-goog-api-key")
                or request.query_params.get("key")
                or headers.get("authorization")
            ):
                raise E.PermissionDenied(_no_key())
            handler, version, args = api.find(request.method, request.url.path)
            body = await request.body() if request.method in _WITH_BODY else b""
            result = handler(Call(request, body, version), *args)
            if asyncio.iscoroutine(result):
                result = await result
        except E.ApiError as err:
            return Response(content=err.to_json(), status_code=err.code, media_type=JSON_TYPE)
        if isinstance(result, Response):
            return result
        return Response(content=result, media_type=JSON_TYPE)

    # A plain Starlette route: FastAPI's per-request dependency solving would triple the cost
    # of a GET, and the dispatcher needs none of it.
    app.router.routes.append(Route("/{path:path}", dispatch, methods=list(_METHODS)))
    return app

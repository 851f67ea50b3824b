"""Who is calling: per-user credentials and ownership for an emulator a whole class shares.

Why: on a class hub one emulator serves every student. Without this layer any student could
list, read, cancel or delete a classmate's tuning jobs and tuned models. With it (``python -m
tunelab.emulator --auth``, secret in ``$TUNELAB_EMULATOR_SECRET``) every request must carry a
per-user token the hub signed for that user:

* in the URL, as the endpoint's path prefix ``/u/TOKEN/`` -- the hub sets each server's
  ``TUNELAB_ENDPOINT`` to ``http://HOST:PORT/u/TOKEN``, so every SDK and every lesson cell
  (which all build their URLs from that endpoint) sends it without a code change, whatever
  API key the cell passes; or
* as the API key / bearer token (``x-goog-api-key``, ``?key=``, ``Authorization: Bearer``),
  e.g. ``$TUNELAB_API_KEY``.

Each tuned model (Gemini API) and tuning job (Vertex AI) belongs to the user who created it.
A student sees only their own in lists and gets 403 PERMISSION_DENIED for anybody else's
(get, generate, cancel, delete, metrics, a checkpoint's endpoint); an instructor sees all.
Unsigned requests get 401. Without ``--auth`` (``bootstrap lab``, the tests) none of this
runs: the single-user emulator accepts any key, as before.

The token is ``b64(user).ROLE.SIG`` with SIG an HMAC-SHA256 of ``user`` and ``role`` under the
hub's secret, so the emulator needs no call to the hub to check it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunelab.emulator import errors as E

ROLES = ("student", "instructor")
PREFIX = "/u/"
_GEMINI = re.compile(r"/(?:v1beta|v1)/tunedModels(?:/([^/:]+))?(?:[/:].*)?")
_GEMINI_OPS = re.compile(r"/(?:v1beta|v1)/operations")
_VERTEX_JOB = re.compile(
    r"/(?:v1beta1|v1)/(?:projects/[^/]+/locations/[^/]+/)?tuningJobs(?:/([^/:]+))?(?:[/:].*)?"
)
_VERTEX_ENDPOINT = re.compile(
    r"/(?:v1beta1|v1)/(?:projects/[^/]+/locations/[^/]+/)?endpoints/([^/:]+)(?:[/:].*)?"
)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


def _sig(secret: str, user: str, role: str) -> str:
    msg = f"{user}\0{role}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()[:32]


def sign(secret: str, user: str, role: str = "student") -> str:
    """The token of ``user`` with ``role`` (``student`` or ``instructor``)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    if not secret:
        raise ValueError("an empty secret signs nothing")
    return f"{_b64(user)}.{role}.{_sig(secret, user, role)}"


def verify(secret: str, token: str) -> tuple[str, str] | None:
    """``(user, role)`` of a valid token, else None."""
    parts = token.split(".")
    if len(parts) != 3 or parts[1] not in ROLES:
        return None
    try:
        user = _unb64(parts[0])
    except (ValueError, UnicodeDecodeError):
        return None
    if not hmac.compare_digest(parts[2], _sig(secret, user, parts[1])):
        return None
    return user, parts[1]


class Owners:
    """Resource -> owner (``("tunedModels", id)``, ``("tuningJobs", id)``), kept in SQLite."""

    def __init__(self, path: str | Path | None = None) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS owners (kind TEXT, id TEXT, owner TEXT, "
            "PRIMARY KEY (kind, id))"
        )
        self._db.commit()
        self._cache = {(k, i): o for k, i, o in self._db.execute("SELECT * FROM owners")}

    def owner(self, kind: str, rid: str) -> str | None:
        return self._cache.get((kind, rid))

    def claim(self, kind: str, rid: str, owner: str) -> None:
        with self._lock:
            self._cache[(kind, rid)] = owner
            self._db.execute("INSERT OR REPLACE INTO owners VALUES (?, ?, ?)", (kind, rid, owner))
            self._db.commit()

    def close(self) -> None:
        self._db.close()


def _error(err: E.ApiError) -> tuple[int, bytes]:
    return err.code, err.to_json()


_NO_TOKEN = (
    "This emulator is shared by a class and needs your own credentials: use the endpoint in "
    "$TUNELAB_ENDPOINT (tunelab.connect() does), which carries your hub token."
)


class OwnershipGuard:
    """ASGI middleware: authenticate, strip ``/u/TOKEN``, keep users' resources apart.

    ``endpoints(endpoint_id)`` returns the Vertex tuning job id behind a checkpoint endpoint
    (or None), so a checkpoint belongs to its job's owner."""

    def __init__(
        self,
        app: Any,
        *,
        secret: str,
        owners: Owners,
        endpoints: Callable[[str], str | None] = lambda _e: None,
    ) -> None:
        if not secret:
            raise ValueError("the emulator's --auth needs a secret ($TUNELAB_EMULATOR_SECRET)")
        self.app = app
        self.secret = secret
        self.owners = owners
        self.endpoints = endpoints

    # -- identity ---------------------------------------------------------------------------
    def _identity(self, scope: dict) -> tuple[tuple[str, str] | None, str]:
        path: str = scope["path"]
        if path.startswith(PREFIX):
            token, _, rest = path[len(PREFIX) :].partition("/")
            return verify(self.secret, token), "/" + rest
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        candidates = [headers.get("x-goog-api-key", "")]
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            candidates.append(auth[7:].strip())
        query = scope.get("query_string", b"").decode("latin-1")
        for item in query.split("&"):
            if item.startswith("key="):
                candidates.append(item[4:])
        for token in candidates:
            found = verify(self.secret, token) if token else None
            if found:
                return found, path
        return None, path

    # -- what a path touches ----------------------------------------------------------------
    def _resource(self, path: str) -> tuple[str, str | None] | None:
        for kind, regex in (("tunedModels", _GEMINI), ("tuningJobs", _VERTEX_JOB)):
            match = regex.fullmatch(path)
            if match:
                return kind, match.group(1)
        match = _VERTEX_ENDPOINT.fullmatch(path)
        if match:
            job = self.endpoints(match.group(1))
            return ("tuningJobs", job) if job else None
        if _GEMINI_OPS.fullmatch(path):
            return "operations", None
        return None

    def _denied(self, kind: str, rid: str) -> E.ApiError:
        what = "tuned model tunedModels" if kind == "tunedModels" else "tuning job tuningJobs"
        return E.PermissionDenied(
            f"You do not have permission to access {what}/{rid}: it belongs to another user "
            "of this hub (or it does not exist)."
        )

    # -- ASGI -------------------------------------------------------------------------------
    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        who, path = self._identity(scope)
        if who is None:
            await _send(send, *_error(E.Unauthenticated(_NO_TOKEN)))
            return
        user, role = who
        scope = dict(scope, path=path, raw_path=path.encode(), root_path="")
        method = scope["method"]
        found = self._resource(path)
        instructor = role == "instructor"
        if found is not None and found[1] is not None and not instructor:
            owner = self.owners.owner(*found)
            if owner is not None and owner != user:
                await _send(send, *_error(self._denied(*found)))
                return
        creates = found is not None and found[1] is None and method == "POST"
        lists = found is not None and found[1] is None and method == "GET" and not instructor
        if not (creates or lists):
            await self.app(scope, receive, send)
            return
        status, headers, body = await _collect(self.app, scope, receive)
        if status == 200:
            data = json.loads(body)
            if creates:
                self._claim(found[0], data, user)
            else:
                data = self._filter(data, user)
            body = json.dumps(data).encode()
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _claim(self, kind: str, data: dict, user: str) -> None:
        name = str(data.get("name") or data.get("metadata", {}).get("tunedModel") or "")
        if kind == "tunedModels":
            match = re.match(r"tunedModels/([^/]+)", name)
        else:
            match = re.search(r"tuningJobs/([^/]+)$", name)
        if match:
            self.owners.claim(kind, match.group(1), user)

    def _mine(self, kind: str, name: str, user: str) -> bool:
        pattern = r"tunedModels/([^/]+)" if kind == "tunedModels" else r"tuningJobs/([^/]+)$"
        match = re.search(pattern, name or "")
        return bool(match) and self.owners.owner(kind, match.group(1)) == user

    def _filter(self, data: dict, user: str) -> dict:
        for field, kind in (
            ("tunedModels", "tunedModels"),
            ("operations", "tunedModels"),
            ("tuningJobs", "tuningJobs"),
        ):
            if isinstance(data.get(field), list):
                data[field] = [
                    item for item in data[field] if self._mine(kind, item.get("name", ""), user)
                ]
        return data


async def _collect(app: Any, scope: dict, receive: Callable) -> tuple[int, list, bytes]:
    """Run ``app`` and return its whole response (lists and creations are small JSON)."""
    status, headers, chunks = 500, [], []

    async def capture(message: dict) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status, headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, capture)
    return status, headers, b"".join(chunks)


async def _send(send: Callable, status: int, body: bytes) -> None:
    headers = [
        (b"content-type", b"application/json; charset=UTF-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def guard(app: Any, secret: str, state: str | Path | None = None) -> OwnershipGuard:
    """Wrap a :func:`tunelab.emulator.app.create_app` app; owners kept in ``STATE.owners``."""
    owners = Owners(f"{state}.owners" if state else None)

    def endpoints(endpoint_id: str) -> str | None:
        hit = getattr(app.state.vertex_api.store, "_endpoints", {}).get(endpoint_id)
        return hit[0] if hit else None

    return OwnershipGuard(app, secret=secret, owners=owners, endpoints=endpoints)

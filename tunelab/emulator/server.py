"""Run the emulator on a loopback port and point the SDKs at it.

``connect()`` is the one line a notebook runs: it starts the emulator in a daemon thread (its
own asyncio loop, so it coexists with Jupyter's), configures google.generativeai to talk REST
to it, and returns the endpoint. Running it twice reuses the same server. With
``TUNELAB_ENDPOINT`` set (e.g. a shared emulator started with ``python -m tunelab.emulator``),
nothing is started and the SDK is pointed there instead.

google.generativeai costs about a second of CPU to import (it also loads gRPC and
google.api_core), and lessons 7 and 8 use only google-genai: so ``connect()`` configures it at
once only when it is already imported, and otherwise as soon as something imports it
(:class:`_ConfigureOnImport`).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any

import uvicorn

from tunelab.emulator.app import create_app
from tunelab.emulator.store import Store
from tunelab.emulator.vertex.store import VertexStore

API_KEY = "offline-emulator"


@dataclass
class EmulatorServer:
    """A running emulator: its endpoint, store, and how to stop it."""

    endpoint: str
    store: Store
    _server: uvicorn.Server
    _thread: threading.Thread
    _api: Any = None
    vertex: VertexStore | None = None  # the Vertex AI tuning service (tunelab.emulator.vertex)
    _vertex_api: Any = None

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    def reset(self, *, time_scale: float | None = None, poll_delay: float | None = None) -> Store:
        """Swap in a fresh in-memory store (forgetting every tuned model); keeps the port.

        Test suites use this to share one server between tests without sharing state.
        """
        old = self.store
        self.store = Store(time_scale=time_scale)
        self._api.store = self.store
        if poll_delay is not None:
            self._api.poll_delay = poll_delay
        old.close()
        if self._vertex_api is not None:
            old_vertex = self.vertex
            self.vertex = VertexStore(time_scale=time_scale)
            self._vertex_api.store = self.vertex
            if old_vertex is not None:
                old_vertex.close()
        return self.store

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down and close its state file."""
        self._server.should_exit = True
        self._thread.join(timeout)
        self.store.close()
        if self.vertex is not None:
            self.vertex.close()

    def __enter__(self) -> EmulatorServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket; port 0 picks a free port, bound now so no other process takes it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # says TCP, and without it every response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def endpoint_url(host: str, port: int) -> str:
    """``http://host:port``, with an IPv6 host in brackets as URLs require."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def uvicorn_config(app: Any, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
    )


def start(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    state: str | os.PathLike | None = None,
    time_scale: float | None = None,
    poll_delay: float = 0.02,
    store: Store | None = None,
    vertex: VertexStore | None = None,
) -> EmulatorServer:
    """Start an emulator in a background thread and wait until it accepts connections.

    ``state`` keeps both services' jobs (Gemini tuned models and Vertex tuning jobs); Vertex's
    stand-in buckets then live in ``<state>.gcs/`` (see :mod:`tunelab.emulator.vertex`).
    """
    store = store if store is not None else Store(state, time_scale=time_scale)
    if vertex is None:
        vertex = VertexStore(state, time_scale=store.time_scale)
    sock = bind_socket(host, port)
    real_port = sock.getsockname()[1]
    app = create_app(store, poll_delay=poll_delay, vertex=vertex)
    config = uvicorn_config(app, host, real_port)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="tunelab-emulator", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the tuning emulator failed to start (see the log above)")
        if time.monotonic() > deadline:
            raise RuntimeError("the tuning emulator did not start within 30 s")
        time.sleep(0.005)
    return EmulatorServer(
        endpoint_url(host, real_port),
        store,
        server,
        thread,
        app.state.api,
        vertex,
        app.state.vertex_api,
    )


_lock = threading.Lock()
_running: EmulatorServer | None = None
_endpoint: str | None = None


def configure_generativeai(endpoint: str) -> None:
    """Point google.generativeai at ``endpoint`` over REST (the only transport that can).

    The import's "support has ended" FutureWarning is silenced: the course uses the retired
    SDK on purpose (the lessons say so), and connect() should print nothing.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import google.generativeai as genai

    _configure(genai, endpoint)


def _configure(genai: Any, endpoint: str) -> None:
    genai.configure(api_key=API_KEY, transport="rest", client_options={"api_endpoint": endpoint})


_GENERATIVEAI = "google.generativeai"


class _ConfigureOnImport(importlib.abc.MetaPathFinder):
    """Configures google.generativeai for the emulator right after it is imported.

    It finds the module as the import system would (the finders after it on
    ``sys.meta_path``), lets the real loader run it, then configures it for the latest
    ``connect()`` endpoint; the module keeps its real loader and spec. The import's
    FutureWarnings stay silent, as when ``connect()`` itself imported the SDK.
    """

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != _GENERATIVEAI:
            return None
        later = sys.meta_path[sys.meta_path.index(self) + 1 :] if self in sys.meta_path else []
        for finder in later:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None  # not installed: the import fails with its usual error
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _ConfiguringLoader(spec.loader)
        return spec


class _ConfiguringLoader(importlib.abc.Loader):
    """The real loader of google.generativeai, plus :func:`configure_generativeai` after it."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = module.__spec__.loader = self.loader
        with warnings.catch_warnings():  # as configure_generativeai's own import: silent
            warnings.simplefilter("ignore", FutureWarning)
            self.loader.exec_module(module)
        _remove_import_hook()
        if _endpoint is not None:
            _configure(module, _endpoint)


_hook: _ConfigureOnImport | None = None


def _remove_import_hook() -> None:
    global _hook
    with _lock:
        if _hook is not None and _hook in sys.meta_path:
            sys.meta_path.remove(_hook)
        _hook = None


def _point_generativeai() -> None:
    """Configure google.generativeai for ``_endpoint`` now if it is imported, else on import.

    A missing SDK still fails here, with the import's own ModuleNotFoundError.
    """
    global _hook
    if sys.modules.get(_GENERATIVEAI) is not None:
        configure_generativeai(_endpoint)
        return
    if importlib.util.find_spec(_GENERATIVEAI) is None:
        raise ModuleNotFoundError(f"No module named {_GENERATIVEAI!r}", name=_GENERATIVEAI)
    with _lock:
        if _hook is None:
            _hook = _ConfigureOnImport()
            sys.meta_path.insert(0, _hook)


def connect(endpoint: str | None = None, *, time_scale: float | None = None) -> str:
    """Start (or reuse) the emulator and configure google.generativeai; returns the endpoint.

    ``endpoint`` or ``TUNELAB_ENDPOINT`` selects an already running emulator. ``time_scale``
    (simulated seconds per wall second) applies to jobs created from now on.
    """
    global _running, _endpoint
    with _lock:
        endpoint = endpoint or os.environ.get("TUNELAB_ENDPOINT") or None
        if endpoint:
            endpoint = endpoint.rstrip("/")
        else:
            if _running is None:
                _running = start(time_scale=time_scale)
            elif time_scale is not None:
                _running.store.time_scale = float(time_scale)
                if _running.vertex is not None:
                    _running.vertex.time_scale = float(time_scale)
            endpoint = _running.endpoint
        _endpoint = endpoint
    _point_generativeai()
    return endpoint


def running() -> EmulatorServer | None:
    """The emulator ``connect()`` started in this process, if any."""
    return _running


def genai_client(endpoint: str | None = None, **kwargs: Any) -> Any:
    """A google.genai.Client talking to the emulator (connects first if needed).

    Extra keyword arguments go to ``genai.Client``; ``http_options`` entries are merged with
    the emulator's ``base_url``.
    """
    from google import genai

    if endpoint is None:
        endpoint = _endpoint or connect()
    http_options = dict(kwargs.pop("http_options", None) or {})
    http_options.setdefault("base_url", endpoint.rstrip("/") + "/")
    return genai.Client(api_key=API_KEY, http_options=http_options, **kwargs)


def tuning_extra_body(
    examples: Any, *, learning_rate_multiplier: float | None = None
) -> dict[str, Any]:
    """The request fields google-genai 3.6.1 silently drops for the Gemini API.

    Its ``tunings.tune`` converter builds ``tuningTask.trainingData`` and
    ``hyperparameters.learningRateMultiplier`` into a dict it then discards, so the service
    receives no examples (and answers 400). Pass the result as
    ``config=types.CreateTuningJobConfig(..., http_options=types.HttpOptions(extra_body=...))``;
    google-genai deep-merges it into the request body. ``examples`` may be
    ``types.TuningExample`` objects, ``{"text_input", "output"}`` dicts or ``(input, output)``
    pairs.
    """
    rows = []
    for i, ex in enumerate(examples):
        if isinstance(ex, dict):
            text_input, output = ex.get("text_input", ex.get("textInput")), ex.get("output")
        elif isinstance(ex, (tuple, list)) and len(ex) == 2:
            text_input, output = ex
        else:
            text_input, output = getattr(ex, "text_input", None), getattr(ex, "output", None)
        if text_input is None or output is None:
            raise ValueError(f"example {i} has no text_input/output: {ex!r}")
        rows.append({"textInput": text_input, "output": output})
    task: dict[str, Any] = {"trainingData": {"examples": {"examples": rows}}}
    if learning_rate_multiplier is not None:
        task["hyperparameters"] = {"learningRateMultiplier": float(learning_rate_multiplier)}
    return {"tuningTask": task}

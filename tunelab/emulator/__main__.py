"""``python -m tunelab.emulator --host 127.0.0.1 --port PORT [--state FILE] [--time-scale X]``

Serves until stopped (Ctrl-C / SIGTERM). Prints exactly ``listening on http://HOST:PORT``
(flushed) once the server accepts connections, so scripts can wait for that line. ``--port 0``
picks a free port and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator

import uvicorn

from tunelab.emulator.app import create_app
from tunelab.emulator.server import bind_socket, endpoint_url, uvicorn_config
from tunelab.emulator.store import Store
from tunelab.emulator.vertex.buckets import Buckets
from tunelab.emulator.vertex.store import VertexStore


class _AnnouncingServer(uvicorn.Server):
    """uvicorn.Server that prints the ready line after startup and exits 0 on SIGINT/SIGTERM.

    (Stock uvicorn re-raises the signal after shutting down, so the process would die by
    signal and skip closing the state file.)
    """

    announce = ""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        sigs = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in sigs}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:  # type: ignore[override]
        await super().startup(sockets=sockets)
        if not self.should_exit:
            print(self.announce, flush=True)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tunelab.emulator",
        description="Serve the Fine-Tuning Lab emulator of the Generative Language API.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (0 = any free port)")
    parser.add_argument(
        "--state", default=None, help="SQLite file that keeps tuned models and Vertex tuning jobs"
    )
    parser.add_argument(
        "--buckets",
        default=None,
        help="folder standing in for Cloud Storage (gs://BUCKET/PATH -> DIR/BUCKET/PATH); "
        "default: $TUNELAB_GCS_ROOT, else STATE.gcs beside --state, else a temporary folder",
    )
    parser.add_argument(
        "--time-scale",
        type=_positive,
        default=None,
        help="simulated seconds per wall second (default: $TUNELAB_TIME_SCALE or 100)",
    )
    parser.add_argument(
        "--poll-delay",
        type=float,
        default=0.02,
        help="seconds each operation poll waits, like network latency (default 0.02)",
    )
    parser.add_argument(
        "--auth",
        action="store_true",
        help="a class's shared emulator: per-user tokens signed with $TUNELAB_EMULATOR_SECRET, "
        "each user sees only their own jobs (tunelab.emulator.auth)",
    )
    args = parser.parse_args(argv)
    secret = os.environ.get("TUNELAB_EMULATOR_SECRET", "")
    if args.auth and not secret:
        parser.error("--auth needs the secret in $TUNELAB_EMULATOR_SECRET")
    try:
        store = Store(args.state, time_scale=args.time_scale)
        buckets = Buckets(args.buckets) if args.buckets else Buckets.for_state(args.state)
        vertex = VertexStore(args.state, buckets=buckets, time_scale=store.time_scale)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    app = create_app(store, poll_delay=args.poll_delay, vertex=vertex)
    if args.auth:
        from tunelab.emulator.auth import guard

        app = guard(app, secret, args.state)
    server = _AnnouncingServer(uvicorn_config(app, args.host, port))
    server.announce = f"listening on {endpoint_url(args.host, port)}"
    try:
        server.run(sockets=[sock])
    finally:
        store.close()
        vertex.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

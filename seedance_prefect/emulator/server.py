"""Serving the emulator with uvicorn: in a background thread (``run_emulator``) or in the foreground (CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import uvicorn

from seedance_prefect.emulator.app import EmulatorApp, create_app
from seedance_prefect.emulator.config import EmulatorConfig
from seedance_prefect.emulator.faults import FaultSpec, parse_faults


class EmulatorServer(uvicorn.Server):
    """A uvicorn server that ends SSE streams and jobs before uvicorn waits for open connections."""

    def __init__(self, config: uvicorn.Config, app: EmulatorApp) -> None:
        """Create the server.

        Args:
            config: uvicorn settings.
            app: The emulator app being served.
        """
        super().__init__(config)
        self.emulator_app = app
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start serving, then signal readiness."""
        await super().startup(sockets=sockets)
        if self.started:
            self.ready.set()

    def request_stop(self) -> None:
        """Ask the server to stop (thread-safe): closes SSE streams, cancels jobs, then exits uvicorn."""
        loop = self.emulator_app.state.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.emulator_app.state.begin_shutdown)
        self.should_exit = True

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Signal handler (Ctrl-C / SIGTERM in the foreground)."""
        loop = self.emulator_app.state.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.emulator_app.state.begin_shutdown)
        super().handle_exit(sig, frame)


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind a listening-ready TCP socket (``port=0`` picks a free port).

    Args:
        host: Interface.
        port: Port or 0.

    Returns:
        The bound socket.

    Example:
        >>> sock = bind_socket("127.0.0.1", 0); sock.getsockname()[1] > 0
        True
        >>> sock.close()
    """
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.set_inheritable(True)
    return sock


def build_server(config: EmulatorConfig, app: EmulatorApp | None = None) -> EmulatorServer:
    """Create the uvicorn server for an emulator app.

    Args:
        config: Emulator settings (``log_level`` is used).
        app: The app; created from ``config`` when None.

    Returns:
        The server (not started).
    """
    app = app or create_app(config)
    uv_config = uvicorn.Config(
        app,
        log_level=config.log_level,
        access_log=False,
        lifespan="on",
        http="h11",
        ws="none",
        loop="asyncio",
        timeout_graceful_shutdown=5,
        timeout_keep_alive=30,
    )
    return EmulatorServer(uv_config, app)


def format_url(host: str, port: int) -> str:
    """Return ``http://host:port`` (IPv6 hosts bracketed).

    Example:
        >>> format_url("127.0.0.1", 8765), format_url("::1", 80)
        ('http://127.0.0.1:8765', 'http://[::1]:80')
    """
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass
class RunningEmulator:
    """Handle on an emulator served in a background thread.

    Attributes:
        config: The settings.
        app: The ASGI app.
        host: Bound host.
        port: Bound port.
        server: The uvicorn server.
        thread: The serving thread.
    """

    config: EmulatorConfig
    app: EmulatorApp
    host: str
    port: int
    server: EmulatorServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:54321``."""
        return format_url(self.host, self.port)

    @property
    def base_url(self) -> str:
        """API base URL to use as ``OXEN_BASE_URL``, e.g. ``http://127.0.0.1:54321/api``."""
        return self.url + "/api"

    def _call(self, coro: Any, timeout: float = 10.0) -> Any:
        loop = self.app.state.loop
        if loop is None or loop.is_closed():
            coro.close()
            raise RuntimeError("the emulator is not running")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    def stats(self) -> dict[str, Any]:
        """Return the same document as ``GET /_emulator/stats``.

        Example:
            >>> with run_emulator(EmulatorConfig(latency=0.1)) as emu:
            ...     emu.stats()["generations_created"]
            0
        """

        async def snap() -> dict[str, Any]:
            return self.app.state.snapshot()

        return self._call(snap())

    def reset(self) -> None:
        """Forget generations, files, counters and fault RNG state (like ``POST /_emulator/reset``)."""
        self._call(self.app.state.reset())

    def set_faults(self, spec: str | FaultSpec | dict[str, float] | None) -> None:
        """Replace the fault probabilities at runtime (like ``POST /_emulator/faults``).

        Args:
            spec: New spec (``""``/None disables every fault).
        """
        parsed = parse_faults(spec)

        async def apply() -> None:
            self.app.state.injector.set_spec(parsed)

        self._call(apply())

    def hold(self, on: bool) -> None:
        """Hold generations in ``processing`` or release them (like ``POST /_emulator/hold``).

        Args:
            on: True to hold finished work, False to let it finish.

        Example:
            >>> with run_emulator(EmulatorConfig(latency=0.1)) as emu:
            ...     emu.hold(True)
            ...     emu.stats()["held"]
            True
        """

        async def apply() -> None:
            self.app.state.hold(on)

        self._call(apply())

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and wait for its thread.

        Args:
            timeout: Seconds to wait before forcing the exit.
        """
        self.server.request_stop()
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout)


def start_emulator(config: EmulatorConfig | None = None, *, startup_timeout: float = 15.0) -> RunningEmulator:
    """Start an emulator in a daemon thread and wait until it accepts connections.

    Args:
        config: Settings (``host``/``port`` decide where it listens; port 0 = free port).
        startup_timeout: Seconds to wait for readiness.

    Returns:
        The running emulator; call ``stop()`` when done (or use ``run_emulator``).

    Raises:
        RuntimeError: The server did not start in time.
    """
    config = config or EmulatorConfig()
    app = create_app(config)
    server = build_server(config, app)
    sock = bind_socket(config.host, config.port)
    host, port = sock.getsockname()[:2]
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"seedance-emulator-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.ready.wait(0.05):
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the emulator did not start on {format_url(host, port)}")
    while True:  # readiness is set after listen(); confirm a TCP connect succeeds
        try:
            with socket.create_connection((host, port), timeout=1.0):
                break
        except OSError:
            if time.monotonic() > deadline:
                server.should_exit = True
                raise RuntimeError(
                    f"the emulator does not accept connections on {format_url(host, port)}"
                ) from None
    return RunningEmulator(config, app, host, port, server, thread)


@contextlib.contextmanager
def run_emulator(
    config: EmulatorConfig | None = None, *, startup_timeout: float = 15.0
) -> Iterator[RunningEmulator]:
    """Run an emulator in a background thread for the duration of a ``with`` block.

    Args:
        config: Settings; defaults to ``EmulatorConfig()`` (127.0.0.1, free port).
        startup_timeout: Seconds to wait for readiness.

    Yields:
        The running emulator (``.base_url``, ``.url``, ``.config``, ``.app``, ``.stats()``, ``.reset()``).

    Example:
        >>> import httpx
        >>> with run_emulator(EmulatorConfig(latency=0.2)) as emu:
        ...     headers = {"Authorization": "Bearer any"}
        ...     r = httpx.get(emu.base_url + "/ai/models", headers=headers, trust_env=False)
        ...     r.json()["object"]
        'list'
    """
    emulator = start_emulator(config, startup_timeout=startup_timeout)
    try:
        yield emulator
    finally:
        emulator.stop()

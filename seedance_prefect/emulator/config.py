"""Configuration of the offline Oxen/Seedance emulator.

The emulator is "the other party": it carries its own reading of the Oxen API contract and imports nothing
from the rest of ``seedance_prefect``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from seedance_prefect.emulator.faults import FaultSpec, parse_faults

#: The one model the emulator serves.
MODEL_ID = "bytedance-seedance-2-0-reference-to-video"

#: Profiles: "A" = the seed document's wire format, "B" = the newer registry schema.
Profile = Literal["A", "B"]
FirstStatus = Literal["queued", "processing"]


@dataclass
class EmulatorConfig:
    """Settings of one emulator instance.

    Attributes:
        host: Interface to bind (``run_emulator`` and the CLI).
        port: TCP port; ``0`` picks a free port.
        latency: Seconds a generation spends in ``processing`` (sync calls block this long).
        queue_delay: Seconds a generation stays ``queued`` before it may start.
        max_running: Cap on concurrently *processing* queue generations; the rest stay ``queued``.
        faults: Fault spec (``"5xx=0.2,429=0.1"``), a mapping kind -> probability, a ``FaultSpec`` or None.
        api_key: Accepted bearer token; ``None`` accepts any non-empty token.
        seed: Seed of the fault RNG.
        result_host: Host name used in result URLs (same port); ``None`` = the host the request used.
        keepalive: Seconds between ``: keep-alive`` comments on ``GET /api/events``.
        first_status: ``"queued"`` (current docs) or ``"processing"`` (older docs) for waiting generations.
        extra_fields: Add unknown ``x_emulator`` fields to every JSON object answered.
        auto_duration: Seconds rendered when the duration is ``"auto"`` / ``-1``.
        profile: ``"A"`` (seed document) or ``"B"`` (newer registry schema).
        namespace: Namespace of the (single) caller; default of ``target_namespace`` and list filters.
        log_level: uvicorn log level.
        slow_enqueue_seconds: How long the ``slow_enqueue`` fault holds an enqueue's answer.
        vanish_terminal: The older queue (docs of 2026-04-14 to 05-11): a generation's row answers 404 once it
            is terminal (``GET``/``DELETE /api/ai/queue/{id}``, and it leaves every list); the result reaches
            only the subscribers of ``GET /api/events``, or the history endpoint.
        history: Serve the history lookup ``GET /api/ai/generations/{id}``; False answers 404 (as a service
            without it).

    Example:
        >>> cfg = EmulatorConfig(latency=0.2, faults="429=0.5", api_key="secret")
        >>> cfg.fault_spec().rate("429")
        0.5
        >>> EmulatorConfig(vanish_terminal=True).history  # rows vanish; the history lookup still answers
        True
    """

    host: str = "127.0.0.1"
    port: int = 0
    latency: float = 2.0
    queue_delay: float = 0.0
    max_running: int = 4
    faults: str | Mapping[str, float] | FaultSpec | None = None
    api_key: str | None = None
    seed: int = 0
    result_host: str | None = None
    keepalive: float = 15.0
    first_status: FirstStatus = "queued"
    extra_fields: bool = False
    auto_duration: int = 5
    profile: Profile = "A"
    slow_enqueue_seconds: float = 3.0
    vanish_terminal: bool = False
    history: bool = True
    namespace: str = "emulator"
    log_level: str = "warning"
    _spec: FaultSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate the settings and parse the fault spec.

        Raises:
            ValueError: If a setting is out of range.
        """
        if self.latency < 0 or self.queue_delay < 0:
            raise ValueError("latency and queue_delay must be >= 0")
        if self.max_running < 1:
            raise ValueError("max_running must be >= 1")
        if self.keepalive <= 0:
            raise ValueError("keepalive must be > 0")
        if self.first_status not in ("queued", "processing"):
            raise ValueError("first_status must be 'queued' or 'processing'")
        if self.profile not in ("A", "B"):
            raise ValueError("profile must be 'A' or 'B'")
        if not 1 <= self.auto_duration <= 60:
            raise ValueError("auto_duration must be between 1 and 60 seconds")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("api_key must be None or a non-empty string")
        self._spec = parse_faults(self.faults)

    def fault_spec(self) -> FaultSpec:
        """Return the parsed fault spec.

        Returns:
            The ``FaultSpec`` built from ``faults``.

        Example:
            >>> EmulatorConfig(faults="fail=1").fault_spec().rate("fail")
            1.0
        """
        return self._spec

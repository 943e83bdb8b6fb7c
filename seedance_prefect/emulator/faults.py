"""Fault injection: spec parsing and a seeded injector.

Kinds and where they apply:

- ``5xx``: any ``/api/ai/*`` request answers 503 or 500 (structured envelope, type ``unknown_error``).
- ``429``: any ``/api/ai/*`` request answers 429 with ``Retry-After: 1``.
- ``reset``: any ``/api/ai/*`` request gets its connection aborted without an HTTP answer.
- ``drop_enqueue``: ``POST /api/ai/queue`` creates the generations, then the connection is aborted.
- ``slow_enqueue``: ``POST /api/ai/queue`` creates the generations, then holds its 200 answer for
  ``EmulatorConfig.slow_enqueue_seconds`` (the window between a POST reaching the service and its answer).
- ``fail``: a queue generation ends ``failed`` (``Insufficient credits`` / ``Internal generation error``).
- ``truncate``: a result download sends part of the body with the full Content-Length, then closes.
- ``poll429``: the first ``GET /api/ai/queue/{id}`` of each generation answers 429 + ``Retry-After: 1``.
- ``cut_event``: a completion event on a ``GET /api/events`` stream is cut mid-event: half of its bytes are
  sent, then the connection closes (that subscriber loses the event; there is no replay).

``5xx``, ``429`` and ``reset`` share one uniform draw per eligible request (checked in that order), so their
probabilities add up; the other kinds draw independently. ``/_emulator/*`` routes are never faulted.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

#: Every fault kind, in the order used for reporting.
FAULT_KINDS: tuple[str, ...] = (
    "5xx",
    "429",
    "reset",
    "drop_enqueue",
    "slow_enqueue",
    "fail",
    "truncate",
    "poll429",
    "cut_event",
)
#: Kinds drawn together (one uniform number) for any ``/api/ai/*`` request.
API_FAULT_KINDS: tuple[str, ...] = ("5xx", "429", "reset")
#: Messages used by the ``fail`` fault.
FAIL_MESSAGES: tuple[str, ...] = ("Insufficient credits", "Internal generation error")


@dataclass(frozen=True)
class FaultSpec:
    """Probabilities per fault kind (missing kinds are 0).

    Example:
        >>> spec = parse_faults("5xx=0.2,poll429=1")
        >>> spec.rate("5xx"), spec.rate("reset")
        (0.2, 0.0)
        >>> spec.to_string()
        '5xx=0.2,poll429=1'
    """

    rates: Mapping[str, float] = field(default_factory=dict)

    def rate(self, kind: str) -> float:
        """Return the probability of ``kind``.

        Args:
            kind: One of ``FAULT_KINDS``.

        Returns:
            The probability in ``[0, 1]``.

        Example:
            >>> FaultSpec({"fail": 0.5}).rate("fail")
            0.5
        """
        return float(self.rates.get(kind, 0.0))

    def to_string(self) -> str:
        """Render the spec in the ``kind=p,...`` syntax (kinds with p > 0 only).

        Returns:
            The spec string; ``""`` when no fault is active.

        Example:
            >>> FaultSpec({"429": 0.1}).to_string()
            '429=0.1'
        """
        return ",".join(f"{k}={self.rates[k]:g}" for k in FAULT_KINDS if self.rates.get(k, 0.0) > 0)


def parse_faults(spec: str | Mapping[str, float] | FaultSpec | None) -> FaultSpec:
    """Parse a fault spec.

    Args:
        spec: ``"5xx=0.2,429=0.1,reset=0.05"``, a mapping kind -> probability, a ``FaultSpec`` or None.
            A kind written without ``=p`` means probability 1.

    Returns:
        The parsed ``FaultSpec``.

    Raises:
        ValueError: Unknown kind, bad number or probability outside ``[0, 1]``.

    Example:
        >>> parse_faults("fail, truncate=0.5").rates == {"fail": 1.0, "truncate": 0.5}
        True
    """
    if spec is None:
        return FaultSpec({})
    if isinstance(spec, FaultSpec):
        return spec
    items: list[tuple[str, object]]
    if isinstance(spec, str):
        items = []
        for raw in spec.replace(";", ",").split(","):
            part = raw.strip()
            if not part:
                continue
            kind, sep, value = part.partition("=")
            items.append((kind.strip(), value.strip() if sep else "1"))
    else:
        items = list(spec.items())
    rates: dict[str, float] = {}
    for kind, value in items:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        try:
            prob = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"fault {kind!r}: {value!r} is not a number") from None
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"fault {kind!r}: probability {prob} is outside [0, 1]")
        rates[kind] = prob
    return FaultSpec(rates)


class FaultInjector:
    """Seeded decisions about which fault to inject, plus counters of injected faults.

    Not thread-safe: the emulator only calls it from its event loop.

    Example:
        >>> inj = FaultInjector(parse_faults("429=1"), seed=0)
        >>> inj.api_fault()
        '429'
        >>> inj.record("429"); inj.counts["429"]
        1
    """

    def __init__(self, spec: FaultSpec, seed: int = 0) -> None:
        """Create an injector.

        Args:
            spec: Initial probabilities.
            seed: Seed of the RNG (same seed + same request sequence = same faults).
        """
        self.spec = spec
        self.seed = seed
        self._rng = random.Random(seed)
        self.counts: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)

    def set_spec(self, spec: FaultSpec) -> None:
        """Replace the probabilities (counters and RNG state are kept).

        Args:
            spec: New probabilities.

        Example:
            >>> inj = FaultInjector(FaultSpec())
            >>> inj.set_spec(parse_faults("fail=1")); inj.roll("fail")
            True
        """
        self.spec = spec

    def reset(self) -> None:
        """Zero the counters and re-seed the RNG.

        Example:
            >>> inj = FaultInjector(FaultSpec()); inj.record("5xx"); inj.reset(); inj.counts["5xx"]
            0
        """
        self._rng = random.Random(self.seed)
        self.counts = dict.fromkeys(FAULT_KINDS, 0)

    def roll(self, kind: str) -> bool:
        """Decide whether fault ``kind`` fires for one eligible event (does not count it).

        Args:
            kind: One of ``FAULT_KINDS``.

        Returns:
            True if the fault should be injected.

        Example:
            >>> FaultInjector(parse_faults("fail=0")).roll("fail")
            False
        """
        prob = self.spec.rate(kind)
        if prob <= 0.0:
            return False
        if prob >= 1.0:
            return True
        return self._rng.random() < prob

    def api_fault(self) -> str | None:
        """Pick at most one of ``5xx``/``429``/``reset`` for an ``/api/ai/*`` request (not counted).

        Returns:
            The kind to inject, or None.

        Example:
            >>> FaultInjector(parse_faults("reset=1")).api_fault()
            'reset'
        """
        rates = [self.spec.rate(k) for k in API_FAULT_KINDS]
        total = sum(rates)
        if total <= 0.0:
            return None
        draw = self._rng.random() if total < 1.0 else self._rng.random() * total
        upto = 0.0
        for kind, prob in zip(API_FAULT_KINDS, rates, strict=True):
            upto += prob
            if prob > 0.0 and draw < upto:
                return kind
        return None

    def server_error_status(self) -> int:
        """Pick the status of a ``5xx`` fault.

        Returns:
            503 or 500.

        Example:
            >>> FaultInjector(FaultSpec()).server_error_status() in (500, 503)
            True
        """
        return self._rng.choice((503, 500))

    def failure_message(self) -> str:
        """Pick the ``error_message`` of a ``fail`` fault.

        Returns:
            One of ``FAIL_MESSAGES``.

        Example:
            >>> FaultInjector(FaultSpec()).failure_message() in FAIL_MESSAGES
            True
        """
        return self._rng.choice(FAIL_MESSAGES)

    def record(self, kind: str) -> None:
        """Count one injected fault.

        Args:
            kind: One of ``FAULT_KINDS``.
        """
        self.counts[kind] = self.counts.get(kind, 0) + 1

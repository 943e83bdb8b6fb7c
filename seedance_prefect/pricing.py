"""Cost estimates for a request: $0.40 per generated second, times the number of generations."""

from __future__ import annotations

from dataclasses import dataclass

from .limits import AUTO_DURATION_ASSUMED_SECONDS
from .settings import get_settings

__all__ = ["CostEstimate", "estimate_cost", "price_per_second"]


@dataclass(frozen=True)
class CostEstimate:
    """An estimated cost.

    Attributes:
        seconds: Seconds of video that will be generated (all generations together).
        usd: Estimated price in US dollars.
        price_per_second: The price used.
        assumption: What the estimate assumes, when it assumes anything (``duration="auto"``).
    """

    seconds: float
    usd: float
    price_per_second: float
    assumption: str | None = None

    def __str__(self) -> str:
        text = f"${self.usd:.2f} ({self.seconds:g} s at ${self.price_per_second:.2f}/s)"
        if self.assumption:
            text += f"; {self.assumption}"
        return text


def price_per_second(override: float | None = None) -> float:
    """Return the price per generated second: ``override``, else ``$SEEDANCE_PRICE_PER_SECOND``, else $0.40.

    Example:
        >>> price_per_second(0.5)
        0.5
    """
    if override is not None:
        return float(override)
    return get_settings().price_per_second


def estimate_cost(
    duration: str | int, num_generations: int = 1, *, price: float | None = None
) -> CostEstimate:
    """Estimate the cost of a request from its duration and number of generations.

    Args:
        duration: ``"auto"`` or ``"4"``..``"15"`` (an int is accepted too).
        num_generations: How many videos the request makes.
        price: Price per second in USD; defaults to :func:`price_per_second`.

    Returns:
        The estimate; for ``"auto"`` it assumes the longest video (15 s) and says so.

    Example:
        >>> str(estimate_cost("8", 2))
        '$6.40 (16 s at $0.40/s)'
        >>> estimate_cost("auto").assumption
        'duration "auto": assumed up to 15 s per video'
    """
    rate = price_per_second(price)
    assumption = None
    if str(duration) in ("auto", "-1"):
        per_video = AUTO_DURATION_ASSUMED_SECONDS
        assumption = f'duration "auto": assumed up to {per_video} s per video'
    else:
        per_video = int(duration)
    seconds = float(per_video * num_generations)
    return CostEstimate(
        seconds=seconds, usd=round(seconds * rate, 2), price_per_second=rate, assumption=assumption
    )

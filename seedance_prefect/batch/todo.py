"""Which rows of a planned batch still have to run, and the budget check on them: one filter.

``seedance batch`` applies it before Prefect starts (so an over-budget or fully delivered batch is
answered in a second), and the batch flow applies the same rules inside the run, where the size of
the concurrency limit and the delivery target are known too:

- *over the limit*: the row asks for more generations (``num_generations``) than the concurrency
  limit has slots, so it could never start; reported as invalid;
- *already there*: the journal records every video of the row's last attempt as delivered
  (:func:`~seedance_prefect.batch.manifest.already_delivered`) and this run's target holds each
  of them (:meth:`~seedance_prefect.delivery.targets.DeliveryTarget.find_delivered`); skipped, free;
- *to redeliver*: delivered by an earlier run, but not (all) found in this target, or no target
  was given to look in: copied from the earlier delivery or downloaded again
  (:func:`~seedance_prefect.delivery.redeliver.redeliver`); never generated again, so free too;
- *to run*: everything else. Only these are generated, and only these count against the budget.

Example:
    >>> import tempfile
    >>> from seedance_prefect.batch.manifest import plan_batch
    >>> from seedance_prefect.generation.journal import Journal
    >>> plan = plan_batch([{"prompt": "A boat", "duration": "5"}, {"prompt": "A cat", "duration": "5"}])
    >>> todo = select_rows(plan.rows, Journal(tempfile.mkdtemp()), budget_usd=10.0)
    >>> len(todo.to_run), todo.cost_usd
    (2, 4.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..delivery.folder import DeliveredVideo
from ..delivery.targets import DeliveryTarget
from ..generation.journal import Journal
from .budget import check_budget
from .manifest import BatchRow, already_delivered

__all__ = ["Todo", "select_rows"]


Deliveries = list[dict[str, Any]]


@dataclass
class Todo:
    """The rows of a batch split by what is left to do.

    Attributes:
        to_run: Rows to generate, in the given order.
        already_there: Rows an earlier run delivered to this run's target, with their deliveries
            as found there (``generation_id``, ``video``, ``sha256``, ``size_bytes`` each).
        to_redeliver: Rows an earlier run delivered, not (all) found in this run's target (or no
            target was given), with their recorded deliveries: to copy or download again.
        over_limit: Rows that need more slots than the concurrency limit has, with the problem.
    """

    to_run: list[BatchRow] = field(default_factory=list)
    already_there: list[tuple[BatchRow, Deliveries]] = field(default_factory=list)
    to_redeliver: list[tuple[BatchRow, Deliveries]] = field(default_factory=list)
    over_limit: list[tuple[BatchRow, str]] = field(default_factory=list)

    @property
    def delivered(self) -> list[tuple[BatchRow, Deliveries]]:
        """Every row an earlier run delivered, wherever: ``already_there + to_redeliver``.

        Example:
            >>> Todo().delivered
            []
        """
        return self.already_there + self.to_redeliver

    @property
    def cost_usd(self) -> float:
        """Estimated cost of the rows to run (rows delivered before, here or elsewhere, are free).

        Example:
            >>> Todo().cost_usd
            0.0
        """
        return round(sum((r.cost.usd for r in self.to_run), 0.0), 2)


def _held(target: DeliveryTarget, delivery: dict[str, Any]) -> DeliveredVideo | None:
    """The target's copy of a delivery, or None (also when the target cannot tell: the row is then
    redelivered, where a lasting problem fails that row alone, with its message)."""
    try:
        return target.find_delivered(delivery)
    except Exception:
        return None


def select_rows(
    rows: Sequence[BatchRow],
    journal: Journal,
    *,
    budget_usd: float | None = None,
    limit: int | None = None,
    target: DeliveryTarget | None = None,
) -> Todo:
    """Split planned rows into to run, already there, to redeliver and over the limit; apply the budget.

    Args:
        rows: Valid rows (:attr:`~seedance_prefect.batch.manifest.BatchPlan.rows`).
        journal: The enqueue journal that records earlier deliveries.
        budget_usd: Refuse when the rows to run are estimated above it (None: no budget).
        limit: Slots of the concurrency limit (None: unknown yet, not checked).
        target: This run's delivery target, asked whether it holds each earlier delivery (a stat
            or HEAD per video); None: not asked, every delivered row is *to redeliver*.

    Returns:
        The split.

    Raises:
        BudgetExceeded: The rows to run are estimated over ``budget_usd`` (nothing was sent).

    Example:
        >>> import tempfile
        >>> from seedance_prefect.batch.manifest import plan_batch
        >>> plan = plan_batch([{"prompt": "A boat", "duration": "5", "num_generations": 3}])
        >>> todo = select_rows(plan.rows, Journal(tempfile.mkdtemp()), limit=2)
        >>> todo.over_limit[0][1], todo.to_run
        ('num_generations 3 is over the concurrency limit 2', [])
        >>> from seedance_prefect.errors import BudgetExceeded
        >>> try:
        ...     select_rows(plan.rows, Journal(tempfile.mkdtemp()), budget_usd=1.0)
        ... except BudgetExceeded as exc:
        ...     print(exc)
        Estimated cost $6.00 is over the budget of $1.00: nothing was enqueued
    """
    todo = Todo()
    for row in rows:
        if limit is not None and row.request.num_generations > limit:
            problem = f"num_generations {row.request.num_generations} is over the concurrency limit {limit}"
            todo.over_limit.append((row, problem))
        elif (done := already_delivered(journal, row.fingerprint)) is not None:
            found = [_held(target, d) for d in done] if target is not None else [None]
            if all(f is not None for f in found):
                here = [{**d, **f.to_dict()} for d, f in zip(done, found, strict=True) if f is not None]
                todo.already_there.append((row, here))
            else:
                todo.to_redeliver.append((row, done))
        else:
            todo.to_run.append(row)
    check_budget(todo.cost_usd, budget_usd)
    return todo

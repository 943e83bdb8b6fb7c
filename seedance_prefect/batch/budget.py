"""Run totals and the optional budget of a batch.

The budget is checked **before anything is enqueued**: when the estimated cost of every row that
would run (rows already delivered are free) is over ``budget_usd``, the batch refuses to start
and nothing is paid. Estimates are upper bounds per row ($0.40 per requested second; duration
``"auto"`` costed at 15 s), so a batch that starts cannot go over its budget by our estimate;
there is no "stop enqueuing half way" (that would leave a batch half done for no saving).

Example:
    >>> check_budget(12.0, 20.0)
    >>> try:
    ...     check_budget(12.0, 10.0)
    ... except BudgetExceeded as exc:
    ...     print(exc)
    Estimated cost $12.00 is over the budget of $10.00: nothing was enqueued
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import BudgetExceeded, FieldProblem, InvalidRequest

__all__ = ["STATUSES", "BudgetExceeded", "RunTotals", "check_budget"]


def check_budget(cost_usd: float, budget_usd: float | None) -> None:
    """Raise :class:`BudgetExceeded` when ``cost_usd`` is over ``budget_usd`` (None: no budget).

    Raises:
        BudgetExceeded: Over budget.
        InvalidRequest: A negative budget (bad input, named ``budget_usd``; also a ``ValueError``).

    Example:
        >>> check_budget(4.0, 10.0)
        >>> try:
        ...     check_budget(4.0, -1)
        ... except InvalidRequest as exc:
        ...     print(exc.problems[0].field, exc.problems[0].message)
        budget_usd A budget cannot be negative
    """
    if budget_usd is None:
        return
    if budget_usd < 0:
        problem = FieldProblem(
            "budget_usd",
            "A budget cannot be negative",
            found=f"{budget_usd:g}",
            fix="Give 0 or more US dollars, or no budget",
        )
        raise InvalidRequest([problem])
    if round(cost_usd, 2) > round(budget_usd, 2):
        raise BudgetExceeded(cost_usd, budget_usd)


#: Per-row statuses of a batch summary, in the order the totals print them.
STATUSES = ("delivered", "copied", "skipped", "failed", "invalid")


@dataclass
class RunTotals:
    """Totals of one batch run.

    A row's ``status`` is one of :data:`STATUSES`: ``delivered`` (generated and delivered by this
    run), ``copied`` (delivered to this target by this run without a new generation: copied from
    an earlier delivery, or downloaded again from the service), ``skipped`` (already there: an
    earlier run delivered it to this very target; the summary prints it as "already there"; the
    value stays ``skipped`` for those who parse it), ``failed`` or ``invalid``.

    Attributes:
        rows: Rows in the manifest (or the shard).
        delivered: Rows generated and delivered by this run.
        copied: Rows delivered to this target by this run without a new generation.
        skipped: Rows already there (delivered to this target by an earlier run).
        failed: Rows that failed.
        invalid: Rows refused by the checks.
        generations: New videos generated and delivered by this run (copies are not counted).
        seconds: Seconds of those new videos (requested durations).
        cost_usd: Estimated cost of those new videos (copies cost nothing).
        wall_seconds: Wall time of the run.

    Example:
        >>> totals = RunTotals.from_rows([
        ...     {"status": "delivered", "generations": 2, "seconds": 10, "cost_usd": 4.0},
        ...     {"status": "copied"}, {"status": "skipped"}, {"status": "invalid"}])
        >>> totals.as_dict()["cost_usd"], totals.copied, totals.done, totals.ok
        (4.0, 1, 3, False)
    """

    rows: int = 0
    delivered: int = 0
    copied: int = 0
    skipped: int = 0
    failed: int = 0
    invalid: int = 0
    generations: int = 0
    seconds: float = 0.0
    cost_usd: float = 0.0
    wall_seconds: float = 0.0

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], wall_seconds: float = 0.0) -> RunTotals:
        """Add up summary rows (``status``, ``generations``, ``seconds``, ``cost_usd``).

        Example:
            >>> RunTotals.from_rows([{"status": "copied", "generations": 0}]).copied
            1
        """
        totals = cls(wall_seconds=round(wall_seconds, 1))
        for row in rows:
            totals.rows += 1
            status = row.get("status")
            if status in STATUSES:
                setattr(totals, str(status), getattr(totals, str(status)) + 1)
            if status == "delivered":
                totals.generations += int(row.get("generations") or 0)
                totals.seconds += float(row.get("seconds") or 0.0)
                totals.cost_usd += float(row.get("cost_usd") or 0.0)
        totals.cost_usd = round(totals.cost_usd, 2)
        return totals

    @property
    def done(self) -> int:
        """Rows whose videos are in the target now: delivered, copied or already there."""
        return self.delivered + self.copied + self.skipped

    @property
    def ok(self) -> bool:
        """True when every row's videos are in the target (delivered, copied or already there)."""
        return self.rows > 0 and self.done == self.rows

    def as_dict(self) -> dict[str, Any]:
        """Return the totals as a JSON-ready dict."""
        return asdict(self)

"""Turn fixable preflight problems into planned fixes (``check_request(..., fix=True)``).

Preflight finds problems; reference preprocessing (:mod:`seedance_prefect.references.plan`) can fix
many of them. With ``fix=True`` (the default) :func:`apply_fix_plan` plans the fixes from the
probes preflight already made (nothing is probed twice, nothing is encoded, no network) and:

- a ``fixable`` problem whose field the plan takes care of leaves the errors/warnings and is kept
  in ``report.resolved``; the plan's :class:`~seedance_prefect.references.fixes.PlannedFix` records go
  to ``report.planned``;
- what the plan cannot fix becomes an error naming the field and the file (a HEIC image without
  the ``heic`` extra, in/out points past the end, a total that in/out points make too short...);
- everything else is unchanged: unfixable problems stay errors.

With ``fix=False`` in/out points (``#t=``) are refused, since nothing would apply them.

Example:
    >>> from seedance_prefect.preflight import check_request
    >>> report = check_request({"prompt": "@Video1", "input_videos": ["https://e.com/v.mp4#t=1,3"]})
    >>> [p.message for p in report.errors]
    ['In/out points (#t=) apply to local files and data: URIs only']
"""

from __future__ import annotations

from ..errors import FieldProblem
from ..references.fixes import FixOptions, PlannedFix
from ..references.plan import plan_references
from .references import ReferenceChecker

__all__ = ["apply_fix_plan", "refuse_trims"]


def apply_fix_plan(
    checker: ReferenceChecker, options: FixOptions | None = None
) -> tuple[list[PlannedFix], list[FieldProblem]]:
    """Plan the fixes of the checked references and move the problems they solve out of the way.

    Args:
        checker: The checker after every rule ran (its errors and warnings are edited in place);
            nothing is planned when it did not probe.
        options: Fix options.

    Returns:
        ``(planned fixes, resolved problems)``.
    """
    if not checker.probe:
        return [], []  # nothing was probed: nothing to plan from
    plan = plan_references(checker.references, options)
    blocked = {p.field for p in checker.errors if not p.fixable}
    replaced = set()
    for problem in plan.errors:
        if problem.field not in blocked:
            checker.add([problem])
            replaced.add(problem.field)
    resolved: list[FieldProblem] = []
    for bucket in (checker.errors, checker.warnings):
        kept = []
        for problem in bucket:
            if problem.fixable and problem.field in plan.handled and problem.field not in replaced:
                resolved.append(problem)
            elif problem.fixable and problem.field in replaced:
                continue
            else:
                kept.append(problem)
        bucket[:] = kept
    return plan.fixes, resolved


def refuse_trims(checker: ReferenceChecker) -> None:
    """With preprocessing off, in/out points cannot be honoured: refuse them.

    Example:
        >>> from pathlib import Path
        >>> checker = ReferenceChecker(Path("/tmp"), probe=False)
        >>> _ = checker.reference("input_videos[0]", "/tmp/a.mp4#t=2,9")
        >>> refuse_trims(checker); [p.message for p in checker.errors][-1]
        'In/out points (#t=) need reference preprocessing'
    """
    for ref in checker.references:
        if ref.trim is not None:
            checker.add(
                [
                    FieldProblem(
                        ref.field,
                        "In/out points (#t=) need reference preprocessing",
                        found=ref.uri,
                        fix="Turn preprocessing on (fix_references=True), or remove #t=",
                    )
                ]
            )

"""Batches without Prefect: manifests, budgets and the slot pool that runs rows.

- :mod:`.manifest`: JSONL/CSV manifests read, checked and planned (:func:`plan_batch`).
- :mod:`.budget`: estimated cost against ``--budget-usd`` and the run's totals.
- :mod:`.runner`: the threads and permits that run rows under a concurrency limit.

The Prefect flow is :mod:`seedance_prefect.batch_flows`.

Example:
    >>> from seedance_prefect.batch import parse_manifest
    >>> [row.name for row in parse_manifest('{"prompt": "a boat", "name": "boat"}', "jsonl")]
    ['boat']
"""

from .manifest import (
    MAX_MANIFEST_BYTES,
    BatchPlan,
    BatchRow,
    ManifestRow,
    RejectedRow,
    already_delivered,
    parse_manifest,
    plan_batch,
    read_manifest,
)

__all__ = [
    "MAX_MANIFEST_BYTES",
    "BatchPlan",
    "BatchRow",
    "ManifestRow",
    "RejectedRow",
    "already_delivered",
    "parse_manifest",
    "plan_batch",
    "read_manifest",
]

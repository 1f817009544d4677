"""A comparison as JSON for scripts: every number of the text report, with NaN and infinities as null."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from seqrec.compare.budget import budget_json
from seqrec.compare.comparison import Comparison
from seqrec.compare.cost import cost_per_run
from seqrec.compare.protocols import ProtocolGroup, differing_settings
from seqrec.compare.significance import METHODS
from seqrec.compare.table import SECONDS_COLUMN
from seqrec.compare.tuning import study_json


def finite(value):
    """JSON has no NaN: NaN and infinities become null, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value


def _group_json(group: ProtocolGroup, groups: Sequence[ProtocolGroup]) -> dict:
    return {
        "label": group.label,
        "protocol": group.protocol,
        "protocol_recorded": group.recorded,
        "test_set": group.test_set,
        "test_samples": group.test_samples,
        "rows": list(dict.fromkeys(run.objective for run in group.runs)),
        "runs": [run.location for run in group.runs],
        "differs_in": {
            key: group.settings.get(key) for key in differing_settings(groups) if key in group.settings
        },
    }


def report_json(comparison: Comparison) -> str:
    table = comparison.table
    group_of = {
        run.objective: group.label or group.protocol for group in comparison.groups for run in group.runs
    }
    metrics = [c for c in table.columns if f"{c}_ci" in table.columns]
    rows = [
        {
            "objective": row["objective"],
            "n_seeds": row["n_seeds"],
            SECONDS_COLUMN: row[SECONDS_COLUMN],
            "metrics": {m: {"mean": row[m], "ci_half_width": row[f"{m}_ci"]} for m in metrics},
            "protocol": group_of.get(row["objective"]),
        }
        for row in table.iter_rows(named=True)
    ]
    significance = comparison.significance
    payload = {
        "sources": comparison.sources,
        "split": comparison.split,
        "table": rows,
        "ceiling": comparison.ceiling,
        "ceilings": [
            {"protocol": group.label or group.protocol, "test_set": group.test_set, "metrics": found}
            for group, found in comparison.ceilings
        ],
        "mixed": comparison.mixed,
        "protocols": [_group_json(group, comparison.groups) for group in comparison.groups],
        "notes": comparison.notes,
        "baseline": comparison.baseline,
        "metric": comparison.metric,
        "test": comparison.test,
        "methods": METHODS,
        "significance": significance.to_dicts() if significance is not None else [],
        "pairs": comparison.pairs,
        "first_place": comparison.first_place,
        "exclude_seen": comparison.exclude_seen,
        "segments": comparison.segments.to_dicts() if comparison.segments is not None else None,
        "segments_note": comparison.segments_note,
        "cost": comparison.cost.to_dicts() if comparison.cost is not None else None,
        "cost_per_run": cost_per_run(comparison.runs).to_dicts() if comparison.cost is not None else None,
        "runs": len(comparison.scan.runs),
        "skipped": [{"location": s.location, "reason": s.reason} for s in comparison.scan.skipped],
        "figures": [str(path) for path in comparison.figures],
        "budget": budget_json(*comparison.budget),
        "tuning": [study_json(view) for view in comparison.tuning],
    }
    return json.dumps(finite(payload), indent=2, allow_nan=False)

"""Did the budget decide a run? Flags for runs whose best validation step is the first or the last one.

A run whose best step is its last validation was still improving when its budget ended (more steps might
change the verdict); one whose best step is its first validation peaked before the schedule could see it
(validate more often, or lower the learning rate). An objective is flagged when that happens in most of
its seeds, and its verdict lines say so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from seqrec.compare.runs import RunRecord

FIRST, LAST = "first", "last"
MESSAGES = {
    LAST: "still improving at the end of its budget",
    FIRST: "best at the first validation: the schedule may be too coarse",
}


@dataclass(frozen=True)
class RunBudget:
    location: str
    objective: str
    seed: int
    best_step: int | None
    first_step: int | None
    last_step: int | None
    validations: int

    @property
    def flag(self) -> str | None:
        """`first`, `last` or None; a run with fewer than 2 validations gets none (nothing to compare)."""
        if self.best_step is None or self.validations < 2:
            return None
        if self.best_step == self.last_step:
            return LAST
        if self.best_step == self.first_step:
            return FIRST
        return None


@dataclass(frozen=True)
class ObjectiveBudget:
    objective: str
    flag: str | None  # the flag of most seeds (more than half), or None
    flagged_seeds: int  # seeds with that flag (with no flag: the most common one's count)
    n_seeds: int

    @property
    def message(self) -> str | None:
        if self.flag is None:
            return None
        return f"{MESSAGES[self.flag]} ({self.flagged_seeds} of {self.n_seeds} seeds)"


def run_budget(run: RunRecord) -> RunBudget:
    steps = run.history()["step"].to_list() if run.history_loader is not None else []
    steps = [int(step) for step in steps if step is not None]
    return RunBudget(
        run.location,
        run.objective,
        run.seed,
        run.best_step,
        min(steps) if steps else None,
        max(steps) if steps else None,
        len(steps),
    )


def budget_flags(runs: Sequence[RunRecord]) -> tuple[list[RunBudget], dict[str, ObjectiveBudget]]:
    """Per run, and per objective (in the runs' order)."""
    per_run = [run_budget(run) for run in runs]
    per_objective: dict[str, ObjectiveBudget] = {}
    for objective in dict.fromkeys(budget.objective for budget in per_run):
        flags = [budget.flag for budget in per_run if budget.objective == objective]
        counts = Counter(flag for flag in flags if flag is not None)
        flag, count = counts.most_common(1)[0] if counts else (None, 0)
        majority = flag if count * 2 > len(flags) else None
        per_objective[objective] = ObjectiveBudget(objective, majority, count, len(flags))
    return per_run, per_objective


def flagged_verdict(verdict: str, objective: str, baseline: str, flags: dict[str, ObjectiveBudget]) -> str:
    """The verdict line with the budget flags of the two objectives it compares."""
    notes = [
        f"{name}: {flags[name].message}"
        for name in (objective, baseline)
        if name in flags and flags[name].flag
    ]
    return verdict if not notes else f"{verdict} [budget: {'; '.join(notes)}]"


def format_budget(per_run: Sequence[RunBudget], per_objective: dict[str, ObjectiveBudget], style: str) -> str:
    """The section every text format shows: one line per objective, with its runs' best steps; empty when
    no run recorded a validation history."""
    if not any(budget.validations for budget in per_run):
        return ""
    heading = "### " if style == "markdown" else ""
    lines = [f"{heading}Budget: best validation step = first or last validation"]
    for objective, summary in per_objective.items():
        runs = [budget for budget in per_run if budget.objective == objective and budget.validations]
        steps = ", ".join(
            f"s{b.seed}: {b.best_step} of {b.first_step}..{b.last_step}" + (f" ({b.flag})" if b.flag else "")
            for b in runs
        )
        verdict = summary.message or "best step inside the schedule in most seeds"
        lines.append(f"- `{objective}`: {verdict}; best step per seed: {steps or 'no validation history'}")
    return "\n".join(lines)


def budget_json(per_run: Sequence[RunBudget], per_objective: dict[str, ObjectiveBudget]) -> dict:
    return {
        "runs": [
            {
                "location": b.location,
                "objective": b.objective,
                "seed": b.seed,
                "best_step": b.best_step,
                "first_validation_step": b.first_step,
                "last_validation_step": b.last_step,
                "validations": b.validations,
                "flag": b.flag,
            }
            for b in per_run
        ],
        "objectives": {
            name: {
                "flag": o.flag,
                "flagged_seeds": o.flagged_seeds,
                "n_seeds": o.n_seeds,
                "message": o.message,
            }
            for name, o in per_objective.items()
        },
    }

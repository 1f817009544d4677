"""A comparison as text for a terminal (plain) or a page (markdown): the table, the ceiling, the protocol,
the significance rows with their verdicts and what the intervals mean, notes, segments, cost, runs, figures.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence

from seqrec.compare.budget import format_budget
from seqrec.compare.comparison import Comparison
from seqrec.compare.cost import format_cost
from seqrec.compare.protocols import where
from seqrec.compare.ranking import pairs_heading
from seqrec.compare.report_json import finite
from seqrec.compare.runs import RunScan
from seqrec.compare.segments import format_segments
from seqrec.compare.significance import format_significance, significance_heading
from seqrec.compare.statistics import ALPHA, MIN_SEEDS_FOR_VERDICT
from seqrec.compare.table import format_table, table_style
from seqrec.compare.tuning import format_study, study_json, study_views

INTERVALS_MEAN = {
    "seeds+samples": "Each interval is for the expected difference between the objectives over retraining "
    "(seeds) and over test samples drawn like these; more seeds and more test users narrow it.",
    "seeds": "Each interval is for the expected difference over retraining (seeds) on this test set; without "
    "per-sample ranks the test set's own sampling noise is not included.",
    "samples": "Each interval is for these trained models on test samples like these: it ignores training "
    "randomness, so it says nothing about which objective is better.",
}


def _protocol_text(comparison: Comparison, style: str) -> str:
    """Which protocol and test set the rows share, or, for a mixed comparison, each group and its rows."""
    groups = comparison.groups
    if not groups:
        return ""
    if len(groups) == 1:
        return f"All runs share one protocol and test set: {groups[0].describe()}."
    code = "`" if style == "markdown" else ""
    lines = [
        f"Mixed protocols or test sets ({len(groups)} groups, --allow-mixed): each row is labelled "
        "`variant @ what differs`; the table never pools them, and significance and verdicts stay within "
        "the baseline's group."
    ]
    for group in groups:
        lines.append(f"- {code}{group.label}{code}: {group.describe()}; {where(group, groups)}")
    return "\n".join(lines)


def _ceiling_text(values: Sequence[tuple[str, float]], style: str, rows: str | None) -> str:
    heading = table_style(style).heading
    title = (
        f"{heading}Ceiling: the synthetic generator's Bayes-optimal ranking of the same test samples "
        "(no objective can beat it on average)"
    )
    if rows:  # a mixed comparison: one ceiling per protocol and test set, for its rows only
        title = (
            f"{heading}Ceiling for {rows} only: the Bayes-optimal ranking of their test samples, evaluated "
            "as they are"
        )
    if style == "markdown":
        header = "| ranking | " + " | ".join(m for m, _ in values) + " |\n|---|" + "---|" * len(values)
        return (
            f"{title}\n\n{header}\n| Bayes-optimal oracle | "
            + " | ".join(f"{v:.4f}" for _, v in values)
            + " |"
        )
    return f"{title}\n" + "  ".join(f"{m} {v:.4f}" for m, v in values)


def _ceiling_texts(comparison: Comparison, metrics: Sequence[str], style: str) -> list[str]:
    texts = []
    shown = set(comparison.table["objective"])
    for group, found in comparison.ceilings:
        rows = [name for name in dict.fromkeys(run.objective for run in group.runs) if name in shown]
        values = [(m, found[m]) for m in metrics if m in found]
        if rows and values:
            texts.append(_ceiling_text(values, style, ", ".join(rows) if comparison.mixed else None))
    return texts


def _wrapped(text: str, style: str) -> str:
    """Prose lines fit a 120-column terminal in plain text; markdown pages wrap by themselves."""
    if style != "plain":
        return text
    return "\n".join(textwrap.fill(line, width=120, break_on_hyphens=False) for line in text.splitlines())


def format_report(comparison: Comparison, style: str = "plain", command: str | None = None) -> str:
    """The comparison as text: results table, ceiling, significance with verdicts, runs, figures."""
    heading = table_style(style).heading
    metrics = [c for c in comparison.table.columns if f"{c}_ci" in comparison.table.columns]
    parts = [
        f"{heading}Metrics on {comparison.split}: mean ± 95% CI over seeds (Student t, n-1 df)",
        format_table(comparison.table, style=style, row_groups=comparison.row_groups()),
    ]
    parts += [_wrapped(text, style) for text in _ceiling_texts(comparison, metrics, style)]
    if comparison.groups:
        parts.append(_wrapped(_protocol_text(comparison, style), style))
    significance = comparison.significance
    if significance is None and comparison.table.height > 1:
        parts.append("Significance: no objective shares the baseline's protocol and test set.")
    elif significance is None:
        parts.append("Significance: only one objective, nothing to compare.")
    else:
        if comparison.pairs == "all":
            title = pairs_heading(significance, comparison.metric)
        else:
            title = significance_heading(significance, comparison.baseline, comparison.metric)
        parts.append(heading + _wrapped(title, style))
        parts.append(format_significance(significance, style=style))
        if comparison.first_place:
            parts.append(_wrapped(comparison.first_place, style))
        methods = significance["method"].unique(maintain_order=True).to_list()
        meaning = " ".join(INTERVALS_MEAN[m] for m in methods)
        if "samples" not in methods:
            meaning += f" A verdict needs at least {MIN_SEEDS_FOR_VERDICT} seeds and p < {ALPHA}."
        parts.append(_wrapped(meaning, style))
    parts += [_wrapped(note, style) for note in comparison.notes]
    parts += [_wrapped(text, style) for text in [format_budget(*comparison.budget, style)] if text]
    parts += [format_study(view, style) for view in comparison.tuning]
    if comparison.segments is not None:
        parts.append(_wrapped_last(format_segments(comparison.segments, style), style))
    elif comparison.segments_note:
        parts.append(comparison.segments_note)  # one line, however long: it names a run folder
    if comparison.cost is not None:
        parts.append(_wrapped_last(format_cost(comparison.cost, style), style, paragraphs=True))
    if comparison.exclude_seen is not None:
        parts.append(
            f"Seen items: evaluation.exclude_seen={str(comparison.exclude_seen).lower()} for every run "
            "(each run records both conventions in one evaluation pass)."
        )
    parts.append(comparison.scan.note())
    if comparison.figures:
        parts.append("Figures: " + ", ".join(str(path) for path in comparison.figures) + " (and .pdf)")
    if command:
        parts.append(f"Runs: {' '.join(comparison.sources)}\nRerun: {command}")
    return "\n\n".join(parts)


def tuning_only_report(sources: Sequence[str], style: str, scan: RunScan) -> str:
    """The tuning view of study folders that have no completed final run yet."""
    views = study_views(sources)
    if style == "json":
        return json.dumps(
            finite({"sources": list(sources), "runs": 0, "tuning": [study_json(v) for v in views]})
        )
    parts = [format_study(view, style) for view in views]
    parts.append("No completed final run yet: no test metrics, no verdicts.\n" + scan.note())
    return "\n\n".join(parts)


def _wrapped_last(text: str, style: str, paragraphs: bool = False) -> str:
    """Wrap the prose paragraph(s) after a table: the last one, or every paragraph after the first table."""
    blocks = text.split("\n\n")
    start = 2 if paragraphs else len(blocks) - 1
    return "\n\n".join(blocks[:start] + [_wrapped(block, style) for block in blocks[start:]])

"""Compare training objectives from recorded runs: which objective to use, and how sure one can be.

    python -m seqrec.compare multirun/2026-01-01/12-00-00 [MORE_SWEEPS ...] --baseline bce --metric dcg@10

Modules, each readable on its own:
- `protocols`: runs grouped by protocol and test-set fingerprint; mixed groups refused or labelled;
- `record_checks`: a run's test ranks must reproduce its recorded metrics and test set;
- `runs`: completed runs of one or several sweep folders (run.json, history.jsonl, test_ranks.parquet),
  variant labels, skipped runs with the reason;
- `wandb_source`: the same records from a Weights & Biases project (no test ranks there);
- `table`: mean ± 95% CI over seeds per objective and metric, training seconds to the best step;
- `statistics`: the seed-aware paired test (model, assumptions, calibration), Holm, power, p-value text;
- `significance`: each objective against a baseline from the runs, and the verdict to quote;
- `ranking`: the best mean against every other, every pair, who is tied for first;
- `segments`: metric and paired difference per segment (history length, popularity, cold users/items);
- `cost`: steps, events and CPU time per event to the best step, load and evaluation-share notes;
- `conventions`: compare under either seen-items convention (runs record both);
- `plots`: validation curves, time to quality, quality vs coverage;
- `comparison`: all of the above computed once for the chosen runs (`compare` -> `Comparison`);
- `report_text`, `report_json`: a comparison as plain text or markdown, and as JSON;
- `cli`: the command line (reads the runs, writes the figures with --plots, prints the report).
"""

from seqrec.compare.cli import main
from seqrec.compare.comparison import Comparison, ceiling, compare
from seqrec.compare.conventions import with_convention
from seqrec.compare.cost import cost_table, format_cost, load_notes
from seqrec.compare.errors import RecordError
from seqrec.compare.plots import (
    plot_quality_coverage,
    plot_time_to_quality,
    plot_validation_curves,
    save_figures,
    validation_curves,
)
from seqrec.compare.protocols import (
    MixedProtocols,
    ProtocolGroup,
    fingerprints_of,
    group_runs,
    protocol_groups,
)
from seqrec.compare.ranking import all_pairs, best_objective, first_place, pairs_heading, tied_for_first
from seqrec.compare.report_json import report_json
from seqrec.compare.report_text import format_report
from seqrec.compare.runs import (
    RunRecord,
    RunScan,
    SkippedRun,
    history_frame,
    label_variants,
    load_runs,
    newest_sweep_dir,
    scan_run_dirs,
)
from seqrec.compare.segments import SegmentsNeedRerun, format_segments, segment_table
from seqrec.compare.significance import (
    METHODS,
    format_significance,
    paired_significance,
    per_sample_metric,
    significance_heading,
    verdict,
)
from seqrec.compare.statistics import (
    bootstrap_means,
    format_p_value,
    holm,
    seed_sample_test,
    seed_test,
    seeds_needed,
    sign_flip_p_value,
)
from seqrec.compare.table import PROTOCOL_METRICS, format_table, results_table, table_metrics
from seqrec.compare.wandb_source import load_wandb_runs, scan_wandb_runs

__all__ = [
    "METHODS",
    "MixedProtocols",
    "ProtocolGroup",
    "RecordError",
    "fingerprints_of",
    "group_runs",
    "protocol_groups",
    "PROTOCOL_METRICS",
    "Comparison",
    "RunRecord",
    "RunScan",
    "SegmentsNeedRerun",
    "SkippedRun",
    "all_pairs",
    "best_objective",
    "cost_table",
    "first_place",
    "format_cost",
    "format_segments",
    "load_notes",
    "pairs_heading",
    "segment_table",
    "tied_for_first",
    "with_convention",
    "bootstrap_means",
    "ceiling",
    "compare",
    "format_p_value",
    "format_report",
    "format_significance",
    "format_table",
    "history_frame",
    "holm",
    "label_variants",
    "load_runs",
    "load_wandb_runs",
    "main",
    "newest_sweep_dir",
    "paired_significance",
    "per_sample_metric",
    "plot_quality_coverage",
    "plot_time_to_quality",
    "plot_validation_curves",
    "report_json",
    "results_table",
    "save_figures",
    "scan_run_dirs",
    "scan_wandb_runs",
    "seed_sample_test",
    "seed_test",
    "seeds_needed",
    "sign_flip_p_value",
    "significance_heading",
    "table_metrics",
    "validation_curves",
    "verdict",
]

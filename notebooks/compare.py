# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Which objective should I use, and how sure am I? Comparing recorded seqrec runs
#
# Reads the run records of one or several sweeps (`run.json`, `history.jsonl`, `test_ranks.parquet` in
# every run folder) or a Weights & Biases project, and shows: the test metrics as mean ± 95% CI over
# seeds, the seed-aware paired significance against a baseline (by default the best mean) with a verdict
# per objective and who is tied for first, where the differences come from (segments of users and items),
# what each objective cost, the validation curves, time to quality and the quality-vs-coverage trade-off.
# All computation lives in `seqrec.compare`; this notebook only calls it. Source of truth: `compare.py`
# (jupytext percent format), paired with `compare.ipynb`.
#
# Without JupyterLab: `make notebook SWEEP=multirun/...` executes it headless and writes the executed
# notebook (with its figures) into the sweep folder. `SEQREC_SWEEP_DIR` may name several folders
# separated by `:`. The parameters in the next cell drive every cell below.

# %%
import os

from IPython.display import Markdown, display

from seqrec import compare

# %% tags=["parameters"]
SWEEP_DIRS = os.environ.get("SEQREC_SWEEP_DIR", "").split(os.pathsep)  # folders of runs; "" = newest sweep
WANDB_PROJECT = None  # "entity/project": read the runs from Weights & Biases instead of SWEEP_DIRS
WANDB_GROUP = None  # W&B run group (a sweep), with WANDB_PROJECT
OBJECTIVES = None  # objectives to show, in this order, e.g. ["bce", "softmax", "inbatch", "logq"]; None = all
BASELINE = None  # objective the others are tested against; None = the best mean on METRIC
PAIRS = "baseline"  # "baseline": each objective vs BASELINE; "all": every pair (Holm over all pairs)
HISTORY_EDGES = None  # user-history segment edges, e.g. [10, 50]; None = quartiles of the training split
EXCLUDE_SEEN = None  # True / False: the seen-items convention (runs record both); None = each run's own
METRIC = "dcg@10"  # metric of the significance test, the validation curves and time to quality
K = 10  # cutoff of the table columns and of the quality-vs-coverage plot
TEST = "seeds"  # "seeds" (seed-aware, the default) or "samples" (these trained models only)
ALLOW_MIXED = False  # True: other protocols or test sets side by side, rows labelled, no verdict across
FIGURES_DIR = None  # also save the figures (PNG and PDF) into this folder

# %% [markdown]
# ## Runs

# %%
SWEEP_DIRS = [folder for folder in SWEEP_DIRS if folder] or [compare.newest_sweep_dir()]
if WANDB_PROJECT:
    scan = compare.scan_wandb_runs(WANDB_PROJECT, WANDB_GROUP)
elif SWEEP_DIRS[0] is not None:
    scan = compare.scan_run_dirs(*SWEEP_DIRS)
else:
    raise FileNotFoundError("No sweep found: set SEQREC_SWEEP_DIR, SWEEP_DIRS or WANDB_PROJECT.")
print(f"Source: {WANDB_PROJECT or ' '.join(str(folder) for folder in SWEEP_DIRS)}")
print(scan.note())
metrics = list(dict.fromkeys([f"dcg@{K}", f"hitrate@{K}", f"coverage@{K}", METRIC]))
sources = [WANDB_PROJECT] if WANDB_PROJECT else [str(folder) for folder in SWEEP_DIRS]
# Refuses runs of different protocols or test sets (one line naming what differs) unless ALLOW_MIXED.
comparison = compare.compare(
    scan,
    sources,
    metrics=metrics,
    baseline=BASELINE,
    metric=METRIC,
    objectives=OBJECTIVES,
    test=TEST,
    allow_mixed=ALLOW_MIXED,
    pairs=PAIRS,
    segments=True,
    history_edges=HISTORY_EDGES,
    exclude_seen=EXCLUDE_SEEN,
)
runs, table = comparison.runs, comparison.table
for group in comparison.groups:
    print(f"{group.label or 'all runs'}: {group.describe()}")
for note in comparison.notes:
    print(note)

# %% [markdown]
# ## Test metrics at K: mean ± 95% CI over seeds
# Student t interval with n-1 degrees of freedom; best mean per column in bold, second underlined.

# %%
display(Markdown(compare.format_table(table, row_groups=comparison.row_groups())))
for group, ceiling in comparison.ceilings:  # one per protocol and test set: a ceiling only for its own rows
    rows = ", ".join(dict.fromkeys(run.objective for run in group.runs))
    text = f"{METRIC} {ceiling[METRIC]:.4f}"
    display(Markdown(f"Ceiling of {rows} (the synthetic generator's Bayes-optimal ranking): {text}"))

# %% [markdown]
# ## Significance, the verdicts, and who is first
# Runs with the same seed are paired; the seed is the unit of replication and the test set's own sampling
# noise (users as clusters) is added where test ranks exist. Holm-adjusted p-values when several objectives
# are compared; a verdict needs at least 3 seeds. Without BASELINE the best mean is tested against every
# other objective (`PAIRS = "all"`: every pair), and the last line says which objectives are statistically
# tied for first. `TEST = "samples"` shows the sample-only test, which describes these trained models only.
# Only runs of the baseline's protocol and test set are tested.

# %%
significance = comparison.significance
if significance is None:
    print("No objective to test against the baseline (one objective, or none on the baseline's protocol).")
else:
    if PAIRS == "all":
        heading = compare.pairs_heading(significance, METRIC)
    else:
        heading = compare.significance_heading(significance, comparison.baseline, METRIC)
    title, method = heading.split("\n")
    display(Markdown(f"**{title}**\n\n{method}\n\n" + compare.format_significance(significance)))
if comparison.first_place:
    display(Markdown(comparison.first_place))

# %% [markdown]
# ## Where the differences come from: segments
# Each objective's metric and its seed-aware paired difference from the baseline per segment of the test
# samples: users by their training-history length (cold users have none), target items by their training
# popularity (head / torso / tail hold a third of the training events each; cold items have none). The
# segments come from the training split only, as each run recorded them.

# %%
if comparison.segments is not None:
    display(Markdown(compare.format_segments(comparison.segments, style="markdown")))
else:
    print(comparison.segments_note or "No segments: nothing to compare.")

# %% [markdown]
# ## What it cost
# Steps and training events to the best validation and the training CPU time per event of each run's own
# process do not depend on what else ran on the machine; events/s and evaluation seconds do.

# %%
if comparison.cost is not None:
    display(Markdown(compare.format_cost(comparison.cost, style="markdown")))
else:
    print("Cost needs run folders (W&B runs carry no timings here).")

# %% [markdown]
# ## Validation curves and time to quality

# %%
curves = compare.validation_curves(runs)
if curves.height:
    compare.plot_validation_curves(curves, metric=METRIC)
    compare.plot_time_to_quality(curves, metric=METRIC)
else:
    print("No validation history recorded.")

# %% [markdown]
# ## Quality vs coverage at K

# %%
ax = compare.plot_quality_coverage(table, k=K)

# %%
if FIGURES_DIR:
    for path in compare.save_figures(runs, table, FIGURES_DIR, metric=METRIC, k=K):
        print(f"saved {path} (and .pdf)")

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
# # Which objective should I use? Comparing recorded seqrec runs
#
# Reads the run records of a sweep (`run.json`, `history.jsonl`, `test_ranks.parquet` in every run folder)
# or a Weights & Biases project, and shows: the test metrics as mean ± 95% CI over seeds, the validation
# curves, the quality-vs-coverage trade-off, and paired significance against a baseline objective.
# All computation lives in `seqrec.compare`; this notebook only calls it. Source of truth: `compare.py`
# (jupytext percent format), paired with `compare.ipynb`.
#
# Run a sweep first, e.g. `python run.py -m loss=bce,softmax,inbatch,logq seed=0,1,2`, or point
# `SEQREC_SWEEP_DIR` at one.

# %%
import os

from IPython.display import Markdown, display

from seqrec import compare

# %% tags=["parameters"]
SWEEP_DIR = os.environ.get("SEQREC_SWEEP_DIR") or compare.newest_sweep_dir()  # newest sweep under multirun/
WANDB_PROJECT = None  # "entity/project": read the runs from Weights & Biases instead of SWEEP_DIR
WANDB_GROUP = None  # W&B run group (a sweep), with WANDB_PROJECT
OBJECTIVES = None  # objectives to show, in this order, e.g. ["bce", "softmax", "inbatch", "logq"]; None = all
BASELINE = None  # objective the others are tested against; None = the first row of the table
METRIC = "dcg@10"  # metric of the paired significance test (dcg@k or hitrate@k)
K = 10  # cutoff of the quality-vs-coverage plot

# %% [markdown]
# ## Runs

# %%
if WANDB_PROJECT:
    scan = compare.scan_wandb_runs(WANDB_PROJECT, WANDB_GROUP)
elif SWEEP_DIR:
    scan = compare.scan_run_dirs(SWEEP_DIR)
else:
    raise FileNotFoundError("No sweep found: set SEQREC_SWEEP_DIR, SWEEP_DIR or WANDB_PROJECT.")
print(f"Source: {WANDB_PROJECT or SWEEP_DIR}")
print(scan.note())
runs = scan.runs

# %% [markdown]
# ## Test metrics: mean ± 95% CI over seeds
# Student t interval with n-1 degrees of freedom; best mean per column in bold, second underlined.

# %%
table = compare.results_table(runs, objectives=OBJECTIVES)
display(Markdown(compare.format_table(table)))

# %% [markdown]
# ## Validation curves (mean over seeds, band = min..max)

# %%
curves = compare.validation_curves(runs)
if curves.height:
    compare.plot_validation_curves(curves, metric="dcg@20")
else:
    print("No validation history recorded.")

# %% [markdown]
# ## Quality vs coverage trade-off

# %%
ax = compare.plot_quality_coverage(table, k=K)

# %% [markdown]
# ## Paired significance against the baseline
# Per-sample metric differences on the same test samples (paired by user and target item, averaged over the
# seeds both objectives have); 95% CI from a paired bootstrap over samples, two-sided p-value from a paired
# sign-flip randomisation test.

# %%
if any(run.has_ranks for run in runs):
    baseline = BASELINE or table["objective"][0]
    shown = table["objective"].to_list()
    significance = compare.paired_significance(runs, baseline=baseline, metric=METRIC, objectives=shown)
    display(Markdown(f"**{METRIC}, baseline {baseline}**\n\n" + compare.format_significance(significance)))
else:
    print("Paired significance disabled: the runs have no test ranks (W&B runs never do).")

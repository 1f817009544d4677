"""Each objective vs a baseline from fabricated run folders: pairing, the seed-aware default, the named
sample-only test, Holm, verdicts, and the two cases of issue 10 (a 3-seed sweep with no real effect,
a consistent 8-seed effect)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from compare_records import (
    N_SAMPLES,
    ranks_frame,
    sample_keys,
    write_ranked_sweep,
    write_run,
    write_sweep_with_seed_differences,
)
from seqrec import compare


def test_per_sample_metrics_match_hand_values():
    ranks = np.array([1, 2, 10, 11, 25])
    dcg = compare.per_sample_metric("dcg@10")(ranks)
    hitrate = compare.per_sample_metric("hitrate@10")(ranks)

    np.testing.assert_allclose(dcg, [1.0, 1 / np.log2(3), 1 / np.log2(11), 0.0, 0.0])
    np.testing.assert_array_equal(hitrate, [1.0, 1.0, 1.0, 0.0, 0.0])
    for bad in ("coverage@10", "dcg", "dcg@0", "ndcg@10"):
        with pytest.raises(ValueError, match="metric must be"):
            compare.per_sample_metric(bad)


def test_sign_flip_p_value_matches_exact_enumeration():
    differences = np.array([0.5, 0.3, -0.1, 0.4, 0.2, 0.0, 0.6])
    signs = np.array(list(itertools.product([-1, 1], repeat=differences.size)))
    exact = np.mean(np.abs(signs @ differences) >= abs(differences.sum()) - 1e-12)

    estimate = compare.sign_flip_p_value(differences, 40_000, np.random.default_rng(1))

    # |sum| >= 1.9 only for the observed signs or with -0.1 flipped (2.1), and their negatives: 4 of 2^6
    assert exact == pytest.approx(4 / 64)
    assert estimate == pytest.approx(exact, abs=0.005)
    assert compare.sign_flip_p_value(np.zeros(5), 100, np.random.default_rng(0)) == 1.0


@pytest.mark.parametrize("nonzero_share", [1.0, 0.1])
def test_bootstrap_means_have_the_sampling_distribution_of_the_mean(nonzero_share: float):
    rng = np.random.default_rng(3)
    differences = rng.normal(loc=0.3, size=400) * (rng.random(400) < nonzero_share)
    means = compare.bootstrap_means(differences, 4000, np.random.default_rng(4))

    naive = differences[np.random.default_rng(5).integers(0, 400, size=(4000, 400))].mean(axis=1)
    assert means.shape == (4000,)
    assert means.mean() == pytest.approx(differences.mean(), abs=0.005)
    assert means.std() == pytest.approx(differences.std() / np.sqrt(400), rel=0.05)
    np.testing.assert_allclose(
        np.quantile(means, [0.025, 0.5, 0.975]), np.quantile(naive, [0.025, 0.5, 0.975]), atol=0.01
    )
    assert np.all(compare.bootstrap_means(np.zeros(7), 10, np.random.default_rng(0)) == 0.0)


# ------------------------------------------------------------------------- the two cases of issue 10


def test_three_seeds_with_no_real_effect_are_not_significant(tmp_path: Path):
    write_sweep_with_seed_differences(tmp_path, [0.113, -0.081, 0.018])
    runs = compare.load_runs(tmp_path)

    row = compare.paired_significance(runs, baseline="bce").row(0, named=True)

    assert row["method"] == "seeds+samples" and row["n_seeds"] == 3 and row["n_samples"] == 1000
    assert row["per_seed_differences"] == pytest.approx([0.113, -0.081, 0.018])
    assert row["difference"] == pytest.approx(0.05 / 3)
    # The seed part dominates: close to the paired t on the three differences (p 0.79, CI +-0.241).
    t_test = stats.ttest_1samp([0.113, -0.081, 0.018], 0.0)
    assert t_test.pvalue == pytest.approx(0.794, abs=0.001)
    assert row["p_value"] >= t_test.pvalue and row["p_value"] == pytest.approx(t_test.pvalue, abs=0.02)
    assert row["ci_low"] < -0.2 and row["ci_high"] > 0.2
    assert row["verdict"].startswith("softmax vs bce on dcg@10: not distinguishable, +0.0167 [")
    assert "3 seeds x 1,000 samples, p = 0.79;" in row["verdict"] and "seeds would resolve" in row["verdict"]
    assert row["seeds_needed"] > 50  # sd 0.097 vs a difference of 0.017

    # The old default, now by name: these three trained models on these samples look "significant".
    samples = compare.paired_significance(runs, baseline="bce", test="samples").row(0, named=True)
    assert samples["method"] == "samples" and samples["p_value"] < 0.05
    assert samples["ci_low"] > 0 and samples["verdict"].startswith("these trained models:")


def test_a_consistent_eight_seed_effect_is_significant(tmp_path: Path):
    differences = [0.021, 0.018, 0.025, 0.019, 0.023, 0.02, 0.017, 0.024]
    write_sweep_with_seed_differences(tmp_path, differences)

    row = compare.paired_significance(compare.load_runs(tmp_path), baseline="bce").row(0, named=True)

    assert row["n_seeds"] == 8 and row["difference"] == pytest.approx(np.mean(differences))
    assert row["ci_low"] > 0.01 and row["p_value"] < 0.001
    assert row["verdict"].startswith(f"softmax beats bce on dcg@10 by +{np.mean(differences):.4f} [+0.0")
    assert row["verdict"].endswith("8 seeds x 1,000 samples, p < 1e-4")


def test_two_seeds_give_no_verdict_but_the_seeds_needed(tmp_path: Path):
    write_sweep_with_seed_differences(tmp_path, [0.02, 0.03])
    row = compare.paired_significance(compare.load_runs(tmp_path), baseline="bce").row(0, named=True)

    assert row["p_value"] is not None and row["n_seeds"] == 2
    no_verdict = "not distinguishable with 2 seeds (too few to judge training randomness; +0.0250 ["
    assert row["verdict"].startswith(f"softmax vs bce on dcg@10: {no_verdict}")
    needed = compare.seeds_needed(0.025, np.var([0.02, 0.03], ddof=1), row["sample_se"] ** 2, 499)
    assert row["seeds_needed"] == needed and f"about {needed} seeds would resolve" in row["verdict"]


# ---------------------------------------------------------------------------------------- pairing


def test_identical_ranks_give_zero_difference_and_p_one(tmp_path: Path):
    rng = np.random.default_rng(0)
    rank_sets = [rng.integers(1, 40, size=N_SAMPLES) for _ in range(3)]
    write_ranked_sweep(tmp_path, {"bce": rank_sets, "copy": [ranks.copy() for ranks in rank_sets]})

    for test in ("seeds", "samples"):
        result = compare.paired_significance(compare.load_runs(tmp_path), "bce", test=test, n_bootstrap=2000)
        row = result.row(0, named=True)
        assert result["objective"].to_list() == ["copy"]
        assert row["difference"] == 0.0 and row["ci_low"] == 0.0 and row["ci_high"] == 0.0
        assert row["p_value"] == 1.0 and row["n_seeds"] == 3 and row["n_samples"] == N_SAMPLES


def test_per_seed_means_come_from_the_ranks_of_shared_seeds(tmp_path: Path):
    rng = np.random.default_rng(1)
    worse = [rng.integers(5, 200, size=N_SAMPLES) for _ in range(4)]
    better = [np.maximum(1, ranks // 4) for ranks in worse[:3]]  # seeds 0, 1 and 2 only
    write_ranked_sweep(tmp_path, {"bce": worse, "softmax": better})

    row = compare.paired_significance(compare.load_runs(tmp_path), baseline="bce").row(0, named=True)

    dcg = compare.per_sample_metric("dcg@10")
    per_seed = [dcg(b).mean() - dcg(w).mean() for b, w in zip(better, worse, strict=False)]
    assert row["n_seeds"] == 3 and row["seeds"] == [0, 1, 2]
    assert row["per_seed_differences"] == pytest.approx(per_seed)
    assert row["baseline_mean"] == pytest.approx(np.mean([dcg(ranks).mean() for ranks in worse[:3]]))
    assert row["objective_mean"] == pytest.approx(np.mean([dcg(ranks).mean() for ranks in better]))
    assert row["difference"] == pytest.approx(np.mean(per_seed))
    assert row["seed_sd"] == pytest.approx(np.std(per_seed, ddof=1))


def test_pairing_uses_user_item_keys_not_row_order(tmp_path: Path):
    rng = np.random.default_rng(2)
    baseline_ranks = [rng.integers(1, 30, size=N_SAMPLES) for _ in range(3)]
    objective_ranks = [rng.integers(1, 30, size=N_SAMPLES) for _ in range(3)]
    write_ranked_sweep(tmp_path, {"bce": baseline_ranks, "logq": objective_ranks})
    expected = compare.paired_significance(compare.load_runs(tmp_path), "bce")

    users, items = sample_keys()
    shuffled = np.random.default_rng(3).permutation(N_SAMPLES)
    for seed in range(3):
        path = tmp_path / f"logq-{seed}" / "test_ranks.parquet"
        path.unlink()
        ranks_frame(users[shuffled], items[shuffled], objective_ranks[seed][shuffled]).write_parquet(path)
    result = compare.paired_significance(compare.load_runs(tmp_path), "bce")

    assert result.equals(expected)
    assert result["difference"][0] != 0.0


def test_pairing_refuses_runs_on_different_samples(tmp_path: Path):
    users, items = sample_keys()
    ranks = np.ones(N_SAMPLES, dtype=np.int64)
    write_run(tmp_path / "bce", "bce", 0, ranks=ranks_frame(users, items, ranks))
    write_run(tmp_path / "other", "logq", 0, ranks=ranks_frame(users, items + 1000, ranks))
    with pytest.raises(compare.MixedProtocols, match="one test runs of different test sets: test set is"):
        compare.paired_significance(compare.load_runs(tmp_path), "bce")


def test_without_ranks_the_recorded_per_seed_metrics_are_compared(tmp_path: Path):
    """W&B runs and coverage: the paired t over seeds on run.json's metrics, said so in the method."""
    for seed, (base, better) in enumerate([(0.10, 0.13), (0.12, 0.14), (0.11, 0.15)]):
        write_run(tmp_path / f"b{seed}", "bce", seed, test={"dcg@10": base, "coverage@10": 0.5})
        write_run(
            tmp_path / f"s{seed}", "softmax", seed, test={"dcg@10": better, "coverage@10": 0.6 + seed / 100}
        )
    runs = compare.load_runs(tmp_path)

    row = compare.paired_significance(runs, baseline="bce").row(0, named=True)
    t_test = stats.ttest_1samp([0.03, 0.02, 0.04], 0.0)
    assert row["method"] == "seeds" and row["n_samples"] is None and row["sample_se"] is None
    assert row["difference"] == pytest.approx(0.03) and row["p_value"] == pytest.approx(t_test.pvalue)
    coverage = compare.paired_significance(runs, baseline="bce", metric="coverage@10").row(0, named=True)
    assert coverage["method"] == "seeds" and coverage["difference"] == pytest.approx(0.11)
    with pytest.raises(ValueError, match="baseline 'bce' has no completed run with test_ranks"):
        compare.paired_significance(runs, "bce", test="samples")
    with pytest.raises(ValueError, match="metric must be"):
        compare.paired_significance(runs, "bce", metric="coverage@10", test="samples")


def test_holm_adjusts_over_the_objectives_compared_with_one_baseline(tmp_path: Path):
    rng = np.random.default_rng(4)
    baseline = [rng.integers(1, 60, size=N_SAMPLES) for _ in range(3)]
    write_ranked_sweep(
        tmp_path,
        {
            "bce": baseline,
            "softmax": [np.maximum(1, ranks // 3) for ranks in baseline],
            "logq": [rng.permutation(ranks) for ranks in baseline],
            "inbatch": [ranks + 2 for ranks in baseline],
        },
    )
    result = compare.paired_significance(compare.load_runs(tmp_path), baseline="bce")

    assert result["objective"].to_list() == ["inbatch", "logq", "softmax"]  # order of the run folders
    assert result["p_holm"].to_list() == pytest.approx(compare.holm(result["p_value"].to_list()))
    assert all(row["verdict"].count("Holm p") == 1 for row in result.iter_rows(named=True))


def test_format_significance_plain_and_markdown(tmp_path: Path):
    write_sweep_with_seed_differences(tmp_path, [0.113, -0.081, 0.018])
    table = compare.paired_significance(compare.load_runs(tmp_path), baseline="bce")

    markdown = compare.format_significance(table).splitlines()
    assert markdown[0].split(" | ") == [
        *("| objective", "dcg@10", "bce (baseline)", "difference", "95% CI", "p", "seeds"),
        *("per-seed differences", "samples |"),
    ]
    assert markdown[2].startswith("| softmax | 0.") and "| +0.1130 -0.0810 +0.0180 | 1,000 |" in markdown[2]
    assert markdown[-1] == "- " + table["verdict"][0]
    plain = compare.format_significance(table, style="plain").splitlines()
    assert plain[0].split() == [
        "objective",
        "difference",
        "95%",
        "CI",
        "p",
        "seeds",
        "per-seed",
        "differences",
    ]
    assert "no objective" in compare.format_significance(table.clear())


def test_significance_frame_has_the_documented_columns(tmp_path: Path):
    write_sweep_with_seed_differences(tmp_path, [0.02, 0.03, 0.025])
    table = compare.paired_significance(compare.load_runs(tmp_path), baseline="bce")
    required = ["objective", "baseline", "metric", "difference", "ci_low", "ci_high", "p_value"]
    assert set(required + ["n_seeds", "n_samples", "method", "per_seed_differences", "verdict"]) <= set(
        table.columns
    )
    assert table.schema["per_seed_differences"] == pl.List(pl.Float64)

"""How sure am I? Paired comparison of two objectives with the seed as the unit of replication.

Setup. An objective A and a baseline B are each trained with seeds s = 1..n; in seqrec the same seed gives
both the same initial weights and the same batches, so runs with the same seed are paired. Both are tested
on the same N test samples. D[s, i] = metric of A on sample i (seed s) minus that of B: an [n, N] matrix.

Model (crossed random effects):  D[s, i] = delta + a_s + u_i + e_si
    a_s   training randomness of seed s (initialisation, batch order, negatives), variance tau^2;
    u_i   which samples the test set happens to hold; the same test set serves every seed, variance s_u^2;
    e_si  the seed-by-sample remainder, variance s_e^2.
delta is the expected difference over retraining and over test samples drawn like these: what "A is better
than B here" means. Averaging over the samples of one seed does not remove u_i, which every seed shares,
so a t-test on the n per-seed differences alone speaks for this one test set; a bootstrap over samples
alone ignores a_s and speaks for the n trained models (the old default: it called a +0.113, -0.081, +0.018
sweep significant).

Estimate. d = mean(D), the mean of the n per-seed differences r_s, and d - delta = A + U: the training
part A = mean(a_s) + mean(e_si) has variance (tau^2 + s_e^2/N)/n; the test-set part U = mean(u_i), shared
by every seed, has variance s_u^2/N.
- Seed part: S_seed^2 = variance of the n per-seed differences r_s (U cancels in it), so A / (S_seed /
  sqrt(n)) is exactly Student t with n-1 df when seed effects are normal (each r_s is a mean over
  thousands of samples, normal by the central limit theorem), whatever the per-sample distribution.
- Test-set part: V_sample estimates s_u^2/N from the seed-averaged sample differences c_i, clustered by
  user (a user's test interactions are not independent): G/(G-1) sum_g (sum_{i in g} (c_i - d))^2 / N^2
  over G users, minus the seed-by-sample remainder it also contains (the two-way ANOVA residual mean
  square over n N). With hundreds of users it is precise, so U is treated as normal, its standard error
  scaled by t(G-1)/z at the confidence level so that its limit is the t interval over G users.
- Interval and p-value: from the distribution of S_seed/sqrt(n) * T(n-1) + sqrt(V_sample) * Z, the
  Behrens-Fisher (fiducial) combination of the two parts, computed by quadrature. It is the paired t-test
  over seeds when V_sample = 0, the paired large-sample test over samples when the seed part vanishes, and
  slightly conservative in between, its known property: exact coverage 95.0-97.6% with 3 seeds and
  95.0-96.5% with 5 for every mix of the two parts (tests/test_statistics.py).
Without per-sample ranks (W&B runs, coverage, which belongs to a whole ranking) V_sample is unknown: the
test is the paired t on the recorded per-seed metrics, for this test set only.

Assumptions: seeds are independent replications; seed effects roughly normal (a skewed seed distribution
with 3 seeds can mislead; more seeds help); users independent of each other. With n < 3 no verdict is
given: 1 seed says nothing about training randomness and 2 seeds give a t with 1 df whose interval is
nearly useless. Several objectives against one baseline are adjusted with Holm's step-down method
(family-wise error). `seeds_needed` is a t-based power calculation (noncentral t, Welch-Satterthwaite df,
80% power, two-sided alpha 0.05) treating the observed difference and variances as the truth: a rough
guide, since variances from 2-3 seeds are themselves noisy.

tests/test_statistics.py simulates the model with known tau, s_u, s_e, per-user effects and delta (zero
and non-zero) for 3, 5 and 10 seeds and checks that the 95% interval covers delta 93-97% of the time (up
to 98% where the two parts are comparable) and that the false-positive rate at alpha 0.05 is about 5%
or less.

References: Student (1908) for the t; Fisher (1935) and Behrens (1929) for combining a t with a second
variance part; Welch (1947) and Satterthwaite (1946) for the df of the power calculation; Holm (1979).

The sample-only test stays available by name ("these trained models, test-sample noise only"): a
paired bootstrap over test samples of the seed-averaged differences and a sign-flip randomisation test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from seqrec.intervals import clustered_variance_of_mean

ALPHA = 0.05
POWER = 0.8
MIN_SEEDS_FOR_VERDICT = 3
MAX_SEEDS_NEEDED = 1000
P_DISPLAY_FLOOR = 1e-4  # smaller p-values print as "< 1e-4"
QUADRATURE_NODES = 100


@dataclass(frozen=True)
class PairedTest:
    """Arrays of one shape (one entry per comparison, or per simulated experiment)."""

    difference: np.ndarray  # mean of D
    half_width: np.ndarray  # of the confidence interval; nan with a single seed
    p_value: np.ndarray  # two-sided; nan with a single seed
    seed_variance: np.ndarray  # S_seed^2: variance of the per-seed mean differences (not divided by n)
    sample_variance: np.ndarray  # V_sample: the test-set part of Var(difference); 0 when unknown

    @property
    def ci_low(self) -> np.ndarray:
        return self.difference - self.half_width

    @property
    def ci_high(self) -> np.ndarray:
        return self.difference + self.half_width


def _quadrature(seed_df: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes over the quantiles of a chi-square(seed_df): [K] values of W and [K] weights."""
    nodes, weights = special.roots_legendre(QUADRATURE_NODES)
    return stats.chi2.ppf((nodes + 1) / 2, seed_df), weights / 2


def t_plus_normal_cdf(
    x: np.ndarray, seed_se: np.ndarray, sample_se: np.ndarray, seed_df: int, density: bool = False
) -> np.ndarray:
    """P(seed_se * T + sample_se * Z <= x) (or its density) for T ~ Student t(seed_df) and Z ~ N(0, 1)
    independent, seed_se > 0; arrays of one shape. Given T's chi-square W (T = Z' / sqrt(W / df)) the sum
    is normal, so the CDF is the mean over W of a normal CDF: quadrature over W's quantiles."""
    chi_square, weights = _quadrature(seed_df)
    x, seed_se, sample_se = (np.asarray(v, dtype=float)[..., None] for v in (x, seed_se, sample_se))
    sd = np.sqrt(seed_se**2 * seed_df / chi_square + sample_se**2)  # [..., K]
    if density:
        return (weights * stats.norm.pdf(x / sd) / sd).sum(axis=-1)
    return (weights * special.ndtr(x / sd)).sum(axis=-1)


def _t_plus_normal_quantile(probability: float, seed_se, sample_se, seed_df: int) -> np.ndarray:
    """The `probability` quantile (> 0.5) of seed_se * T + sample_se * Z: Newton's method from the
    Welch-Satterthwaite approximation (a few steps reach 1e-10)."""
    seed_term, sample_term = seed_se**2, sample_se**2
    df = _satterthwaite_df(seed_term, seed_df, sample_term, np.inf)
    quantile = stats.t.ppf(probability, df) * np.sqrt(seed_term + sample_term)
    for _ in range(8):
        error = t_plus_normal_cdf(quantile, seed_se, sample_se, seed_df) - probability
        step = error / t_plus_normal_cdf(quantile, seed_se, sample_se, seed_df, density=True)
        quantile = np.maximum(quantile - step, quantile / 2)
    return quantile


def _paired_test(
    difference, seed_variance, n_seeds, sample_variance, confidence, sample_df: float = np.inf
) -> PairedTest:
    """Interval and two-sided p-value of `difference` ~ S_seed/sqrt(n) T(n-1) + k sqrt(V_sample) Z, where
    k = t(sample_df) / z at the confidence level makes the test-set part's limit a t with sample_df df."""
    if n_seeds < 2:  # one seed: training randomness unknown, no interval
        nan = np.full_like(difference, np.nan)
        return PairedTest(difference, nan, nan, seed_variance, sample_variance)
    difference, seed_variance, sample_variance = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (difference, seed_variance, sample_variance))
    )
    probability = 0.5 + confidence / 2
    small_sample = stats.t.ppf(probability, sample_df) / stats.norm.ppf(probability)
    seed_se, sample_se = np.sqrt(seed_variance / n_seeds), small_sample * np.sqrt(sample_variance)
    seed_df = n_seeds - 1
    # Limits first: no seed spread -> normal; no test-set part -> Student t; neither -> exact difference.
    with np.errstate(divide="ignore", invalid="ignore"):
        p_value = np.where(
            sample_se == 0,
            2 * stats.t.sf(np.abs(difference) / seed_se, seed_df),
            2 * stats.norm.sf(np.abs(difference) / sample_se),
        )
        half_width = np.where(
            sample_se == 0,
            stats.t.ppf(probability, seed_df) * seed_se,
            stats.norm.ppf(probability) * sample_se,
        )
    mixed = (seed_se > 0) & (sample_se > 0)
    if mixed.any():
        both = (difference[mixed], seed_se[mixed], sample_se[mixed])
        p_value[mixed] = 2 * (1 - t_plus_normal_cdf(np.abs(both[0]), both[1], both[2], seed_df))
        half_width[mixed] = _t_plus_normal_quantile(probability, both[1], both[2], seed_df)
    exact = (seed_se == 0) & (sample_se == 0)
    p_value = np.where(exact, np.where(difference == 0, 1.0, 0.0), np.clip(p_value, 0.0, 1.0))
    return PairedTest(difference, np.where(exact, 0.0, half_width), p_value, seed_variance, sample_variance)


def seed_test(per_seed_differences: np.ndarray, confidence: float = 0.95) -> PairedTest:
    """Paired t over seeds: [..., n] per-seed differences (objective - baseline) -> PairedTest [...]."""
    n_seeds = per_seed_differences.shape[-1]
    difference = per_seed_differences.mean(axis=-1)
    seed_variance = per_seed_differences.var(axis=-1, ddof=1) if n_seeds > 1 else np.zeros_like(difference)
    return _paired_test(difference, seed_variance, n_seeds, np.zeros_like(difference), confidence)


def seed_sample_test(
    differences: np.ndarray, groups: np.ndarray | None = None, confidence: float = 0.95
) -> PairedTest:
    """Paired over seeds with the test-set part: [..., n, N] per-sample differences D[s, i] (the same N
    samples, in the same order, for every seed) and `groups` [N] (the user of each sample; None: every
    sample its own group) -> PairedTest [...]. The model and formulas are in the module docstring."""
    n_seeds, n_samples = differences.shape[-2:]
    seed_means = differences.mean(axis=-1)  # [..., n]
    sample_means = differences.mean(axis=-2)  # [..., N]
    difference = seed_means.mean(axis=-1)
    seed_variance = seed_means.var(axis=-1, ddof=1) if n_seeds > 1 else np.zeros_like(difference)
    sample_variance, n_groups = clustered_variance_of_mean(sample_means, groups)
    if n_groups > 1 and n_seeds > 1:
        # V_sample also holds the seed-by-sample remainder s_e^2 / (n N), already in the seed part.
        residuals = (
            differences - seed_means[..., None] - sample_means[..., None, :] + difference[..., None, None]
        )
        remainder = (residuals**2).sum(axis=(-2, -1)) / ((n_seeds - 1) * (n_samples - 1))
        sample_variance = np.maximum(sample_variance - remainder / (n_seeds * n_samples), 0.0)
    return _paired_test(difference, seed_variance, n_seeds, sample_variance, confidence, n_groups - 1)


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (None entries are not part of the family)."""
    tested = [(p, index) for index, p in enumerate(p_values) if p is not None and np.isfinite(p)]
    adjusted: list[float | None] = [None] * len(p_values)
    running_max = 0.0
    for rank, (p, index) in enumerate(sorted(tested)):
        running_max = max(running_max, min(1.0, (len(tested) - rank) * p))
        adjusted[index] = running_max
    return adjusted


def _satterthwaite_df(seed_term, seed_df, sample_term, sample_df) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        denominator = seed_term**2 / seed_df + (sample_term**2 / sample_df if sample_df > 0 else 0.0)
        return np.where(denominator > 0, (seed_term + sample_term) ** 2 / denominator, np.maximum(seed_df, 1))


def seeds_needed(
    difference: float,
    seed_variance: float,
    sample_variance: float = 0.0,
    sample_df: float = np.inf,
    alpha: float = ALPHA,
    power: float = POWER,
    max_seeds: int = MAX_SEEDS_NEEDED,
) -> int | None:
    """Seeds per objective for the paired test to detect `difference` with probability `power` at
    two-sided level `alpha`, if the observed difference and variances were the truth (noncentral t with
    the same Welch-Satterthwaite df as the test). None: no difference, or more than `max_seeds` (see
    `more_seeds_cannot_resolve`). Never fewer than MIN_SEEDS_FOR_VERDICT."""
    if difference == 0 or not np.isfinite(difference):
        return None
    seeds = np.arange(2, max_seeds + 1)
    seed_term = seed_variance / seeds
    standard_error = np.sqrt(seed_term + sample_variance)
    if np.all(standard_error == 0):
        return MIN_SEEDS_FOR_VERDICT
    df = _satterthwaite_df(seed_term, seeds - 1, sample_variance, sample_df)
    with np.errstate(divide="ignore", invalid="ignore"):
        noncentrality = np.abs(difference) / standard_error
        critical = stats.t.ppf(1 - alpha / 2, df)
        achieved = stats.nct.sf(critical, df, noncentrality) + stats.nct.cdf(-critical, df, noncentrality)
    enough = np.flatnonzero(achieved >= power)
    return max(int(seeds[enough[0]]), MIN_SEEDS_FOR_VERDICT) if enough.size else None


def more_seeds_cannot_resolve(
    difference: float, sample_variance: float, alpha: float = ALPHA, power: float = POWER
) -> bool:
    """True if even infinitely many seeds leave the test set's own noise too large for `power`."""
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return sample_variance > 0 and abs(difference) < z * np.sqrt(sample_variance)


def format_p_value(p: float | None, floor: float = P_DISPLAY_FLOOR) -> str:
    """ "0.32", "0.0042", "< 1e-4": two significant digits, never a value below the method's resolution
    `floor` printed as if it were exact."""
    if p is None or not np.isfinite(p):
        return "-"
    if p <= floor:
        text = f"{floor:.0e}".replace("e-0", "e-") if floor < 1e-3 else f"{floor:.2g}"
        return f"< {text}"
    return f"{p:.2g}"


# ------------------------------------------------------------------- test-sample noise only (by name)


def _rows_per_chunk(n_samples: int) -> int:
    return max(1, 2**22 // max(n_samples, 1))  # keeps each [rows, S] block at ~32 MB of float64


def bootstrap_means(differences: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `n_bootstrap` resamples (n draws with replacement) of [n] paired differences -> [n_bootstrap].

    Most differences are 0 (both objectives miss the top k) and add nothing to a resample's sum, so each
    resample draws how many of its n draws land on the m non-zero values, Binomial(n, m/n), and then only
    those draws: the same distribution as the plain bootstrap at m/n of the cost.
    """
    n = differences.size
    nonzero = differences[differences != 0]
    if nonzero.size == 0:
        return np.zeros(n_bootstrap)
    hits = rng.binomial(n, nonzero.size / n, size=n_bootstrap)
    sums = []
    for start in range(0, n_bootstrap, _rows_per_chunk(nonzero.size)):
        chunk_hits = hits[start : start + _rows_per_chunk(nonzero.size)]
        draws = nonzero[rng.integers(0, nonzero.size, size=chunk_hits.sum())]
        resample_of_draw = np.repeat(np.arange(chunk_hits.size), chunk_hits)
        sums.append(np.bincount(resample_of_draw, weights=draws, minlength=chunk_hits.size))
    return np.concatenate(sums) / n


def sign_flip_p_value(differences: np.ndarray, n_resamples: int, rng: np.random.Generator) -> float:
    """Two-sided paired randomisation test: under H0 each paired difference is as likely to have either
    sign, so flip signs at random and count means at least as extreme as the observed one.
    p = (1 + count) / (1 + n_resamples), never 0."""
    nonzero = differences[differences != 0]  # zero differences do not change under a sign flip
    observed = abs(nonzero.sum())
    extreme = 0
    for start in range(0, n_resamples, _rows_per_chunk(nonzero.size)):
        rows = min(_rows_per_chunk(nonzero.size), n_resamples - start)
        flipped_sums = np.where(rng.random((rows, nonzero.size)) < 0.5, -nonzero, nonzero).sum(axis=1)
        extreme += int((np.abs(flipped_sums) >= observed * (1 - 1e-12)).sum())
    return (1 + extreme) / (1 + n_resamples)

"""Evidence for the surrogate: does summed BKD MSE rank architectures like their finetuned
task metric does, and what would the DONNA-style accuracy predictor it replaces cost?

* :func:`spread_indices` picks architectures spread evenly (by latency) over a Pareto front,
  :func:`random_genomes` others uniformly from the whole space (the front alone is where loss
  falls as latency rises, so it flatters any ranking).
* Each is finetuned (the caller does it: it needs torch and data).
* :func:`kendall_tau` between the surrogate (lower is better) and the metric (higher is
  better): reported as the τ between ``-surrogate`` and the metric, so +1 is a perfect ranking.
* The baseline DONNA (Moons et al., 2021) used instead: a linear regression from the per-slot
  BKD losses to the finetuned metric, trained on finetuned architectures. Its ranking quality
  is measured with leave-one-out predictions (every architecture predicted by a model that
  never saw it), and its compute is the finetuning of its training set on top of BKD.
* :func:`bootstrap_tau`: a 95% interval of τ by resampling the architectures.
* :func:`learning_curve`: the predictor trained on n of the finetuned architectures (4, 8, ...)
  and ranked on the others, against the surrogate on the same held-out ones; where the curve
  reaches the surrogate (:func:`match_point`) prices the predictor: BKD plus n finetunes, the
  paper's "10x" measured on our data.

Pure: numpy, scipy and scikit-learn only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from nas.core.errors import DonnaError


class ValidationError(DonnaError, ValueError):
    """The surrogate cannot be validated as asked."""


def spread_indices(latencies: Sequence[float], k: int) -> list[int]:
    """Indices of ``k`` points spread evenly by latency rank over a front (both ends
    included); all of them when the front is smaller than ``k``."""
    n = len(latencies)
    if k < 2:
        raise ValidationError(f"need at least 2 architectures to rank, got k={k}")
    if n == 0:
        raise ValidationError("the Pareto front is empty")
    order = sorted(range(n), key=lambda i: latencies[i])
    if n <= k:
        return order
    picks = sorted({round(j * (n - 1) / (k - 1)) for j in range(k)})
    return [order[p] for p in picks]


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Kendall's τ-b and its two-sided p-value."""
    from scipy.stats import kendalltau

    if len(a) != len(b) or len(a) < 2:
        raise ValidationError("Kendall τ needs two sequences of the same length >= 2")
    res = kendalltau(a, b)
    tau = float(res.statistic) if res.statistic == res.statistic else 0.0  # NaN: all ties
    p = float(res.pvalue) if res.pvalue == res.pvalue else 1.0
    return tau, p


def loo_linear_predictions(
    features: Sequence[Sequence[float]], target: Sequence[float]
) -> list[float]:
    """Leave-one-out predictions of a linear regression (DONNA's accuracy predictor)."""
    import numpy as np
    from sklearn.linear_model import LinearRegression

    x = np.asarray(features, dtype=float)
    y = np.asarray(target, dtype=float)
    if len(x) < 3:
        raise ValidationError("the predictor baseline needs at least 3 finetuned architectures")
    preds = []
    for i in range(len(x)):
        mask = np.arange(len(x)) != i
        model = LinearRegression().fit(x[mask], y[mask])
        preds.append(float(model.predict(x[i : i + 1])[0]))
    return preds


def random_genomes(
    n_options: Sequence[int], k: int, seed: int, exclude: Sequence[Sequence[int]] = ()
) -> list[tuple[int, ...]]:
    """``k`` distinct genomes drawn uniformly from the space (each slot's option uniformly),
    none of them in ``exclude``; fewer when the space has fewer left."""
    import numpy as np

    rng = np.random.default_rng(seed)
    seen = {tuple(int(v) for v in g) for g in exclude}
    left = math.prod(n_options) - len(seen)
    out: list[tuple[int, ...]] = []
    while len(out) < min(k, left):
        g = tuple(int(rng.integers(n)) for n in n_options)
        if g not in seen:
            seen.add(g)
            out.append(g)
    return out


def bootstrap_tau(
    a: Sequence[float], b: Sequence[float], *, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """A 95% percentile interval of Kendall's τ(a, b), resampling the pairs with replacement
    (resamples whose τ is undefined, all ties, are left out)."""
    import numpy as np
    from scipy.stats import kendalltau

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) != len(y) or len(x) < 3:
        raise ValidationError("a bootstrap interval of τ needs at least 3 pairs")
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(n_boot):
        i = rng.integers(len(x), size=len(x))
        t = kendalltau(x[i], y[i]).statistic
        if t == t:
            taus.append(float(t))
    if not taus:
        return 0.0, 0.0
    lo, hi = np.percentile(taus, [2.5, 97.5])
    return float(lo), float(hi)


@dataclass(frozen=True)
class CurvePoint:
    """The predictor trained on ``n`` finetuned architectures: τ on the held-out rest, mean and
    5-95% range over random splits, and the surrogate's mean τ on the same held-out sets."""

    n: int
    held_out: int
    splits: int
    tau_predictor: float
    tau_predictor_lo: float
    tau_predictor_hi: float
    tau_surrogate: float


def learning_curve(
    features: Sequence[Sequence[float]],
    surrogate: Sequence[float],
    metric: Sequence[float],
    sizes: Sequence[int],
    *,
    splits: int = 200,
    seed: int = 0,
    min_held_out: int = 4,
) -> list[CurvePoint]:
    """τ of a linear predictor trained on ``n`` architectures (each of ``sizes`` that leaves at
    least ``min_held_out`` to rank) on the held-out ones, against τ(-surrogate) on the same
    held-out ones; ``splits`` random splits each."""
    import numpy as np
    from scipy.stats import kendalltau
    from sklearn.linear_model import LinearRegression

    x = np.asarray(features, dtype=float)
    s, y = np.asarray(surrogate, dtype=float), np.asarray(metric, dtype=float)
    rng = np.random.default_rng(seed)
    points = []
    for n in sizes:
        if n < 2 or len(y) - n < min_held_out:
            continue
        tp, ts = [], []
        for _ in range(splits):
            order = rng.permutation(len(y))
            train, test = order[:n], order[n:]
            pred = LinearRegression().fit(x[train], y[train]).predict(x[test])
            t_p, t_s = kendalltau(pred, y[test]).statistic, kendalltau(-s[test], y[test]).statistic
            tp.append(float(t_p) if t_p == t_p else 0.0)
            ts.append(float(t_s) if t_s == t_s else 0.0)
        lo, hi = np.percentile(tp, [5, 95])
        points.append(
            CurvePoint(n, len(y) - n, splits, float(np.mean(tp)), float(lo), float(hi),
                       float(np.mean(ts)))
        )  # fmt: skip
    return points


def match_point(curve: Sequence[CurvePoint]) -> float | None:
    """The training-set size at which the predictor's mean τ first reaches the surrogate's on
    the same held-out architectures (linear between measured sizes); ``None`` if it never does."""
    prev = None
    for p in curve:
        gap = p.tau_predictor - p.tau_surrogate
        if gap >= 0:
            if prev is None:
                return float(p.n)
            pn, pgap = prev
            return pn + (p.n - pn) * (-pgap) / (gap - pgap)
        prev = (p.n, gap)
    return None


@dataclass(frozen=True)
class ValidatedArch:
    genome: tuple[int, ...]
    surrogate: float  # summed normalised BKD MSE
    slot_losses: tuple[float, ...]
    latency_ms: float
    metric: float  # finetuned task metric (higher is better)
    finetune_seconds: float
    origin: str = "front"  # "front" (spread over the Pareto front) or "random" (the space)


@dataclass(frozen=True)
class SurrogateValidation:
    metric_name: str
    archs: tuple[ValidatedArch, ...]
    tau_surrogate: float  # τ(-surrogate, metric) over every architecture
    p_surrogate: float
    tau_surrogate_ci: tuple[float, float]  # bootstrap 95%
    tau_predictor: float  # τ(leave-one-out predictor, metric)
    p_predictor: float
    tau_predictor_ci: tuple[float, float]
    predictor_loo: tuple[float, ...]
    curve: tuple[CurvePoint, ...]  # the predictor's learning curve
    match_archs: float | None  # training-set size where it reaches the surrogate; None: never
    bkd_seconds: float  # the compute both methods share
    finetune_seconds: float  # finetuning every validated architecture
    repeat_gaps: tuple[float, ...] = ()  # |metric(seed) - metric(seed + 1)| of re-finetuned ones
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def finetune_per_arch_s(self) -> float:
        return self.finetune_seconds / max(1, len(self.archs))

    @property
    def surrogate_compute_s(self) -> float:
        """DONNAv2: the BKD library is the whole cost of the accuracy model."""
        return self.bkd_seconds

    def predictor_compute_s(self, n_archs: float) -> float:
        """DONNA: BKD plus finetuning the predictor's ``n_archs`` training architectures."""
        return self.bkd_seconds + self.finetune_per_arch_s * n_archs

    @property
    def compute_ratio(self) -> tuple[float, bool]:
        """Predictor compute over the surrogate's at the match point, and whether that is
        exact (``False``: the predictor never reached the surrogate, so the ratio at the
        largest training set measured is a lower bound)."""
        if self.match_archs is not None:
            n, exact = self.match_archs, True
        else:
            n, exact = float(max((p.n for p in self.curve), default=len(self.archs))), False
        return self.predictor_compute_s(n) / max(1e-9, self.surrogate_compute_s), exact

    @property
    def noise_sd(self) -> float | None:
        """Seed noise of one finetuned metric (σ of a seed-to-seed difference / √2)."""
        if not self.repeat_gaps:
            return None
        return math.sqrt(sum(g * g for g in self.repeat_gaps) / len(self.repeat_gaps) / 2)

    @property
    def spread_sd(self) -> float:
        """σ of the finetuned metric over the architectures."""
        m = [a.metric for a in self.archs]
        mean = sum(m) / len(m)
        return math.sqrt(sum((v - mean) ** 2 for v in m) / max(1, len(m) - 1))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        ratio, exact = self.compute_ratio
        d["surrogate_compute_s"] = self.surrogate_compute_s
        d["finetune_per_arch_s"] = self.finetune_per_arch_s
        d["compute_ratio"] = ratio
        d["compute_ratio_exact"] = exact
        d["noise_sd"], d["spread_sd"] = self.noise_sd, self.spread_sd
        return d

    def summary(self) -> str:
        origins = [a.origin for a in self.archs]
        lo, hi = self.tau_surrogate_ci
        plo, phi = self.tau_predictor_ci
        ratio, exact = self.compute_ratio
        lines = [
            f"{len(self.archs)} architectures finetuned ({origins.count('front')} on the front, "
            f"{origins.count('random')} at random from the space): Kendall τ(surrogate, "
            f"{self.metric_name}) = {self.tau_surrogate:+.3f} [95% {lo:+.3f}, {hi:+.3f}] "
            f"(p={self.p_surrogate:.3g}); DONNA-style linear predictor (leave-one-out) τ = "
            f"{self.tau_predictor:+.3f} [{plo:+.3f}, {phi:+.3f}].",
        ]
        if self.curve:
            curve = ", ".join(
                f"n={p.n}: {p.tau_predictor:+.2f} vs {p.tau_surrogate:+.2f}" for p in self.curve
            )
            lines.append(f"Predictor learning curve (τ on held-out, vs the surrogate): {curve}.")
        if exact:
            lines.append(
                f"The predictor matches the surrogate at {self.match_archs:.1f} finetuned "
                f"architectures: compute {self.predictor_compute_s(self.match_archs or 0):.0f} s "
                f"vs {self.surrogate_compute_s:.0f} s (BKD only) = {ratio:.1f}x."
            )
        else:
            lines.append(
                f"The predictor never reached the surrogate's τ: at the largest training set "
                f"measured the compute is already {ratio:.1f}x the surrogate's (a lower bound)."
            )
        if self.noise_sd is not None:
            lines.append(
                f"{self.metric_name} over the architectures: σ {self.spread_sd:.4f}; seed noise "
                f"σ {self.noise_sd:.4f} ({len(self.repeat_gaps)} re-finetuned with another seed)."
            )
        return "\n".join(lines + list(self.notes))


CURVE_SIZES = (4, 8, 12, 16, 24, 32, 48, 64)


def summarise(
    metric_name: str,
    archs: Sequence[ValidatedArch],
    bkd_seconds: float,
    *,
    repeat_gaps: Sequence[float] = (),
    seed: int = 0,
    curve_sizes: Sequence[int] = CURVE_SIZES,
) -> SurrogateValidation:
    """τ of the surrogate and of the leave-one-out predictor against the finetuned metric,
    with bootstrap intervals, and the predictor's learning curve."""
    if len(archs) < 3:
        raise ValidationError(
            f"need at least 3 finetuned architectures for a ranking check, got {len(archs)}"
        )
    metric = [a.metric for a in archs]
    surrogate = [a.surrogate for a in archs]
    feats = [a.slot_losses for a in archs]
    tau_s, p_s = kendall_tau([-v for v in surrogate], metric)
    loo = loo_linear_predictions(feats, metric)
    tau_p, p_p = kendall_tau(loo, metric)
    curve = learning_curve(feats, surrogate, metric, curve_sizes, seed=seed)
    notes = []
    if len(archs) < 10:
        notes.append(
            f"only {len(archs)} architectures: τ has a wide confidence interval (p-values shown)"
        )
    if not curve:
        notes.append(
            f"no learning curve: {len(archs)} architectures leave fewer than 4 to rank after "
            "training on 4 (validate 8 or more)"
        )
    return SurrogateValidation(
        metric_name=metric_name,
        archs=tuple(archs),
        tau_surrogate=tau_s,
        p_surrogate=p_s,
        tau_surrogate_ci=bootstrap_tau([-v for v in surrogate], metric, seed=seed),
        tau_predictor=tau_p,
        p_predictor=p_p,
        tau_predictor_ci=bootstrap_tau(loo, metric, seed=seed),
        predictor_loo=tuple(loo),
        curve=tuple(curve),
        match_archs=match_point(curve),
        bkd_seconds=bkd_seconds,
        finetune_seconds=sum(a.finetune_seconds for a in archs),
        repeat_gaps=tuple(repeat_gaps),
        notes=tuple(notes),
    )

"""Evidence for the surrogate: does summed BKD MSE rank architectures like their finetuned
task metric does, and what would the DONNA-style accuracy predictor it replaces cost?

* :func:`spread_indices` picks K architectures spread evenly (by latency) over a Pareto front.
* Each is finetuned briefly (the caller supplies the function: it needs torch and data).
* :func:`kendall_tau` between the surrogate (lower is better) and the metric (higher is
  better): reported as the τ between ``-surrogate`` and the metric, so +1 is a perfect ranking.
* The baseline DONNA (Moons et al., 2021) used instead: a linear regression from the per-slot
  BKD losses to the finetuned metric, trained on finetuned architectures. Its ranking quality
  is measured with leave-one-out predictions (every architecture predicted by a model that
  never saw it), and its compute is the finetuning of its training set on top of BKD.

Pure: numpy, scipy and scikit-learn only.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class ValidatedArch:
    genome: tuple[int, ...]
    surrogate: float  # summed normalised BKD MSE
    slot_losses: tuple[float, ...]
    latency_ms: float
    metric: float  # finetuned task metric (higher is better)
    finetune_seconds: float


@dataclass(frozen=True)
class SurrogateValidation:
    metric_name: str
    archs: tuple[ValidatedArch, ...]
    tau_surrogate: float  # τ(-surrogate, metric)
    p_surrogate: float
    tau_predictor: float  # τ(leave-one-out predictor, metric)
    p_predictor: float
    predictor_loo: tuple[float, ...]
    bkd_seconds: float  # the compute both methods share
    finetune_seconds: float  # finetuning the K architectures (the predictor's training set)
    predictor_train_archs: int  # architectures a DONNA predictor is trained on
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def surrogate_compute_s(self) -> float:
        """DONNAv2: the BKD library is the whole cost of the accuracy model."""
        return self.bkd_seconds

    @property
    def predictor_compute_s(self) -> float:
        """DONNA: BKD plus finetuning every architecture of the predictor's training set."""
        per_arch = self.finetune_seconds / max(1, len(self.archs))
        return self.bkd_seconds + per_arch * self.predictor_train_archs

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["surrogate_compute_s"] = self.surrogate_compute_s
        d["predictor_compute_s"] = self.predictor_compute_s
        d["compute_ratio"] = self.predictor_compute_s / max(1e-9, self.surrogate_compute_s)
        return d

    def summary(self) -> str:
        ratio = self.predictor_compute_s / max(1e-9, self.surrogate_compute_s)
        return (
            f"{len(self.archs)} architectures finetuned: Kendall τ(surrogate, {self.metric_name})"
            f" = {self.tau_surrogate:+.3f} (p={self.p_surrogate:.3f}); DONNA-style linear "
            f"predictor (leave-one-out) τ = {self.tau_predictor:+.3f} (p={self.p_predictor:.3f})."
            f" Compute: surrogate {self.surrogate_compute_s:.0f} s (BKD only), predictor "
            f"{self.predictor_compute_s:.0f} s (BKD + {self.predictor_train_archs} finetuned "
            f"architectures) = {ratio:.1f}x"
        )


def summarise(
    metric_name: str,
    archs: Sequence[ValidatedArch],
    bkd_seconds: float,
    predictor_train_archs: int | None = None,
) -> SurrogateValidation:
    """τ of the surrogate and of the leave-one-out predictor against the finetuned metric."""
    if len(archs) < 3:
        raise ValidationError(
            f"need at least 3 finetuned architectures for a ranking check, got {len(archs)}"
        )
    metric = [a.metric for a in archs]
    tau_s, p_s = kendall_tau([-a.surrogate for a in archs], metric)
    loo = loo_linear_predictions([a.slot_losses for a in archs], metric)
    tau_p, p_p = kendall_tau(loo, metric)
    notes = []
    if len(archs) < 10:
        notes.append(
            f"only {len(archs)} architectures: τ has a wide confidence interval (p-values shown)"
        )
    return SurrogateValidation(
        metric_name=metric_name,
        archs=tuple(archs),
        tau_surrogate=tau_s,
        p_surrogate=p_s,
        tau_predictor=tau_p,
        p_predictor=p_p,
        predictor_loo=tuple(loo),
        bkd_seconds=bkd_seconds,
        finetune_seconds=sum(a.finetune_seconds for a in archs),
        predictor_train_archs=predictor_train_archs or len(archs),
        notes=tuple(notes),
    )

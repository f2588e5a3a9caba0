from __future__ import annotations

import pytest

from nas.validate import (
    CurvePoint,
    ValidatedArch,
    ValidationError,
    bootstrap_tau,
    kendall_tau,
    learning_curve,
    loo_linear_predictions,
    match_point,
    random_genomes,
    spread_indices,
    summarise,
)


def test_spread_covers_both_ends_of_the_front():
    lat = [5.0, 1.0, 3.0, 2.0, 4.0, 6.0, 7.0]
    picks = spread_indices(lat, 3)
    assert [lat[i] for i in picks] == [1.0, 4.0, 7.0]
    assert sorted(spread_indices(lat[:2], 5)) == [0, 1]
    with pytest.raises(ValidationError, match="at least 2"):
        spread_indices(lat, 1)


def test_kendall_tau_known_values():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40])[0] == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1])[0] == pytest.approx(-1.0)
    # one discordant pair of six: (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 2, 4, 3])[0] == pytest.approx(4 / 6)


def test_loo_linear_predictor_recovers_a_linear_metric():
    feats = [[0.1, 0.2], [0.3, 0.1], [0.2, 0.4], [0.5, 0.5], [0.05, 0.3]]
    metric = [1.0 - 2 * a - b for a, b in feats]
    preds = loo_linear_predictions(feats, metric)
    assert preds == pytest.approx(metric, abs=1e-9)


def test_summary_ranks_and_compute():
    archs = [
        ValidatedArch((i,), s, (s / 2, s / 2), 1.0 + i, m, 10.0)
        for i, (s, m) in enumerate([(0.5, 0.70), (0.4, 0.75), (0.3, 0.80), (0.2, 0.78)])
    ]
    v = summarise("top1", archs, bkd_seconds=100.0)
    assert v.tau_surrogate == pytest.approx(4 / 6)
    assert v.predictor_compute_s(40) == pytest.approx(100.0 + 40 * 10.0)
    assert not v.curve and v.match_archs is None  # 4 architectures: no held-out set of 4
    assert "τ(surrogate, top1) = +0.667" in v.summary()
    assert any("no learning curve" in n for n in v.notes)
    with pytest.raises(ValidationError, match="at least 3"):
        summarise("top1", archs[:2], 1.0)


def test_random_genomes_are_distinct_seeded_and_exclude_the_front():
    front = [(0, 0, 0), (1, 1, 1)]
    a = random_genomes([3, 3, 3], 10, seed=5, exclude=front)
    assert a == random_genomes([3, 3, 3], 10, seed=5, exclude=front)
    assert len(set(a)) == 10 and not set(a) & set(front)
    assert all(0 <= v < 3 for g in a for v in g)
    assert len(random_genomes([2, 2], 10, seed=0, exclude=front[:1])) == 3  # all that is left


def test_bootstrap_interval_brackets_tau():
    x = list(range(20))
    y = [v + (3 if v % 4 == 0 else 0) for v in x]  # a few swaps
    tau = kendall_tau(x, y)[0]
    lo, hi = bootstrap_tau(x, y, seed=1)
    assert lo <= tau <= hi <= 1.0 and hi - lo > 0
    assert bootstrap_tau(x, y, seed=1) == (lo, hi)  # seeded
    assert bootstrap_tau(x, x, seed=1) == pytest.approx((1.0, 1.0))
    with pytest.raises(ValidationError, match="at least 3"):
        bootstrap_tau([1, 2], [1, 2])


def test_learning_curve_of_a_linear_metric_beats_a_bad_surrogate():
    import numpy as np

    rng = np.random.default_rng(0)
    feats = rng.uniform(0, 1, size=(24, 3))
    metric = 1.0 - feats @ np.array([0.5, 0.2, 0.1])  # exactly linear in the slot losses
    bad_surrogate = feats[:, 2]  # the least important slot only
    curve = learning_curve(feats, bad_surrogate, metric, [4, 8, 16, 24], splits=50, seed=0)
    assert [p.n for p in curve] == [4, 8, 16]  # 24 leaves nothing to rank
    assert curve[-1].tau_predictor == pytest.approx(1.0)  # recovered exactly from 16
    assert all(p.tau_surrogate < 0.6 for p in curve)
    assert match_point(curve) is not None and match_point(curve) <= 8


def test_match_point_interpolates_and_says_never():
    def pt(n, tp, ts):
        return CurvePoint(n, 4, 10, tp, tp, tp, ts)

    assert match_point([pt(4, 0.2, 0.6), pt(8, 0.8, 0.6)]) == pytest.approx(4 + 4 * 0.4 / 0.6)
    assert match_point([pt(4, 0.7, 0.6)]) == 4.0
    assert match_point([pt(4, 0.1, 0.6), pt(8, 0.5, 0.6)]) is None

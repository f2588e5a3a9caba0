from __future__ import annotations

import pytest

from nas.validate import (
    ValidatedArch,
    ValidationError,
    kendall_tau,
    loo_linear_predictions,
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
    v = summarise("top1", archs, bkd_seconds=100.0, predictor_train_archs=40)
    assert v.tau_surrogate == pytest.approx(4 / 6)
    assert v.predictor_compute_s == pytest.approx(100.0 + 40 * 10.0)
    assert v.to_dict()["compute_ratio"] == pytest.approx(5.0)
    assert "τ(surrogate, top1) = +0.667" in v.summary()
    with pytest.raises(ValidationError, match="at least 3"):
        summarise("top1", archs[:2], 1.0)

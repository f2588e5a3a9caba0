"""Real conversions: torch -> ONNX -> onnx2tf -> TFLite, no mocks."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from latency.convert import ConvertConfig, Converter, convert_many, run_tflite
from latency.errors import NumericalMismatchError
from nas.core.spaces import get_space
from nas.core.specs import MBConvSpec

pytestmark = pytest.mark.slow
QUICK = get_space("quick")


def test_block_converts_matches_torch_and_is_cached(convert_config):
    spec = MBConvSpec(24, 24, 5, 1, 3, 0.25, "silu", 16, 16)  # residual + SE
    conv = Converter(convert_config)
    res = conv.convert_block(spec)
    assert res.path.exists() and res.path.stat().st_size > 1000
    assert res.max_abs_diff < 1e-4
    assert res.input_shape == (1, 16, 16, 24) and res.output_shape == (1, 16, 16, 24)
    assert "DEPTHWISE_CONV_2D" in res.ops and "MEAN" in res.ops and "ADD" in res.ops
    # onnx2tf appends a TRANSPOSE back to NCHW after residual adds; a network has none
    assert "TRANSPOSE" not in res.ops
    again = conv.convert_block(spec)
    assert again.cached and again.sha256 == res.sha256 and not res.cached


def test_tflite_output_equals_torch_output(convert_config):
    import torch

    from nas.core.modules import build_block, randomize_bn

    spec = MBConvSpec(16, 24, 3, 2, 6, 0.0, "relu6", 16, 16)
    res = Converter(convert_config).convert_block(spec)
    torch.manual_seed(0)
    module = randomize_bn(build_block(spec), seed=0).eval()  # same recipe as the converter
    x = torch.randn(1, 16, 16, 16)
    out = run_tflite(res.path, np.ascontiguousarray(x.numpy().transpose(0, 2, 3, 1)))
    with torch.no_grad():
        ref = module(x).numpy().transpose(0, 2, 3, 1)
    assert np.max(np.abs(out - ref)) < 1e-4


def test_stem_converts_with_the_network_blocked(convert_config, monkeypatch):
    """A 3-channel image input makes onnx2tf fetch sample data from the internet; ours must
    never touch the network."""
    attempts = []

    def no_network(self, address):
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    stem = QUICK.stem_spec()
    res = Converter(convert_config).convert_block(stem)
    assert res.ops[0] == "CONV_2D" and res.max_abs_diff < 1e-4
    assert attempts == []


def test_numerical_check_fails_loudly(cache_dir, tmp_path):
    strict = ConvertConfig(tmp_path / "strict-cache", atol=-1.0, rtol=0.0)  # nothing can pass
    spec = MBConvSpec(16, 16, 3, 1, 3, 0.0, "relu", 8, 8)
    with pytest.raises(NumericalMismatchError, match=r"mbconv k3 e3 s1 16->16"):
        Converter(strict).convert_block(spec)
    assert not list((tmp_path / "strict-cache").rglob("*.tflite"))  # nothing cached


def test_convert_many_in_worker_processes(convert_config):
    specs = QUICK.block_specs()[1:6]
    seen = []
    done, failed = convert_many(
        specs, convert_config, workers=2, on_done=lambda s, r, e: seen.append(s)
    )
    assert (
        not failed and set(done) == set(specs) and sorted(map(str, seen)) == sorted(map(str, specs))
    )
    assert all(r.max_abs_diff < 1e-4 for r in done.values())


def test_whole_architecture_converts(convert_config):
    arch = QUICK.decode([0, 1, 2])
    res = Converter(convert_config).convert_architecture(arch)
    assert res.output_shape == (1, 10) and res.max_abs_diff < 1e-4
    assert "TRANSPOSE" not in res.ops

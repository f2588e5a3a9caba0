from __future__ import annotations

import pytest

from nas.core.errors import SpecError
from nas.core.specs import (
    Architecture,
    ClassifierHeadSpec,
    ConvBnActSpec,
    MBConvSpec,
    describe,
    has_skip,
    macs,
    make_divisible,
    mid_chs,
    out_shape,
    params,
    se_chs,
    spec_from_dict,
    spec_from_key,
    spec_key,
)

BLOCK = MBConvSpec(24, 40, 5, 2, 6, 0.25, "silu", 28, 28)


def test_key_is_stable_across_versions_and_machines():
    # The LUT key format is a contract: changing it orphans every LUT ever written.
    assert spec_key(BLOCK) == (
        '{"act":"silu","exp_ratio":6.0,"in_chs":24,"in_h":28,"in_w":28,"kernel":5,'
        '"kind":"mbconv","out_chs":40,"se_ratio":0.25,"stride":2}'
    )


def test_equal_specs_equal_keys_and_hashes_int_or_float():
    a = MBConvSpec(24, 40, 5, 2, 6, 0.25, "silu", 28, 28)
    b = MBConvSpec(24, 40, 5, 2, 6.0, 0.25, "silu", 28, 28)
    assert a == b and hash(a) == hash(b) and spec_key(a) == spec_key(b)
    assert {a: 1}[b] == 1


def test_specs_are_frozen():
    with pytest.raises(AttributeError):
        BLOCK.kernel = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "spec",
    [
        BLOCK,
        ConvBnActSpec(3, 32, 3, 2, "silu", 224, 224),
        ClassifierHeadSpec(320, 1280, 1000, "silu", 7, 7),
    ],
)
def test_round_trip_through_key(spec):
    assert spec_from_key(spec_key(spec)) == spec
    assert isinstance(describe(spec), str)


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        (dict(kernel=4), "kernel"),
        (dict(stride=3), "stride"),
        (dict(exp_ratio=0.5), "exp_ratio"),
        (dict(se_ratio=1.0), "se_ratio"),
        (dict(act="gelu"), "act"),
        (dict(in_chs=0), "positive"),
    ],
)
def test_invalid_specs_name_the_field(kwargs, msg):
    base = dict(
        in_chs=24,
        out_chs=40,
        kernel=5,
        stride=2,
        exp_ratio=6,
        se_ratio=0.25,
        act="silu",
        in_h=28,
        in_w=28,
    )
    with pytest.raises(SpecError, match=msg):
        MBConvSpec(**{**base, **kwargs})


def test_spec_from_dict_errors():
    with pytest.raises(SpecError, match="unknown block kind"):
        spec_from_dict({"kind": "transformer"})
    with pytest.raises(SpecError, match="exactly the fields"):
        spec_from_dict({"kind": "mbconv", "in_chs": 3})
    with pytest.raises(SpecError, match="not a block spec key"):
        spec_from_key("mbconv-k3-e6")


def test_derived_values_from_one_place():
    assert make_divisible(24 * 6) == 144
    assert make_divisible(10) == 16  # never below the divisor
    assert mid_chs(BLOCK) == 144
    assert mid_chs(MBConvSpec(16, 16, 3, 1, 1, 0, "relu", 8, 8)) == 16  # DS block
    assert se_chs(BLOCK) == 6 and se_chs(MBConvSpec(16, 16, 3, 1, 1, 0, "relu", 8, 8)) == 0
    assert not has_skip(BLOCK) and has_skip(MBConvSpec(16, 16, 3, 1, 4, 0, "relu", 8, 8))
    assert out_shape(BLOCK) == (40, 14, 14)
    assert out_shape(ConvBnActSpec(3, 8, 3, 2, "relu", 33, 33)) == (8, 17, 17)


def test_macs_and_params_grow_with_the_block():
    small = MBConvSpec(24, 24, 3, 1, 3, 0, "silu", 28, 28)
    big = MBConvSpec(24, 24, 7, 1, 6, 0.25, "silu", 28, 28)
    assert 0 < macs(small) < macs(big)
    assert 0 < params(small) < params(big)


def test_architecture_checks_shapes():
    stem = ConvBnActSpec(3, 16, 3, 2, "silu", 32, 32)
    blk = MBConvSpec(16, 24, 3, 2, 6, 0, "silu", 16, 16)
    head = ClassifierHeadSpec(24, 64, 10, "silu", 8, 8)
    arch = Architecture(stem, ((blk,),), head)
    assert len(arch) == 3 and Architecture.from_list(arch.to_list()) == arch
    assert Architecture.from_dict(arch.to_dict()) == arch and arch.blocks == (stem, blk, head)
    with pytest.raises(SpecError, match="expects input"):
        Architecture(stem, ((MBConvSpec(16, 24, 3, 2, 6, 0, "silu", 32, 32),),), head)

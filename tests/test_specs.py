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


@pytest.mark.parametrize(
    "field, value, msg",
    [
        ("in_chs", "sixteen", 'field in_chs of a mbconv spec must be a whole number, got "sixt'),
        ("in_chs", 16.0, "field in_chs of a mbconv spec must be a whole number, got 16.0"),
        ("kernel", True, "field kernel of a mbconv spec must be a whole number, got true"),
        ("in_h", None, "field in_h of a mbconv spec must be a whole number, got null"),
        ("exp_ratio", "6", 'field exp_ratio of a mbconv spec must be a number, got "6"'),
        ("se_ratio", False, "field se_ratio of a mbconv spec must be a number, got false"),
        ("act", 3, "field act of a mbconv spec must be a string, got 3"),
    ],
)
def test_spec_from_dict_names_a_field_of_the_wrong_type(field, value, msg):
    d = {"kind": "mbconv", **{f: getattr(BLOCK, f) for f in BLOCK.__dataclass_fields__}}
    assert spec_from_dict(d) == BLOCK
    with pytest.raises(SpecError) as exc:
        spec_from_dict({**d, field: value})
    assert str(exc.value).startswith(msg)


def test_spec_from_dict_takes_numpy_numbers_and_refuses_non_mappings():
    import numpy as np

    d = {"kind": "mbconv", **{f: getattr(BLOCK, f) for f in BLOCK.__dataclass_fields__}}
    assert spec_from_dict({**d, "in_chs": np.int64(24), "exp_ratio": np.float32(6)}) == BLOCK
    for bad in (1, "mbconv", [1, 2], None):
        with pytest.raises(SpecError, match="a block spec is an object with a 'kind'"):
            spec_from_dict(bad)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="unknown block kind"):
        spec_from_dict({**d, "kind": ["mbconv"]})


@pytest.mark.parametrize(
    "items, msg",
    [
        ({"a": 1}, r'an architecture is a list of block specs .*got \{"a": 1\}'),
        ("hello", 'an architecture is a list of block specs .*got "hello"'),
        (None, "an architecture is a list of block specs .*got null"),
        ([1, 2], "block 0: a block spec is an object"),
        ([], "at least a stem and a head"),
    ],
)
def test_architecture_from_list_refuses_what_is_no_block_list(items, msg):
    with pytest.raises(SpecError, match=msg):
        Architecture.from_list(items)  # type: ignore[arg-type]


def test_architecture_from_list_names_the_bad_block():
    stem = ConvBnActSpec(3, 16, 3, 2, "silu", 32, 32)
    head = ClassifierHeadSpec(16, 64, 10, "silu", 16, 16)
    items = Architecture.from_blocks([stem, head]).to_list()
    items[1]["num_classes"] = "ten"
    with pytest.raises(SpecError, match="block 1: field num_classes of a classifier_head spec"):
        Architecture.from_list(items)

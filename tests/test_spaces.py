from __future__ import annotations

import pytest

from nas.core.errors import SpaceError
from nas.core.spaces import SearchSpace, get_space, random_genomes
from nas.core.specs import spec_key


def test_quick_space_size():
    sp = get_space("quick")
    assert sp.n_options() == [24, 24, 24]
    assert round(10 ** sp.log10_size()) == 24**3
    assert len(sp.block_specs()) == 74


def test_default_space_is_b0_like():
    sp = get_space("default", 112)
    assert sp.n_slots == 7 and sp.resolution == 112
    opts = sp.options[0]
    assert {o.kernel for o in opts} == {3, 5, 7}
    assert {o.exp_ratio for o in opts} == {2, 3, 4, 6}
    assert {o.depth for o in opts} == {1, 2, 3, 4}
    assert {o.se_ratio > 0 for o in opts} == {True, False}
    assert len({o.width for o in opts}) >= 2
    assert sp.slot_input_sizes() == [56, 56, 28, 14, 7, 7, 4]


@pytest.mark.parametrize("name", ["quick", "default"])
def test_every_architecture_is_priced_by_the_space_blocks(name):
    sp = get_space(name, 64 if name == "default" else None)
    keys = {spec_key(s) for s in sp.block_specs()}
    for g in random_genomes(sp, 50, seed=1):
        arch = sp.decode(g)
        assert {spec_key(b) for b in arch} <= keys


def test_genome_decoding_errors():
    sp = get_space("quick")
    with pytest.raises(SpaceError, match="3 slots"):
        sp.decode([0, 0])
    with pytest.raises(SpaceError, match="out of range"):
        sp.decode([0, 0, 24])


def test_unknown_space_lists_known():
    with pytest.raises(SpaceError, match="quick, default"):
        get_space("huge")


def test_space_round_trips_through_dict():
    sp = get_space("quick")
    assert SearchSpace.from_dict(sp.to_dict()) == sp
    with pytest.raises(SpaceError):
        SearchSpace.from_dict({"name": "x"})


def test_random_genomes_are_seeded_and_distinct():
    sp = get_space("quick")
    a = random_genomes(sp, 20, seed=3)
    assert a == random_genomes(sp, 20, seed=3)
    assert a != random_genomes(sp, 20, seed=4)
    assert len({tuple(g) for g in a}) == 20


@pytest.mark.parametrize(("name", "scale"), [("quick-denoise", 1), ("quick-sr", 2)])
def test_image_spaces_end_with_an_image_head(name, scale):
    from nas.core.specs import ImageHeadSpec, out_shape, spec_from_key

    sp = get_space(name)
    arch = sp.decode([0] * sp.n_slots)
    head = arch.blocks[-1]
    assert isinstance(head, ImageHeadSpec) and head.scale == scale
    assert out_shape(head) == (3, sp.resolution * scale, sp.resolution * scale)
    assert spec_from_key(spec_key(head)) == head
    assert SearchSpace.from_dict(sp.to_dict()) == sp


def test_unknown_task_is_refused():
    sp = get_space("quick").to_dict()
    sp["task"] = "segmentation"
    with pytest.raises(SpaceError, match="unknown task 'segmentation'"):
        SearchSpace.from_dict(sp)


def test_image_head_module_shapes():
    torch = pytest.importorskip("torch")
    from nas.core.modules import build_architecture

    sp = get_space("quick-sr")
    net = build_architecture(sp.decode([3, 7, 11]))
    assert tuple(net(torch.zeros(2, 3, 32, 32)).shape) == (2, 3, 64, 64)


# ---- input normalisation ------------------------------------------------------------------------

NORM = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def test_input_norm_round_trips_and_compares_equal():
    import json

    sp = get_space("quick").with_input_norm(NORM)
    assert sp.input_norm == NORM and sp == sp.with_input_norm(NORM)
    d = sp.to_dict()
    assert d["input_norm"] == NORM
    again = SearchSpace.from_dict(json.loads(json.dumps(d)))  # lists after JSON
    assert again == sp and hash(again) == hash(sp)
    assert isinstance(again.input_norm, tuple) and isinstance(again.input_norm[0], tuple)
    assert again.to_dict() == d
    assert "input: (x - mean) / std" in sp.describe() and "0.485, 0.456, 0.406" in sp.describe()
    assert "input:" not in get_space("quick").describe()
    # the norm is part of the space, not of its blocks: the LUT rows are the same
    assert sp != get_space("quick") and sp.block_specs() == get_space("quick").block_specs()
    # integers and lists are normalised to float tuples
    ints = get_space("quick").with_input_norm([[0, 0, 0], [1, 1, 1]])
    assert ints.input_norm == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def test_a_space_file_without_input_norm_loads_as_before():
    old = get_space("quick").to_dict()
    del old["input_norm"]  # what every file written before the field existed holds
    sp = SearchSpace.from_dict(old)
    assert sp.input_norm is None and sp == get_space("quick")
    assert sp.to_dict()["input_norm"] is None


@pytest.mark.parametrize(
    "norm",
    [
        ((0.5, 0.5), (0.2, 0.2, 0.2)),
        ((0.5, 0.5, 0.5), (0.2, 0.0, 0.2)),
        ((0.5, 0.5, 0.5), (0.2, -1.0, 0.2)),
        ((0.5, float("nan"), 0.5), (0.2, 0.2, 0.2)),
        ((0.5, 0.5, 0.5),),
        (0.5, 0.2),
        "imagenet",
        ((0.5, 0.5, 0.5), (0.2, 0.2, 0.2), (1.0, 1.0, 1.0)),
    ],
)
def test_invalid_input_norms_are_refused(norm):
    d = get_space("quick").to_dict()
    d["input_norm"] = norm
    with pytest.raises(SpaceError, match="input_norm must be") as exc:
        SearchSpace.from_dict(d)
    assert "\n" not in str(exc.value) and "'quick'" in str(exc.value)

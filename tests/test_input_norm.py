"""A space's input normalisation in its networks: ``(x - mean) / std`` before the stem (buffers),
in every path that runs the stem (forward, body, slot_features, BKD's teacher features), the
raw input for the global residual, kept through checkpoints, BKD libraries, filtered spaces and
Pareto files; spaces without it build exactly the networks they built before."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from nas.bkd.library import BkdLibrary, LibraryError  # noqa: E402
from nas.core.errors import MothernetError, SpaceError  # noqa: E402
from nas.core.modules import build_block  # noqa: E402
from nas.core.spaces import get_space  # noqa: E402
from nas.training.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from nas.training.mothernet import MothernetConfig  # noqa: E402
from nas.training.networks import BlockNetwork, NormalizedStem, build_network  # noqa: E402

NORM = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
QUICK = get_space("quick", 16)
NORMED = QUICK.with_input_norm(NORM)
GENOME = [3, 10, 17]


def normalise(x: torch.Tensor) -> torch.Tensor:
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in NORM)
    return (x - mean) / std


def pair(space_plain=QUICK, genome=GENOME):
    """A network of the space with the norm and one without it, with the same weights."""
    choices = space_plain.choices(genome)
    normed = build_network(space_plain.with_input_norm(NORM), choices, seed=3).eval()
    plain = build_network(space_plain, choices, seed=3).eval()
    return normed, plain


def x01(n: int = 2, res: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, res, res, generator=torch.Generator().manual_seed(seed))


def test_the_network_normalises_its_input_first():
    normed, plain = pair()
    assert isinstance(normed.stem, NormalizedStem) and normed.input_norm == NORM
    assert plain.input_norm is None
    # the same weights: the norm's buffers take nothing from the seeded RNG
    state = {k.replace("stem.block.", "stem."): v for k, v in normed.state_dict().items()}
    assert set(state) == set(plain.state_dict()) | {"stem.mean", "stem.std"}
    for k, v in plain.state_dict().items():
        assert torch.equal(state[k], v), k
    x = x01()
    with torch.no_grad():
        assert torch.equal(normed(x), plain(normalise(x)))
        assert torch.equal(normed.body(x), plain.body(normalise(x)))
        for a, b in zip(normed.slot_features(x), plain.slot_features(normalise(x))):
            assert torch.equal(a, b)
        assert not torch.allclose(normed(x), plain(x))  # the norm does something


def test_bkd_teacher_features_are_taken_after_the_norm():
    from nas.bkd.shared import teacher_features

    normed, plain = pair()
    x = x01()
    with torch.no_grad():
        got = teacher_features(normed, x, 2)
        want = plain.slot_features(normalise(x))[:3]
    assert len(got) == 3
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["quick-denoise", "quick-sr"])
def test_the_global_residual_uses_the_raw_input(name):
    space = get_space(name, 16)
    normed, plain = pair(space, [0, 0, 0])
    x = x01()
    with torch.no_grad():
        # a fresh image network's residual branch is zero: it returns its (upsampled) raw input
        want = plain(x)
        assert torch.equal(normed(x), want)
        if name == "quick-sr":
            assert want.shape == (2, 3, 32, 32)
        else:
            assert torch.equal(want, x)
        # with a live head: raw residual + head(body(normalised x))
        gen = torch.Generator().manual_seed(1)
        torch.nn.init.normal_(normed.head.conv.weight, std=0.1, generator=gen)
        plain.head.load_state_dict(normed.head.state_dict())
        y = normed(x)
        up = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear")
        base = x if name == "quick-denoise" else up
        torch.testing.assert_close(y, base + plain.head(plain.body(normalise(x))))


def test_the_norm_follows_the_network_to_another_dtype():
    normed, _ = pair()
    x = x01()
    with torch.no_grad():
        want = normed(x)
        normed.double()
        assert normed.stem.mean.dtype == normed.stem.std.dtype == torch.float64
        got = normed(x.double())
    assert got.dtype == torch.float64
    torch.testing.assert_close(got.float(), want, rtol=1e-4, atol=1e-5)
    assert normed.input_norm == NORM


def test_a_space_without_norm_builds_the_networks_it_built_before():
    """No buffers, the blocks' own state-dict keys, and outputs bit-identical to the network
    put together from the same seeded blocks."""
    choices = QUICK.choices(GENOME)
    net = build_network(QUICK, choices, seed=5).eval()
    arch = QUICK.architecture(choices)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        stem = build_block(arch.stem)
        slots = [torch.nn.Sequential(*(build_block(b) for b in s)) for s in arch.slots]
        head = build_block(arch.head)
    ref = BlockNetwork(stem, slots, head).eval()
    assert type(net.stem) is type(stem) and net.input_norm is None
    assert list(net.state_dict()) == list(ref.state_dict())
    bn_buffers = ("running_mean", "running_var", "num_batches_tracked")
    assert all(n.rsplit(".", 1)[-1] in bn_buffers for n, _ in net.named_buffers())
    assert not any(k.startswith(("stem.mean", "stem.std", "stem.block")) for k in net.state_dict())
    x = x01(seed=4)
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))


def test_a_wrong_norm_is_refused_by_the_network():
    normed, _ = pair()
    with pytest.raises(SpaceError, match="BlockNetwork: input_norm must be"):
        BlockNetwork(
            normed.stem, list(normed.slots), normed.head, input_norm=((0, 0, 0), (1, 0, 1))
        )


# ---- checkpoints ---------------------------------------------------------------------------------


def test_checkpoint_keeps_the_norm_and_refuses_a_mismatch(tmp_path):
    normed, plain = pair()
    cfg = MothernetConfig(NORMED, tuple(NORMED.choices(GENOME)), seed=3)
    path = save_checkpoint(tmp_path / "m.pt", normed, cfg)
    again, cfg2, _ = load_checkpoint(path, NORMED)
    assert cfg2.space == NORMED and again.input_norm == NORM
    x = x01()
    with torch.no_grad():
        assert torch.equal(again(x), normed(x))
    # a space without the norm does not fit this mothernet, and the message says why
    with pytest.raises(MothernetError, match="differs from space 'quick' in input_norm") as exc:
        load_checkpoint(path, QUICK)
    assert "\n" not in str(exc.value)
    # a network that does not normalise cannot be saved under a space that does
    with pytest.raises(MothernetError, match="normalises its input with None"):
        save_checkpoint(tmp_path / "bad.pt", plain, cfg)


def test_a_checkpoint_written_before_the_norm_still_loads(tmp_path):
    _, plain = pair()
    cfg = MothernetConfig(QUICK, tuple(QUICK.choices(GENOME)), seed=3)
    path = save_checkpoint(tmp_path / "old.pt", plain, cfg)
    payload = torch.load(path, weights_only=True)
    del payload["config"]["space"]["input_norm"]  # what older checkpoints hold
    torch.save(payload, path)
    net, cfg2, _ = load_checkpoint(path, QUICK)
    assert cfg2 == cfg and net.input_norm is None
    assert set(net.state_dict()) == set(plain.state_dict())
    x = x01()
    with torch.no_grad():
        assert torch.equal(net(x), plain(x))


# ---- BKD library -> filter -> search -> finetune's network ---------------------------------------


def test_the_norm_survives_library_filter_and_search(tmp_path):
    from nas.filter import filter_space, load_filtered_space
    from nas.search.config import SearchConfig
    from nas.search.result import load_pareto
    from nas.search.run import run_search
    from nas.synthetic import synthetic_library, synthetic_table

    lib = synthetic_library(NORMED, 0, "ab" * 32)
    lib.save(tmp_path / "bkd.json")
    lib = BkdLibrary.load(tmp_path / "bkd.json")
    assert lib.space == NORMED
    with pytest.raises(LibraryError, match="differs in input_norm"):
        lib.check_space(QUICK)
    report = filter_space(NORMED, lib)
    report.save(tmp_path / "space.json")
    space = load_filtered_space(tmp_path / "space.json", lib)
    assert space.input_norm == NORM and space.name == "quick-filtered"
    # the LUT made for the space without the norm prices it: the norm is no block
    table = synthetic_table(QUICK.block_specs())
    res = run_search(space, lib, table, SearchConfig(pop_size=12, generations=3, seed=0))
    res.save(tmp_path / "search")
    back = load_pareto(tmp_path / "search" / "pareto.json")
    assert back.space == space and back.space.input_norm == NORM
    student = build_network(back.space, back.space.choices(back.front[0].genome), seed=0)
    assert student.input_norm == NORM


def test_old_library_and_filtered_files_load_without_norm(tmp_path):
    from nas.filter import filter_space, load_filtered_space
    from nas.synthetic import synthetic_library

    lib = synthetic_library(QUICK, 0, "cd" * 32)
    path = lib.save(tmp_path / "bkd.json")
    data = json.loads(path.read_text())
    del data["space"]["input_norm"]
    path.write_text(json.dumps(data))
    old = BkdLibrary.load(path)
    assert old.space == QUICK and old.space.input_norm is None
    old.check_space(QUICK)
    spath = filter_space(QUICK, old).save(tmp_path / "space.json")
    data = json.loads(spath.read_text())
    for key in ("space", "original_space"):
        del data[key]["input_norm"]
    spath.write_text(json.dumps(data))
    assert load_filtered_space(spath, old).input_norm is None

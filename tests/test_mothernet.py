"""Mothernets: building, forward shapes, real (tiny, seeded) training, checkpoints."""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")

from nas.core.errors import MothernetError  # noqa: E402
from nas.core.modules import randomize_bn  # noqa: E402
from nas.core.spaces import B0_DEPTHS, B0_KERNELS, SlotOption, StageDef, get_space  # noqa: E402
from nas.data import load_task_data  # noqa: E402
from nas.training.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from nas.training.mothernet import (  # noqa: E402
    MothernetConfig,
    build_mothernet,
    default_teacher_choices,
    evaluate,
    train_mothernet,
)
from nas.training.networks import BlockNetwork, build_network, check_network  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return load_task_data("classification", resolution=16, train_limit=640, val_limit=200)


@pytest.fixture(scope="module")
def space16():
    return get_space("quick", 16)


def test_default_teacher_choices():
    quick = default_teacher_choices(get_space("quick"))
    assert {c.label() for c in quick} == {"k5 e6 se0.25 d2 w1 silu"}
    b0 = default_teacher_choices(get_space("default", 32))
    assert tuple(c.kernel for c in b0) == B0_KERNELS
    assert tuple(c.depth for c in b0) == B0_DEPTHS
    assert {(c.exp_ratio, c.se_ratio, c.width) for c in b0} == {(6.0, 0.25, 1.0)}
    for name in ("quick-denoise", "quick-sr"):
        sp = get_space(name)
        for opts, c in zip(sp.options, default_teacher_choices(sp)):
            assert c in opts and c.depth == 2 and c.kernel == 5


@pytest.mark.parametrize(
    ("name", "res", "out"),
    [
        ("quick", 32, (2, 10)),
        ("default", 32, (2, 1000)),
        ("quick-denoise", 32, (2, 3, 32, 32)),
        ("quick-sr", 32, (2, 3, 64, 64)),
    ],
)
def test_forward_shapes(name, res, out):
    sp = get_space(name, res)
    cfg = MothernetConfig.default(sp)
    net = build_mothernet(cfg).eval()
    with torch.no_grad():
        assert tuple(net(torch.rand(2, 3, res, res)).shape) == out
        feats = net.slot_features(torch.rand(1, 3, res, res))
    assert len(feats) == sp.n_slots + 1
    assert [f.shape[1] for f in feats] == cfg.slot_in_chs()
    check_network(net, cfg)


def test_image_networks_add_the_global_residual():
    for name, scale in (("quick-denoise", 1), ("quick-sr", 2)):
        net = build_mothernet(MothernetConfig.default(get_space(name, 16))).eval()
        for p in net.head.parameters():
            torch.nn.init.zeros_(p)
        x = torch.rand(2, 3, 16, 16)
        with torch.no_grad():
            y = net(x)
        want = (
            x if scale == 1 else torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear")
        )
        assert torch.equal(y, want)


def test_build_is_seeded_and_leaves_the_global_rng_alone(space16):
    choices = default_teacher_choices(space16)
    state = torch.random.get_rng_state()
    a = build_network(space16, choices, seed=3).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    b = build_network(space16, choices, seed=3).state_dict()
    c = build_network(space16, choices, seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def small(space):
    """A small option of every slot: fast training in tests."""
    return MothernetConfig(space, [SlotOption(3, 3.0, 0.0, 1, 1.0, space.options[0][0].act)] * 3)


def test_training_lowers_the_loss_and_is_deterministic(space16, digits):
    cfg = replace(small(space16), seed=1)
    runs = []
    for _ in range(2):
        net = build_mothernet(cfg)
        m = train_mothernet(net, digits, epochs=2, batch_size=64, seed=5, progress=False)
        runs.append((net, m))
    (net, m), (net2, m2) = runs
    assert m["metric"] == "top1" and m["steps"] == 20
    assert m["train_loss_last"] < 0.7 * m["train_loss_first"]
    assert m["value"] > 0.3  # 10 classes: chance is 0.1
    assert m["value"] == evaluate(net, digits)
    assert m["train_loss_last"] == m2["train_loss_last"] and m["value"] == m2["value"]
    s1, s2 = net.state_dict(), net2.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)


def test_denoising_training_lowers_the_loss():
    data = load_task_data("denoising", resolution=16, train_limit=128, val_limit=32)
    net = build_mothernet(small(get_space("quick-denoise", 16)))
    m = train_mothernet(net, data, epochs=2, batch_size=32, lr=3e-3, seed=0, progress=False)
    assert m["metric"] == "psnr_db"
    assert m["train_loss_last"] < m["train_loss_first"]
    assert 5 < m["value"] < 60


def test_bad_training_settings(space16, digits):
    net = build_mothernet(MothernetConfig.default(space16))
    for kwargs, match in [
        ({"epochs": 0}, "epochs"),
        ({"epochs": -1}, "epochs"),
        ({"epochs": float("nan")}, "epochs"),
        ({"batch_size": 1}, "batch size"),
        ({"lr": 0.0}, "learning rate"),
        ({"optimizer": "adam"}, "optimizer"),
    ]:
        with pytest.raises(MothernetError, match=match):
            train_mothernet(net, digits, progress=False, **kwargs)
    sr = build_mothernet(MothernetConfig.default(get_space("quick-sr", 16)))
    with pytest.raises(MothernetError, match="super_resolution network but the data"):
        train_mothernet(sr, digits, epochs=1, progress=False)
    with pytest.raises(MothernetError, match="3 slot choices"):
        MothernetConfig(space16, default_teacher_choices(space16)[:2])


def test_checkpoint_round_trip(tmp_path, space16, digits):
    cfg = replace(small(space16), seed=2)
    net = randomize_bn(build_mothernet(cfg), seed=0)  # BN buffers are part of the check
    path = save_checkpoint(tmp_path / "m.pt", net, cfg, {"top1": 0.5}, digits.describe())
    assert not list(tmp_path.glob(".*tmp"))
    net2, cfg2, meta = load_checkpoint(path)
    assert cfg2 == cfg
    assert meta.metrics == {"top1": 0.5} and meta.data == digits.describe()
    net.eval()
    x = digits.val_x[:8]
    with torch.no_grad():
        assert torch.equal(net(x), net2(x))
    load_checkpoint(path, get_space("quick", 16).with_options([cfg.choices[:1]] * 3))
    pickle.dumps(cfg)  # configs travel to worker processes


def test_checkpoint_errors(tmp_path, space16):
    cfg = MothernetConfig.default(space16)
    path = save_checkpoint(tmp_path / "m.pt", build_mothernet(cfg), cfg)
    with pytest.raises(MothernetError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(MothernetError, match="not a donnav2 mothernet checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"model": {}}, other)
    with pytest.raises(MothernetError, match="not a donnav2 mothernet checkpoint"):
        load_checkpoint(other)
    with pytest.raises(MothernetError, match="resolution"):
        load_checkpoint(path, get_space("quick", 32))
    wider = replace(space16, stages=(StageDef(32, 2), *space16.stages[1:]))
    with pytest.raises(MothernetError, match="stages"):
        load_checkpoint(path, wider)
    # a file whose config says one space but whose weights come from another
    payload = torch.load(path, weights_only=True)
    payload["config"] = MothernetConfig(wider, cfg.choices).to_dict()
    torch.save(payload, tmp_path / "tampered.pt")
    with pytest.raises(MothernetError, match="another shape"):
        load_checkpoint(tmp_path / "tampered.pt")
    payload["version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(MothernetError, match="version 99"):
        load_checkpoint(tmp_path / "future.pt")


def test_bring_your_own_network(tmp_path, space16):
    """A network of the user's own modules with the space's feature shapes is accepted; one
    with other stage channels is refused with a message naming the slot."""
    cfg = MothernetConfig.default(space16)
    ref = build_mothernet(cfg)
    mine = BlockNetwork(ref.stem, list(ref.slots), ref.head, task="classification")
    save_checkpoint(tmp_path / "mine.pt", mine, cfg)
    assert load_checkpoint(tmp_path / "mine.pt")[1] == cfg
    bad_slot = torch.nn.Sequential(torch.nn.Conv2d(24, 32, 3, padding=1))
    bad = BlockNetwork(ref.stem, [ref.slots[0], bad_slot, ref.slots[2]], ref.head)
    with pytest.raises(MothernetError, match="output of slot 1"):
        check_network(bad, cfg)

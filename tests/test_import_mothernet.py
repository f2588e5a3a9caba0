"""Imported mothernets: torchvision's and timm's EfficientNet-B0 and MobileNetV2 (the real
libraries, random weights and randomised BatchNorm statistics saved to a file) rewritten as
our blocks with every weight copied; the logits must agree, the checkpoint must reload, and
every wrong input must give its one-line message."""

from __future__ import annotations

import sys

import pytest

torch = pytest.importorskip("torch")

from nas.core.errors import MothernetError, PipelineError  # noqa: E402
from nas.core.files import file_sha256  # noqa: E402
from nas.core.modules import randomize_bn  # noqa: E402
from nas.core.spaces import B0_STAGES, get_space  # noqa: E402
from nas.training.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from nas.training.import_source import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from nas.training.imported import (  # noqa: E402
    CHECK_TOLERANCE,
    MothernetSpec,
    import_mothernet,
    max_logit_diff,
    parse_mothernet_spec,
    source_input_norm,
)

RES = 64  # small: the check and the tests stay fast
MODELS = [
    ("torchvision", "efficientnet_b0"),
    ("torchvision", "mobilenet_v2"),
    ("timm", "efficientnet_b0"),
    ("timm", "mobilenetv2_100"),
]


def source_model(lib: str, name: str, seed: int = 0):
    """The real library model with random weights, random BatchNorm scales and shifts, and
    running statistics measured on seeded ImageNet-normalised [0, 1] batches: with the
    randomised statistics alone the signal dies on its way through the blocks and the logits
    hardly depend on the input (then a check of the logits, or of the normalisation, would
    see nothing)."""
    mod = pytest.importorskip(lib, reason=f"{lib} is not installed (pip install torchvision timm)")
    torch.manual_seed(seed)
    if lib == "torchvision":
        model = getattr(mod.models, name)(weights=None)
    else:
        model = mod.create_model(name, pretrained=False)
    randomize_bn(model, seed + 1)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the calibration batches
    gen = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        for _ in range(2):
            model.train()(normalise(torch.rand(8, 3, RES, RES, generator=gen)))
    for m in bns:
        m.momentum = 0.1
    return model.eval()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """``weights(lib, name)`` -> (path of a saved state dict, the source model), made once."""
    made: dict = {}
    folder = tmp_path_factory.mktemp("weights")

    def get(lib: str, name: str):
        if (lib, name) not in made:
            model = source_model(lib, name)
            path = folder / f"{lib}-{name}.pth"
            torch.save(model.state_dict(), path)
            made[lib, name] = (path, model)
        return made[lib, name]

    return get


def normalise(x):
    """What the source models expect: ImageNet mean/std normalisation of [0, 1] RGB."""
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
    return (x - mean) / std


def bn_stats(model) -> list:
    return [
        (m.running_mean, m.running_var)
        for m in model.modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    ]


# ---- the spec ---------------------------------------------------------------------------------


def test_parse_specs(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    spec = parse_mothernet_spec("torchvision:efficientnet_b0:/w/b0.pth")
    assert spec == MothernetSpec("torchvision", "efficientnet_b0", spec.path)
    assert str(spec.path) == "/w/b0.pth" and spec.space_name == "torchvision-efficientnet_b0"
    tagged = parse_mothernet_spec("timm:efficientnet_b0.ra_in1k:~/m.safetensors")
    assert tagged.arch == "efficientnet_b0" and tagged.path == tmp_path / "m.safetensors"
    for plain in ("runs/cls/mothernet.pt", "mothernet.pt", "a:b.pt", str(tmp_path / "x:y:z")):
        assert parse_mothernet_spec(plain) is None, plain
    for text, want in (
        ("torchvision:resnet50:/w.pth", "torchvision model 'resnet50'"),
        ("keras:efficientnet_b0:/w.h5", "library 'keras'"),
    ):
        with pytest.raises(MothernetError, match=want) as exc:
            parse_mothernet_spec(text)
        msg = str(exc.value)
        assert "timm:mobilenetv2_100" in msg and "torchvision:mobilenet_v2" in msg
        assert "\n" not in msg
    with pytest.raises(MothernetError, match="names no weights file"):
        parse_mothernet_spec("timm:efficientnet_b0")


# ---- the import ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("lib", "name"), MODELS)
def test_import_copies_every_weight(weights, lib, name):
    path, src = weights(lib, name)
    net, cfg, report = import_mothernet(MothernetSpec(lib, name, path), resolution=RES)
    # the import's own check, and one of ours on another [0, 1] batch: the network
    # normalises with the source's ImageNet mean and std itself
    assert report["max_abs_diff"] <= CHECK_TOLERANCE * max(1.0, report["logit_scale"])
    assert report["input_norm"] == {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    assert cfg.space.input_norm == net.input_norm == (IMAGENET_MEAN, IMAGENET_STD)
    x = torch.rand(3, 3, RES, RES, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        want, got = src(normalise(x)), net(x)
    assert want.shape == (3, 1000) and want.abs().max() > 0.05
    assert float((want - want.mean(0)).abs().max()) > 0.1  # the logits depend on the input
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * max(1.0, float(want.abs().max())))
    with torch.no_grad():  # without the normalisation the source gives other logits
        assert float((src(x) - got).abs().max()) > 0.1
    # every BatchNorm's (randomised) running statistics were copied
    theirs, ours = bn_stats(src), bn_stats(net)
    assert len(ours) == len(theirs) > 40
    for (m0, v0), (m1, v1) in zip(theirs, ours):
        assert torch.equal(m0, m1) and torch.equal(v0, v1)
    assert float(ours[0][0].abs().max()) > 0  # not the fresh zeros
    assert report["params"] == sum(p.numel() for p in src.parameters())
    assert report["weights_sha256"] == file_sha256(path)
    # the space is built around the mothernet: its option is one of every slot's
    space = cfg.space
    assert space.name == f"{lib}-{name}" and space.resolution == RES
    for opts, own, gene in zip(space.options, cfg.choices, report["genome"]):
        assert own in opts and opts[gene] == own
        assert {o.kernel for o in opts} >= {3, 5, 7} and {o.width for o in opts} == {0.75, 1.0}
    assert [st.out_chs for st in space.stages] == [c for c in _stage_chs(name)]
    assert cfg.choices[0].exp_ratio == 1.0 and {o.exp_ratio for o in space.options[0]} == {1.0}
    assert {o.exp_ratio for o in space.options[1]} == {3.0, 4.0, 6.0}
    act = "silu" if "efficientnet" in name else "relu6"
    assert space.stem_act == act and {c.act for c in cfg.choices} == {act}
    assert {c.se_ratio for c in cfg.choices} == ({0.25} if act == "silu" else {0.0})


def _stage_chs(name: str) -> list[int]:
    if "efficientnet" in name:
        return [s.out_chs for s in B0_STAGES]
    return [16, 24, 32, 64, 96, 160, 320]


def test_b0_fits_the_default_space_and_depths(weights):
    path, _ = weights("torchvision", "efficientnet_b0")
    _, cfg, _ = import_mothernet(
        MothernetSpec("torchvision", "efficientnet_b0", path), resolution=RES
    )
    assert tuple(cfg.space.stages) == B0_STAGES
    assert [c.depth for c in cfg.choices] == [1, 2, 2, 3, 3, 4, 1]
    assert [c.kernel for c in cfg.choices] == [3, 3, 5, 3, 5, 5, 3]
    # depths 1 .. own + 1, capped at 4 and never below the own depth
    assert [max(o.depth for o in opts) for opts in cfg.space.options] == [2, 3, 3, 4, 4, 4, 2]
    # B0's stem, stages and head are the built-in default space's: BKD of that space works too,
    # with the mothernet's input normalisation (what `donna bkd --space default` uses)
    default = get_space("default", RES).with_input_norm(cfg.space.input_norm)
    assert {k: v for k, v in default.to_dict().items() if k not in ("name", "options")} == {
        k: v for k, v in cfg.space.to_dict().items() if k not in ("name", "options")
    }


def test_the_check_sees_a_wrong_copy(weights):
    path, src = weights("timm", "efficientnet_b0")
    net, _, report = import_mothernet(
        MothernetSpec("timm", "efficientnet_b0", path), resolution=RES
    )
    with torch.no_grad():
        net.slots[3][1].bn2.running_var.mul_(4.0)
    diff, scale = max_logit_diff(src, net, RES, (IMAGENET_MEAN, IMAGENET_STD))
    assert diff > CHECK_TOLERANCE * max(1.0, scale) and diff > 1000 * report["max_abs_diff"]


def test_checkpoint_reloads_with_the_same_outputs(weights, tmp_path):
    path, src = weights("torchvision", "mobilenet_v2")
    out = tmp_path / "mnv2.pt"
    net, cfg, report = import_mothernet(
        MothernetSpec("torchvision", "mobilenet_v2", path), resolution=RES, out=out
    )
    again, cfg2, meta = load_checkpoint(out, cfg.space)
    assert cfg2 == cfg
    assert again.input_norm == cfg2.space.input_norm == (IMAGENET_MEAN, IMAGENET_STD)
    state = again.state_dict()
    assert torch.equal(state["stem.mean"], torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
    assert torch.equal(state["stem.std"], torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
    x = torch.rand(2, 3, RES, RES, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(again(x), net(x))
        torch.testing.assert_close(again(x), src(normalise(x)), rtol=0, atol=1e-5)
    assert meta.metrics["imported"]["max_abs_diff"] == report["max_abs_diff"]
    assert meta.data["imported"] == "torchvision:mobilenet_v2"
    assert "not trained here" in meta.data["data"]
    assert meta.data["input_normalization"] == report["input_norm"]
    # and without --data nothing pretends to know its training data
    from nas.pipeline.picks import checkpoint_data

    with pytest.raises(PipelineError, match="pass the task data with --data"):
        checkpoint_data(meta, "classification", RES)


@pytest.mark.parametrize(("lib", "name"), MODELS)
def test_the_source_normalisation_is_the_libraries_own(lib, name):
    """timm's pretrained_cfg and torchvision's weights transforms state ImageNet mean/std."""
    mod = pytest.importorskip(lib)
    model = source_model(lib, name)
    norm = source_input_norm(MothernetSpec(lib, name, None), model)
    assert norm == (IMAGENET_MEAN, IMAGENET_STD)
    if lib == "timm":
        cfg = mod.create_model(name, pretrained=False).pretrained_cfg
        assert norm == (tuple(cfg["mean"]), tuple(cfg["std"]))
    else:
        for w in mod.models.get_model_weights(name):
            t = w.transforms()
            assert norm == (tuple(t.mean), tuple(t.std)), w


def test_the_check_runs_on_unit_range_input(weights):
    """The import's own check: source((x - mean) / std) against ours(x) on [0, 1] pixels; a
    network that skipped the normalisation would fail it."""
    path, src = weights("timm", "efficientnet_b0")
    net, cfg, report = import_mothernet(
        MothernetSpec("timm", "efficientnet_b0", path), resolution=RES
    )
    assert report["max_abs_diff"] <= 1e-5 and "U(0,1)" in report["check"]
    assert max_logit_diff(src, net, RES, cfg.space.input_norm) == (
        report["max_abs_diff"],
        report["logit_scale"],
    )
    # fed the raw [0, 1] batch, the source disagrees with the normalising network
    diff, scale = max_logit_diff(src, net, RES, None)
    assert diff > CHECK_TOLERANCE * max(1.0, scale)
    from nas.training.imported import import_summary

    assert "normalises its [0, 1] input with mean (0.485, 0.456, 0.406)" in import_summary(report)


# ---- wrong inputs --------------------------------------------------------------------------------


def test_missing_weights_file_says_where_libraries_keep_them(tmp_path):
    with pytest.raises(MothernetError) as exc:
        import_mothernet(MothernetSpec("torchvision", "efficientnet_b0", tmp_path / "no.pth"))
    msg = str(exc.value)
    assert "does not exist" in msg and "efficientnet_b0_rwightman-7f5810bc.pth" in msg
    assert f"{torch.hub.get_dir()}/checkpoints/" in msg
    assert "torchvision:efficientnet_b0:/path/to/file" in msg
    with pytest.raises(MothernetError) as exc:
        import_mothernet(MothernetSpec("timm", "efficientnet_b0", tmp_path / "m.safetensors"))
    assert "models--timm--efficientnet_b0.ra_in1k/snapshots/*/model.safetensors" in str(exc.value)


def test_weights_of_another_architecture_are_named(weights, tmp_path):
    tv = pytest.importorskip("torchvision")
    r18 = tmp_path / "resnet18.pth"
    torch.save(tv.models.resnet18(weights=None).state_dict(), r18)
    with pytest.raises(MothernetError) as exc:
        import_mothernet(MothernetSpec("torchvision", "efficientnet_b0", r18))
    msg = str(exc.value)
    assert "is not a torchvision efficientnet_b0 state dict" in msg
    assert "lacks features.0.0.weight" in msg and "resnet18-like" in msg
    timm_file, _ = weights("timm", "efficientnet_b0")
    with pytest.raises(MothernetError, match="timm:MODEL:PATH"):
        import_mothernet(MothernetSpec("torchvision", "efficientnet_b0", timm_file))
    b0_file, _ = weights("torchvision", "efficientnet_b0")
    with pytest.raises(
        MothernetError, match="torchvision EfficientNet-like state dict with 16 blocks"
    ):
        import_mothernet(MothernetSpec("torchvision", "mobilenet_v2", b0_file))


def test_files_that_are_not_state_dicts(tmp_path, weights):
    tv = pytest.importorskip("torchvision")
    whole = tmp_path / "whole.pth"
    torch.save(tv.models.mobilenet_v2(weights=None), whole)  # a pickled model, not weights
    text = tmp_path / "notes.pth"
    text.write_text("not weights")
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listed)
    fake = tmp_path / "fake.safetensors"
    fake.write_text("not weights")
    for path, want in (
        (whole, "not a state dict that can be read safely"),
        (text, "not a state dict that can be read safely"),
        (listed, "holds a list, not a state dict"),
        (fake, "is not a safetensors file"),
    ):
        with pytest.raises(MothernetError, match=want):
            import_mothernet(MothernetSpec("torchvision", "mobilenet_v2", path))
    # a training checkpoint around a state dict is unwrapped; a donnav2 checkpoint is named
    b0_file, _ = weights("timm", "efficientnet_b0")
    wrapped = tmp_path / "train.pth"
    torch.save({"epoch": 3, "state_dict": torch.load(b0_file, weights_only=True)}, wrapped)
    _, cfg, report = import_mothernet(
        MothernetSpec("timm", "efficientnet_b0", wrapped), resolution=RES
    )
    assert report["read_with"] == "torch.load, ['state_dict']"
    ours = tmp_path / "ours.pt"
    net, _, _ = import_mothernet(MothernetSpec("timm", "efficientnet_b0", b0_file), resolution=RES)
    save_checkpoint(ours, net, cfg)
    with pytest.raises(MothernetError, match="donnav2 mothernet checkpoint already"):
        import_mothernet(MothernetSpec("timm", "efficientnet_b0", ours))


def test_safetensors_file(weights, tmp_path):
    st = pytest.importorskip("safetensors.torch")
    _, src = weights("timm", "mobilenetv2_100")
    path = tmp_path / "model.safetensors"
    st.save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    _, _, report = import_mothernet(MothernetSpec("timm", "mobilenetv2_100", path), resolution=RES)
    assert report["read_with"] == "safetensors" and report["max_abs_diff"] <= 1e-4


# ---- the step, the pipeline and the command line ------------------------------------------------


def test_cli_import_end_to_end(weights, tmp_path, capsys):
    from nas.cli.donna import main

    path, _ = weights("torchvision", "efficientnet_b0")
    out = tmp_path / "b0.pt"
    spec = f"torchvision:efficientnet_b0:{path}"
    assert main(["import-mothernet", spec, "--out", str(out), "--resolution", str(RES)]) == 0
    line = capsys.readouterr().out
    assert "max |logit diff|" in line and "torchvision-efficientnet_b0" in line
    _, cfg, meta = load_checkpoint(out)
    assert cfg.space.resolution == RES and meta.metrics["imported"]["weights"] == str(path)
    bad = f"torchvision:efficientnet_b0:{tmp_path / 'missing.pth'}"
    assert main(["import-mothernet", bad, "--out", str(tmp_path / "x.pt")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: weights file") and err.count("\n") == 1
    assert main(["import-mothernet", "onnx:b0:/x", "--out", str(tmp_path / "x.pt")]) == 1
    assert "cannot import library 'onnx'" in capsys.readouterr().err


def test_bkd_step_imports_once_next_to_its_library(weights, tmp_path):
    from nas.pipeline.steps import bkd_from_checkpoint

    path, _ = weights("timm", "mobilenetv2_100")
    spec = f"timm:mobilenetv2_100:{path}"
    lib = tmp_path / "bkd.json"
    with pytest.raises(PipelineError, match="--data"):
        bkd_from_checkpoint(spec, lib)
    imported = tmp_path / "bkd.mothernet.pt"
    _, cfg, meta = load_checkpoint(imported)
    assert cfg.space.name == "timm-mobilenetv2_100" and meta.data["imported"]
    sha = file_sha256(imported)
    with pytest.raises(PipelineError, match="--data"):
        bkd_from_checkpoint(spec, lib)
    assert file_sha256(imported) == sha  # reused, so a BKD library made with it stays valid


def test_run_uses_the_imported_space(weights, tmp_path):
    from nas.pipeline.config import RunConfig
    from nas.pipeline.stages import RunContext

    path, _ = weights("torchvision", "mobilenet_v2")
    spec = f"torchvision:mobilenet_v2:{path}"
    with pytest.raises(PipelineError, match="--task classification"):
        RunConfig(task="denoising", mothernet=spec, out=tmp_path / "d")
    with pytest.raises(MothernetError, match="supported"):
        RunConfig(mothernet="torchvision:vgg16:/w.pth", out=tmp_path / "v")
    cfg = RunConfig(mothernet=spec, out=tmp_path / "run", resolution=RES)
    assert cfg.space_name == "torchvision-mobilenet_v2"
    assert cfg.lut_path().name == f"host-torchvision-mobilenet_v2-r{RES}.json"
    ctx = RunContext(cfg, echo=lambda _: None)
    assert ctx.mothernet_path == tmp_path / "run" / "mothernet.pt"
    space = ctx.space  # imports into the run folder
    _, mcfg, _ = load_checkpoint(ctx.mothernet_path, space)
    assert space == mcfg.space and space.resolution == RES
    assert ctx.mothernet_choices() == mcfg.choices
    assert space.input_norm == (IMAGENET_MEAN, IMAGENET_STD)


def test_a_named_space_takes_the_imported_norm(weights, tmp_path):
    """`--space default` beside an imported B0 (imported here, or its checkpoint file): the
    named space with the mothernet's normalisation, so the mothernet fits it."""
    from nas.pipeline.config import RunConfig
    from nas.pipeline.stages import RunContext

    path, _ = weights("torchvision", "efficientnet_b0")
    spec = f"torchvision:efficientnet_b0:{path}"
    cfg = RunConfig(mothernet=spec, out=tmp_path / "run", resolution=RES, space="default")
    ctx = RunContext(cfg, echo=lambda _: None)
    space = ctx.space
    assert space.name == "default" and space.input_norm == (IMAGENET_MEAN, IMAGENET_STD)
    _, mcfg, _ = load_checkpoint(ctx.mothernet_path, space)  # fits
    given = RunConfig(
        mothernet=ctx.mothernet_path, out=tmp_path / "run2", resolution=RES, space="default"
    )
    assert RunContext(given, echo=lambda _: None).space == space
    assert ctx.mothernet_choices() == mcfg.choices


@pytest.mark.parametrize("lib", ["torchvision", "timm"])
def test_library_not_installed(lib, monkeypatch, tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"classifier.weight": torch.zeros(10, 4)}, path)
    monkeypatch.setitem(sys.modules, lib, None)  # what Python sees when it is not installed
    with pytest.raises(MothernetError, match=f"needs {lib}, which is not installed: pip install"):
        import_mothernet(MothernetSpec(lib, "efficientnet_b0", path))

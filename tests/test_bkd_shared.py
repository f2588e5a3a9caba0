"""Shared-teacher BKD: groups of options on one stream of batches, sized to memory, resumable
mid-library (per option and mid-epoch), with the same results however it is cut. Tiny real
runs (quick space at 16 px, the built-in digits)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from nas.bkd.config import BkdConfig  # noqa: E402
from nas.bkd.group import pass_seed  # noqa: E402
from nas.bkd.library import BkdLibrary, LibraryError  # noqa: E402
from nas.bkd.memory import (  # noqa: E402
    CPU_CAP,
    memory_budget,
    option_train_bytes,
    pack_groups,
)
from nas.bkd.plan import groups_folder  # noqa: E402
from nas.bkd.run import run_bkd  # noqa: E402
from nas.bkd.student import build_student, option_seed  # noqa: E402
from nas.core.errors import BkdError  # noqa: E402
from nas.core.spaces import SlotOption, get_space  # noqa: E402
from nas.data import load_task_data  # noqa: E402
from nas.training.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from nas.training.device import CPU  # noqa: E402
from nas.training.loop import total_steps  # noqa: E402
from nas.training.mothernet import MothernetConfig, build_mothernet, train_mothernet  # noqa: E402

TEACHER = SlotOption(3, 3.0, 0.0, 2, 1.0, "silu")
CRIPPLED = SlotOption(3, 1.0, 0.0, 1, 0.25, "silu")  # needs an adapter
CONFIG = BkdConfig(
    epochs=2,
    batch_size=32,
    train_samples=128,
    val_samples=64,
    bn_calib_samples=64,
    norm_samples=64,
    workers=1,
    threads=1,
)
STEPS = 8  # 2 epochs of 128 images in batches of 32


@pytest.fixture(scope="module")
def digits():
    return load_task_data("classification", resolution=16, train_limit=256, val_limit=96)


@pytest.fixture(scope="module")
def space():
    return get_space("quick", 16).with_options([[TEACHER, CRIPPLED]] * 3)


@pytest.fixture(scope="module")
def mothernet(tmp_path_factory, space, digits):
    cfg = MothernetConfig(space, [TEACHER] * 3, seed=0)
    net = build_mothernet(cfg)
    m = train_mothernet(net, digits, epochs=1, batch_size=32, seed=0, progress=False)
    return save_checkpoint(tmp_path_factory.mktemp("m") / "m.pt", net, cfg, m, digits.describe())


@pytest.fixture(scope="module")
def library(tmp_path_factory, mothernet, space, digits):
    """The uninterrupted run: all six options in one group."""
    out = tmp_path_factory.mktemp("bkd") / "lib.json"
    return run_bkd(mothernet, space, digits, out, CONFIG, progress=False)


def _same_entries(a: BkdLibrary, b: BkdLibrary, rel: float = 0.0) -> None:
    assert len(a) == len(b) == 6
    for e in a.entries():
        f = b.entry(e.slot, e.option)
        for name in ("nmse", "mse", "train_loss_first", "train_loss_last"):
            assert getattr(f, name) == pytest.approx(getattr(e, name), rel=rel, abs=0), name
        assert (f.steps, f.extra["images"]) == (e.steps, e.extra["images"])


def test_one_group_records_steps_images_design_and_device(library):
    p = library.provenance
    assert p["bkd"]["design"] == "shared-teacher" and "feature_dtype" not in p["bkd"]
    st = p["shared_teacher"]
    assert st["groups"] == 1 and st["train_passes"] == 2 and st["device"]["device"] == "cpu"
    assert st["memory_budget"] > 0 and st["budget_from"].startswith("cpu")
    assert set(p["teacher_variance"]["val"]["var"]) == {"1", "2", "3"}
    assert not library.path.with_name("lib.features").exists()  # no feature store
    assert not list(groups_folder(library.path).glob("*"))  # checkpoint removed when done
    gids = {e.extra["group"] for e in library.entries()}
    assert len(gids) == 1 and st["group_runs"][0]["id"] in gids
    for e in library.entries():
        assert e.steps == STEPS and e.extra["images"] == STEPS * 32
        assert e.extra["design"] == "shared-teacher" and e.extra["group_size"] == 6
        assert e.extra["device"] == {"device": "cpu", "precision": "32"}
        assert 0 < e.nmse < 2 and library.weights_path(e.slot, e.option).is_file()
        assert e.extra["seed"] == option_seed(0, e.slot, e.option)
        assert e.extra["adapter"] == (e.option == CRIPPLED)
    # an older library (entries without the new extras) still loads
    doc = json.loads(library.path.read_text())
    for d in doc["entries"]:
        d["extra"] = {"seed": d["extra"]["seed"]}
    old = library.path.with_name("old.json")
    old.write_text(json.dumps(doc))
    assert len(BkdLibrary.load(old).losses()) == 3


def _alone(mothernet, space, digits, slot, option):
    """One option trained by itself, written out plainly: the same batch stream (pass ``p``
    shuffled by ``pass_seed(seed, p)``), seed, AdamW and cosine schedule."""
    cfg = CONFIG
    teacher, mcfg, _ = load_checkpoint(mothernet, space)
    teacher.eval()
    chs = mcfg.slot_in_chs()
    seed = option_seed(cfg.seed, slot, option)
    model = nn.Sequential(*build_student(space, slot, option, chs[slot], chs[slot + 1], seed))
    model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = total_steps(cfg.epochs, cfg.train_samples, cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    source = digits.train_batches(cfg.batch_size, limit=cfg.train_samples, limit_seed=cfg.seed)
    losses, p = [], 0
    while len(losses) < total:
        model.train()
        gen = torch.Generator().manual_seed(pass_seed(cfg.seed, p))
        for xb, _ in next(iter(source.passes(gen))):
            with torch.no_grad():
                feats = teacher.slot_features(xb.contiguous(memory_format=torch.channels_last))
            loss = F.mse_loss(model(feats[slot]), feats[slot + 1])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            if len(losses) == total:
                break
        p += 1
    return model, losses


def test_a_group_trains_each_option_as_if_alone(library, mothernet, space, digits):
    var = library.provenance["teacher_variance"]["train"]["var"]
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # the run's threads
    try:
        for slot, option in [(0, TEACHER), (1, CRIPPLED), (2, TEACHER)]:
            model, losses = _alone(mothernet, space, digits, slot, option)
            e = library.entry(slot, option)
            norm = var[str(slot + 1)]
            assert e.train_loss_first == pytest.approx(losses[0] / norm, rel=1e-5)
            assert e.train_loss_last == pytest.approx(losses[-1] / norm, rel=1e-5)
            blob = torch.load(library.weights_path(slot, option), weights_only=True)
            trained = {f"0.{k}": v for k, v in blob["blocks"].items()}
            trained |= {f"1.{k}": v for k, v in blob["adapter"].items()}
            for k, v in model.state_dict().items():
                if not k.endswith(("running_mean", "running_var", "num_batches_tracked")):
                    torch.testing.assert_close(trained[k], v, rtol=1e-5, atol=1e-6)
    finally:
        torch.set_num_threads(old)


def test_groups_split_by_memory_or_max_group_give_the_same_entries(
    tmp_path, library, mothernet, space, digits
):
    tiny = BkdConfig(**{**CONFIG.__dict__, "memory_budget": 1})
    split = run_bkd(mothernet, space, digits, tmp_path / "a.json", tiny, progress=False)
    assert split.provenance["shared_teacher"]["groups"] == 6
    assert {e.extra["group_size"] for e in split.entries()} == {1}
    _same_entries(library, split)
    capped = BkdConfig(**{**CONFIG.__dict__, "max_group": 4})
    two = run_bkd(mothernet, space, digits, tmp_path / "b.json", capped, progress=False)
    sizes = [g["options"] for g in two.provenance["shared_teacher"]["group_runs"]]
    assert len(sizes) == 2 and sum(sizes) == 6 and max(sizes) <= 4
    _same_entries(library, two)


class Boom(Exception):
    pass


class _CrashingSource:
    def __init__(self, source, after):
        self.source, self.after, self.seen = source, after, 0

    @property
    def n(self):
        return self.source.n

    def passes(self, generator, skip=0):
        for batches in self.source.passes(generator, skip=skip):
            yield self._pass(batches)

    def _pass(self, batches):
        for b in batches:
            if self.seen == self.after:
                raise Boom(f"stopped after {self.after} batches")
            self.seen += 1
            yield b


class CrashingData:
    """The digits, but the training stream raises after ``after`` batches (a crash in the
    middle of an epoch)."""

    def __init__(self, data, after):
        self._data, self._after = data, after
        self._source = None

    def __getattr__(self, name):
        return getattr(self._data, name)

    def train_batches(self, *args, **kwargs):
        if self._source is None:
            self._source = _CrashingSource(self._data.train_batches(*args, **kwargs), self._after)
        return self._source


def test_resume_mid_epoch_gives_the_uninterrupted_result(
    tmp_path, library, mothernet, space, digits
):
    out = tmp_path / "lib.json"
    cfg = BkdConfig(**{**CONFIG.__dict__, "checkpoint_every": 3})
    with pytest.raises(Boom):  # step 6 is saved, batch 7 (pass 1, batch 3) never trains
        run_bkd(mothernet, space, CrashingData(digits, after=6), out, cfg, progress=False)
    assert len(BkdLibrary.load(out)) == 0
    (meta,) = [json.loads(p.read_text()) for p in groups_folder(out).glob("*.json")]
    assert meta["step"] == 6 and meta["total"] == STEPS and len(meta["options"]) == 6
    lib = run_bkd(mothernet, space, digits, out, cfg, progress=False)
    assert lib.provenance["shared_teacher"]["group_runs"][0]["resumed_at_step"] == 6
    _same_entries(library, lib)
    assert not list(groups_folder(out).glob("*"))


def test_resume_per_option_trains_nothing_again(tmp_path, library, mothernet, space, digits):
    out = tmp_path / "lib.json"

    def stop_after_two(entry, done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_bkd(mothernet, space, digits, out, CONFIG, progress=False, on_option=stop_after_two)
    first = BkdLibrary.load(out)
    assert len(first) == 2
    mtimes = {e.weights: first.weights_path(e.slot, e.option).stat().st_mtime_ns
              for e in first.entries()}  # fmt: skip
    (meta,) = [json.loads(p.read_text()) for p in groups_folder(out).glob("*.json")]
    assert meta["step"] == meta["total"] == STEPS  # trained to the end, kept until all saved
    kept = {f.name: f.read_bytes() for f in groups_folder(out).iterdir()}
    trained = []
    lib = run_bkd(
        mothernet, space, digits, out, CONFIG, progress=False,
        on_option=lambda e, done, total: trained.append((e.slot, e.option, total)),
    )  # fmt: skip
    assert len(trained) == 4 and {t for *_, t in trained} == {4}
    assert not {(e.slot, e.option) for e in first.entries()} & {(s, o) for s, o, _ in trained}
    for e in first.entries():
        assert lib.weights_path(e.slot, e.option).stat().st_mtime_ns == mtimes[e.weights]
    assert lib.provenance["shared_teacher"]["group_runs"][0]["resumed_at_step"] == STEPS
    _same_entries(library, lib)
    # a checkpoint left behind by a run stopped after saving its group's last entry
    groups_folder(out).mkdir()
    for name, blob in kept.items():
        (groups_folder(out) / name).write_bytes(blob)
    again = []
    run_bkd(
        mothernet, space, digits, out, CONFIG, progress=False, on_option=lambda *a: again.append(a)
    )
    assert again == [] and not groups_folder(out).exists()  # nothing trained, leftover removed


def test_limit_and_a_stale_checkpoint(tmp_path, library, mothernet, space, digits):
    out = tmp_path / "lib.json"
    lib = run_bkd(mothernet, space, digits, out, CONFIG, progress=False, limit=2)
    assert len(lib) == 2 and lib.entries()[0].extra["group_size"] == 2
    # a checkpoint of another run (its json names another key) is removed, not resumed
    folder = groups_folder(out)
    folder.mkdir(exist_ok=True)
    (folder / "abc.json").write_text(json.dumps({"format": "x", "key": {}, "options": []}))
    (folder / "abc.pt").write_bytes(b"not a checkpoint")
    lib = run_bkd(mothernet, space, digits, out, CONFIG, progress=False)
    assert not list(folder.glob("*"))
    _same_entries(library, lib)


def test_settings_are_checked_and_a_feature_store_library_is_not_resumed(
    tmp_path, library, mothernet, space, digits
):
    for bad, match in (
        ({"max_group": 0}, "max_group"),
        ({"memory_budget": 0}, "memory_budget"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
        ({"checkpoint_minutes": 0}, "checkpoint_minutes"),
        ({"norm_samples": 1}, "norm_samples"),
    ):
        with pytest.raises(BkdError, match=match):
            BkdConfig(**bad)
    with pytest.raises(BkdError, match="data workers"):
        run_bkd(mothernet, space, digits, tmp_path / "x.json", CONFIG, data_workers=-1)
    # speed settings may change on resume: nothing left to train, nothing refused
    faster = BkdConfig(**{**CONFIG.__dict__, "max_group": 1, "checkpoint_every": 7})
    assert len(run_bkd(mothernet, space, digits, library.path, faster, progress=False)) == 6
    # a library of the earlier feature-store design (its settings, no design) is refused
    doc = json.loads(library.path.read_text())
    bkd = {k: v for k, v in doc["provenance"]["bkd"].items() if k not in ("design", "norm_samples")}
    doc["provenance"]["bkd"] = {**bkd, "feature_dtype": "float16"}
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    with pytest.raises(LibraryError, match=r"design: None -> 'shared-teacher'"):
        run_bkd(mothernet, space, digits, old, CONFIG, progress=False)


def test_memory_estimates_and_packing(space):
    big = option_train_bytes(space.slot_blocks(0, TEACHER, 16), 24, 64, "32")
    assert big > option_train_bytes(space.slot_blocks(0, TEACHER, 16), 24, 32, "32")
    assert big > option_train_bytes(space.slot_blocks(0, TEACHER, 16), 24, 64, "bf16")
    assert big > option_train_bytes(space.slot_blocks(0, CRIPPLED, 16), 24, 64, "32")
    at32 = get_space("quick", 32)
    assert option_train_bytes(at32.slot_blocks(0, TEACHER, 16), 24, 64, "32") > 3 * big
    sizes, costs = [5, 5, 5, 5, 5, 5], [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    assert pack_groups(sizes, costs, 100) == [[0, 1, 2, 3, 4, 5]]
    assert pack_groups(sizes, costs, 10) == [[0, 5], [1, 4], [2, 3]]
    assert pack_groups(sizes, costs, 100, max_group=4) == [[0, 3, 4], [1, 2, 5]]
    assert pack_groups(sizes, costs, 100, min_groups=2) == [[0, 3, 4], [1, 2, 5]]
    # memory asks for 3 groups; with 2 workers that rounds up to 4 (two whole rounds)
    assert len(pack_groups(sizes, costs, 10)) == 3
    assert len(pack_groups(sizes, costs, 10, min_groups=2)) == 4
    assert pack_groups([50, 1], [1.0, 1.0], 10) == [[0], [1]]  # too big: alone
    assert pack_groups([], [], 10) == []
    assert memory_budget(CPU, BkdConfig(memory_budget=123)).bytes == 123
    auto = memory_budget(CPU, BkdConfig())
    assert 0 < auto.bytes <= CPU_CAP and "available RAM" in auto.source
    assert memory_budget(CPU, BkdConfig(), groups_at_once=2).bytes == auto.bytes // 2


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")
def test_cuda_bf16_shared_teacher(tmp_path, mothernet, space, digits):
    from nas.training.device import resolve_train_device

    dev = resolve_train_device("cuda", "bf16")
    out = tmp_path / "lib.json"
    lib = run_bkd(mothernet, space, digits, out, CONFIG, progress=False, device=dev)
    assert len(lib) == 6 and lib.provenance["shared_teacher"]["device"]["precision"] == "bf16"
    for e in lib.entries():
        assert 0 < e.nmse < 2 and e.extra["device"]["device"] == "cuda:0"
    blob = torch.load(lib.weights_path(0, TEACHER), weights_only=True)
    assert all(v.device.type == "cpu" for v in blob["blocks"].values())

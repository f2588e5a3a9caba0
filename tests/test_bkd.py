"""Blockwise knowledge distillation: real (tiny, seeded) runs on a trained mothernet."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from nas.bkd.config import BkdConfig  # noqa: E402
from nas.bkd.executor import Executor, InlineExecutor, ProcessExecutor  # noqa: E402
from nas.bkd.library import BkdLibrary, LibraryError  # noqa: E402
from nas.bkd.run import check_resume, run_bkd  # noqa: E402
from nas.bkd.student import option_seed  # noqa: E402
from nas.core.errors import BkdError, MothernetError  # noqa: E402
from nas.core.files import file_sha256  # noqa: E402
from nas.core.spaces import SlotOption, get_space  # noqa: E402
from nas.data import load_task_data  # noqa: E402
from nas.finetune import init_from_bkd  # noqa: E402
from nas.training.checkpoint import save_checkpoint  # noqa: E402
from nas.training.mothernet import MothernetConfig, build_mothernet, train_mothernet  # noqa: E402
from nas.training.networks import build_network  # noqa: E402

TEACHER = SlotOption(3, 3.0, 0.0, 2, 1.0, "silu")  # an option of the quick space
CRIPPLED = SlotOption(3, 1.0, 0.0, 1, 0.25, "silu")  # 1/4 of the channels, no expansion
CONFIG = BkdConfig(
    epochs=8, batch_size=32, train_samples=320, val_samples=128, workers=1, threads=1
)


@pytest.fixture(scope="module")
def digits():
    return load_task_data("classification", resolution=16, train_limit=640, val_limit=160)


@pytest.fixture(scope="module")
def space():
    """The quick space at 16 px, filtered to two options per slot."""
    return get_space("quick", 16).with_options([[TEACHER, CRIPPLED]] * 3)


@pytest.fixture(scope="module")
def mothernet(tmp_path_factory, space, digits):
    cfg = MothernetConfig(space, [TEACHER] * 3, seed=0)
    net = build_mothernet(cfg)
    m = train_mothernet(net, digits, epochs=1, batch_size=32, seed=0, progress=False)
    path = tmp_path_factory.mktemp("mothernet") / "m.pt"
    return save_checkpoint(path, net, cfg, m, digits.describe())


@pytest.fixture(scope="module")
def library(tmp_path_factory, mothernet, space, digits):
    out = tmp_path_factory.mktemp("bkd") / "lib.json"
    return run_bkd(mothernet, space, digits, out, CONFIG, progress=False)


def test_library_is_complete_with_provenance(library, mothernet, space):
    lib = BkdLibrary.load(library.path)
    assert len(lib) == 6 and not lib.missing(space)
    p = lib.provenance
    assert p["mothernet_sha256"] == file_sha256(mothernet)
    assert p["bkd"]["epochs"] == 8 and p["bkd"]["seed"] == 0
    assert p["data"]["data"] == "mnist" and p["task"] == "classification"
    for e in lib.entries():
        assert 0 < e.nmse < 2 and e.mse > 0 and e.steps == 80
        assert lib.weights_path(e.slot, e.option).is_file()
        assert e.extra["seed"] == option_seed(0, e.slot, e.option)
        assert e.extra["adapter"] == (e.option == CRIPPLED)
    losses = lib.losses(space)
    assert len(losses) == 3 and all(len(row) == 2 for row in losses)


def test_the_teacher_option_imitates_better_than_a_crippled_one(library):
    for slot in range(3):
        good, bad = library.entry(slot, TEACHER), library.entry(slot, CRIPPLED)
        assert good.train_loss_last < 0.8 * good.train_loss_first  # the student learns
        assert good.nmse < bad.nmse - 0.15, (slot, good.nmse, bad.nmse)


def test_one_teacher_pass_per_group_and_nothing_on_disk_but_the_library(library):
    # the shared teacher: the six options in one group, one pass over the 320 images per
    # epoch; no feature files (the design before it kept the teacher's features on disk)
    p = library.provenance
    assert p["shared_teacher"]["groups"] == 1 and p["shared_teacher"]["train_passes"] == 8
    assert all(v > 0 for v in p["teacher_variance"]["val"]["var"].values())
    assert {e.extra["images"] for e in library.entries()} == {80 * 32}
    names = sorted(f.name for f in library.path.parent.iterdir())
    assert names == ["lib.json", "lib.json.lock", "lib.weights"], names


def test_interrupted_run_resumes_without_retraining(tmp_path, mothernet, space, digits, library):
    out = tmp_path / "lib.json"

    def stop_after_two(entry, done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_bkd(mothernet, space, digits, out, CONFIG, progress=False, on_option=stop_after_two)
    first = BkdLibrary.load(out)
    assert len(first) == 2
    mtimes = {
        e.weights: first.weights_path(e.slot, e.option).stat().st_mtime_ns for e in first.entries()
    }

    trained = []
    lib = run_bkd(
        mothernet,
        space,
        digits,
        out,
        CONFIG,
        progress=False,
        on_option=lambda e, done, total: trained.append((e.slot, e.option)),
    )
    assert len(trained) == 4 and len(lib) == 6
    assert not {(e.slot, e.option) for e in first.entries()} & set(trained)
    for e in first.entries():
        assert lib.weights_path(e.slot, e.option).stat().st_mtime_ns == mtimes[e.weights]
    # the group had trained all six: the rerun only scored and saved the other four
    assert lib.provenance["shared_teacher"]["group_runs"][0]["resumed_at_step"] == 80
    # the same seed gives the same numbers as the uninterrupted run
    for e in library.entries():
        assert lib.entry(e.slot, e.option).nmse == e.nmse
    # a finished library: nothing to do
    again = []
    run_bkd(
        mothernet, space, digits, out, CONFIG, progress=False, on_option=lambda *a: again.append(a)
    )
    assert again == []


def test_resume_refuses_other_provenance(tmp_path, library, mothernet, space, digits):
    with pytest.raises(LibraryError, match="seed"):
        run_bkd(
            mothernet,
            space,
            digits,
            library.path,
            BkdConfig(**{**CONFIG.__dict__, "seed": 1}),
            progress=False,
        )
    with pytest.raises(LibraryError, match="epochs"):
        run_bkd(mothernet, space, digits, library.path, BkdConfig(epochs=2), progress=False)
    fewer = load_task_data("classification", resolution=16, train_limit=320, val_limit=160)
    with pytest.raises(LibraryError, match="data"):
        run_bkd(mothernet, space, fewer, library.path, CONFIG, progress=False)
    cfg = MothernetConfig(space, [TEACHER] * 3, seed=1)
    other = save_checkpoint(tmp_path / "other.pt", build_mothernet(cfg), cfg)
    with pytest.raises(LibraryError, match="mothernet"):
        run_bkd(other, space, digits, library.path, CONFIG, progress=False)
    # the refused library is untouched
    assert len(BkdLibrary.load(library.path)) == 6
    check_resume(library, library.provenance)


def test_bad_settings(tmp_path, mothernet, space, digits):
    for kwargs, match in [
        ({"epochs": 0}, "epochs"),
        ({"epochs": -1.0}, "epochs"),
        ({"epochs": float("inf")}, "epochs"),
        ({"batch_size": 1}, "batch size"),
        ({"lr": 0}, "learning rate"),
        ({"train_samples": 1}, "train_samples"),
        ({"workers": 0}, "workers"),
        ({"threads": 0}, "threads"),
    ]:
        with pytest.raises(BkdError, match=match):
            BkdConfig(**kwargs)
    with pytest.raises(BkdError, match=r"\.json"):
        run_bkd(mothernet, space, digits, tmp_path / "lib.txt", CONFIG, progress=False)
    with pytest.raises(MothernetError, match="stages"):
        run_bkd(mothernet, get_space("quick-denoise", 16), digits, tmp_path / "l.json", CONFIG)
    assert not (tmp_path / "l.json").exists()


def test_two_workers_give_the_same_scores(tmp_path, mothernet, space, digits, library):
    cfg = BkdConfig(**{**CONFIG.__dict__, "workers": 2})
    executor = ProcessExecutor(2, threads=1)
    assert isinstance(executor, Executor) and isinstance(InlineExecutor(), Executor)
    lib = run_bkd(
        mothernet,
        space,
        digits,
        tmp_path / "lib.json",
        cfg,
        executor=executor,
        progress=False,
        limit=2,
    )
    assert len(lib) == 2
    for e in lib.entries():
        assert e.nmse == pytest.approx(library.entry(e.slot, e.option).nmse, rel=1e-6)


def test_students_start_from_bkd_weights(library, mothernet, space):
    from nas.training.checkpoint import load_checkpoint

    teacher, _, _ = load_checkpoint(mothernet)
    choices = [CRIPPLED, TEACHER, TEACHER]
    student = build_network(space, choices, seed=0)
    report = init_from_bkd(student, teacher, library, choices)
    state = student.state_dict()
    assert all(k.startswith(("stem.", "head.")) for k in report.from_mothernet)
    assert "stem.conv.weight" in report.from_mothernet and "head.fc.weight" in report.from_mothernet
    assert torch.equal(state["stem.conv.weight"], teacher.state_dict()["stem.conv.weight"])
    blob = torch.load(library.weights_path(0, CRIPPLED), weights_only=True)
    assert torch.equal(state["slots.0.0.conv_dw.weight"], blob["blocks"]["0.conv_dw.weight"])
    # slot 1 now gets 8 channels instead of the teacher's 24: its first block (whose
    # expansion depends on its input) cannot come from BKD, its second block can
    assert "slots.1.0.conv_pw.weight" in report.reinitialised
    assert "slots.1.0.conv_dw.weight" in report.reinitialised
    assert "slots.1.1.conv_dw.weight" in report.from_bkd
    assert "slots.2.1.conv_pwl.weight" in report.from_bkd
    assert set(report.from_mothernet) | set(report.from_bkd) | set(report.reinitialised) == set(
        state
    )
    with torch.no_grad():
        assert student.eval()(torch.rand(2, 3, 16, 16)).shape == (2, 10)
    with pytest.raises(LibraryError, match="no entry"):
        other = SlotOption(7, 6.0, 0.25, 1, 1.0, "silu")
        init_from_bkd(build_network(space, [other] * 3), teacher, library, [other] * 3)

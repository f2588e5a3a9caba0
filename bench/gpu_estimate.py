"""GPU speed of the three training jobs, and the GPU-hours of a whole BKD library.

Prepared for the lent GPU machine (Python 3.12, torch + CUDA, no TensorFlow): run from the
checkout with ``PYTHONPATH=.``. It measures, for the ``default`` space (EfficientNet-B0
stages) at 224 px with bf16 autocast, on synthetic images (speed does not depend on pixels):

* **mothernet**: training steps per second of the B0-like mothernet (forward, backward, AdamW);
* **BKD**: one teacher forward per batch (every slot's input and target,
  ``BlockNetwork.slot_features``), and one training step of a sample of each slot's options
  (student + 1x1 adapter, MSE, AdamW) on those features — the shared-teacher design;
* **finetune**: steps per second of a student network with the teacher's forward (KD).

From these it estimates the GPU-hours of a default-space BKD library trained for one
ImageNet-1k epoch (1,281,167 images) per option: every option's student steps, plus one
teacher forward per batch for every group of options that share a pass (``--group-size``
options per pass).

    PYTHONPATH=. python bench/gpu_estimate.py --out bench/results/gpu_estimate.json
    python bench/gpu_estimate.py --device cpu --resolution 32 --batch 8 --steps 2 \\
        --options-per-slot 1          # the CPU smoke run (tests/test_bench_scripts.py)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

IMAGENET_TRAIN = 1_281_167


def _timed(fn, steps: int, sync) -> float:
    """Seconds per call of ``fn`` (after one warm-up call)."""
    fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    sync()
    return (time.perf_counter() - t0) / steps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    ap.add_argument("--options-per-slot", type=int, default=6, help="options timed per slot")
    ap.add_argument("--group-size", type=int, default=32, help="options sharing one data pass")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch
    from torch import nn
    from torch.nn import functional as F

    from nas.core.spaces import get_space
    from nas.training.device import resolve_train_device
    from nas.training.mothernet import MothernetConfig, build_mothernet
    from nas.training.networks import build_network, build_slot

    dev = resolve_train_device(args.device, args.precision)
    tdev = dev.torch_device()

    def sync() -> None:
        if not dev.is_cpu:
            torch.cuda.synchronize(tdev)

    torch.manual_seed(args.seed)
    space = get_space("default", args.resolution)
    mcfg = MothernetConfig.default(space)
    bs, r = args.batch, args.resolution
    x = dev.put(torch.rand(bs, 3, r, r))
    y = torch.randint(0, space.num_classes, (bs,), device=tdev)

    # -- mothernet training step
    teacher = build_mothernet(mcfg).to(tdev, memory_format=torch.channels_last)
    opt = torch.optim.AdamW(teacher.parameters(), lr=1e-3)

    def mothernet_step() -> None:
        with dev.autocast():
            loss = F.cross_entropy(teacher(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t_mother = _timed(mothernet_step, args.steps, sync)

    # -- BKD: the teacher forward that feeds every slot, then students' steps
    teacher.eval()

    def teacher_forward() -> list[torch.Tensor]:
        with torch.no_grad(), dev.autocast():
            return teacher.slot_features(x)

    t_teacher = _timed(teacher_forward, args.steps, sync)
    feats = [f.float().contiguous(memory_format=torch.channels_last) for f in teacher_forward()]
    chs = mcfg.slot_in_chs()
    per_slot = []
    gen = torch.Generator().manual_seed(args.seed)
    for i, opts in enumerate(space.options):
        pick = torch.randperm(len(opts), generator=gen)[: args.options_per_slot].tolist()
        times = []
        for j in pick:
            o = opts[j]
            student = build_slot(space, i, o, chs[i])
            s_out = space.stage_chs(i, o.width)
            adapter = nn.Conv2d(s_out, chs[i + 1], 1) if s_out != chs[i + 1] else nn.Identity()
            model = nn.Sequential(student, adapter).to(tdev, memory_format=torch.channels_last)
            sopt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            xin, target = feats[i], feats[i + 1]

            def student_step(model=model, sopt=sopt, xin=xin, target=target) -> None:
                with dev.autocast():
                    loss = F.mse_loss(model(xin).float(), target)
                sopt.zero_grad(set_to_none=True)
                loss.backward()
                sopt.step()

            times.append(_timed(student_step, args.steps, sync))
        per_slot.append(
            {
                "slot": i,
                "options": len(opts),
                "timed": len(pick),
                "mean_step_s": statistics.mean(times),
            }
        )

    # -- finetune: a student network (a random architecture) distilled from the teacher
    genome = [int(torch.randint(len(o), (1,), generator=gen)) for o in space.options]
    student_net = build_network(space, space.choices(genome), seed=args.seed)
    student_net.to(tdev, memory_format=torch.channels_last)
    fopt = torch.optim.AdamW(student_net.parameters(), lr=1e-3)

    def finetune_step() -> None:
        with dev.autocast():
            with torch.no_grad():
                t_out = teacher(x)
            s_out = student_net(x)
            loss = F.cross_entropy(s_out, y) + F.kl_div(
                F.log_softmax(s_out.float(), 1), F.log_softmax(t_out.float(), 1),
                reduction="batchmean", log_target=True,
            )  # fmt: skip
        fopt.zero_grad(set_to_none=True)
        loss.backward()
        fopt.step()

    t_finetune = _timed(finetune_step, args.steps, sync)

    # -- the estimate: one ImageNet epoch per option
    steps_per_epoch = -(-IMAGENET_TRAIN // bs)
    n_options = sum(len(o) for o in space.options)
    student_s = sum(p["mean_step_s"] * p["options"] for p in per_slot) * steps_per_epoch
    groups = -(-n_options // args.group_size)
    teacher_s = groups * steps_per_epoch * t_teacher
    out = {
        "device": dev.describe(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "space": space.name,
        "resolution": r,
        "batch": bs,
        "mothernet_steps_per_s": 1.0 / t_mother,
        "teacher_forward_per_s": 1.0 / t_teacher,
        "bkd_student_steps_per_s_by_slot": {p["slot"]: 1.0 / p["mean_step_s"] for p in per_slot},
        "finetune_steps_per_s": 1.0 / t_finetune,
        "bkd_library": {
            "options": n_options,
            "group_size": args.group_size,
            "groups": groups,
            "steps_per_option": steps_per_epoch,
            "student_gpu_hours": student_s / 3600,
            "teacher_gpu_hours": teacher_s / 3600,
            "total_gpu_hours": (student_s + teacher_s) / 3600,
        },
        "command": " ".join(["python", *sys.argv]),
    }
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""bench/gpu_estimate.py (prepared for the lent GPU machine) runs on the CPU at toy size."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_estimate.py"


def test_gpu_estimate_cpu_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("DONNA_NO_PROGRESS", "1")
    spec = importlib.util.spec_from_file_location("gpu_estimate", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "est.json"
    args = ["--device", "cpu", "--precision", "32", "--resolution", "32", "--batch", "4",
            "--steps", "1", "--options-per-slot", "1", "--out", str(out)]  # fmt: skip
    assert mod.main(args) == 0
    res = json.loads(out.read_text())
    lib = res["bkd_library"]
    assert res["device"]["device"] == "cpu" and res["resolution"] == 32
    assert res["mothernet_steps_per_s"] > 0 and res["finetune_steps_per_s"] > 0
    assert len(res["bkd_student_steps_per_s_by_slot"]) == 7
    assert lib["options"] == 7 * 192 and lib["groups"] == -(-lib["options"] // 32)
    assert lib["total_gpu_hours"] == pytest.approx(
        lib["student_gpu_hours"] + lib["teacher_gpu_hours"]
    )

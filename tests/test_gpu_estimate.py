"""bench/gpu_estimate.py (prepared for the lent GPU machine) runs on the CPU at toy size."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")


def test_gpu_estimate_cpu_smoke(tmp_path, monkeypatch, bench_script):
    monkeypatch.setenv("DONNA_NO_PROGRESS", "1")
    mod = bench_script("gpu_estimate")
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

"""The prepared GPU script (``benchmarks/gpu_check.py``, issue 12) on a machine without a GPU: it must say why it
ran nothing and exit 0, and its report and timing helpers must work before a GPU session depends on them."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import gpu_check
from nflow.backend import cupy_available

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(cupy_available(), reason="a GPU is present: the script would run for real")
def test_without_a_gpu_the_check_says_why_and_exits_0(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "skipped"
    assert result["why"] == gpu_check.why_no_gpu() and result["why"]
    assert "no CUDA GPU" in done.stdout


def test_time_op_synchronises_around_every_timed_call():
    events = []
    first, med = gpu_check.time_op(lambda: events.append("call"), lambda: events.append("sync"), repeats=3)
    # sync, first call, sync; warm-up calls, sync; then each timed call followed by its sync
    assert events == ["sync", "call", "sync"] + ["call"] * gpu_check.WARMUP + ["sync"] + ["call", "sync"] * 3
    assert first >= 0 and med >= 0


def test_report_of_a_run_lists_every_op_with_its_ratio():
    result = {"date": "2026-12-06 18:00 UTC", "status": "ran",
              "machine": {"gpu": "NVIDIA H100", "gpu_memory_gib": 79.6, "compute_capability": "9.0",
                          "cuda_runtime": 12040, "cuda_driver": 12040, "cupy": "13.3.0", "torch": "2.5.0",
                          "torch_cuda": True, "torch_tf32": {"matmul": False, "cudnn": True}},
              "gpu_tests": {"status": "passed", "summary": "21 passed in 30.0s"},
              "speed": [{"workload": "glow-mnist", "ops": {
                  "train_step": {"median_s": {"nflow": 0.02, "torch": 0.01}, "ratio": 2.0, "first_s": {}},
                  "sample": {"median_s": {"nflow": 0.03}, "errors": {"torch": "RuntimeError: boom"},
                             "first_s": {}}}},
                        {"workload": "nice-mnist", "error": "not run: the time budget was spent"}]}
    text = gpu_check.report(result)
    assert "| glow-mnist | train_step | 20.00 | 10.00 | 2.00 |" in text
    assert "torch: RuntimeError: boom" in text
    assert "not run: the time budget was spent" in text
    assert "21 passed" in text


def test_a_dry_run_on_the_cpu_times_every_op_on_both_sides(monkeypatch):
    """The speed code of the GPU check, on the CPU (numba backend, PyTorch on the CPU) with a tiny Glow: what
    differs on the GPU is only the Device (CuPy arrays and synchronisation)."""
    pytest.importorskip("torch")
    tiny = ("glow", dict(input_shape=(1, 28, 28), levels=1, steps=1, hidden=8), 4,
            ("log_prob", "train_step", "sample"))
    monkeypatch.setitem(gpu_check.WORKLOADS, "tiny-glow", tiny)
    monkeypatch.setattr(gpu_check, "SAMPLES", 4)
    row = gpu_check.speed_rows("tiny-glow", repeats=1, device=gpu_check.Device("cpu"))
    assert row["parity_rel_mean"] < 1e-5, row
    for op in tiny[3]:
        res = row["ops"][op]
        assert "errors" not in res, res
        assert set(res["median_s"]) == {"nflow", "torch"} and res["ratio"] > 0
    assert "| tiny-glow | train_step |" in gpu_check.report(
        {"date": "d", "status": "ran", "speed": [row], "gpu_tests": {},
         "machine": {"gpu": "cpu dry run", "gpu_memory_gib": 0, "compute_capability": "-", "cuda_runtime": 0,
                     "cuda_driver": 0, "cupy": "-"}})

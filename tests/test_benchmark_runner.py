"""The benchmark runner on any CPU (issue 12, first point): settings that need instructions the CPU lacks are
skipped with a reason, and a child that crashes becomes a note in the report, not the end of the run."""
import subprocess
import types

import pytest

from benchmarks import launch
from benchmarks.machine import OPENBLAS_CORE_NEEDS, cpu_flags
from benchmarks.workloads import setting_unavailable

ZEN3 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n"
ZEN5 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512vl\n"
NEOVERSE = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes sha2 crc32 atomics\n"


def test_cpu_flags_are_read_from_the_cpuinfo_text():
    assert "avx2" in cpu_flags(ZEN3) and "avx512f" not in cpu_flags(ZEN3)
    assert "avx512f" in cpu_flags(ZEN5)
    assert "asimd" in cpu_flags(NEOVERSE) and "avx2" not in cpu_flags(NEOVERSE)
    assert cpu_flags("no flags line here") == frozenset()


@pytest.mark.parametrize("cpuinfo,skipped", [
    (ZEN3, {"tuned", "skylakex"}),                 # AVX2 only: no AVX-512 core type
    (ZEN5, set()),                                 # everything runs
    (NEOVERSE, {"tuned", "skylakex", "avx2"}),     # ARM: no x86 core type at all
])
def test_settings_that_would_be_an_illegal_instruction_are_skipped_with_a_reason(cpuinfo, skipped):
    flags = cpu_flags(cpuinfo)
    notes = []
    requested = ["default", "tuned", "skylakex", "malloc", "avx2"]
    usable = launch.usable_settings(requested, flags, notes)
    assert set(requested) - set(usable) == skipped
    assert len(notes) == len(skipped)
    for note in notes:
        assert "skipped" in note and "does not have" in note
    for setting in skipped:
        assert setting_unavailable(setting, flags) is not None
    assert set(OPENBLAS_CORE_NEEDS) == {"SkylakeX", "Haswell"}


def test_a_crashing_child_is_a_note_not_the_end_of_the_run(monkeypatch):
    # the first child dies of SIGILL (exit -4), the others succeed: the run goes on and says what failed
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        if len(calls) == 1:
            return types.SimpleNamespace(returncode=-4, stdout="", stderr="Illegal instruction\n")
        return types.SimpleNamespace(returncode=0, stdout='{"workload": "x", "rows": []}\n', stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    args = types.SimpleNamespace(settings="default", only="glow-mnist,nice-mnist", quick=True, repeats=3,
                                 compile=False, timeout=10, profile=False, memory=False)
    results = launch.measure(args)
    assert len(calls) == 2 and len(results["speed"]) == 1
    assert any("was killed by SIGILL (an instruction this CPU does not have)" in n for n in results["notes"])


def test_exit_reasons_name_the_code_or_the_signal():
    assert launch.exit_reason(3) == "exited with code 3"
    assert launch.exit_reason(-9) == "was killed by SIGKILL"


def test_the_conv_algorithm_comparison_runs_and_prints_one_row_per_shape(capsys, monkeypatch):
    """benchmarks/conv_shifted.py on a batch of one (a smoke run: its figures are for RESULTS.md, not asserted)."""
    from benchmarks import conv_shifted
    monkeypatch.setattr(conv_shifted, "SHAPES", ((16, 16, 5), (2, 8, 5)))
    conv_shifted.main(["--batch", "1", "--repeats", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 16 → 16") or
            line.startswith("| 2 → 8")]
    assert len(rows) == 2 and rows[0].endswith("| shifted |") and rows[1].endswith("| im2col |")


def test_scaling_lines_read_each_setting_against_its_own_k8_batch64_row():
    """Time per image (batch) relative to glow-mnist's row of the same setting: 1.00 is linear."""
    from benchmarks.report import scaling_lines

    def row(setting, workload, nflow, torch):
        return {"setting": setting, "workload": workload, "ops": {"train_step": {"median": {"nflow": nflow,
                                                                                            "torch": torch}}}}
    results = {"speed": [row("default", "glow-mnist", 1.0, 2.0), row("default", "glow-b256", 8.0, 8.0),
                         row("tuned", "glow-mnist", 0.5, 1.0), row("tuned", "glow-b256", 2.0, 4.0),
                         row("tuned", "glow-b16", 0.125, 0.25)]}
    lines = scaling_lines(results)
    default_batch = next(line for line in lines if line.startswith("- `default`, batch"))
    tuned_batch = next(line for line in lines if line.startswith("- `tuned`, batch"))
    assert "256: nflow 2.00 ✗, torch 1.00, nflow/eager 1.00" in default_batch  # 8 s for 4x the images of 1 s
    assert "256: nflow 1.00 ✓, torch 1.00, nflow/eager 0.50" in tuned_batch
    assert "16: nflow 1.00 ✓" in tuned_batch and "16:" not in default_batch


def test_conv_by_shape_times_every_conv_of_a_training_step_and_restores_the_kernels(capsys):
    """benchmarks/conv_by_shape.py on a batch of two: one row per conv shape, and the wrapped kernel functions
    are the originals again afterwards."""
    from benchmarks import conv_by_shape
    from nflow.kernels.dispatch import kernel_module
    before = kernel_module("conv").forward, kernel_module("bias_relu").backward
    conv_by_shape.main(["--model", "realnvp", "--batch", "2", "--steps", "1"])
    out = capsys.readouterr().out
    assert "| conv forward | (64, 64, 3, 28) |" in out and "| everything else |" in out
    assert (kernel_module("conv").forward, kernel_module("bias_relu").backward) == before


def test_nice_floor_prints_the_step_against_its_own_gemms(capsys, monkeypatch):
    """benchmarks/nice_floor.py on a small NICE (a smoke run: its figures are for RESULTS.md, not asserted)."""
    from benchmarks import nice_floor
    from benchmarks.workloads import WORKLOADS
    kind, kwargs, batch, ops = WORKLOADS["nice-mnist"]
    monkeypatch.setitem(WORKLOADS, "nice-mnist", (kind, dict(kwargs, hidden=8, depth=2), batch, ops))
    nice_floor.main(["--batch", "2", "--repeats", "1"])
    out = capsys.readouterr().out
    assert all(f"| {part} |" in out for part in ("forward", "backward", "Adam", "step"))


def test_conv_cold_prints_the_four_conditions(capsys):
    """benchmarks/conv_cold.py on a batch of one (a smoke run: its figures are for RESULTS.md, not asserted)."""
    from benchmarks import conv_cold
    conv_cold.main(["--batch", "1", "--repeats", "1"])
    out = capsys.readouterr().out
    assert all(f"| {label} |" in out for label in ("back to back", "after a 64 MB sweep", "after a Numba pass",
                                                   "after 5 ms idle"))


def test_own_threads_compares_the_gemms_and_the_tiled_net_and_restores_blas_threads(capsys):
    """benchmarks/own_threads.py on a batch of one (a smoke run: its figures are for RESULTS.md, not asserted):
    the BLAS's thread count is as before, and the split products and the tiled net agree with the whole ones
    (the error columns)."""
    from benchmarks import own_threads
    calls = own_threads.blas_thread_calls()
    if calls is None:
        pytest.skip("NumPy's BLAS has no OpenBLAS thread-count call here")
    before = calls[1]()
    own_threads.main(["--batch", "1", "--repeats", "1", "--tiles", "64,100"])
    out = capsys.readouterr().out
    assert calls[1]() == before
    rows = [line for line in out.splitlines() if line.startswith("| ") and line[2:5] in ("Glo", "Rea", "til", "who")]
    assert len(rows) == len(own_threads.GEMMS) + 3
    errors = [float(row.rstrip(" |").rsplit("| ", 1)[1]) for row in rows]
    assert max(errors) < 1e-5


def test_own_threads_says_why_it_measures_nothing_without_a_thread_count_call(capsys, monkeypatch):
    from benchmarks import own_threads
    monkeypatch.setattr(own_threads, "blas_thread_calls", lambda: None)
    own_threads.main(["--batch", "1", "--repeats", "1"])
    assert "nothing to measure" in capsys.readouterr().out


def test_freed_memory_child_reports_a_step_and_the_table_survives_a_failed_child(capsys, monkeypatch):
    """benchmarks/freed_memory.py: a child on a small NICE in-process (glibc's defaults, so this process is left
    as it is), then the parent's table from stand-in children, one of which failed (a smoke run: the figures are
    for RESULTS.md, not asserted)."""
    import json

    from benchmarks import freed_memory
    from benchmarks.workloads import WORKLOADS
    kind, kwargs, batch, ops = WORKLOADS["nice-mnist"]
    monkeypatch.setitem(WORKLOADS, "nice-mnist", (kind, dict(kwargs, hidden=8, depth=2), 2, ops))
    freed_memory.child("nice-mnist", steps=1, keep=False)
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["ms"] > 0 and result["peak_mib"] > 0 and result["kept"] is False

    def stand_in(workload, steps, keep):
        if workload == "glow-b16":
            return {"error": "child exit -9: Killed"}
        return {"ms": 100.0 if keep else 150.0, "kept": keep, "why": "", "peak_mib": 10.0}

    monkeypatch.setattr(freed_memory, "run_child", stand_in)
    freed_memory.main(["--workloads", "glow-b16", "nice-mnist", "--rounds", "1"])
    out = capsys.readouterr().out
    assert "| glow-b16 (16) | failed: child exit -9: Killed |" in out
    assert "| nice-mnist (2) | 150 | 100 | 1.50 | 10 / 10 |" in out


def test_own_conv_benchmark_runs_on_a_batch_of_one(monkeypatch, capsys):
    """benchmarks/own_conv.py on one small shape (a smoke run: its figures are for RESULTS.md, not asserted)."""
    from benchmarks import own_conv
    from nflow.kernels.cpu import jit
    monkeypatch.setattr(own_conv, "SHAPES", ((16, 16, 5), (2, 16, 5)))
    own_conv.main(["--batch", "1", "--repeats", "1"])
    out = capsys.readouterr().out
    if not jit.AVAILABLE:
        assert "nothing to measure" in out
        return
    rows = [line for line in out.splitlines() if line.startswith("| 16 → 16") or line.startswith("| 2 → 16")]
    assert len(rows) == 2 and all(line.count("|") == 9 for line in rows)


def test_best_setting_targets_take_each_sides_fastest_setting():
    """The issue's terms: each implementation at its best setting, so a setting that slows one side (PyTorch under
    glibc's defaults) cannot flatter the other; the setting-by-setting lines stay separate."""
    from benchmarks.report import best_setting_target_lines, target_lines

    def row(setting, nflow, torch, compiled):
        return {"setting": setting, "workload": "glow-mnist", "flops": {"log_prob": 1e9},
                "ops": {"log_prob": {"median": {"nflow": nflow, "torch": torch, "compiled": compiled}}},
                "gemm_numpy": 100.0, "gemm_torch": 100.0}
    results = {"speed": [row("default", 0.4, 1.0, 0.9), row("tuned", 0.5, 0.6, 0.45)]}
    (line,) = best_setting_target_lines(results)
    assert line.startswith("- glow-mnist log_prob: nflow/eager 0.67 (≤ 0.5: not met; nflow `default`, eager `tuned`)")
    assert "nflow/compile 0.89 (≤ 0.8: not met; compile `tuned`)" in line
    by_setting = target_lines(results)
    assert any("(`default`): nflow/eager 0.40 (≤ 0.5: met)" in t for t in by_setting)  # what default alone reads


def test_the_report_says_how_nflows_own_kernels_were_built_on_this_cpu(monkeypatch):
    """The same code reads 0.6x or 1.6x the BLAS paths' time depending on the vector width it was built for, so
    the machine line names it (and says when the BLAS paths run instead)."""
    from benchmarks.report import environment_lines, own_kernels_text
    from nflow.kernels.cpu import jit

    monkeypatch.setattr(jit, "AVAILABLE", True)
    monkeypatch.setattr(jit, "PAYS", True)
    monkeypatch.setattr(jit, "LANES", 8)
    assert own_kernels_text() == "built for 8-float vectors"
    monkeypatch.setattr(jit, "PAYS", False)
    assert own_kernels_text().startswith("not used on this CPU")
    monkeypatch.setattr(jit, "AVAILABLE", False)
    monkeypatch.setattr(jit, "UNAVAILABLE_REASON", "no native target")
    assert own_kernels_text() == "not built (no native target): the BLAS paths run"
    info = {"date": "d", "cpu": "c", "python": "p", "numpy": "n", "torch": "t", "commit": "x",
            "kernels": "built for 16-float vectors"}
    results = {"speed": [{"setting": "default", "openblas_core": "Haswell", "gemm_numpy": 1.0, "gemm_torch": 1.0,
                          "nflow_backend": "numba", "ops": {"log_prob": {"times": {"nflow": [1.0, 1.0]}}}}]}
    machine = next(line for line in environment_lines(results, "cmd", info) if line.startswith("- Machine"))
    assert machine.endswith("; nflow's own conv kernels built for 16-float vectors")
    del info["kernels"]  # a run saved before the field existed
    assert "own conv kernels" not in next(line for line in environment_lines(results, "cmd", info)
                                          if line.startswith("- Machine"))

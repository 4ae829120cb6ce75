"""From a run's results (measured now or loaded from ``--json`` files) to the markdown section of RESULTS.md:
tables of speed, CPU time and memory, the run's machine and settings, targets, settings effects, profile shares."""
import datetime
import json
import platform
import subprocess
from pathlib import Path

from benchmarks.results_file import SECTION
from benchmarks.workloads import BATCH_SERIES, DEPTH_SERIES, LR, QUICK_SHRINK, ROOT, SETTINGS, TORCH_FUSED_ADAM

PROFILE_ROWS = 10  # rows of each cProfile table in RESULTS.md (the JSON keeps 40)


# ============================================================================================ report
def load_run(path):
    """A run saved with --json (files from before run_info was recorded get the file's date and today's commit)."""
    run = json.loads(Path(path).read_text())
    if "info" not in run:
        info = run_info()
        info["commit"] = f"not recorded (HEAD when rendered: {info['commit']})"
        info["date"] = datetime.datetime.fromtimestamp(Path(path).stat().st_mtime).astimezone().strftime(
            "%Y-%m-%d %H:%M %Z") + " (file time)"
        run["info"] = info
    return run


def op_label(op, r):
    return {"log_prob": f"log_prob, batch {r['batch']}", "train_step": f"train step, batch {r['batch']}",
            "sample": f"sample {r['samples']}"}[op]


def _fmt_s(v):
    return "—" if v is None else (f"{v:.3f}" if v < 10 else f"{v:.1f}")


def _fmt_r(v):
    return "—" if v is None else f"{v:.2f}"


def best_gemm_rate(results):
    """The best float32 GEMM rate (FLOP/s) measured anywhere in this run (NumPy's or torch's, any child)."""
    return max(max(r["gemm_numpy"], r["gemm_torch"]) for r in results["speed"]) * 1e9


def _parity(r):
    if "parity_abs_nats" in r:
        return f"{r['parity_abs_nats']:.1e} ({r['parity_rel_mean']:.0e})"
    return f"rel. {r['parity_log_prob_rel']:.1e}"


def speed_table(results):
    header = ["workload", "op", "setting", "nflow (s)", "torch eager (s)", "nflow/eager", "torch.compile (s)",
              "nflow/compile", "compile time (s)", "GFLOP", "nflow/roofline", "eager/roofline", "parity", "load"]
    rows = []
    rate = best_gemm_rate(results)
    for r in results["speed"]:
        for op, res in r["ops"].items():
            med = res["median"]
            n, t, c = med.get("nflow"), med.get("torch"), med.get("compiled")
            flops = r["flops"][op]
            roof = flops / rate
            if "compile_s" in res:
                comp = _fmt_s(res["compile_s"])
            elif "compiled" in res.get("errors", {}):
                comp = "failed: " + res["errors"]["compiled"][:80].replace("|", "/")
            elif r.get("compile_timeout"):
                comp = f"> {r['compile_timeout']} s (killed)"
            else:
                comp = "not run"
            rows.append([r["workload"], op_label(op, r), r["setting"], _fmt_s(n), _fmt_s(t),
                         _fmt_r(n / t if n and t else None), _fmt_s(c), _fmt_r(n / c if n and c else None), comp,
                         f"{flops / 1e9:.1f}", _fmt_r(n / roof if n else None), _fmt_r(t / roof if t else None),
                         _parity(r), f"{r['load_start']}→{r['load_end']}"])
    return header, rows


def cpu_table(results):
    header = ["workload", "op", "setting", "nflow CPU (s)", "torch eager CPU (s)", "nflow/eager (CPU time)",
              "nflow min (s)", "torch eager min (s)", "torch.compile min (s)", "nflow/eager (min)",
              "nflow/compile (min)"]
    rows = []
    for r in results["speed"]:
        for op, res in r["ops"].items():
            n, t = res["cpu_median"].get("nflow"), res["cpu_median"].get("torch")
            mn, mt, mc = (res.get("min", {}).get(k) for k in ("nflow", "torch", "compiled"))
            rows.append([r["workload"], op_label(op, r), r["setting"], _fmt_s(n), _fmt_s(t),
                         _fmt_r(n / t if n and t else None), _fmt_s(mn), _fmt_s(mt), _fmt_s(mc),
                         _fmt_r(mn / mt if mn and mt else None), _fmt_r(mn / mc if mn and mc else None)])
    return header, rows


def memory_table(results):
    header = ["K", "setting", "nflow peak RSS (MiB)", "torch peak RSS (MiB)", "nflow Δ (MiB)", "torch Δ (MiB)",
              "nflow/torch Δ"]
    rows = []
    by = {(m["K"], m["setting"], m["impl"]): m for m in results["memory"]}
    for (k, setting, impl) in sorted(by):
        if impl != "nflow" or (k, setting, "torch") not in by:
            continue
        n, t = by[(k, setting, "nflow")], by[(k, setting, "torch")]
        dn, dt = n["peak_rss_mib"] - n["rss_setup_mib"], t["peak_rss_mib"] - t["rss_setup_mib"]
        rows.append([k, setting, f"{n['peak_rss_mib']:.0f}", f"{t['peak_rss_mib']:.0f}", f"{dn:.0f}", f"{dt:.0f}",
                     _fmt_r(dn / dt if dt > 0 else None)])
    return header, rows


def markdown(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def run_info():
    """Date, machine, versions and commit of a run, recorded when it starts (saved with --json)."""
    import numpy as np
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = "absent"
    try:
        from benchmarks.machine import describe
        d = describe()
        cpu = f"{d['cpu']} ({d['SIMD']}), {d['logical cores']} logical cores"
    except ImportError:
        cpu = platform.processor()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        # the code only: a results file the run (or an earlier one) writes under benchmarks/results is not a change
        dirty = subprocess.run(["git", "status", "--porcelain", "nflow", "kernels", "benchmarks",
                                ":(exclude)benchmarks/results"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        commit += " (+ uncommitted changes in nflow/, kernels/ or benchmarks/)" if dirty else ""
    except OSError:
        commit = "unknown"
    return {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), "cpu": cpu,
            "python": platform.python_version(), "numpy": np.__version__, "torch": torch_version, "commit": commit,
            "kernels": own_kernels_text()}


def own_kernels_text():
    """How nflow's own conv kernels were built on this CPU (``kernels/cpu/jit.py`` picks from its features): the
    same code reads 0.6x or 1.6x the BLAS paths' time depending on it (benchmarks/RESULTS.md, tenth session)."""
    from nflow.kernels.cpu import jit
    if not jit.AVAILABLE:
        return f"not built ({jit.UNAVAILABLE_REASON}): the BLAS paths run"
    if not jit.PAYS:
        return "not used on this CPU (no vector width chosen for it): the BLAS paths run"
    return f"built for {jit.LANES}-float vectors"


def environment_lines(results, command, info):
    first = results["speed"][0] if results["speed"] else {}
    cores = {r["setting"]: r.get("openblas_core") for r in results["speed"]}
    gemm = {}
    for r in results["speed"]:
        g = gemm.setdefault(r["setting"], {"numpy": [], "torch": []})
        g["numpy"].append(r["gemm_numpy"])
        g["torch"].append(r["gemm_torch"])
    gemm_text = "; ".join(f"{s}: NumPy {min(g['numpy']):.0f}–{max(g['numpy']):.0f}, torch {min(g['torch']):.0f}–"
                          f"{max(g['torch']):.0f}" for s, g in gemm.items())
    return [
        f"- Date: {info['date']}; command: `{command}`",
        f"- Machine: {info['cpu']}; Python {info['python']}, NumPy {info['numpy']}, torch {info['torch']}; "
        f"nflow at commit {info['commit']}, backend `{first.get('nflow_backend', '?')}`"
        + (f"; nflow's own conv kernels {info['kernels']}" if "kernels" in info else ""),
        "- Threads: 2 on each side (torch.set_num_threads(2); OPENBLAS/OMP/MKL/NUMBA_NUM_THREADS=2 before NumPy "
        "loads). OpenBLAS core type at run time: " + ", ".join(f"{s}: {c}" for s, c in cores.items()),
        "- Settings (one child process per setting and workload): " + "; ".join(
            f"`{s}` = " + (" ".join(f"`{k}={v}`" for k, v in SETTINGS[s].items()) or "nothing else set")
            for s in dict.fromkeys(r["setting"] for r in results["speed"])),
        f"- float32 GEMM rate measured in each child (GFLOP/s, n = 2048; range over the children): {gemm_text}. "
        f"The roofline uses the best rate measured anywhere in this run: {best_gemm_rate(results) / 1e9:.0f} "
        "GFLOP/s.",
        f"- Data: {first.get('data', '?')} (dequantized, [0, 1)); Adam lr {LR} (torch: "
        f"`fused={TORCH_FUSED_ADAM}`); timings are medians of "
        f"{len(next(iter(first['ops'].values()))['times']['nflow']) if first else '?'} alternating rounds "
        "after warm-up.",
        "- The machine has 2 cores and other engineers ran tests on it at the same time: the `load` column is the "
        "1-minute load average at the start → end of each child (2.0 = both cores busy before we start). "
        "Treat differences under ~1.3× as noise when the load is above 2.",
    ]


# issue 12's CPU targets: nflow / eager per model, nflow / torch.compile on every row, train step / GEMM roofline
EAGER_TARGETS = {"glow-mnist": 0.5, "realnvp-mnist": 0.7, "nice-mnist": 0.7}
COMPILE_TARGET = 0.8
ROOFLINE_TARGETS = {"glow-mnist": 1.3, "nice-mnist": 1.2}
SCALING_TOLERANCE = 0.10  # time per image (or per flow step) within 10 % of linear


DATA_MOVEMENT = ("im2col", "col2im", "_pad", "pad)", "_padded_matrix", "ascontiguousarray", "'copy'", "concatenate",
                 "_set_pad_area")


# the functions whose own time is a GEMM: the conv op (runs saved before the conv family held its GEMMs), the conv
# family (im2col twin, shifted GEMMs), the dense layer, matmul
GEMM_CALLERS = ("ops/conv.py", "reference/conv.py", "cpu/blas.py", "ops/linear.py", "ops/linalg.py", "tensordot")


def _met(ratio, goal):
    return f"≤ {goal}: {'met' if ratio <= goal else 'not met'}"


def _target_cells(workload, op, nflow, eager, compiled, gemm_seconds, settings=None):
    """The target checks of one (workload, op): nflow/eager, nflow/compile where compiled ran, and nflow/roofline
    for a training step with a roofline target (``gemm_seconds``: its GEMM FLOPs at the run's best rate).
    ``settings`` = (nflow's, eager's, compile's), named where each side's best setting was taken."""
    where = settings or ("", "", "")
    goal = EAGER_TARGETS[workload]
    cells = [f"nflow/eager {nflow / eager:.2f} ({_met(nflow / eager, goal)}"
             + (f"; nflow `{where[0]}`, eager `{where[1]}`" if settings else "") + ")"]
    if compiled:
        cells.append(f"nflow/compile {nflow / compiled:.2f} ({_met(nflow / compiled, COMPILE_TARGET)}"
                     + (f"; compile `{where[2]}`" if settings else "") + ")")
    if op == "train_step" and workload in ROOFLINE_TARGETS:
        roof = nflow / gemm_seconds
        cells.append(f"nflow/roofline {roof:.2f} ({_met(roof, ROOFLINE_TARGETS[workload])})")
    return ", ".join(cells)


def best_setting_target_lines(results):
    """Issue 12's CPU targets in the issue's own terms: "both sides at their best settings for this CPU". For each
    model and op, each implementation's fastest median over the settings this run measured (the setting named),
    so neither side is judged under a setting that handicaps it (glibc's defaults cost PyTorch's eager
    convolutions up to 2x in page faults; :func:`target_lines` reads each setting on its own)."""
    rate = best_gemm_rate(results)
    best = {}  # (workload, op) -> {impl: (median, setting)}
    flops = {}
    for r in results["speed"]:
        if r["workload"] not in EAGER_TARGETS:
            continue
        for op, res in r["ops"].items():
            flops[(r["workload"], op)] = r["flops"][op]
            cell = best.setdefault((r["workload"], op), {})
            for impl, median in res["median"].items():
                if median and (impl not in cell or median < cell[impl][0]):
                    cell[impl] = (median, r["setting"])
    lines = []
    for (workload, op), cell in best.items():
        if "nflow" not in cell or "torch" not in cell:
            continue
        compiled, compile_setting = cell.get("compiled", (None, None))
        settings = (cell["nflow"][1], cell["torch"][1], compile_setting)
        lines.append(f"- {workload} {op}: " + _target_cells(workload, op, cell["nflow"][0], cell["torch"][0],
                                                            compiled, flops[(workload, op)] / rate, settings))
    return lines


def target_lines(results):
    """Issue 12's CPU targets, checked against this run's figures setting by setting."""
    rate = best_gemm_rate(results)
    lines = []
    for r in results["speed"]:
        if r["workload"] not in EAGER_TARGETS:
            continue
        for op, res in r["ops"].items():
            n, t, c = (res["median"].get(k) for k in ("nflow", "torch", "compiled"))
            if n and t:
                lines.append(f"- {r['workload']} {op} (`{r['setting']}`): "
                             + _target_cells(r["workload"], op, n, t, c, r["flops"][op] / rate))
    return lines


def scaling_lines(results):
    """Glow's training step against depth (K = 8, 16, 32 at batch 64) and batch (16, 64, 256 at K = 8): time per
    flow step or per image relative to the K = 8, batch 64 row (1.00 = linear), and nflow / eager at each."""
    steps = {(r["setting"], r["workload"]): r for r in results["speed"] if "train_step" in r["ops"]}
    lines = []
    for setting in dict.fromkeys(r["setting"] for r in results["speed"]):
        base = steps.get((setting, "glow-mnist"))
        if base is None:
            continue
        base_med = base["ops"]["train_step"]["median"]
        for axis, series in (("depth K", DEPTH_SERIES), ("batch", BATCH_SERIES)):
            cells = []
            for value, workload, scale in series:
                r = steps.get((setting, workload))
                if r is None:
                    continue
                med = r["ops"]["train_step"]["median"]
                per = {impl: med[impl] / scale / base_med[impl] for impl in ("nflow", "torch")
                       if impl in med and impl in base_med}
                if "nflow" not in per or "torch" not in per:
                    continue
                mark = " ✓" if abs(per["nflow"] - 1) <= SCALING_TOLERANCE else " ✗"
                cells.append(f"{value}: nflow {per['nflow']:.2f}{mark}, torch {per['torch']:.2f}, "
                             f"nflow/eager {med['nflow'] / med['torch']:.2f}")
            if len(cells) > 1:
                lines.append(f"- `{setting}`, {axis}: " + "; ".join(cells))
    return lines


def settings_effect(results):
    """Per setting: geometric mean over (workload, op) of time ÷ time under `default`, for each implementation."""
    import math
    by = {(r["setting"], r["workload"], op): res["median"] for r in results["speed"] for op, res in r["ops"].items()}
    lines = []
    for setting in dict.fromkeys(r["setting"] for r in results["speed"]):
        if setting == "default":
            continue
        cells, rows = [], 0
        for impl in ("nflow", "torch", "compiled"):
            ratios = [med[impl] / by[("default", w, op)][impl] for (s, w, op), med in by.items()
                      if s == setting and impl in med and impl in by.get(("default", w, op), {})]
            if ratios:
                rows = max(rows, len(ratios))
                g = math.exp(sum(map(math.log, ratios)) / len(ratios))
                cells.append(f"{ {'compiled': 'torch.compile', 'torch': 'torch eager'}.get(impl, impl)} ×{g:.2f}")
        loads = {k: [r["load_start"] for r in results["speed"] if r["setting"] == k] for k in (setting, "default")}
        if cells:
            lines.append(f"- `{setting}` vs `default` (time ratio, geometric mean over {rows} rows): "
                         + ", ".join(cells) + f"; mean load at the children's start: `default` "
                         f"{sum(loads['default']) / len(loads['default']):.1f}, `{setting}` "
                         f"{sum(loads[setting]) / len(loads[setting]):.1f}")
    return lines


def profile_shares(prof):
    """Shares of one profiled call: data movement around the GEMMs, the calls that hold the GEMMs, the rest."""
    wall = prof["wall"]
    move = sum(row["tottime"] for row in prof["top"] if any(k in row["function"] for k in DATA_MOVEMENT))
    gemm = sum(row["tottime"] for row in prof["top"] if any(k in row["function"] for k in GEMM_CALLERS)
               and not any(k in row["function"] for k in DATA_MOVEMENT))
    return move / wall, gemm / wall


def report(results, command, quick, info, extra=(), sources=()):
    sh, sr = speed_table(results)
    ch, cr = cpu_table(results)
    parts = [SECTION, "",
             "Written by `benchmarks/run.py` (`python -m benchmarks`); "
             + (f"**quick mode: batches and sample counts ÷ {QUICK_SHRINK}, 3 rounds, no torch.compile, no deep "
                "Glows, no memory rows — indicative only.**" if quick
                else "full mode.") + " See that module's docstring for what each column means.", ""]
    parts += environment_lines(results, command, info)
    if sources:
        parts.append("- Raw measurements (every round's time): " + ", ".join(f"`{p}`" for p in sources)
                     + f"; this section was rendered from them with `python -m benchmarks --from-json "
                     f"{','.join(sources)}`")
    parts.append("")
    best_targets, targets = best_setting_target_lines(results), target_lines(results)
    if best_targets:
        parts += ["Issue 12's CPU targets, each side at its best setting (the issue's terms: each implementation's "
                  "fastest median over the settings below, the setting named):", ""] + best_targets + [""]
    if targets:
        parts += ["The same targets setting by setting, from the table below (under `default` glibc returns "
                  "freed memory at once, and PyTorch's eager convolutions pay more for the page faults than nflow "
                  "does, so a ratio read under one setting can flatter one side):", ""] + targets + [""]
    parts += ["### Time per operation (wall clock, median)", "", markdown(sh, sr), ""]
    scaling = scaling_lines(results)
    if scaling:
        parts += ["Glow's training step against depth and batch: time per flow step (depth) or per image (batch) "
                  "relative to K = 8 at batch 64, so 1.00 is linear (✓ within "
                  f"{SCALING_TOLERANCE:.0%}), and nflow/eager at each:", ""] + scaling + [""]
    effect = settings_effect(results)
    if effect:
        parts += ["Effect of the settings in this run (< 1: faster than `default`). Other processes' load moves "
                  "these figures far more than the settings do (measured here: NICE's log_prob took 0.08 s at load "
                  "≈ 2 and 0.35–0.70 s at load ≈ 4, with or without torch.compile in the process), so compare "
                  "settings only between children that started at a similar load:", ""] + effect + [""]
    parts += ["Ratios below 1 mean nflow is faster. roofline = measured time ÷ (analytic GEMM FLOPs ÷ the best "
              "float32 GEMM rate of the run). parity = max |Δ log p| in nats between the two implementations on "
              "the benchmark batch with the same weights (in brackets: relative to the mean |log p|; a per-sample "
              "relative figure is meaningless here because an untrained Glow's log p of MNIST can be near 0 nats; "
              "runs saved before this column existed show that per-sample figure as `rel.`).",
              ""]
    parts += ["### CPU time (median; every thread of the process counted) and best round (min wall time)", "",
              "Both are less sensitive than the median wall time to other processes on the machine. CPU time also "
              "counts the other library's idle threads spinning right after its own call (OpenBLAS waits busily "
              "for a while), so it is an upper bound.", "", markdown(ch, cr), ""]
    if results["memory"]:
        mh, mr = memory_table(results)
        parts += ["### Glow depth scaling: peak memory of a training step (batch 64, hidden 256, L = 2)", "",
                  "One fresh process per cell; peak RSS = `ru_maxrss` after two training steps; Δ = peak minus the "
                  "RSS after building the model and initialising ActNorm (activations, gradients, Adam state, "
                  "allocator slack). The torch process carries torch's libraries (~ the difference in the "
                  "peak column at equal Δ). Times for these depths are in the table above (glow-mnist is K = 8).",
                  "",
                  markdown(mh, mr), ""]
    if results.get("profiles"):
        parts += ["### Where nflow's time goes (cProfile of one nflow call each, after a warm-up call)", "",
                  "`own time` of the conv family's forward/backward (`reference/conv.py`), the windowed GEMM "
                  "(`cpu/blas.py`), `ops/linear.py` and `ops/linalg.py` is mostly the BLAS GEMM they call (C calls "
                  "are charged to their Python caller); im2col/col2im, padding and contiguous copies are the data "
                  "movement a convolution written as GEMMs adds around them.", ""]
        for p in results["profiles"]:
            for op, prof in p["ops"].items():
                move, gemm = profile_shares(prof)
                parts.append(f"- {p['workload']} {op}: data movement (im2col, col2im, padding, copies) {move:.0%}, "
                             f"calls holding the GEMMs {gemm:.0%}, everything else {1 - move - gemm:.0%} "
                             f"(of {prof['wall']:.2f} s)")
        parts.append("")
    for p in results.get("profiles", []):
        for op, prof in p["ops"].items():
            parts += [f"#### Profile: nflow {p['workload']}, {op} (batch {p['batch']}, samples {p['samples']}; one "
                      f"call under cProfile, {prof['wall']:.2f} s wall, setting `{p['setting']}`)", "",
                      markdown(["function", "ncalls", "own time (s)", "cumulative (s)", "own share"],
                               [[f"`{row['function']}`", row["ncalls"], f"{row['tottime']:.3f}",
                                 f"{row['cumtime']:.3f}", f"{row['tottime'] / prof['wall']:.0%}"]
                                for row in prof["top"][:PROFILE_ROWS]]), ""]
    if results["notes"]:
        parts += ["Notes: " + " ".join(results["notes"]), ""]
    for run in extra:  # further runs of this runner (other settings, other times), rendered after the main one
        h, rows = speed_table(run["results"])
        parts += [f"### Additional run: `{run['command']}`", ""]
        parts += environment_lines(run["results"], run["command"], run["info"]) + ["", markdown(h, rows), ""]
        effect = settings_effect(run["results"])
        if effect:
            parts += ["Effect of the settings in this run (< 1: faster than `default`):", ""] + effect + [""]
    return "\n".join(parts)

"""The GPU path, run for real (issue 12): one prepared script for a machine with a CUDA GPU.

    python -m benchmarks.gpu_check [--out benchmarks/results/gpu-check.json] [--budget 450] [--repeats 10]

What it does, in this order, within ``--budget`` seconds (the device time of a session is short):

1. **the machine**: the GPU (name, memory, compute capability), the CUDA runtime and driver, CuPy's and
   PyTorch's versions, and whether PyTorch sees CUDA;
2. **correctness**: ``pytest -m gpu tests`` — every CUDA kernel against its NumPy twin, the ``cupy`` backend
   against ``numpy`` on a whole Glow; its summary line and exit status are kept;
3. **speed**: the CPU runner's three workloads (``benchmarks.workloads``: Glow, RealNVP and NICE on MNIST-sized
   inputs), nflow on the ``cupy`` backend against its PyTorch twin on CUDA with the same weights
   (``benchmarks.weights``; log_prob parity is checked before any timing): ``log_prob``, ``train_step`` (NLL,
   backward, Adam) and ``sample 64``. Each figure is the median of ``--repeats`` rounds after warm-up, each round
   timed between two device synchronisations (both sides run asynchronously; without the synchronisation one
   would time the launches). The first call of each op is timed apart: it includes compiling the CUDA kernels
   (CuPy's NVRTC, cached afterwards) and cuDNN's algorithm search.

Settings, recorded in the output: PyTorch runs eager with ``cudnn.benchmark = True`` (its fastest convolution
choice for fixed shapes) and its default TF32 switches (read and written down, since TF32 convolutions trade
precision for speed); CuPy's matrix products use cuBLAS in full float32 unless ``CUPY_TF32=1``.

It uses the CuPy and PyTorch the machine already has; it installs nothing. Without a usable CUDA GPU it says why,
writes a result with ``"status": "skipped"`` and exits 0, so it can be prepared and tested on a CPU-only machine.
One JSON file holds everything (RESULTS.md quotes it); a markdown table goes to standard output.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT_DIR = Path(__file__).resolve().parents[1]
if str(ROOT_DIR) not in sys.path:  # `python benchmarks/gpu_check.py` as well as `python -m benchmarks.gpu_check`
    sys.path.insert(0, str(ROOT_DIR))

from benchmarks.machine import markdown_table  # noqa: E402
from benchmarks.workloads import LR, SAMPLES, WORKLOADS, mnist_batch, seeded_model  # noqa: E402

DEFAULT_OUT = ROOT_DIR / "benchmarks" / "results" / "gpu-check.json"
DEFAULT_BUDGET_S = 450      # the issue asks for the whole check in under 8 minutes
PYTEST_SHARE = 0.4          # at most this share of the budget for `pytest -m gpu`
SPEED_WORKLOADS = ("glow-mnist", "realnvp-mnist", "nice-mnist")
WARMUP = 2                  # untimed calls after the first (timed apart) one
MIN_SECONDS_PER_WORKLOAD = 20   # a workload is not started with less budget than this left


def median(values):
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


# ---------------------------------------------------------------------------------------------- the machine
def why_no_gpu():
    """None when CuPy sees a CUDA device nflow can use, else the reason in words."""
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # no driver, or a broken one: CuPy imports but cannot run
        return f"CuPy cannot reach a CUDA driver ({type(e).__name__}: {e})"
    return None if count > 0 else "CuPy sees no CUDA device"


def describe_gpu():
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"]
    info = {"gpu": name.decode() if isinstance(name, bytes) else name,
            "gpu_memory_gib": round(props["totalGlobalMem"] / 2 ** 30, 1),
            "compute_capability": f"{props['major']}.{props['minor']}",
            "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
            "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
            "cupy": cupy.__version__, "cupy_tf32": os.environ.get("CUPY_TF32", "0"),
            "python": platform.python_version(), "host": platform.node()}
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.cuda.is_available()
        if info["torch_cuda"]:
            info["torch_tf32"] = {"matmul": torch.backends.cuda.matmul.allow_tf32,
                                  "cudnn": torch.backends.cudnn.allow_tf32}
    except ImportError:
        info["torch"] = None
        info["torch_cuda"] = False
    return info


# ---------------------------------------------------------------------------------------------- correctness
def run_gpu_tests(timeout_s):
    """``pytest -m gpu tests`` in a child process: its exit status, summary line and seconds."""
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", str(ROOT_DIR / "tests")]
    try:
        done = subprocess.run(cmd, cwd=ROOT_DIR, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        tail = (e.stdout or b"")[-2000:]
        return {"status": "timed out", "timeout_s": timeout_s,
                "tail": tail.decode(errors="replace") if isinstance(tail, bytes) else tail}
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return {"status": "passed" if done.returncode == 0 else f"exit {done.returncode}",
            "summary": lines[-1] if lines else "", "seconds": round(time.perf_counter() - start, 1),
            "tail": "\n".join(lines[-40:]) if done.returncode else ""}


# ---------------------------------------------------------------------------------------------- speed
def time_op(fn, synchronise, repeats):
    """(first call's seconds, median seconds of ``repeats`` calls after warm-up), each between synchronisations."""
    synchronise()
    t = time.perf_counter()
    fn()
    synchronise()
    first = time.perf_counter() - t
    for _ in range(WARMUP):
        fn()
    synchronise()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        synchronise()
        times.append(time.perf_counter() - t)
    return first, median(times)


class Device:
    """Where the speed rows run: ``"cuda"`` (nflow's ``cupy`` backend, PyTorch on CUDA) for the real check, or
    ``"cpu"`` (``numba``, PyTorch on the CPU) for a dry run of the same code on a machine without a GPU."""

    def __init__(self, name):
        import numpy as np
        self.name = name
        if name == "cuda":
            import cupy
            self.backend, self.asarray, self.asnumpy = "cupy", cupy.asarray, cupy.asnumpy
            self.synchronise = cupy.cuda.Device().synchronize
        else:
            self.backend, self.asarray, self.asnumpy = "numba", np.asarray, np.asarray
            self.synchronise = lambda: None


def speed_rows(workload, repeats, device):
    """Timings of one workload on both sides; a dict with the figures or with the error that stopped it."""
    import numpy as np

    import nflow
    import nflow.functional as F
    from nflow.optim import Adam

    _, _, batch, ops = WORKLOADS[workload]
    row = {"workload": workload, "batch": batch, "samples": SAMPLES, "ops": {}}
    x_host, row["data"] = mnist_batch(batch)
    with nflow.backend(device.backend):
        model = seeded_model(workload)
        x_dev = device.asarray(x_host)
        with nflow.no_grad():
            model.log_prob(x_dev)  # ActNorm's data-dependent initialisation (Glow), in training mode
        optimizer = Adam(model.parameters(), lr=LR)

        def nflow_log_prob():
            with nflow.no_grad():
                model.log_prob(x_dev)

        def nflow_train():
            optimizer.zero_grad()
            F.mean(-model.log_prob(x_dev)).backward()
            optimizer.step()

        def nflow_sample():
            model.sample(SAMPLES, seed=0)

        impls = {"nflow": ({"log_prob": nflow_log_prob, "train_step": nflow_train, "sample": nflow_sample},
                           device.synchronise)}
        with nflow.no_grad():
            lp_nflow = device.asnumpy(model.log_prob(x_dev).data).astype(np.float64)
        torch_side = torch_functions(model, x_host, lp_nflow, row, device.name)
        if torch_side is not None:
            impls["torch"] = torch_side
        for op in ops:
            res = {"first_s": {}, "median_s": {}}
            for name, (fns, synchronise) in impls.items():
                try:
                    res["first_s"][name], res["median_s"][name] = time_op(fns[op], synchronise, repeats)
                except Exception as e:  # one side failing is a finding, not the end of the check
                    res.setdefault("errors", {})[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
            if "nflow" in res["median_s"] and "torch" in res["median_s"]:
                res["ratio"] = res["median_s"]["nflow"] / res["median_s"]["torch"]
            row["ops"][op] = res
            print(f"[{workload}] {op}: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in res["median_s"].items()),
                  file=sys.stderr, flush=True)
    return row


def torch_functions(model, x_host, lp_nflow, row, device):
    """PyTorch's twin on ``device`` with the model's weights: ({op: fn}, synchronise), or None (said in ``row``)."""
    try:
        import torch
    except ImportError:
        row["torch"] = "PyTorch is not installed"
        return None
    if device == "cuda" and not torch.cuda.is_available():
        row["torch"] = "PyTorch sees no CUDA device"
        return None
    import numpy as np
    from benchmarks.weights import torch_twin
    torch.backends.cudnn.benchmark = True
    twin = torch_twin(model).to(device)
    x = torch.from_numpy(x_host).to(device)
    with torch.no_grad():
        lp_torch = twin.log_prob(x).double().cpu().numpy()
    row["parity_abs_nats"] = float(np.max(np.abs(lp_nflow - lp_torch)))
    row["parity_rel_mean"] = row["parity_abs_nats"] / float(np.mean(np.abs(lp_torch)))
    # fused: its fastest Adam on CUDA (and on the CPU, benchmarks.workloads.TORCH_FUSED_ADAM)
    optimizer = torch.optim.Adam(twin.parameters(), lr=LR, fused=True)

    def log_prob():
        with torch.no_grad():
            twin.log_prob(x)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        (-twin.log_prob(x).mean()).backward()
        optimizer.step()

    def sample():
        with torch.no_grad():
            twin.sample(SAMPLES)

    synchronise = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    return {"log_prob": log_prob, "train_step": train_step, "sample": sample}, synchronise


# ---------------------------------------------------------------------------------------------- report
def report(result):
    """The result as markdown: the machine, the GPU tests' summary, one table row per (workload, op)."""
    lines = [f"GPU check, {result['date']}: status **{result['status']}**"]
    if result["status"] == "skipped":
        lines.append(f"(no CUDA GPU: {result['why']})")
        return "\n".join(lines)
    machine = result["machine"]
    lines.append(f"{machine['gpu']} ({machine['gpu_memory_gib']} GiB, sm {machine['compute_capability']}), "
                 f"CUDA runtime {machine['cuda_runtime']}, driver {machine['cuda_driver']}, CuPy {machine['cupy']}, "
                 f"PyTorch {machine.get('torch')} (CUDA: {machine.get('torch_cuda')}, "
                 f"TF32 {machine.get('torch_tf32')})")
    tests = result.get("gpu_tests", {})
    lines.append(f"`pytest -m gpu`: {tests.get('status')} — {tests.get('summary', '')}")
    rows = []
    for row in result.get("speed", []):
        if "error" in row:
            rows.append([row["workload"], "—", "—", "—", "—", row["error"]])
            continue
        for op, res in row["ops"].items():
            ms = res["median_s"]
            rows.append([row["workload"], op,
                         f"{ms['nflow'] * 1e3:.2f}" if "nflow" in ms else "—",
                         f"{ms['torch'] * 1e3:.2f}" if "torch" in ms else row.get("torch", "—"),
                         f"{res['ratio']:.2f}" if "ratio" in res else "—",
                         "; ".join(f"{k}: {v}" for k, v in res.get("errors", {}).items())])
    lines.append(markdown_table(["workload", "op", "nflow cupy (ms)", "torch CUDA (ms)", "nflow / torch", "notes"],
                                rows))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON file written")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="seconds for the whole check")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds per op (after warm-up)")
    parser.add_argument("--skip-tests", action="store_true", help="speed only (the tests ran already)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": " ".join(sys.argv)}
    why = why_no_gpu()
    if why is not None:
        result.update(status="skipped", why=why)
    else:
        result.update(status="ran", machine=describe_gpu(), speed=[])
        if not args.skip_tests:
            result["gpu_tests"] = run_gpu_tests(timeout_s=PYTEST_SHARE * args.budget)
            print(f"pytest -m gpu: {result['gpu_tests']['status']} {result['gpu_tests'].get('summary', '')}",
                  file=sys.stderr, flush=True)
        for workload in SPEED_WORKLOADS:
            if args.budget - (time.perf_counter() - start) < MIN_SECONDS_PER_WORKLOAD:
                result["speed"].append({"workload": workload, "error": "not run: the time budget was spent"})
                continue
            try:
                result["speed"].append(speed_rows(workload, args.repeats, Device("cuda")))
            except Exception as e:  # a crash in one workload leaves the others to run
                result["speed"].append({"workload": workload, "error": f"{type(e).__name__}: {e}"})
    result["seconds"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(report(result))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()

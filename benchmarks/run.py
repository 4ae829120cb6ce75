"""Issue 7: nflow against PyTorch implementations of the same models, same weights, side by side.

    python -m benchmarks [--quick] [--no-compile] [--settings default,tuned] [--only glow-mnist,...] [--no-write]
    python benchmarks/run.py ...

What is measured, per workload (all float32, on the CPU):

- ``log_prob``: log p(x) of one batch without gradients (nflow ``no_grad``, torch ``no_grad``);
- ``train step``: forward + backward of the mean NLL + one Adam step (lr 1e-4; torch's ``fused=True`` Adam,
  its fastest on the CPU), gradients cleared first;
- ``sample 64``: 64 images at temperature 1 (nflow ``model.sample(64)``, torch ``model.sample(64)``).

Implementations, alternating inside one process (nflow, PyTorch eager, ``torch.compile`` when asked), each on
2 threads: torch via ``torch.set_num_threads(2)``; nflow via ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``/
``NUMBA_NUM_THREADS`` = 2 set in the environment before NumPy loads. Each figure is the median wall time of
``repeats`` rounds after warm-up; the nflow model is built first, ActNorm is initialised on the benchmark
batch, and the weights are copied into the torch twin (``benchmarks.weights``), whose log_prob is checked
against nflow's before any timing (column "parity").

Environment settings (each needs a fresh process, so every (setting, workload) is one child process):

- ``default``: nothing set beyond the thread counts;
- ``tuned``: ``OPENBLAS_CORETYPE=SkylakeX`` (OpenBLAS's run-time dispatch picks AVX2 kernels on this AMD CPU;
  the variable selects its AVX-512 kernels; it reaches NumPy's OpenBLAS, not torch's MKL/oneDNN) and glibc's
  ``MALLOC_MMAP_THRESHOLD_=2^30`` / ``MALLOC_TRIM_THRESHOLD_=2^31`` (large freed blocks stay in the heap
  instead of being unmapped, so they are not page-faulted in again on the next allocation; both sides).

Roofline: analytic FLOPs of the GEMM-shaped work (every convolution, linear layer and 1x1 invertible
convolution: 2·MACs from the layer shapes; backward = 2 × forward, so a training step is 3 × forward; sampling
runs the same networks as log_prob) divided by the best float32 GEMM rate measured in the same run (every child
process measures NumPy's BLAS via ``benchmarks.machine.gemm_gflops`` and ``torch.mm``, n = 2048). "x/roofline" is the
measured time over that bound (1.0 = at the GEMM rate; element-wise work is not counted).

Peak memory (depth scaling): one fresh process per (implementation, K, setting) builds the model and batch,
runs ActNorm's initialisation, records RSS, runs two training steps and reads ``ru_maxrss``. The nflow child
never imports torch and the torch child never imports nflow.
"""
import argparse
import datetime
import gzip
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/run.py` as well as `python -m benchmarks`
    sys.path.insert(0, str(ROOT))

SECTION = "## nflow vs PyTorch (issue 7)"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
THREADS = 2
THREAD_ENV = {"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "NUMBA_NUM_THREADS": "2"}
SETTINGS = {
    "default": {},
    "tuned": {"OPENBLAS_CORETYPE": "SkylakeX", "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
              "MALLOC_TRIM_THRESHOLD_": str(1 << 31)},
    # one variable at a time, and OpenBLAS's AVX2 kernels forced (run with --settings to include these)
    "skylakex": {"OPENBLAS_CORETYPE": "SkylakeX"},
    "malloc": {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 31)},
    "avx2": {"OPENBLAS_CORETYPE": "Haswell"},
}
CLEARED_ENV = ("OPENBLAS_CORETYPE", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
LR = 1e-4
# torch's best documented Adam on the CPU: the fused kernel (measured here on NICE's 20 M parameters: 0.05 s a
# step, against 0.8 s for the default per-parameter loop and 1.5 s for foreach).
TORCH_FUSED_ADAM = True
SAMPLES = 64
PROFILE_ROWS = 10  # rows of each cProfile table in RESULTS.md (the JSON keeps 40)
QUICK_SHRINK = 4  # --quick: batches and sample counts divided by this (the architectures stay the same)

# name -> (model kind, constructor kwargs (nflow's), batch, ops)
WORKLOADS = {
    "glow-mnist": ("glow", dict(input_shape=(1, 28, 28), levels=2, steps=8, hidden=256), 64,
                   ("log_prob", "train_step", "sample")),
    "realnvp-mnist": ("realnvp", dict(input_shape=(1, 28, 28), scales=2, hidden=64), 64,
                      ("log_prob", "train_step", "sample")),
    "nice-mnist": ("nice", dict(input_shape=(1, 28, 28), couplings=4, hidden=1000, depth=5), 256,
                   ("log_prob", "train_step", "sample")),
    "glow-K16": ("glow", dict(input_shape=(1, 28, 28), levels=2, steps=16, hidden=256), 64, ("train_step",)),
    "glow-K32": ("glow", dict(input_shape=(1, 28, 28), levels=2, steps=32, hidden=256), 64, ("train_step",)),
}
DEPTHS = {8: "glow-mnist", 16: "glow-K16", 32: "glow-K32"}
COMPILE_WORKLOADS = ("glow-mnist", "realnvp-mnist", "nice-mnist")  # deeper Glows: compile time grows with K


# ============================================================================================ shared helpers
def _load_avg():
    return round(os.getloadavg()[0], 2)


def _rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def mnist_batch(n, seed=0):
    """n dequantized MNIST training images in [0, 1) as float32 (N, 1, 28, 28), read from the IDX file in
    ``$NFLOW_DATA`` or ``../shared/data/mnist``; uniform noise when neither holds it (said in the output)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    for folder in (os.environ.get("NFLOW_DATA"), str(ROOT.parent / "shared" / "data" / "mnist")):
        if not folder:
            continue
        for name in ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"):
            path = Path(folder) / name
            if path.exists():
                raw = path.read_bytes()
                raw = gzip.decompress(raw) if name.endswith(".gz") else raw
                images = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)
                pick = images[rng.choice(len(images), size=n, replace=False)].astype(np.float32)
                return ((pick + rng.uniform(size=pick.shape)) / 256).astype(np.float32), "MNIST"
    return rng.uniform(size=(n, 1, 28, 28)).astype(np.float32), "uniform noise (MNIST not found)"


def numpy_gemm_gflops(n=2048, repeats=5):
    """NumPy's float32 GEMM rate; ``benchmarks.machine.gemm_gflops`` when that module is there."""
    try:
        from benchmarks.machine import gemm_gflops
    except ImportError:  # fallback: the same measurement, written here
        import numpy as np

        def gemm_gflops(n, repeats):
            a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
            c = np.empty_like(a)
            np.matmul(a, a, out=c)
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                np.matmul(a, a, out=c)
                times.append(time.perf_counter() - t)
            return 2.0 * n ** 3 / sorted(times)[len(times) // 2] / 1e9
    return gemm_gflops(n, repeats)


def torch_gemm_gflops(n=2048, repeats=5):
    import torch
    a = torch.randn(n, n)
    c = torch.empty(n, n)
    torch.mm(a, a, out=c)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, a, out=c)
        times.append(time.perf_counter() - t)
    return 2.0 * n ** 3 / sorted(times)[len(times) // 2] / 1e9


def forward_flops(torch_model, example):
    """Analytic FLOPs (2·MACs) of one forward pass over ``example``: convolutions, linear layers, 1x1 convs."""
    import torch
    from benchmarks import torch_models
    total = [0]

    def hook(module, inputs, output):
        y = output[0] if isinstance(output, tuple) else output
        if isinstance(module, torch.nn.Conv2d):
            total[0] += 2 * y.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, torch.nn.Linear):
            total[0] += 2 * y.numel() * module.in_features
        elif isinstance(module, torch_models.InvConv1x1):
            total[0] += 2 * y.numel() * module.channels
    handles = [m.register_forward_hook(hook) for m in torch_model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch_models.InvConv1x1))]
    try:
        with torch.no_grad():
            torch_model.log_prob(example)
    finally:
        for h in handles:
            h.remove()
    return total[0]


def _median(values):
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


# ============================================================================================ child: timings
def child_speed(workload, repeats, warmup, use_compile, batch=None, samples=SAMPLES):
    """Runs in a fresh process (environment already set). Prints one JSON object."""
    import numpy as np

    import nflow
    import nflow.functional as F
    import torch
    from benchmarks.weights import torch_twin
    from nflow.models import NICE, Glow, RealNVP
    from nflow.optim import Adam

    torch.set_num_threads(THREADS)
    kind, kwargs, full_batch, ops = WORKLOADS[workload]
    batch = batch or full_batch
    out = {"workload": workload, "batch": batch, "samples": samples, "ops": {}, "load_start": _load_avg(),
           "nflow_backend": nflow.get_backend(), "torch_threads": torch.get_num_threads()}
    try:
        from benchmarks.machine import describe
        d = describe()
        out["openblas_core"] = d.get("OpenBLAS core type at run time")
        out["openblas_threads"] = d.get("OpenBLAS threads")
    except ImportError:
        out["openblas_core"] = "unknown (benchmarks.machine absent)"
    out["gemm_numpy"] = numpy_gemm_gflops()
    out["gemm_torch"] = torch_gemm_gflops()

    nflow.seed(0)
    model = {"glow": Glow, "realnvp": RealNVP, "nice": NICE}[kind](**kwargs)
    x_np, out["data"] = mnist_batch(batch)
    with nflow.no_grad():
        model.log_prob(x_np)  # ActNorm's data-dependent initialisation (Glow), training mode
    twin = torch_twin(model)
    x_t = torch.from_numpy(x_np)
    with nflow.no_grad():
        lp_n = np.asarray(model.log_prob(x_np).data, dtype=np.float64)
    with torch.no_grad():
        lp_t = twin.log_prob(x_t).double().numpy()
    out["parity_log_prob_rel"] = float(np.max(np.abs(lp_n - lp_t) / np.abs(lp_t)))  # per sample (lp may be ≈ 0)
    out["parity_abs_nats"] = float(np.max(np.abs(lp_n - lp_t)))
    out["parity_rel_mean"] = out["parity_abs_nats"] / float(np.mean(np.abs(lp_t)))
    out["bits_per_dim"] = float(np.mean(-lp_n / (np.prod(x_np.shape[1:]) * np.log(2)) + 8))
    fwd = forward_flops(twin, x_t[:1]) * batch
    out["flops"] = {"log_prob": fwd, "train_step": 3 * fwd, "sample": fwd * samples // batch}

    opt_n = Adam(model.parameters(), lr=LR)
    opt_t = torch.optim.Adam(twin.parameters(), lr=LR, fused=TORCH_FUSED_ADAM)

    def nflow_log_prob():
        with nflow.no_grad():
            model.log_prob(x_np)

    def nflow_train():
        opt_n.zero_grad()
        F.mean(-model.log_prob(x_np)).backward()
        opt_n.step()

    def nflow_sample():
        model.sample(samples)

    def torch_fns(log_prob, loss, sample):
        def lp():
            with torch.no_grad():
                log_prob(x_t)

        def train():
            opt_t.zero_grad(set_to_none=True)
            loss(x_t).backward()
            opt_t.step()

        def smp():
            with torch.no_grad():
                sample(samples)
        return {"log_prob": lp, "train_step": train, "sample": smp}

    def nll(x):
        return -twin.log_prob(x).mean()

    impls = {"nflow": {"log_prob": nflow_log_prob, "train_step": nflow_train, "sample": nflow_sample},
             "torch": torch_fns(twin.log_prob, nll, twin.sample)}
    if use_compile:
        import torch._dynamo
        torch._dynamo.config.cache_size_limit = 64
        impls["compiled"] = torch_fns(torch.compile(twin.log_prob), torch.compile(nll), torch.compile(twin.sample))

    for op in ops:
        res = {"times": {}, "cpu": {}}
        for name, fns in impls.items():  # warm-up; a compiled function compiles on its first call
            t = time.perf_counter()
            try:
                fns[op]()
            except Exception as e:  # torch.compile can fail on a construct; the row says so
                res.setdefault("errors", {})[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                continue
            if name == "compiled":
                res["compile_s"] = time.perf_counter() - t
            for _ in range(warmup - 1):
                fns[op]()
            res["times"][name], res["cpu"][name] = [], []
        for _ in range(repeats):  # the implementations alternate within every round
            for name in res["times"]:
                c, t = time.process_time(), time.perf_counter()
                impls[name][op]()
                res["times"][name].append(time.perf_counter() - t)
                res["cpu"][name].append(time.process_time() - c)
        res["median"] = {k: _median(v) for k, v in res["times"].items()}
        res["cpu_median"] = {k: _median(v) for k, v in res["cpu"].items()}
        res["min"] = {k: min(v) for k, v in res["times"].items() if v}
        out["ops"][op] = res
        print(f"[{workload}] {op}: " + ", ".join(f"{k} {v:.3f} s" for k, v in res["median"].items()),
              file=sys.stderr, flush=True)
    out["load_end"] = _load_avg()
    print(json.dumps(out))


# ============================================================================================ child: memory
def child_memory(impl, steps, batch):
    """Peak RSS of Glow(K=steps) training: fresh process, prints one JSON object."""
    import numpy as np
    shape = (1, 28, 28)
    x_np, _ = mnist_batch(batch)
    rss_imports = None
    if impl == "torch":
        import torch
        from benchmarks.torch_models import Glow
        torch.set_num_threads(THREADS)
        rss_imports = _rss_mib()
        torch.manual_seed(0)
        model = Glow(shape, levels=2, steps=steps, hidden=256)
        x = torch.from_numpy(x_np)
        with torch.no_grad():
            model.log_prob(x)  # ActNorm init
        opt = torch.optim.Adam(model.parameters(), lr=LR, fused=TORCH_FUSED_ADAM)

        def step():
            opt.zero_grad(set_to_none=True)
            (-model.log_prob(x).mean()).backward()
            opt.step()
    else:
        import nflow
        import nflow.functional as F
        from nflow.models import Glow
        from nflow.optim import Adam
        rss_imports = _rss_mib()
        nflow.seed(0)
        model = Glow(shape, levels=2, steps=steps, hidden=256)
        with nflow.no_grad():
            model.log_prob(x_np)
        opt = Adam(model.parameters(), lr=LR)

        def step():
            opt.zero_grad()
            F.mean(-model.log_prob(x_np)).backward()
            opt.step()
    rss_setup = _rss_mib()
    times = []
    for _ in range(2):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    print(json.dumps({"impl": impl, "K": steps, "rss_imports_mib": rss_imports, "rss_setup_mib": rss_setup,
                      "peak_rss_mib": _peak_rss_mib(), "step_s": times, "np": np.__version__}))


# ============================================================================================ child: profile
def child_profile(workload, batch, samples, top=40):
    """cProfile of one nflow call per op (after a warm-up call); prints one JSON object. No torch here."""
    import cProfile
    import pstats

    import nflow
    import nflow.functional as F
    from nflow.models import NICE, Glow, RealNVP
    from nflow.optim import Adam

    kind, kwargs, _, ops = WORKLOADS[workload]
    nflow.seed(0)
    model = {"glow": Glow, "realnvp": RealNVP, "nice": NICE}[kind](**kwargs)
    x_np, _ = mnist_batch(batch)
    opt = Adam(model.parameters(), lr=LR)

    def log_prob():
        with nflow.no_grad():
            model.log_prob(x_np)

    def train_step():
        opt.zero_grad()
        F.mean(-model.log_prob(x_np)).backward()
        opt.step()

    fns = {"log_prob": log_prob, "train_step": train_step, "sample": lambda: model.sample(samples)}
    out = {"workload": workload, "batch": batch, "samples": samples, "ops": {}}
    for op in ops:
        fns[op]()
        prof = cProfile.Profile()
        t = time.perf_counter()
        prof.runcall(fns[op])
        wall = time.perf_counter() - t
        stats = pstats.Stats(prof).stats
        rows = sorted(((v[2], v[3], v[1], f"{'/'.join(Path(k[0]).parts[-2:])}:{k[1]}({k[2]})") for k, v in stats.items()),
                      reverse=True)[:top]
        out["ops"][op] = {"wall": wall, "top": [{"tottime": a, "cumtime": b, "ncalls": c, "function": f}
                                                for a, b, c, f in rows]}
    print(json.dumps(out))


# ============================================================================================ parent
def child_env(setting, cache_dir=None):
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    env.update(THREAD_ENV)
    env.update(SETTINGS[setting])
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONWARNINGS"] = "ignore"
    if cache_dir:
        env["TORCHINDUCTOR_CACHE_DIR"] = cache_dir  # a fresh cache: compile times are cold
    return env


def run_child(args, setting, timeout, cache_dir=None):
    cmd = [sys.executable, "-m", "benchmarks.run"] + args
    t = time.perf_counter()
    done = subprocess.run(cmd, env=child_env(setting, cache_dir), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    sys.stderr.write(done.stderr if done.returncode else "".join(
        line + "\n" for line in done.stderr.splitlines() if line.startswith("[")))
    if done.returncode:
        raise RuntimeError(f"child {' '.join(args)} ({setting}) failed with code {done.returncode}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["child_wall_s"] = time.perf_counter() - t
    return result


def measure(args):
    results = {"speed": [], "memory": [], "profiles": [], "notes": []}
    settings = [s for s in args.settings.split(",") if s]
    workloads = [w for w in (args.only.split(",") if args.only else WORKLOADS)
                 if not args.quick or w in ("glow-mnist", "realnvp-mnist", "nice-mnist")]
    repeats, warmup = (3, 1) if args.quick else (args.repeats, 2)
    depths = tuple(DEPTHS)
    for setting in settings:
        for w in workloads:
            compile_it = args.compile and w in COMPILE_WORKLOADS
            cache = tempfile.mkdtemp(prefix="nflow-bench-inductor-") if compile_it else None
            batch = WORKLOADS[w][2] // QUICK_SHRINK if args.quick else WORKLOADS[w][2]
            samples = SAMPLES // QUICK_SHRINK if args.quick else SAMPLES
            warm = warmup if w in COMPILE_WORKLOADS else 1  # deep Glows: one warm-up step (Numba, Adam state)
            base = ["--child-speed", w, str(repeats), str(warm), str(batch), str(samples)]
            try:
                r = run_child(base + (["--compile"] if compile_it else []), setting, args.timeout, cache)
            except subprocess.TimeoutExpired:
                results["notes"].append(f"{w} ({setting}): with torch.compile the run passed {args.timeout} s; "
                                        "re-run without it")
                r = run_child(base, setting, args.timeout)
                r["compile_timeout"] = args.timeout
            finally:
                if cache:
                    shutil.rmtree(cache, ignore_errors=True)
            r["setting"] = setting
            results["speed"].append(r)
        if args.profile and setting == settings[-1]:
            for w in [w for w in workloads if w in COMPILE_WORKLOADS]:
                batch = WORKLOADS[w][2] // QUICK_SHRINK if args.quick else WORKLOADS[w][2]
                samples = SAMPLES // QUICK_SHRINK if args.quick else SAMPLES
                p = run_child(["--child-profile", w, str(batch), str(samples)], setting, args.timeout)
                p["setting"] = setting
                results["profiles"].append(p)
        if args.memory:
            for k in depths:
                for impl in ("nflow", "torch"):
                    m = run_child(["--child-memory", impl, str(k), "64"], setting, args.timeout)
                    m["setting"] = setting
                    results["memory"].append(m)
                    print(f"[memory] K={k} {impl} ({setting}): peak {m['peak_rss_mib']:.0f} MiB", file=sys.stderr,
                          flush=True)
    return results


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
        dirty = subprocess.run(["git", "status", "--porcelain", "nflow", "kernels", "benchmarks"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        commit += " (+ uncommitted changes in nflow/, kernels/ or benchmarks/)" if dirty else ""
    except OSError:
        commit = "unknown"
    return {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), "cpu": cpu,
            "python": platform.python_version(), "numpy": np.__version__, "torch": torch_version, "commit": commit}


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
        f"nflow at commit {info['commit']}, backend `{first.get('nflow_backend', '?')}`",
        f"- Threads: 2 on each side (torch.set_num_threads(2); OPENBLAS/OMP/MKL/NUMBA_NUM_THREADS=2 before NumPy "
        f"loads). OpenBLAS core type at run time: " + ", ".join(f"{s}: {c}" for s, c in cores.items()),
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


def write_section(text):
    """Replace this runner's section of RESULTS.md (other sections belong to other benchmarks)."""
    body = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nEach section is written by the " \
                                                         "benchmark named in it; rerun that one to refresh it.\n"
    start = body.find(SECTION)
    if start < 0:
        body = body.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    else:
        nxt = body.find("\n## ", start + len(SECTION))
        end = len(body) if nxt < 0 else nxt + 1
        body = body[:start] + text.rstrip("\n") + "\n" + ("\n" + body[end:] if nxt >= 0 else "")
    tmp = RESULTS.with_suffix(".md.tmp")
    tmp.write_text(body)
    os.replace(tmp, RESULTS)


TARGETS = {"eager": 0.7, "compile": 1.0, "roofline": 1.6}  # issue 7, Glow on the CPU
DATA_MOVEMENT = ("im2col", "col2im", "_pad", "pad)", "ascontiguousarray", "'copy'", "concatenate", "_set_pad_area")
GEMM_CALLERS = ("ops/conv.py", "ops/linalg.py", "tensordot")


def target_lines(results):
    """Issue 7's Glow targets, checked against this run's figures."""
    rate = best_gemm_rate(results)
    lines = []
    for r in results["speed"]:
        if r["workload"] != "glow-mnist":
            continue
        for op, res in r["ops"].items():
            n, t, c = (res["median"].get(k) for k in ("nflow", "torch", "compiled"))
            if not (n and t):
                continue
            cells = [f"nflow/eager {n / t:.2f} ({'met' if n / t <= TARGETS['eager'] else 'not met'})"]
            if c:
                cells.append(f"nflow/compile {n / c:.2f} ({'met' if n / c <= TARGETS['compile'] else 'not met'})")
            if op == "train_step":
                roof = n / (r["flops"][op] / rate)
                cells.append(f"nflow/roofline {roof:.2f} ({'met' if roof <= TARGETS['roofline'] else 'not met'})")
            lines.append(f"- glow-mnist {op} (`{r['setting']}`): " + ", ".join(cells))
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
    targets = target_lines(results)
    if targets:
        parts += [f"Issue 7's targets for Glow (nflow/eager ≤ {TARGETS['eager']}, nflow/compile ≤ {TARGETS['compile']},"
                  f" train step ≤ {TARGETS['roofline']}× the roofline), from the table below:", ""] + targets + [""]
    parts += ["### Time per operation (wall clock, median)", "", markdown(sh, sr), ""]
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
                  "`own time` of `ops/conv.py` forward/backward and `ops/linalg.py` is mostly the NumPy GEMM they call "
                  "(C calls are charged to their Python caller); im2col/col2im, padding and contiguous copies are the "
                  "data movement a convolution written as GEMMs adds around them.", ""]
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, no torch.compile, no deep Glows (minutes)")
    parser.add_argument("--compile", dest="compile", action="store_true", default=None,
                        help="also time torch.compile (default: on in full mode, off in quick mode)")
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--memory", dest="memory", action="store_true", default=None,
                        help="measure peak memory at K = 8, 16, 32 (default: on in full mode, off in quick mode)")
    parser.add_argument("--no-memory", dest="memory", action="store_false")
    parser.add_argument("--settings", default="default,tuned", help="comma-separated subset of " + ",".join(SETTINGS))
    parser.add_argument("--only", default="", help="comma-separated workloads: " + ",".join(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds in full mode (default 10)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per child process")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave RESULTS.md alone")
    parser.add_argument("--json", default="", help="also save the raw measurements to this file")
    parser.add_argument("--child-speed", nargs=5, metavar=("WORKLOAD", "REPEATS", "WARMUP", "BATCH", "SAMPLES"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--profile", dest="profile", action="store_true", default=None,
                        help="cProfile nflow's calls (default: on in full mode, off in quick mode)")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--from-json", default="", help="render the report from --json file(s), no measuring; with "
                        "several (comma-separated) the first is the main run, the others follow as additional runs")
    parser.add_argument("--child-profile", nargs=3, metavar=("WORKLOAD", "BATCH", "SAMPLES"), help=argparse.SUPPRESS)
    parser.add_argument("--child-memory", nargs=3, metavar=("IMPL", "K", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_speed:
        w, repeats, warmup, batch, samples = args.child_speed
        return child_speed(w, int(repeats), int(warmup), bool(args.compile), int(batch), int(samples))
    if args.child_profile:
        w, batch, samples = args.child_profile
        return child_profile(w, int(batch), int(samples))
    if args.child_memory:
        impl, k, batch = args.child_memory
        return child_memory(impl, int(k), int(batch))
    if args.compile is None:
        args.compile = not args.quick
    if args.memory is None:
        args.memory = not args.quick
    if args.profile is None:
        args.profile = not args.quick
    command = ("python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    if args.from_json:
        runs = [load_run(path) for path in args.from_json.split(",")]
        main_run, extra = runs[0], runs[1:]
    else:
        info = run_info()
        main_run = {"results": measure(args), "command": command, "quick": args.quick, "info": info}
        extra = []
        if args.json:
            Path(args.json).write_text(json.dumps(main_run, indent=1))
    sources = []
    for path in (args.from_json.split(",") if args.from_json else []):
        p = Path(path).resolve()
        sources.append(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p))
    text = report(main_run["results"], main_run["command"], main_run["quick"], main_run["info"], extra, sources)
    print(text)
    if not args.no_write:
        write_section(text)
        print(f"\n(section rewritten in {RESULTS})", file=sys.stderr)


if __name__ == "__main__":
    main()

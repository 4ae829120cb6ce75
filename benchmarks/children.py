"""The measurements, each run inside a fresh child process whose environment is already set: timings of one
workload (nflow, PyTorch eager, ``torch.compile``), peak memory of training steps, a cProfile of nflow's calls.
Each prints one JSON object on its last line."""
import json
import os
import resource
import sys
import time
from pathlib import Path

from benchmarks.workloads import LR, SAMPLES, THREADS, TORCH_FUSED_ADAM, WORKLOADS, mnist_batch, seeded_model

# Seconds of rest before every timed call. OpenBLAS's idle worker spins for ~0.1 s after each threaded call, so the
# call timed next shares the second core with it: measured with PyTorch eager's log_prob right after a 2-thread
# OpenBLAS product, RealNVP 194 -> 264 ms, Glow 413 -> 497 ms, and back to 204 and 422 after a 0.2 s pause (nflow
# right after a PyTorch call: within noise). Without the rest, every PyTorch round that followed an nflow round on
# OpenBLAS was timed slower than it is (issue 12, seventh session).
SETTLE_S = 0.2

# ============================================================================================ shared helpers
def _load_avg():
    return round(os.getloadavg()[0], 2)


def _rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


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
    from nflow.optim import Adam

    torch.set_num_threads(THREADS)
    _, _, full_batch, ops = WORKLOADS[workload]
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

    model = seeded_model(workload)
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
                time.sleep(SETTLE_S)  # let the last call's idle threads go quiet (see SETTLE_S)
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
    from nflow.optim import Adam

    ops = WORKLOADS[workload][3]
    model = seeded_model(workload)
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

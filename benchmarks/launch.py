"""The parent side of a run: the environment of each child process, starting it, and the loop over settings and
workloads that collects the children's JSON into one results dict."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from benchmarks.machine import cpu_flags
from benchmarks.workloads import (CLEARED_ENV, COMPILE_WORKLOADS, DEPTHS, QUICK_SHRINK, ROOT, SAMPLES, SETTINGS,
                                  THREAD_ENV, WORKLOADS, setting_unavailable)

# ============================================================================================ parent
class ChildFailed(RuntimeError):
    """A child process ended without its JSON line; the message says which and how."""


def exit_reason(returncode):
    """'exited with code 3' or 'was killed by SIGILL (an instruction this CPU does not have)'."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else f"signal {-returncode}"
    return f"was killed by {name}" + (" (an instruction this CPU does not have)" if name == "SIGILL" else "")


def usable_settings(requested, flags, notes):
    """The requested settings that can run on a CPU with these feature flags; each one skipped is said, with why."""
    usable = []
    for setting in requested:
        reason = setting_unavailable(setting, flags)
        if reason:
            notes.append(f"Setting '{setting}' skipped: {reason}.")
            print(f"[settings] '{setting}' skipped: {reason}", file=sys.stderr, flush=True)
        else:
            usable.append(setting)
    return usable


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
        raise ChildFailed(f"{' '.join(args)} ({setting}) {exit_reason(done.returncode)}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["child_wall_s"] = time.perf_counter() - t
    return result


def survive(run, notes):
    """``run()``'s result, or None with a note when its child failed."""
    try:
        return run()
    except ChildFailed as failure:
        notes.append(f"Failed: {failure}.")
        return None


def measure(args):
    results = {"speed": [], "memory": [], "profiles": [], "notes": []}
    settings = usable_settings([s for s in args.settings.split(",") if s], cpu_flags(), results["notes"])
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
                r = survive(lambda: run_child(base, setting, args.timeout), results["notes"])
                if r:
                    r["compile_timeout"] = args.timeout
            except ChildFailed as failure:  # one child's crash is a note, not the end of the run
                results["notes"].append(f"Failed: {failure}.")
                r = None
            finally:
                if cache:
                    shutil.rmtree(cache, ignore_errors=True)
            if r is None:
                continue
            r["setting"] = setting
            results["speed"].append(r)
        if args.profile and setting == settings[-1]:
            for w in [w for w in workloads if w in COMPILE_WORKLOADS]:
                batch = WORKLOADS[w][2] // QUICK_SHRINK if args.quick else WORKLOADS[w][2]
                samples = SAMPLES // QUICK_SHRINK if args.quick else SAMPLES
                p = survive(lambda: run_child(["--child-profile", w, str(batch), str(samples)], setting,
                                              args.timeout), results["notes"])
                if p is None:
                    continue
                p["setting"] = setting
                results["profiles"].append(p)
        if args.memory:
            for k in depths:
                for impl in ("nflow", "torch"):
                    m = survive(lambda: run_child(["--child-memory", impl, str(k), "64"], setting, args.timeout),
                                results["notes"])
                    if m is None:
                        continue
                    m["setting"] = setting
                    results["memory"].append(m)
                    print(f"[memory] K={k} {impl} ({setting}): peak {m['peak_rss_mib']:.0f} MiB", file=sys.stderr,
                          flush=True)
    return results

"""Kernels written in LLVM IR, compiled once per process for the CPU it runs on (llvmlite, which Numba is built on).

Why not Numba for these: a GEMM micro-kernel keeps a block of the output (here 6 × 64 floats, 24 vector registers)
in registers while it runs over the inner dimension, and issues one broadcast and four fused multiply-adds per
loaded value. Numba has no vector types, and LLVM's loop vectoriser, given scalar loops, picks 256-bit vectors on
AVX-512 parts and cannot keep an output block in registers when the output is also an array it stores to: the
GEMM-shaped work written as Numba loops ran at 20–40 GFLOP/s on one core (issue 12's sessions); RealNVP's
64-channel 3x3 products in this IR at 114 on one core (a prototype), its training step at 132–153 on two
(``python -m benchmarks.own_conv``; ``benchmarks/RESULTS.md``). The IR names vectors of :data:`LANES` floats; LLVM
splits each into what the CPU has (one AVX-512 register, two AVX2 ones, four NEON ones), so the same text runs, and
computes the same, on every CPU; it is fast only where the register block fits in the registers, so the width
and the blocks are chosen from the CPU's features (:func:`vector_lanes`; :data:`PAYS`).

:func:`compile_function` turns IR text into a callable (``ctypes``, which releases the GIL for the call, so two
Python threads can run kernels at once). :data:`AVAILABLE` says whether this process can compile at all (llvmlite
present, a native target, a trivial function compiled and run); :data:`UNAVAILABLE_REASON` says why not, and the
callers fall back to their BLAS paths then.
"""
import ctypes
import os
import warnings

# The vector width the micro-kernels are built for, by the CPU's features (read at run time, never assumed): their
# register blocks (``kernels/cpu/gemm_ir.py``) must fit in the registers that width comes with.
FEATURE_LANES = ((("avx512f",), 16), (("avx2", "fma"), 8))  # 32 registers of 16 floats; 16 registers of 8
# 8 or 16: build that width whatever the CPU (how the tests check both on one machine; a width the CPU lacks still
# runs, LLVM splitting its vectors, only slowly)
LANES_ENV = "NFLOW_VECTOR_LANES"


def vector_lanes(features):
    """The floats per vector that nflow's micro-kernels are built for on a CPU with ``features`` (LLVM's feature
    names -> bool, as llvmlite's host query gives them): 16 with AVX-512F, 8 with AVX2 and FMA, None on any other
    CPU (Arm, older x86), where they have not been measured and the convolutions keep their BLAS paths. The width
    matters: compiled for Zen 3 (``znver3``, AVX2) on an AVX-512 Xeon, the 16-float blocks spill and RealNVP's
    training step took 1.62x its time on the BLAS paths, with the 8-float blocks 0.69-0.71x (benchmarks/RESULTS.md,
    issue 12, tenth session)."""
    for needed, lanes in FEATURE_LANES:
        if all(features.get(feature, False) for feature in needed):
            return lanes
    return None


def _host_lanes():
    forced = os.environ.get(LANES_ENV, "")
    if forced in ("8", "16"):
        return int(forced)
    if forced:  # a typo in the environment should not stop the import: say so once, and read the CPU instead
        warnings.warn(f"{LANES_ENV}={forced!r} ignored: nflow's micro-kernels are built for 8 or 16 floats per "
                      "vector; using the CPU's own width", stacklevel=2)
    try:
        import llvmlite.binding as llvm
        return vector_lanes(llvm.get_host_cpu_features())
    except Exception:  # llvmlite missing, or unable to read this host's features (it raises on some platforms)
        return None


HOST_LANES = _host_lanes()
LANES = HOST_LANES or 16  # floats per vector in the IR; where no width was chosen the kernels still build and run

_ENGINES = []  # the execution engines own the compiled code: keep them for the life of the process
_TARGET_MACHINE = None


def _target_machine():
    global _TARGET_MACHINE
    if _TARGET_MACHINE is None:
        import llvmlite.binding as llvm
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        target = llvm.Target.from_default_triple()
        # the host's own CPU name and features: AVX-512 where the CPU has it, AVX2 or NEON elsewhere
        _TARGET_MACHINE = target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                                       features=llvm.get_host_cpu_features().flatten(), opt=3)
    return _TARGET_MACHINE


def compile_function(ir, name, argtypes):
    """The function ``name`` of the LLVM IR module text ``ir``, compiled for this CPU, as a ctypes callable
    returning nothing and taking ``argtypes`` (ctypes types)."""
    import llvmlite.binding as llvm
    module = llvm.parse_assembly(ir)
    module.verify()
    engine = llvm.create_mcjit_compiler(module, _target_machine())
    engine.finalize_object()
    _ENGINES.append(engine)
    return ctypes.CFUNCTYPE(None, *argtypes)(engine.get_function_address(name))


_PROBE = """
define void @probe(ptr noalias %out) nounwind {
  store float 2.0, ptr %out
  ret void
}
"""


def _probe():
    """(True, None) if a function compiled here runs and writes what it should, else (False, why not)."""
    try:
        probe = compile_function(_PROBE, "probe", [ctypes.c_void_p])
        out = ctypes.c_float(0.0)
        probe(ctypes.addressof(out))
    except Exception as error:  # any failure (no llvmlite, no native target, an IR it cannot parse) means: no JIT
        return False, f"cannot compile LLVM IR in this process: {type(error).__name__}: {error}"
    if out.value != 2.0:
        return False, f"a compiled probe wrote {out.value}, not 2.0"
    return True, None


AVAILABLE, UNAVAILABLE_REASON = _probe()

# Whether the own kernels pay on this CPU: they compile here and a vector width was chosen for it. The convolutions'
# dispatch rules (``kernels/cpu/conv.py``) pick them only then, and keep their BLAS paths elsewhere.
PAYS = AVAILABLE and HOST_LANES is not None

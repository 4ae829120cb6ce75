"""The micro-kernels of ``kernels/cpu/conv_jit.py`` as LLVM IR text, and their compiled functions
(``kernels/cpu/jit.py`` compiles them for this CPU on first use). Read ``conv_jit.py``'s docstring for what each
computes and why; here is how: explicit vectors of :data:`LANES` floats, fused multiply-adds
(``llvm.fma``), and loops written as basic blocks whose phi nodes carry the register block from one iteration to
the next — the thing LLVM's loop vectoriser cannot be made to do from scalar loops.

Kernels (arguments are pointers and int64 counts; every loop runs at least once, so callers pass non-empty ranges
of whole strips):

- ``packed_gemm(a, mblocks, k, offs, x, n0, n1, y, ldy, panel)`` and ``panel_gemm`` (same arguments) —
  :func:`_packed_gemm_ir`;
- ``direct_gemm(a, mblocks, k, offs, x, n0, n1, y, ldy)`` — :func:`_direct_gemm_ir`, and
  ``direct_gemm_epilogue`` (the same and ``bias, inside, cells, relu``), which finishes a padded output as it stores;
- ``weight_grad(g, ldg, grows, oblocks, offs, kblocks, x, q0, q1, c, ldc)`` — :func:`_weight_grad_ir`.
"""
import ctypes

from nflow.kernels.cpu import jit
from nflow.kernels.cpu.jit import LANES

# The register blocks for each vector width (jit.LANES, chosen from the CPU): the GEMM kernel's MR output rows × NV
# vectors of anchors, and the weight-gradient kernel's MO output channels × NK (tap, channel) columns. 24
# accumulators of 16 floats in AVX-512's 32 registers (6 × 4 against 4 × 6 for the weight gradient: 64 -> 64
# channels' dW 35.5-35.9 ms against 37.7-38.9 at 28x28, 9.9-10.6 against 11.5-11.6 at 14x14); 12 of 8 floats in
# AVX2's 16 (the blocks of 16 floats spill there; 4 × 3 products against 6 × 2: RealNVP's step 482-485 ms against
# 514-540, built for znver3; benchmarks/RESULTS.md, issue 12, tenth session).
BLOCKS = {16: ((6, 4), (6, 4)), 8: ((4, 3), (3, 4))}
(MR, NV), (MO, NK) = BLOCKS[LANES]
NR = NV * LANES               # anchors per strip: 64 with 16-float vectors, 24 with 8-float ones
KC = 128                      # rows of the k packed at a time: KC × NR floats a strip (32 KB at NR = 64), in L1
PANEL_STRIPS = 16             # strips packed at a time for thin products: rows read 4 KB at a run; 512 KB, in L2
CHUNK = 1024                  # pixels per weight-gradient chunk: 6 + 4 rows of 4 KB stay in L1 (256: 42 ms, 2048: 42)
ALIGN = 64                    # bytes: packed blocks start on a cache line


def _vector():
    return f"<{LANES} x float>"


def _fma_declaration():
    return f"declare {_vector()} @llvm.fma.v{LANES}f32({_vector()}, {_vector()}, {_vector()})"


def _register_block(lines, loop, entry, addresses, b_vectors, a_row, initial=lambda r, j: "zeroinitializer"):
    """Emit the body of an MR × NV register-block loop labelled ``loop`` (entered from ``entry``, its counter's
    phi already emitted): phi nodes for the accumulators, then the ``addresses`` lines, the NV vectors
    ``b_vectors(lines)`` loads, MR broadcasts of the floats at ``a_row`` + r, and the fused multiply-adds; the new
    sums are %sum{r}.{j}."""
    vt = _vector()
    for r in range(MR):
        for j in range(NV):
            lines.append(f"  %acc{r}.{j} = phi {vt} [{initial(r, j)}, %{entry}], [%sum{r}.{j}, %{loop}]")
    lines += addresses
    b_vectors(lines)
    for r in range(MR):
        lines += [f"  %ap{r} = getelementptr float, ptr {a_row}, i64 {r}", f"  %as{r} = load float, ptr %ap{r}",
                  f"  %ai{r} = insertelement {vt} poison, float %as{r}, i32 0",
                  f"  %av{r} = shufflevector {vt} %ai{r}, {vt} poison, <{LANES} x i32> zeroinitializer"]
        for j in range(NV):
            lines.append(f"  %sum{r}.{j} = call {vt} @llvm.fma.v{LANES}f32({vt} %av{r}, {vt} %b{j}, {vt} %acc{r}.{j})")


def _load_vectors(lines, base, align):
    for j in range(NV):
        lines += [f"  %bp{j} = getelementptr float, ptr {base}, i64 {j * LANES}",
                  f"  %b{j} = load {_vector()}, ptr %bp{j}, align {align}"]


def _tile_addresses(lines, column="%n"):
    """%yp{r}.{j}: the address of y[(mb·MR + r)·ldy + n + j·LANES], the output tile of block mb in the strip
    starting at anchor ``column`` (an IR value)."""
    lines.append(f"  %row0 = mul i64 %mb, {MR}")
    for r in range(MR):
        lines += [f"  %row{r}.i = add i64 %row0, {r}", f"  %yo{r} = mul i64 %row{r}.i, %ldy",
                  f"  %yn{r} = add i64 %yo{r}, {column}"]
        for j in range(NV):
            lines += [f"  %yi{r}.{j} = add i64 %yn{r}, {j * LANES}",
                      f"  %yp{r}.{j} = getelementptr float, ptr %y, i64 %yi{r}.{j}"]


def _store_block(lines, values="%sum"):
    """Store the tile ``values`` (%sum{r}.{j} by default) at the tile addresses."""
    for r in range(MR):
        for j in range(NV):
            lines.append(f"  store {_vector()} {values}{r}.{j}, ptr %yp{r}.{j}, align 4")


_GEMM_ARGUMENTS = ("ptr noalias %a, i64 %mblocks, i64 %k, ptr noalias %offs, ptr noalias %x, i64 %n0, i64 %n1, "
                   "ptr noalias %y, i64 %ldy")


def _packed_gemm_ir(name="packed_gemm", strips=1):
    """``name(a, mblocks, k, offs, x, n0, n1, y, ldy, panel)``: for each panel of up to ``strips``
    strips of NR anchors in [n0, n1) and each chunk of KC rows of the k, copy the chunk's shifted rows of the
    panel's strips into ``panel`` (strip-major: strip s at s·KC·NR, its rows NR floats apart), then, strip by strip,
    for every block mb of MR rows add Σ_kk a[mb, kk, r] · panel[s, kk] to the tile y[mb·MR + r, n:n+NR] (set, on
    the first chunk); a packed as (mblocks, k, MR). ``packed_gemm`` packs one strip at a time: its panel stays in
    L1 for all its blocks, which a product with many rows wants. ``panel_gemm`` packs PANEL_STRIPS at a time,
    reading each shifted row PANEL_STRIPS·NR floats at a run, which the prefetchers follow; a thin product (a few
    blocks, little reuse of each strip) read 256 bytes of each of 64 rows at a time they did not, and ran 20-30 %
    slower in a RealNVP step (``conv_jit._products`` picks; ``benchmarks/RESULTS.md``, issue 12). The count is
    a constant of the compiled code: as an argument, it cost the one-strip kernel 8 %."""
    vt = _vector()
    lines = [_fma_declaration(),
             f"define void @{name}({_GEMM_ARGUMENTS}, ptr noalias %panel) nounwind {{",
             "entry:", f"  %kmr = mul i64 %k, {MR}", "  br label %panel.start",
             "panel.start:", "  %n = phi i64 [%n0, %entry], [%pend, %chunks.done]",
             f"  %pe.try = add i64 %n, {strips * NR}",
             "  %pe.short = icmp slt i64 %pe.try, %n1",
             "  %pend = select i1 %pe.short, i64 %pe.try, i64 %n1", "  br label %chunk",
             "chunk:", "  %kc = phi i64 [0, %panel.start], [%kc.next, %strips.done]",
             f"  %kc.try = add i64 %kc, {KC}", "  %kc.short = icmp slt i64 %kc.try, %k",
             "  %kend = select i1 %kc.short, i64 %kc.try, i64 %k", "  %klen = sub i64 %kend, %kc",
             "  %first = icmp eq i64 %kc, 0", "  br label %pack",
             "pack:", "  %pk = phi i64 [%kc, %chunk], [%pk.next, %packed.row]",
             "  %offp = getelementptr i64, ptr %offs, i64 %pk", "  %off = load i64, ptr %offp",
             "  %pr = sub i64 %pk, %kc", f"  %prow.i = mul i64 %pr, {NR}", "  br label %pack.strip",
             "pack.strip:", "  %ps = phi i64 [%n, %pack], [%ps.next, %pack.strip]",
             "  %src.i = add i64 %off, %ps", "  %src = getelementptr float, ptr %x, i64 %src.i",
             "  %pss = sub i64 %ps, %n", f"  %pso.i = mul i64 %pss, {KC}",  # (ps - n) / NR strips, KC·NR each
             "  %dst.i = add i64 %pso.i, %prow.i", "  %dst = getelementptr float, ptr %panel, i64 %dst.i"]
    for j in range(NV):
        lines += [f"  %ps{j} = getelementptr float, ptr %src, i64 {j * LANES}",
                  f"  %pv{j} = load {vt}, ptr %ps{j}, align 4",
                  f"  %pd{j} = getelementptr float, ptr %dst, i64 {j * LANES}",
                  f"  store {vt} %pv{j}, ptr %pd{j}, align {ALIGN}"]
    lines += [f"  %ps.next = add i64 %ps, {NR}", "  %ps.done = icmp sge i64 %ps.next, %pend",
              "  br i1 %ps.done, label %packed.row, label %pack.strip",
              "packed.row:", "  %pk.next = add i64 %pk, 1", "  %packed = icmp eq i64 %pk.next, %kend",
              "  br i1 %packed, label %strip, label %pack",
              "strip:", "  %sn = phi i64 [%n, %packed.row], [%sn.next, %blocks.done]",
              "  %sns = sub i64 %sn, %n", f"  %sbo.i = mul i64 %sns, {KC}",
              "  %sb = getelementptr float, ptr %panel, i64 %sbo.i", "  br label %block",
              "block:", "  %mb = phi i64 [0, %strip], [%mb.next, %store]",
              "  %ab.i = mul i64 %mb, %kmr", f"  %ac.i = mul i64 %kc, {MR}", "  %abc.i = add i64 %ab.i, %ac.i",
              "  %ab = getelementptr float, ptr %a, i64 %abc.i"]
    _tile_addresses(lines, "%sn")
    for r in range(MR):  # the tile so far (garbage on the first chunk, where it is not used)
        for j in range(NV):
            lines += [f"  %old{r}.{j} = load {vt}, ptr %yp{r}.{j}, align 4",
                      f"  %init{r}.{j} = select i1 %first, {vt} zeroinitializer, {vt} %old{r}.{j}"]
    lines += ["  br label %inner", "inner:", "  %kk = phi i64 [0, %block], [%kk.next, %inner]"]
    addresses = [f"  %b.i = mul i64 %kk, {NR}", "  %bk = getelementptr float, ptr %sb, i64 %b.i",
                 f"  %a.i = mul i64 %kk, {MR}", "  %ak = getelementptr float, ptr %ab, i64 %a.i"]
    _register_block(lines, "inner", "block", addresses, lambda ls: _load_vectors(ls, "%bk", ALIGN), "%ak",
                    initial=lambda r, j: f"%init{r}.{j}")
    lines += ["  %kk.next = add i64 %kk, 1", "  %kdone = icmp eq i64 %kk.next, %klen",
              "  br i1 %kdone, label %store, label %inner", "store:"]
    _store_block(lines)
    lines += ["  %mb.next = add i64 %mb, 1", "  %mbdone = icmp eq i64 %mb.next, %mblocks",
              "  br i1 %mbdone, label %blocks.done, label %block",
              "blocks.done:", f"  %sn.next = add i64 %sn, {NR}", "  %sndone = icmp sge i64 %sn.next, %pend",
              "  br i1 %sndone, label %strips.done, label %strip",
              "strips.done:", f"  %kc.next = add i64 %kc, {KC}", "  %kcdone = icmp sge i64 %kc.next, %k",
              "  br i1 %kcdone, label %chunks.done, label %chunk",
              "chunks.done:", "  %ndone = icmp sge i64 %pend, %n1",
              "  br i1 %ndone, label %exit, label %panel.start",
              "exit:", "  ret void", "}"]
    return "\n".join(lines)


def _direct_gemm_ir(name="direct_gemm", epilogue=False):
    """``direct_gemm(a, mblocks, k, offs, x, n0, n1, y, ldy)``: the same products as :func:`_packed_gemm_ir`,
    reading the shifted rows where they lie, one block of MR rows at a time over every strip. For few rows or a
    short k, where copying a strip would cost as much as using it.

    With ``epilogue`` (``direct_gemm_epilogue``, four more arguments ``bias, inside, cells, relu``), each tile is
    finished as it is stored, for an output laid out on its own padded grid (``conv_jit._padded_output``):

        y[r, q] = (max(Σ + bias[r], 0) if relu else Σ + bias[r])  where inside[q mod cells] > 0,  else 0

    ``inside`` holds one image's cells (1 on its pixels, 0 on its borders) and then NR more, continuing
    cyclically, so a strip that runs into the next image reads its mask in one piece; a select, so the junk the
    border cells computed (NaN included, next to a NaN pixel) never survives. max is a select too: NaN + b stays
    NaN, as in the twin. It saves the pass over the output that set the borders and the bias + ReLU afterwards."""
    extra = ", ptr noalias %bias, ptr noalias %inside, i64 %cells, i64 %relu" if epilogue else ""
    lines = [_fma_declaration(), f"define void @{name}({_GEMM_ARGUMENTS}{extra}) nounwind {{",
             "entry:", f"  %kmr = mul i64 %k, {MR}"]
    if epilogue:
        lines.append("  %relu.on = icmp ne i64 %relu, 0")
    lines += ["  br label %block",
              "block:", "  %mb = phi i64 [0, %entry], [%mb.next, %strips.done]",
              "  %ab.i = mul i64 %mb, %kmr", "  %ab = getelementptr float, ptr %a, i64 %ab.i", "  br label %strip",
              "strip:", "  %n = phi i64 [%n0, %block], [%n.next, %store]", "  br label %inner",
              "inner:", "  %kk = phi i64 [0, %strip], [%kk.next, %inner]"]
    addresses = ["  %offp = getelementptr i64, ptr %offs, i64 %kk", "  %off = load i64, ptr %offp",
                 "  %src.i = add i64 %off, %n", "  %src = getelementptr float, ptr %x, i64 %src.i",
                 f"  %a.i = mul i64 %kk, {MR}", "  %ak = getelementptr float, ptr %ab, i64 %a.i"]
    _register_block(lines, "inner", "strip", addresses, lambda ls: _load_vectors(ls, "%src", 4), "%ak")
    lines += ["  %kk.next = add i64 %kk, 1", "  %kdone = icmp eq i64 %kk.next, %k",
              "  br i1 %kdone, label %store, label %inner", "store:"]
    _tile_addresses(lines)
    if epilogue:
        _finish_block(lines)
    _store_block(lines, "%out" if epilogue else "%sum")
    lines += [f"  %n.next = add i64 %n, {NR}", "  %ndone = icmp sge i64 %n.next, %n1",
              "  br i1 %ndone, label %strips.done, label %strip",
              "strips.done:", "  %mb.next = add i64 %mb, 1", "  %mbdone = icmp eq i64 %mb.next, %mblocks",
              "  br i1 %mbdone, label %exit, label %block",
              "exit:", "  ret void", "}"]
    return "\n".join(lines)


def _finish_block(lines):
    """%out{r}.{j}: the sums %sum{r}.{j} with bias, ReLU and the border mask of :func:`_direct_gemm_ir`'s
    epilogue (the strip starts at anchor %n, the block at row %mb·MR)."""
    vt = _vector()
    zero = "zeroinitializer"
    lines += ["  %cell = urem i64 %n, %cells"]
    for j in range(NV):
        lines += [f"  %mo{j} = add i64 %cell, {j * LANES}", f"  %mp{j} = getelementptr float, ptr %inside, i64 %mo{j}",
                  f"  %mv{j} = load {vt}, ptr %mp{j}, align 4", f"  %in{j} = fcmp ogt {vt} %mv{j}, {zero}"]
    for r in range(MR):
        lines += [f"  %biasp{r} = getelementptr float, ptr %bias, i64 %row{r}.i",
                  f"  %biass{r} = load float, ptr %biasp{r}",
                  f"  %biasi{r} = insertelement {vt} poison, float %biass{r}, i32 0",
                  f"  %biasv{r} = shufflevector {vt} %biasi{r}, {vt} poison, <{LANES} x i32> zeroinitializer"]
        for j in range(NV):
            lines += [f"  %z{r}.{j} = fadd {vt} %sum{r}.{j}, %biasv{r}",
                      f"  %neg{r}.{j} = fcmp olt {vt} %z{r}.{j}, {zero}",  # false for NaN: NaN stays
                      f"  %rl{r}.{j} = select <{LANES} x i1> %neg{r}.{j}, {vt} {zero}, {vt} %z{r}.{j}",
                      f"  %act{r}.{j} = select i1 %relu.on, {vt} %rl{r}.{j}, {vt} %z{r}.{j}",
                      f"  %out{r}.{j} = select <{LANES} x i1> %in{j}, {vt} %act{r}.{j}, {vt} {zero}"]


def _weight_grad_ir():
    """``weight_grad(g, ldg, grows, oblocks, offs, kblocks, x, q0, q1, c, ldc)``: c[o, kk] += Σ_{q0 ≤ q < q1}
    g[min(o, grows - 1)·ldg + q] · x[offs[kk] + q] for o < oblocks·MO, kk < kblocks·NK (q1 - q0 a multiple of
    LANES): rows of c past g's ``grows`` repeat its last row, so g needs no padding rows (the caller drops them)."""
    vt = _vector()
    lines = [_fma_declaration(), f"declare float @llvm.vector.reduce.fadd.v{LANES}f32(float, {vt})",
             "define void @weight_grad(ptr noalias %g, i64 %ldg, i64 %grows, i64 %oblocks, ptr noalias %offs, "
             "i64 %kblocks, ptr noalias %x, i64 %q0, i64 %q1, ptr noalias %c, i64 %ldc) nounwind {",
             "entry:", "  %glast = sub i64 %grows, 1", "  br label %chunk",
             "chunk:", "  %qc = phi i64 [%q0, %entry], [%qc.next, %oblocks.done]",
             f"  %qe.try = add i64 %qc, {CHUNK}", "  %qe.short = icmp slt i64 %qe.try, %q1",
             "  %qe = select i1 %qe.short, i64 %qe.try, i64 %q1", "  br label %oblock",
             "oblock:", "  %ob = phi i64 [0, %chunk], [%ob.next, %kblocks.done]", f"  %o0 = mul i64 %ob, {MO}",
             "  br label %kblock",
             "kblock:", "  %kb = phi i64 [0, %oblock], [%kb.next, %reduce]", f"  %k0 = mul i64 %kb, {NK}"]
    for j in range(NK):
        lines += [f"  %ko{j} = add i64 %k0, {j}", f"  %op{j} = getelementptr i64, ptr %offs, i64 %ko{j}",
                  f"  %off{j} = load i64, ptr %op{j}", f"  %xr{j} = getelementptr float, ptr %x, i64 %off{j}"]
    for r in range(MO):
        lines += [f"  %go{r} = add i64 %o0, {r}", f"  %gin{r} = icmp slt i64 %go{r}, %grows",
                  f"  %gs{r} = select i1 %gin{r}, i64 %go{r}, i64 %glast", f"  %gm{r} = mul i64 %gs{r}, %ldg",
                  f"  %gr{r} = getelementptr float, ptr %g, i64 %gm{r}"]
    lines += ["  br label %pixels", "pixels:", "  %q = phi i64 [%qc, %kblock], [%q.next, %pixels]"]
    for r in range(MO):
        for j in range(NK):
            lines.append(f"  %acc{r}.{j} = phi {vt} [zeroinitializer, %kblock], [%sum{r}.{j}, %pixels]")
    for r in range(MO):
        lines += [f"  %gp{r} = getelementptr float, ptr %gr{r}, i64 %q", f"  %gv{r} = load {vt}, ptr %gp{r}, align 4"]
    for j in range(NK):
        lines += [f"  %xp{j} = getelementptr float, ptr %xr{j}, i64 %q", f"  %xv{j} = load {vt}, ptr %xp{j}, align 4"]
        for r in range(MO):
            lines.append(f"  %sum{r}.{j} = call {vt} @llvm.fma.v{LANES}f32({vt} %gv{r}, {vt} %xv{j}, {vt} %acc{r}.{j})")
    lines += [f"  %q.next = add i64 %q, {LANES}", "  %qdone = icmp sge i64 %q.next, %qe",
              "  br i1 %qdone, label %reduce, label %pixels", "reduce:"]
    for r in range(MO):
        lines += [f"  %co{r} = add i64 %o0, {r}", f"  %cm{r} = mul i64 %co{r}, %ldc", f"  %ck{r} = add i64 %cm{r}, %k0"]
        for j in range(NK):
            lines += [f"  %s{r}.{j} = call reassoc float @llvm.vector.reduce.fadd.v{LANES}f32(float -0.0, "
                      f"{vt} %sum{r}.{j})",
                      f"  %ci{r}.{j} = add i64 %ck{r}, {j}",
                      f"  %cp{r}.{j} = getelementptr float, ptr %c, i64 %ci{r}.{j}",
                      f"  %cv{r}.{j} = load float, ptr %cp{r}.{j}", f"  %cn{r}.{j} = fadd float %cv{r}.{j}, %s{r}.{j}",
                      f"  store float %cn{r}.{j}, ptr %cp{r}.{j}"]
    lines += ["  %kb.next = add i64 %kb, 1", "  %kbdone = icmp eq i64 %kb.next, %kblocks",
              "  br i1 %kbdone, label %kblocks.done, label %kblock",
              "kblocks.done:", "  %ob.next = add i64 %ob, 1", "  %obdone = icmp eq i64 %ob.next, %oblocks",
              "  br i1 %obdone, label %oblocks.done, label %oblock",
              "oblocks.done:", f"  %qc.next = add i64 %qc, {CHUNK}", "  %qcdone = icmp sge i64 %qc.next, %q1",
              "  br i1 %qcdone, label %exit, label %chunk",
              "exit:", "  ret void", "}"]
    return "\n".join(lines)


_I64, _PTR = ctypes.c_int64, ctypes.c_void_p
_KERNELS = {}


def kernel(name):
    """The compiled kernel ``name`` ("packed_gemm", "panel_gemm", "direct_gemm", "direct_gemm_epilogue",
    "weight_grad"), compiled on first use."""
    if name not in _KERNELS:
        gemm = [_PTR, _I64, _I64, _PTR, _PTR, _I64, _I64, _PTR, _I64]
        ir, argtypes = {"packed_gemm": (lambda: _packed_gemm_ir("packed_gemm", 1), gemm + [_PTR]),
                        "panel_gemm": (lambda: _packed_gemm_ir("panel_gemm", PANEL_STRIPS), gemm + [_PTR]),
                        "direct_gemm": (_direct_gemm_ir, gemm),
                        "direct_gemm_epilogue": (lambda: _direct_gemm_ir("direct_gemm_epilogue", True),
                                                 gemm + [_PTR, _PTR, _I64, _I64]),
                        "weight_grad": (_weight_grad_ir, [_PTR, _I64, _I64, _I64, _PTR, _I64, _PTR, _I64, _I64, _PTR,
                                                          _I64])}[name]
        _KERNELS[name] = jit.compile_function(ir(), name, argtypes)
    return _KERNELS[name]

"""The CPU convolution's two algorithms side by side on the models' conv shapes: the k² shifted GEMMs
(``kernels/cpu/conv.py``) against the im2col twin (``kernels/reference/conv.py``), float32, medians after warm-up.

    python -m benchmarks.conv_shifted [--repeats 7] [--batch 64] [--torch]

Per shape: forward alone (log_prob, sampling; the twin unfolds its cheaper side for a forward alone), dx, dW,
and a training step's forward + backward (the twin on the side a training step uses). The ratio column is
shifted / im2col for the training step; ``kernels/cpu/conv.py``'s rule (:func:`shifted_pays`) is printed beside
it. Threads: whatever ``OPENBLAS_NUM_THREADS`` says (the runner uses 2). ``--torch`` adds PyTorch's own
convolution (``torch.nn.functional.conv2d``, NCHW, 2 threads) on the same arrays: forward, and forward + backward.
"""
import argparse
import os

import numpy as np

from benchmarks.machine import describe, median_time
from nflow.cli.parser import positive_int
from nflow.kernels.cpu import conv as shifted
from nflow.kernels.reference import conv as twin

# (C_in, C_out, H): RealNVP's hidden 3x3 convs at both scales, Glow's thin ends and a 256-channel 3x3
SHAPES = ((64, 64, 28), (64, 64, 14), (256, 256, 14), (2, 256, 14), (256, 4, 14))


def median_ms(fn, repeats):
    return 1e3 * median_time(fn, repeats)


def conv_benchmark_parser(description):
    """The arguments this script and ``benchmarks/own_conv.py`` share: --repeats, --batch (positive), --torch."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=positive_int, default=7)
    parser.add_argument("--batch", type=positive_int, default=64)
    parser.add_argument("--torch", action="store_true", help="also time torch.nn.functional.conv2d")
    return parser


def measure_torch(x, w, gy, repeats):
    """PyTorch's conv2d on the same arrays (NCHW, 'same' padding): forward, and forward + backward."""
    import torch
    torch.set_num_threads(int(os.environ.get("OPENBLAS_NUM_THREADS", "2")))
    tx = torch.from_numpy(np.ascontiguousarray(x.transpose(1, 0, 2, 3))).requires_grad_()
    tw = torch.from_numpy(w.copy()).requires_grad_()
    tg = torch.from_numpy(np.ascontiguousarray(gy.transpose(1, 0, 2, 3)))
    pad = w.shape[2] // 2

    def step():
        tx.grad = tw.grad = None
        torch.nn.functional.conv2d(tx, tw, padding=pad).backward(tg)

    with torch.no_grad():
        forward = median_ms(lambda: torch.nn.functional.conv2d(tx, tw, padding=pad), repeats)
    return forward, median_ms(step, repeats)


def measure(c_in, c_out, h, batch, repeats, rng, with_torch=False):
    x = rng.standard_normal((c_in, batch, h, h)).astype(np.float32)
    w = (0.1 * rng.standard_normal((c_out, c_in, 3, 3))).astype(np.float32)
    gy = rng.standard_normal((c_out, batch, h, h)).astype(np.float32)
    torch_times = measure_torch(x, w, gy, repeats) if with_torch else None
    return torch_times, {
        "shifted forward": median_ms(lambda: shifted.shifted_forward(x, w), repeats),
        "im2col forward": median_ms(lambda: twin.forward(x, w, backward_follows=False), repeats),
        "shifted dx": median_ms(lambda: shifted.shifted_backward(x, w, gy, need_w=False), repeats),
        "im2col dx": median_ms(lambda: twin.backward(x, w, gy, need_w=False), repeats),
        "shifted dW": median_ms(lambda: shifted.shifted_backward(x, w, gy, need_x=False), repeats),
        "im2col dW": median_ms(lambda: twin.backward(x, w, gy, need_x=False), repeats),
        "shifted step": median_ms(lambda: (shifted.shifted_forward(x, w), shifted.shifted_backward(x, w, gy)),
                                  repeats),
        "im2col step": median_ms(lambda: (twin.forward(x, w, backward_follows=True), twin.backward(x, w, gy)),
                                 repeats),
    }


def main(argv=None):
    args = conv_benchmark_parser(__doc__.splitlines()[0]).parse_args(argv)
    rng = np.random.default_rng(0)
    machine = describe()
    print(f"{machine['cpu']} ({machine['SIMD']}); OpenBLAS {machine['OpenBLAS core type at run time']}, "
          f"{machine['OpenBLAS threads']} threads; load {os.getloadavg()[0]:.2f}; batch {args.batch}; "
          f"ms, median of {args.repeats}")
    columns = ("forward", "dx", "dW", "step")
    torch_header = " | torch forward / forward + backward" if args.torch else ""
    print("| C_in → C_out, H×W | " + " | ".join(f"{c}: shifted / im2col" for c in columns)
          + f" | step ratio | rule picks{torch_header} |")
    print("|---" * (len(columns) + 3 + bool(args.torch)) + "|")
    for c_in, c_out, h in SHAPES:
        torch_times, r = measure(c_in, c_out, h, args.batch, args.repeats, rng, with_torch=args.torch)
        cells = [f"{r['shifted ' + c]:.1f} / {r['im2col ' + c]:.1f}" for c in columns]
        picks = "shifted" if shifted.shifted_pays(c_in, c_out, 3) else "im2col"
        torch_cell = f" | {torch_times[0]:.1f} / {torch_times[1]:.1f}" if torch_times else ""
        print(f"| {c_in} → {c_out}, {h}×{h} | " + " | ".join(cells)
              + f" | {r['shifted step'] / r['im2col step']:.2f} | {picks}{torch_cell} |")


if __name__ == "__main__":
    main()

"""The command line: ``nflow train | eval | sample | interpolate | inspect | manipulate`` (argparse, typed checks)."""
import argparse
import math

from nflow.backend import BACKENDS
from nflow.cli.build import DATA_FORMS, MODELS, check_data_spec
from nflow.train.evaluate import DEFAULT_EVAL_BATCH


def checked(convert, accept, what):
    """An argparse ``type=``: ``convert`` the text, then refuse values ``accept`` rejects, naming ``what``."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value
    return parse


positive_int = checked(int, lambda v: v >= 1, "a positive integer")


def data_spec(text):
    """An argparse ``type=`` for --data: a toy density's name or an image source's spec."""
    try:
        return check_data_spec(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
non_negative_int = checked(int, lambda v: v >= 0, "an integer ≥ 0")
finite_float = checked(float, math.isfinite, "a finite number")
# `nflow manipulate`: which test images have an attribute, and the columns of its strip.
ATTRIBUTE_FORMS = "label:N (the test images of class N), ink:top / ink:bottom (the quarter with the most / least ink)"
INK_SIDES = ("top", "bottom")
DEFAULT_ALPHAS = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5)


def attribute_spec(text):
    """An argparse ``type=`` for --with / --without: ``("label", N)`` or ``("ink", "top" | "bottom")``."""
    kind, _, value = text.partition(":")
    if kind == "label" and value.isdigit():
        return "label", int(value)
    if kind == "ink" and value in INK_SIDES:
        return "ink", value
    raise argparse.ArgumentTypeError(f"expected {ATTRIBUTE_FORMS}; got {text!r}")
positive_float = checked(float, lambda v: 0 < v < math.inf, "a positive finite number")  # NaN fails both
non_negative_float = checked(float, lambda v: 0 <= v < math.inf, "a finite number ≥ 0")


def make_parser():
    parser = argparse.ArgumentParser(prog="nflow", description="Train, evaluate and sample normalizing flows "
                                     "(NICE, RealNVP, Glow, MAF, IAF). `nflow train` alone trains a flow on a 2-D toy "
                                     "density in about a minute.")
    parser.add_argument("--debug", action="store_true",
                        help="on an error, show Python's traceback instead of the one-line message")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model (default: RealNVP on the two-moons density)")
    train.add_argument("--model", choices=sorted(MODELS), default=None,
                       help="glow, realnvp, nice, maf or iaf (default: realnvp; glow when --data mnist)")
    train.add_argument("--data", type=data_spec, default=None, metavar="SPEC",
                       help=f"a 2-D toy density or an image source: {', '.join(DATA_FORMS)} (default: moons)")
    train.add_argument("--image-size", type=positive_int, default=None, metavar="PIXELS",
                       help="images: cut to the centred square and scale to PIXELS × PIXELS (needed for a folder "
                            "of pictures of mixed sizes)")
    train.add_argument("--grey", action="store_const", const=True, default=None,
                       help="images: convert colour to one grey channel")
    length = train.add_mutually_exclusive_group()
    length.add_argument("--steps", type=positive_int, default=None, help="optimisation steps in total")
    length.add_argument("--epochs", type=positive_int, default=None, help="passes over the training set")
    train.add_argument("--minutes", type=positive_float, default=None,
                       help="stop after this many minutes (with a checkpoint), even before --steps")
    train.add_argument("--batch-size", type=positive_int, default=None)
    train.add_argument("--lr", type=positive_float, default=None, help="Adam's peak learning rate")
    train.add_argument("--warmup", type=non_negative_int, default=None, help="linear learning-rate warm-up steps")
    train.add_argument("--max-grad-norm", type=positive_float, default=None)
    train.add_argument("--backend", choices=BACKENDS, default=None, help="default: the fastest available")
    train.add_argument("--seed", type=non_negative_int, default=None, help="default: 0")
    train.add_argument("--out", default=None, help="run directory (default: runs/<data>-<model>[-N])")
    train.add_argument("--data-dir", default=None,
                       help="where mnist, cifar10 or idx files are (default: $NFLOW_DATA)")
    train.add_argument("--limit", type=positive_int, default=None, help="use only the first N training examples")
    train.add_argument("--resume", default=None, metavar="CKPT",
                       help="continue a run from its checkpoint (a file or a run directory); the run keeps the "
                            "checkpoint's model, data and settings: only --steps, --minutes, --backend, --out, "
                            "--data-dir, --no-progress and --distributed may change (on N ranks the global batch of "
                            "the checkpoint is kept: each rank takes 1/N of it), other flags must agree with it")
    train.add_argument("--force", action="store_true", help="overwrite a non-empty run directory")
    train.add_argument("--checkpoint-every", type=non_negative_int, default=None)
    train.add_argument("--sample-every", type=non_negative_int, default=None)
    train.add_argument("--eval-every", type=non_negative_int, default=None,
                       help="test NLL and bits/dim of the first 1000 test examples every this many steps, marked "
                            "on the curve (0: never)")
    train.add_argument("--reversible", action="store_true", help="memory-free reversible backprop")
    train.add_argument("--distributed", action="store_true",
                       help="data-parallel over MPI: run as `mpiexec -n N nflow train ... --distributed`; each of "
                            "the N ranks takes --batch-size examples of a global batch of N times that, rank 0 "
                            "writes the run directory (needs pip install \"nflow[mpi]\")")
    train.add_argument("--no-progress", action="store_true", help="no progress line")
    arch = train.add_argument_group("architecture (defaults depend on the model)")
    arch.add_argument("--levels", type=positive_int, help="Glow: levels L")
    arch.add_argument("--flow-steps", type=positive_int, help="Glow: steps of flow K per level")
    arch.add_argument("--hidden", type=positive_int, help="hidden channels or units of the coupling nets (MAF / IAF: of each MADE)")
    arch.add_argument("--couplings", type=positive_int, help="NICE / vector RealNVP: coupling layers")
    arch.add_argument("--depth", type=positive_int, help="NICE / vector RealNVP / MAF / IAF: hidden layers per net")
    arch.add_argument("--layers", type=positive_int, help="MAF / IAF: autoregressive layers")
    arch.add_argument("--scales", type=positive_int, help="RealNVP on images: scales")
    arch.add_argument("--coupling", choices=("affine", "additive"), help="Glow: coupling type")
    arch.add_argument("--no-lu", action="store_true", help="Glow: plain (not LU) 1x1 convolutions")
    arch.add_argument("--num-classes", type=checked(int, lambda v: v >= 2, "an integer ≥ 2"), default=None,
                      metavar="K", help="Glow: class-conditional on the data's labels 0..K-1 (a top prior per class)")
    arch.add_argument("--class-weight", type=non_negative_float, default=None, metavar="W",
                      help="Glow with --num-classes: add W × the cross-entropy of a classification head on the top "
                           "latent (nats per example) to the NLL (default 0: no head)")
    arch.add_argument("--label-prior", choices=("channel", "position"), default=None,
                      help="Glow with --num-classes: the class prior's mean and log-std per channel of the top "
                           "latent (channel, openai/glow's; the default) or per channel and position (position: "
                           "a class template in latent space)")

    ev = sub.add_parser("eval", help="test NLL and bits/dim of a checkpoint, with standard errors")
    ev.add_argument("checkpoint", help="a checkpoint file or a run directory")
    ev.add_argument("--data-dir", default=None)
    ev.add_argument("--limit", type=positive_int, default=None, help="evaluate on the first N test examples")
    ev.add_argument("--batch-size", type=positive_int, default=DEFAULT_EVAL_BATCH)
    ev.add_argument("--backend", choices=BACKENDS, default=None)
    ev.add_argument("--json", action="store_true", help="print the result as one JSON object, for scripts")

    sa = sub.add_parser("sample", help="draw samples into a PNG")
    sa.add_argument("checkpoint")
    sa.add_argument("-n", type=positive_int, default=64, help="number of samples")
    sa.add_argument("--temperature", type=non_negative_float, default=1.0)
    sa.add_argument("--seed", type=non_negative_int, default=0)
    sa.add_argument("-o", "--output", default="samples.png")
    sa.add_argument("--label", type=non_negative_int, default=None,
                    help="a class-conditional run: draw this class only (default: every class in turn)")
    sa.add_argument("--backend", choices=BACKENDS, default=None)

    ins = sub.add_parser("inspect", help="where the bits go: the test NLL taken apart by level and layer, "
                         "latent statistics, and what each level carries (-o)")
    ins.add_argument("checkpoint", help="a checkpoint file or a run directory")
    ins.add_argument("--data-dir", default=None)
    ins.add_argument("--limit", type=positive_int, default=None, help="the first N test examples")
    ins.add_argument("--batch-size", type=positive_int, default=DEFAULT_EVAL_BATCH)
    ins.add_argument("--json", action="store_true", help="print the result as one JSON object, for scripts")
    ins.add_argument("-o", "--output", default=None, help="a PNG: inputs, then decoded from the top level down")
    ins.add_argument("--backend", choices=BACKENDS, default=None)

    it = sub.add_parser("interpolate", help="a PNG strip of decoded latent interpolations between test images")
    it.add_argument("checkpoint")
    it.add_argument("--pairs", type=positive_int, default=4, help="rows: pairs of test images")
    it.add_argument("--points", type=positive_int, default=8, help="columns: points along each line (≥ 2)")
    it.add_argument("--seed", type=non_negative_int, default=0)
    it.add_argument("--data-dir", default=None)
    it.add_argument("-o", "--output", default="interpolation.png")
    it.add_argument("--backend", choices=BACKENDS, default=None)

    ma = sub.add_parser("manipulate", help="a PNG strip of test images moved along an attribute's direction in "
                        "latent space (mean latent with it minus without; Glow §5): rows of images, columns of α")
    ma.add_argument("checkpoint")
    ma.add_argument("--with", dest="with_spec", type=attribute_spec, required=True, metavar="SPEC",
                    help=f"the test images that have the attribute: {ATTRIBUTE_FORMS}")
    ma.add_argument("--without", dest="without_spec", type=attribute_spec, required=True, metavar="SPEC",
                    help="the test images that do not (same forms); the rows are the first --rows of these")
    ma.add_argument("--rows", type=positive_int, default=4, help="test images, one per row")
    ma.add_argument("--alphas", type=finite_float, nargs="+", default=list(DEFAULT_ALPHAS), metavar="α",
                    help=f"the columns: z + α·d for each α (default {' '.join(map(str, DEFAULT_ALPHAS))})")
    ma.add_argument("--limit", type=positive_int, default=None,
                    help="choose the images among the first N test examples (default: all)")
    ma.add_argument("--seed", type=non_negative_int, default=0, help="of the dequantization noise")
    ma.add_argument("--data-dir", default=None)
    ma.add_argument("-o", "--output", default="manipulate.png")
    ma.add_argument("--backend", choices=BACKENDS, default=None)
    return parser

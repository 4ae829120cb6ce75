"""What each ``nflow`` sub-command does. Every command reads what it needs from a checkpoint's config."""
import os
import sys

import numpy as np

import nflow
from nflow.backend import to_numpy
from nflow.checkpoint import CheckpointError, load_checkpoint
from nflow.cli.build import build_model, data_kind, default_model_args, load_data
from nflow.data.dequantize import dequantize
from nflow.data.toy import PLOT_LIMIT, grid_points
from nflow.image import heatmap, histogram_heatmap, save_grid, upscale, write_png
from nflow.tensor import no_grad
from nflow.train import CHECKPOINT_NAME, TrainConfig, Trainer, TrainingDiverged, evaluate, make_sample_hook
from nflow.train.hooks import save_samples_png

# Training defaults per kind of data: the toy default is the one-command demo (about a minute on 2 cores).
TRAIN_DEFAULTS = {
    "toy": dict(steps=3000, batch_size=256, lr=1e-3, warmup=100, checkpoint_every=500, sample_every=0),
    "image": dict(steps=1000, batch_size=64, lr=1e-3, warmup=200, checkpoint_every=200, sample_every=200),
}
DENSITY_RESOLUTION = 160  # grid cells per side of the learned-density picture
DENSITY_SCALE = 2          # and its enlargement
HISTOGRAM_SAMPLES = 100_000
SAMPLE_TEMPERATURE = 0.7   # of the sample grids written during image training (Glow §5)
ARCH_FLAGS = {"levels": "levels", "flow_steps": "steps", "hidden": "hidden", "couplings": "couplings",
              "depth": "depth", "scales": "scales", "coupling": "coupling"}


def fail(message):
    """Stop with an argparse-style message and exit status 2."""
    print(f"nflow: error: {message}", file=sys.stderr)
    sys.exit(2)


def _set_backend(name):
    if name:
        try:
            nflow.set_backend(name)
        except RuntimeError as e:
            fail(str(e))


def _checkpoint(path):
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT_NAME)
    try:
        return load_checkpoint(path)
    except CheckpointError as e:
        fail(str(e))


def _model_from_checkpoint(ck):
    run = ck.config["run"]
    model = build_model(run)
    model.load_state_dict(ck.model_state)
    model.eval()
    return model, run


def _run_dir(args, model, data):
    if args.out:
        out = args.out
    else:
        out = base = os.path.join("runs", f"{data}-{model}")
        k = 2
        while os.path.exists(out) and os.listdir(out):
            out, k = f"{base}-{k}", k + 1
    if os.path.isdir(out) and os.listdir(out) and not (args.force or args.resume):
        fail(f"run directory {out} is not empty; pass --resume {os.path.join(out, CHECKPOINT_NAME)} to continue "
             "it, --force to overwrite it, or another --out")
    return out


# ---------------------------------------------------------------------------------------------------------
def train(args):
    _set_backend(args.backend)
    if args.resume:
        ck = _checkpoint(args.resume)
        run = ck.config["run"]
        saved = ck.config["train"]
        steps = args.steps or saved["steps"]
        config = TrainConfig.from_dict({**saved, "steps": steps, "progress": not args.no_progress,
                                        "time_limit": args.minutes * 60 if args.minutes else None})
        out = args.out or os.path.dirname(os.path.abspath(args.resume if not os.path.isdir(args.resume)
                                                         else os.path.join(args.resume, CHECKPOINT_NAME)))
    else:
        model_name = args.model or ("glow" if args.data == "mnist" else "realnvp")
        try:
            model_args = default_model_args(model_name, args.data)
        except ValueError as e:
            fail(str(e))
        for flag, key in ARCH_FLAGS.items():
            if getattr(args, flag) is not None:
                model_args[key] = getattr(args, flag)
        if args.no_lu:
            model_args["lu"] = False
        run = dict(model=model_name, model_args=model_args, data=args.data, seed=args.seed, limit=args.limit,
                   dtype="float32")
        defaults = TRAIN_DEFAULTS[data_kind(args.data)]
        out = _run_dir(args, model_name, args.data)
    data = load_data(run, "train", args.data_dir, run.get("limit"))
    if not args.resume:
        batch_size = args.batch_size or defaults["batch_size"]
        steps = args.steps or (args.epochs * max(len(data) // batch_size, 1) if args.epochs else defaults["steps"])
        config = TrainConfig(steps=steps, batch_size=batch_size, lr=args.lr or defaults["lr"],
                             warmup_steps=defaults["warmup"] if args.warmup is None else args.warmup,
                             max_grad_norm=args.max_grad_norm or TrainConfig.max_grad_norm, seed=args.seed,
                             checkpoint_every=(defaults["checkpoint_every"] if args.checkpoint_every is None
                                               else args.checkpoint_every),
                             sample_every=defaults["sample_every"] if args.sample_every is None else args.sample_every,
                             progress=not args.no_progress, reversible=args.reversible,
                             time_limit=args.minutes * 60 if args.minutes else None)
    nflow.seed(run["seed"])
    try:
        model = build_model(run)
    except ValueError as e:
        fail(str(e))
    kind = data_kind(run["data"])
    hook = make_sample_hook(model, os.path.join(out, "samples"), n=64,
                            temperature=SAMPLE_TEMPERATURE if kind == "image" else 1.0, seed=0)
    print(f"nflow: training {run['model']} on {run['data']} ({len(data)} examples) for {config.steps} steps "
          f"on the {nflow.get_backend()} backend; {model.n_parameters():,} parameters; run directory {out}",
          file=sys.stderr)
    trainer = Trainer(model, data, config, out, run_config=run, on_sample=hook)
    try:
        result = trainer.fit(resume=ck if args.resume else None)
    except TrainingDiverged as e:
        print(f"nflow: training stopped: {e}", file=sys.stderr)
        return 1
    if kind == "toy":
        write_density_picture(model, data, os.path.join(out, "density.png"))
    print(f"nflow: {result.status} at step {result.step}: loss {result.loss:.4f} nats, checkpoint {result.checkpoint}",
          file=sys.stderr)
    return 128 + result.signal if result.status == "interrupted" else 0


def write_density_picture(model, data, path):
    """Side by side: a histogram of the data and the learned density exp(log p), over [-3, 3]²."""
    points = grid_points(DENSITY_RESOLUTION)
    model.eval()
    with no_grad():
        density = np.exp(to_numpy(model.log_prob(nflow.tensor(points)).data).astype(np.float64))
    density = density.reshape(DENSITY_RESOLUTION, DENSITY_RESOLUTION)
    histogram = histogram_heatmap(data[:HISTOGRAM_SAMPLES], DENSITY_RESOLUTION, PLOT_LIMIT)
    gap = np.full((DENSITY_RESOLUTION, 4, 3), 255, dtype=np.uint8)
    picture = np.concatenate([histogram, gap, heatmap(density)], axis=1)
    write_png(path, upscale(picture, DENSITY_SCALE))
    print(f"nflow: data (left) and learned density (right) written to {path}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------------
def evaluate_command(args):
    _set_backend(args.backend)
    ck = _checkpoint(args.checkpoint)
    model, run = _model_from_checkpoint(ck)
    data = load_data(run, "test", args.data_dir, args.limit)
    r = evaluate(model, data, batch_size=args.batch_size, seed=0)
    if r["n_nonfinite"]:
        print(f"nflow: {r['n_nonfinite']} of {r['n']} test examples have a non-finite log-density", file=sys.stderr)
        return 1
    print(f"test NLL {r['nll']:.4f} ± {r['nll_se']:.4f} nats, {r['bpd']:.4f} ± {r['bpd_se']:.4f} bits/dim "
          f"(n = {r['n']}, ± one standard error; {run['model']} on {run['data']}, step {ck.step})")
    return 0


def sample_command(args):
    _set_backend(args.backend)
    model, _ = _model_from_checkpoint(_checkpoint(args.checkpoint))
    samples = model.sample(args.n, temperature=args.temperature, seed=args.seed)
    save_samples_png(args.output, samples)
    print(f"nflow: {args.n} samples at temperature {args.temperature} written to {args.output}", file=sys.stderr)
    return 0


def interpolate_command(args):
    _set_backend(args.backend)
    model, run = _model_from_checkpoint(_checkpoint(args.checkpoint))
    if data_kind(run["data"]) != "image":
        fail(f"interpolate needs an image model; this checkpoint was trained on {run['data']}")
    if args.points < 2:
        fail("--points must be at least 2")
    images = load_data(run, "test", args.data_dir)
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(images), size=2 * args.pairs, replace=False)
    x = dequantize(images[chosen], rng, 256, model.dtype)
    latents = model.encode(x)
    latents = latents if isinstance(latents, list) else [latents]
    weights = np.linspace(0.0, 1.0, args.points)
    rows = []
    for p in range(args.pairs):
        a, b = 2 * p, 2 * p + 1
        line = [[(1 - w) * z[a] + w * z[b] for w in weights] for z in latents]  # per latent, per point
        rows.append(to_numpy(model.decode([np.stack(points) for points in line])))
    strip = np.clip(np.concatenate(rows), 0.0, 1.0)
    save_grid(args.output, strip, nrow=args.points, scale=2)
    print(f"nflow: {args.pairs} interpolations of {args.points} points written to {args.output}", file=sys.stderr)
    return 0


COMMANDS = {"train": train, "eval": evaluate_command, "sample": sample_command, "interpolate": interpolate_command}

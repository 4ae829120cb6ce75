"""What each ``nflow`` sub-command does. Every command reads what it needs from a checkpoint's config.

Arguments are checked where they enter, before any work: a run directory or output file that cannot be written,
flags that contradict a checkpoint being resumed, a model that does not take the data. Such a check ends the
program with :func:`fail` (one line, exit status 2); failures during the work itself are nflow's own errors,
reported one line each by ``nflow.cli.main``.
"""
import json
import os
import sys
import tempfile

import numpy as np

import nflow
from nflow.backend import to_numpy
from nflow.checkpoint import CheckpointError, load_checkpoint, restore_model
from nflow.cli.build import (DEFAULT_MODEL, MODELS, build_model, data_kind, default_model_args, load_data,
                             load_labelled_data, num_classes)
from nflow.data.dequantize import default_n_bins, to_continuous
from nflow.data.toy import PLOT_LIMIT, grid_points
from nflow.distributed import SingleProcess, mpi_world
from nflow.image import plot_density, save_grid
from nflow.inspect import decompose, level_pictures
from nflow.latent import attribute_direction, manipulate
from nflow.train import (CHECKPOINT_NAME, TrainConfig, Trainer, TrainingDiverged, evaluate, make_eval_hook,
                         make_sample_hook)
from nflow.train.config import default_settings
from nflow.train.evaluate import classification_accuracy
from nflow.train.hooks import run_title, sample_caption, save_samples_png
from nflow.train.modes import evaluating

EVAL_SPLIT = "test"
DENSITY_RESOLUTION = 160  # grid cells per side of the learned-density picture
HISTOGRAM_SAMPLES = 100_000
SAMPLE_TEMPERATURE = 0.7   # of the sample grids written during image training (Glow §5)
SAMPLE_COLUMNS = 8   # of `nflow sample`'s grid (a class-conditional run without --label: one per class)
# Test examples evaluated every --eval-every steps during training: the first this many of the test split (the
# standard error of the mean NLL is then about σ/32; `nflow eval` measures the whole split afterwards).
EVAL_EXAMPLES_DURING_TRAINING = 1000
# Above this many dimensions `nflow train --model iaf` says that its density direction (D passes per layer) is slow.
IAF_SLOW_DIMENSIONS = 64
INSPECT_PICTURES = 8   # test images in the level-pictures sheet of `nflow inspect -o`
INK_QUANTILE = {"top": 0.75, "bottom": 0.25}   # `manipulate --with ink:top`: the quarter of images with most ink
# Flags of `nflow train` -> the setting they give: of the TrainConfig, and of the model's architecture.
TRAIN_FLAGS = {"steps": "steps", "batch_size": "batch_size", "lr": "lr", "warmup": "warmup_steps",
               "max_grad_norm": "max_grad_norm", "checkpoint_every": "checkpoint_every",
               "sample_every": "sample_every", "eval_every": "eval_every"}
ARCH_FLAGS = {"levels": "levels", "flow_steps": "steps", "hidden": "hidden", "couplings": "couplings",
              "depth": "depth", "scales": "scales", "coupling": "coupling", "layers": "layers"}
# Flags of `nflow train` that make a Glow class-conditional -> the model argument they set.
LABEL_FLAGS = {"num_classes": "num_classes", "class_weight": "class_weight", "label_prior": "label_prior"}
# Flags of `nflow train` -> the entry of the run configuration they set.
RUN_FLAGS = {"model": "model", "data": "data", "seed": "seed", "limit": "limit", "image_size": "image_size",
             "grey": "grey"}
DEFAULT_DATA = "moons"
DEFAULT_SEED = 0
# What a resumed run may change; every other flag given with --resume must agree with the checkpoint.
RESUME_MAY_CHANGE = "--steps, --minutes, --backend, --out, --data-dir, --no-progress and --distributed"


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
    """The checkpoint at ``path`` (a file or a run directory), with the run configuration `nflow train` writes."""
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT_NAME)
    try:
        ck = load_checkpoint(path)
    except CheckpointError as e:
        fail(str(e))
    config = ck.config if isinstance(ck.config, dict) else {}
    run = config.get("run")
    if (not isinstance(run, dict) or run.get("model") not in MODELS or not isinstance(run.get("model_args"), dict)
            or not isinstance(config.get("train"), dict)):
        fail(f"checkpoint {ck.path} has no nflow run configuration (config['run'] with a model and its "
             "arguments, config['train']); it was not written by `nflow train`")
    return ck


def _trained_model(args):
    """Select ``--backend``, read the checkpoint named on the command line and rebuild its model: (the model
    with the checkpoint's parameters, in eval mode; its run configuration; the checkpoint)."""
    _set_backend(args.backend)
    ck = _checkpoint(args.checkpoint)
    run = ck.config["run"]
    try:
        model = build_model(run)
    except (TypeError, ValueError, KeyError) as e:
        fail(f"checkpoint {ck.path}: its run configuration does not describe a model nflow can build ({e})")
    restore_model(model, ck)
    model.eval()
    return model, run, ck


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


def _writable_directory(directory, what):
    """Create ``directory`` if needed and prove that a file can be written in it, before any work is done."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        fail(f"{what} {directory} is a file, not a directory")
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as e:
        fail(f"{what} {directory} cannot be written ({e.strerror or e}); choose another")


def _output_file(path, flag):
    """Check an output file's path before the work that fills it: not a directory, in a writable directory."""
    if os.path.isdir(path):
        fail(f"{flag} {path} is a directory; give a file name, such as {os.path.join(path, 'out.png')}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        fail(f"{flag} {path}: the directory {directory} does not exist; create it first")
    _writable_directory(directory, f"{flag}: the directory")


# ---------------------------------------------------------------------------------------------------------
def _given(args, flags):
    """{setting: value} for each flag in ``flags`` (flag -> setting) that was given on the command line."""
    return {setting: getattr(args, flag) for flag, setting in flags.items() if getattr(args, flag) is not None}


def _new_run(args):
    """The run configuration of a new run (stored in its checkpoints): model, architecture, data, seed."""
    data = args.data or DEFAULT_DATA
    model_name = args.model or DEFAULT_MODEL[data_kind(data)]
    try:
        model_args = default_model_args(model_name, data)
    except ValueError as e:
        fail(str(e))
    given = _given(args, ARCH_FLAGS)
    flag_of = {setting: flag for flag, setting in ARCH_FLAGS.items()}
    foreign = [f"--{flag_of[s].replace('_', '-')}" for s in given if s not in model_args]
    foreign += ["--no-lu"] if args.no_lu and "lu" not in model_args else []
    if foreign:
        takes = [f"--{flag_of[s].replace('_', '-')}" for s in model_args if s in flag_of]
        verb = "does" if len(foreign) == 1 else "do"
        fail(f"{', '.join(foreign)} {verb} not apply to {model_name} on {data} data (its architecture flags: "
             f"{', '.join(takes) or 'none'})")
    model_args.update(given)
    if args.no_lu:
        model_args["lu"] = False
    labelled = _given(args, LABEL_FLAGS)
    if labelled:
        if model_name != "glow":
            fail(f"--num-classes / --class-weight / --label-prior make a Glow class-conditional; {model_name} takes "
                 "no labels")
        if "num_classes" not in labelled:
            given = "--class-weight" if "class_weight" in labelled else "--label-prior"
            fail(f"{given} applies to a class-conditional Glow, trained on the labels: give --num-classes K too")
        if args.reversible:
            fail("--reversible does not take --num-classes (memory-free backprop has no class-conditional prior); "
                 "train a class-conditional Glow with stored activations")
        model_args.update(num_classes=labelled["num_classes"], class_weight=labelled.get("class_weight", 0.0),
                          label_prior=labelled.get("label_prior", "channel"))
    seed = DEFAULT_SEED if args.seed is None else args.seed
    return dict(model=model_name, model_args=model_args, data=data, seed=seed, limit=args.limit, dtype="float32",
                image_size=args.image_size, grey=args.grey)


def _new_settings(args, run, n_examples):
    """The TrainConfig settings of a new run: the flags given, the defaults for its kind of data otherwise."""
    settings = {**default_settings(data_kind(run["data"])), **_given(args, TRAIN_FLAGS)}
    if args.epochs:
        settings["steps"] = args.epochs * max(n_examples // settings["batch_size"], 1)
    settings.update(seed=run["seed"], reversible=args.reversible)
    return settings


def _refuse_conflicts(args, checkpoint):
    """On --resume, every flag given besides those a resumed run may change must agree with the checkpoint:
    fail naming each one that does not, with both values (a silently ignored flag would train another run
    than the one asked for)."""
    run, settings = checkpoint.config["run"], checkpoint.config["train"]
    stored = {**{f: run.get(k) for f, k in RUN_FLAGS.items()},
              **{f: run["model_args"].get(k) for f, k in ARCH_FLAGS.items()},
              **{f: run["model_args"].get(k) for f, k in LABEL_FLAGS.items()},
              **{f: settings.get(k) for f, k in TRAIN_FLAGS.items() if f != "steps"}}
    if run["model_args"].get("num_classes") is not None:   # runs from before --label-prior had the channel form
        stored["label_prior"] = run["model_args"].get("label_prior", "channel")
    conflicts = [f"--{flag.replace('_', '-')} {getattr(args, flag)} (the checkpoint has {value})"
                 for flag, value in stored.items() if getattr(args, flag) is not None and getattr(args, flag) != value]
    if args.no_lu and run["model_args"].get("lu", True):
        conflicts.append("--no-lu (the checkpoint's Glow has LU 1x1 convolutions)")
    if args.reversible and not settings.get("reversible"):
        conflicts.append("--reversible (the checkpoint trained with stored activations)")
    if args.epochs:
        conflicts.append(f"--epochs {args.epochs} (give the total with --steps when resuming)")
    if conflicts:
        fail(f"--resume {checkpoint.path}: " + "; ".join(conflicts) + ". A resumed run keeps its checkpoint's "
             f"model, data and settings; only {RESUME_MAY_CHANGE} may change")


def _resumed_settings(args, checkpoint):
    """The TrainConfig settings of a resumed run: the checkpoint's, with --steps if given (the rest of what
    a resumed run may change, progress and time limit, is set by the caller for new and resumed runs alike)."""
    settings = dict(checkpoint.config["train"])
    settings["steps"] = args.steps or settings["steps"]
    return settings


def _communicator(args):
    """The ranks training together: every process ``mpiexec`` started with --distributed, else this one alone."""
    if not args.distributed:
        return SingleProcess()
    try:
        return mpi_world()
    except ImportError as e:
        fail(str(e))


def _per_rank_batch(checkpoint, settings, comm):
    """A resumed run keeps its global batch (ranks × batch per rank) on any number of ranks that divides it."""
    global_batch = settings["batch_size"] * int(checkpoint.extra.get("ranks", 1))
    if global_batch % comm.size:
        fail(f"--resume {checkpoint.path}: its global batch of {global_batch} examples cannot be split evenly over "
             f"{comm.size} ranks; use a number of ranks that divides {global_batch}")
    return global_batch // comm.size


def train(args):
    _set_backend(args.backend)
    comm = _communicator(args)
    say = comm.rank == 0   # rank 0 alone speaks (and writes the run directory)
    checkpoint = _checkpoint(args.resume) if args.resume else None
    if checkpoint is not None:
        _refuse_conflicts(args, checkpoint)
        run = checkpoint.config["run"]
        out = args.out or os.path.dirname(os.path.abspath(checkpoint.path))
    else:
        run = _new_run(args)
        out = _run_dir(args, run["model"], run["data"])
    comm.barrier()   # every rank chose the run directory before any writes in it (runs/<data>-<model>-N is free)
    _writable_directory(out, "run directory")   # refused now, not after the first hour of training
    data, labels = load_labelled_data(run, "train", args.data_dir, run.get("limit"))
    labels = _checked_labels(run, labels, "train")
    if checkpoint is None:
        run["input_shape"] = list(data.shape[1:])   # the model fits the data's (C, H, W); every checkpoint keeps it
    settings = (_resumed_settings(args, checkpoint) if checkpoint is not None
                else _new_settings(args, run, len(data)))
    if checkpoint is not None:
        settings["batch_size"] = _per_rank_batch(checkpoint, settings, comm)
    if settings["batch_size"] * comm.size > len(data):   # every batch is full (drop_last): one needs that many examples
        fail(f"a batch of {settings['batch_size'] * comm.size} examples needs at least that many training examples, "
             f"and there are {len(data)}" + (f" (--limit {run['limit']})" if run.get("limit") else "")
             + "; pass a smaller --batch-size")
    config = TrainConfig.from_dict({**settings, "progress": not args.no_progress,
                                    "time_limit": args.minutes * 60 if args.minutes else None})
    nflow.seed(run["seed"])
    try:
        model = build_model(run)
    except ValueError as e:
        hint = "; --image-size PIXELS resizes the images" if data_kind(run["data"]) == "image" else ""
        fail(f"{e}{hint}")
    kind = data_kind(run["data"])
    hook = make_sample_hook(model, os.path.join(out, "samples"), n=64,
                            temperature=SAMPLE_TEMPERATURE if kind == "image" else 1.0, seed=0, data_name=run["data"])
    if say:
        ranks = f" on {comm.size} ranks (global batch {comm.size} × {config.batch_size})" if comm.size > 1 else ""
        print(f"nflow: training {run['model']} on {run['data']} ({len(data)} examples) for {config.steps} steps "
              f"on the {nflow.get_backend()} backend{ranks}; {model.n_parameters():,} parameters; run directory "
              f"{out}", file=sys.stderr)
        dims = int(np.prod(data.shape[1:]))
        if run["model"] == "iaf" and dims > IAF_SLOW_DIMENSIONS:
            print(f"nflow: note: IAF computes log p(x) in {dims} sequential passes per layer (its fast direction is "
                  "sampling); expect slow training steps on this data — MAF is the density-estimation direction",
                  file=sys.stderr)
    on_evaluate = None
    if config.eval_every:
        test, test_labels = load_labelled_data(run, EVAL_SPLIT, args.data_dir, EVAL_EXAMPLES_DURING_TRAINING)
        on_evaluate = make_eval_hook(model, test, labels=_checked_labels(run, test_labels, EVAL_SPLIT))
    trainer = Trainer(model, data, config, out, run_config=run, on_sample=hook, on_evaluate=on_evaluate,
                      labels=labels, comm=comm)
    try:
        result = trainer.fit(resume=checkpoint)
    except TrainingDiverged as e:
        if say:
            print(f"nflow: training stopped: {e}", file=sys.stderr)
        return 1
    if not say:
        return 128 + result.signal if result.status == "interrupted" else 0
    if kind == "toy":
        write_density_picture(model, data, os.path.join(out, "density.png"),
                              f"{run_title(model, run['data'])} — step {result.step}")
    print(f"nflow: {result.status} at step {result.step}: loss {result.loss:.4f} nats, checkpoint {result.checkpoint}",
          file=sys.stderr)
    return 128 + result.signal if result.status == "interrupted" else 0


def _checked_labels(run, labels, split):
    """A class-conditional run's labels of ``split``, checked against its number of classes; None for a run
    without classes (whatever the data holds)."""
    k = num_classes(run)
    if k is None:
        return None
    if labels is None:
        fail(f"--num-classes {k}: the {split} split of {run['data']} has no labels; class-conditional training "
             "needs labelled data (mnist, cifar10, idx, an .npz with labels, a folder with one sub-folder per class)")
    if len(labels) and labels.max() >= k:
        fail(f"--num-classes {k}: the {split} split of {run['data']} has labels up to {labels.max()}; "
             f"give --num-classes {labels.max() + 1} or more")
    return labels


def write_density_picture(model, data, path, title):
    """Side by side, each with axes and a colour bar: a histogram of the data and the learned density exp(log p),
    over [-PLOT_LIMIT, PLOT_LIMIT]²."""
    points = grid_points(DENSITY_RESOLUTION)
    with evaluating(model):
        density = np.exp(to_numpy(model.log_prob(nflow.tensor(points)).data).astype(np.float64))
    plot_density(path, data[:HISTOGRAM_SAMPLES], density.reshape(DENSITY_RESOLUTION, DENSITY_RESOLUTION),
                 limit=PLOT_LIMIT, title=title)
    print(f"nflow: data (left) and learned density (right) written to {path}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------------
def evaluate_command(args):
    model, run, ck = _trained_model(args)
    data, labels = load_labelled_data(run, EVAL_SPLIT, args.data_dir, args.limit)
    labels = _checked_labels(run, labels, EVAL_SPLIT)
    r = evaluate(model, data, batch_size=args.batch_size, seed=0, labels=labels)
    if r["n_nonfinite"]:
        print(f"nflow: {r['n_nonfinite']} of {r['n']} test examples have a non-finite log-density", file=sys.stderr)
        return 1
    result = {"model": run["model"], "data": run["data"], "split": EVAL_SPLIT, "n": r["n"], "step": ck.step,
              "nll_nats": r["nll"], "nll_se": r["nll_se"], "bits_per_dim": r["bpd"], "bpd_se": r["bpd_se"]}
    if labels is not None:   # log p(x | y) with the true labels above; and how well p(y | x) classifies
        result["conditional"] = True
        result["accuracy"] = classification_accuracy(model, data, labels, batch_size=args.batch_size, seed=0)
    print(json.dumps(result) if args.json else eval_table(result))
    return 0


def eval_table(result):
    """``nflow eval``'s report: what was evaluated, then NLL and bits/dim with one standard error each."""
    rows = [("NLL", f"{result['nll_nats']:.4f}", f"{result['nll_se']:.4f}", "nats"),
            ("bits/dim", f"{result['bits_per_dim']:.4f}", f"{result['bpd_se']:.4f}", "bits per dimension")]
    width = max(len(value) for _, value, _, _ in rows)
    lines = [f"{result['model']} on {result['data']}, {result['split']} split ({result['n']} examples), "
             f"checkpoint at step {result['step']}",
             f"{'':9s}{'value':>{width}s}   ± one standard error"]
    lines += [f"{name:9s}{value:>{width}s}   ± {se}  {unit}" for name, value, se, unit in rows]
    if result.get("conditional"):
        lines[0] += "; log p(x | y) with the true labels"
        lines.append(f"accuracy of predict (argmax of p(y | x), uniform p(y)): {result['accuracy']:.4f}")
    return "\n".join(lines)


def sample_command(args):
    _output_file(args.output, "-o")
    model, run, ck = _trained_model(args)
    k = num_classes(run)
    title = run_title(model, run["data"])
    if args.label is not None:
        if k is None:
            fail(f"--label: the run of {ck.path} is unconditional (trained without --num-classes); it has no classes")
        if args.label >= k:
            fail(f"--label {args.label}: the run has {k} classes, 0..{k - 1}")
        title += f", class {args.label}"
    condition = {} if k is None else {"y": args.label}
    samples = model.sample(args.n, temperature=args.temperature, seed=args.seed, **condition)
    # every class in turn: one column per class
    columns = k if k is not None and args.label is None else SAMPLE_COLUMNS
    save_samples_png(args.output, samples, nrow=columns, caption=sample_caption(title, ck.step, args.temperature))
    print(f"nflow: {args.n} samples at temperature {args.temperature} written to {args.output}", file=sys.stderr)
    return 0


def interpolate_command(args):
    _output_file(args.output, "-o")
    model, run, ck = _trained_model(args)
    if data_kind(run["data"]) != "image":
        fail(f"interpolate needs an image model; this checkpoint was trained on {run['data']}")
    if args.points < 2:
        fail("--points must be at least 2")
    images = load_data(run, "test", args.data_dir)
    if len(images) < 2 * args.pairs:
        fail(f"--pairs {args.pairs} needs {2 * args.pairs} test images; the test split of {run['data']} has "
             f"{len(images)}")
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(images), size=2 * args.pairs, replace=False)
    x = to_continuous(images[chosen], rng, default_n_bins(images), model.dtype)
    latents = model.encode(x)
    latents = latents if isinstance(latents, list) else [latents]
    weights = np.linspace(0.0, 1.0, args.points)
    rows = []
    for p in range(args.pairs):
        a, b = 2 * p, 2 * p + 1
        line = [[(1 - w) * z[a] + w * z[b] for w in weights] for z in latents]  # per latent, per point
        rows.append(to_numpy(model.decode([np.stack(points) for points in line])))
    strip = np.clip(np.concatenate(rows), 0.0, 1.0)
    save_grid(args.output, strip, nrow=args.points, scale=2,
              caption=f"{run_title(model, run['data'])} — step {ck.step}")
    print(f"nflow: {args.pairs} interpolations of {args.points} points written to {args.output}", file=sys.stderr)
    return 0


def inspect_command(args):
    if args.output:
        _output_file(args.output, "-o")
    model, run, ck = _trained_model(args)
    if args.output and data_kind(run["data"]) != "image":
        fail(f"-o: the level pictures need an image model; this checkpoint was trained on {run['data']}")
    data = load_data(run, EVAL_SPLIT, args.data_dir, args.limit)
    result = decompose(model, data, batch_size=args.batch_size, seed=0)
    print(json.dumps(dict(result.to_dict(), data=run["data"], split=EVAL_SPLIT, step=ck.step)) if args.json
          else f"{run['data']}, {EVAL_SPLIT} split, checkpoint at step {ck.step}\n{result}")
    if args.output:
        sheet = level_pictures(model, data[:INSPECT_PICTURES])
        save_grid(args.output, sheet, nrow=min(INSPECT_PICTURES, len(data)), scale=2,
                  caption=f"{run_title(model, run['data'])} — inputs; each level's latent (RMS over channels, white "
                          "= 3σ); decoded from the top level alone, then with each lower level")
        print(f"nflow: level pictures written to {args.output}", file=sys.stderr)
    return 0


def attribute_mask(spec, images, labels, data_name):
    """Which of ``images`` have the attribute ``spec`` (``("label", N)`` or ``("ink", "top" | "bottom")``): a
    boolean array. Ink is the sum of an image's pixel values (stroke thickness, for digits); top is the quarter
    of the images with the most (ink ≥ its 75th percentile), bottom the quarter with the least."""
    kind, value = spec
    if kind == "label":
        if labels is None:
            fail(f"label:{value}: the test split of {data_name} has no labels; use ink:top / ink:bottom")
        return labels == value
    ink = images.reshape(len(images), -1).astype(np.float64).sum(axis=1)
    threshold = np.quantile(ink, INK_QUANTILE[value])
    return ink >= threshold if value == "top" else ink <= threshold


def manipulate_command(args):
    _output_file(args.output, "-o")
    model, run, ck = _trained_model(args)
    if data_kind(run["data"]) != "image":
        fail(f"manipulate needs an image model; this checkpoint was trained on {run['data']}")
    images, labels = load_labelled_data(run, EVAL_SPLIT, args.data_dir, args.limit)
    names = [":".join(map(str, spec)) for spec in (args.with_spec, args.without_spec)]
    chosen = [attribute_mask(spec, images, labels, run["data"]) for spec in (args.with_spec, args.without_spec)]
    for name, mask in zip(names, chosen):
        if not mask.any():
            fail(f"{name}: no test image of {run['data']} has it" + (f" among the first {args.limit}"
                                                                      if args.limit else ""))
    rng = np.random.default_rng(args.seed)
    x_with, x_without = (to_continuous(images[mask], rng, default_n_bins(images), model.dtype) for mask in chosen)
    direction = attribute_direction(model, x_with, x_without)
    rows = x_without[:args.rows]
    strip = np.clip(manipulate(model, rows, direction, args.alphas), 0.0, 1.0)
    alphas = ", ".join(f"{a:g}" for a in args.alphas)
    save_grid(args.output, strip.reshape((-1,) + strip.shape[2:]), nrow=len(args.alphas), scale=2,
              caption=f"{run_title(model, run['data'])} — step {ck.step}; z + α·(z̄[{names[0]}] - z̄[{names[1]}]), "
                      f"α = {alphas}")
    print(f"nflow: {len(rows)} images of {names[1]} moved along {names[0]} - {names[1]} "
          f"({int(chosen[0].sum())} and {int(chosen[1].sum())} test images) at α = {alphas}, written to "
          f"{args.output}", file=sys.stderr)
    return 0


COMMANDS = {"train": train, "eval": evaluate_command, "sample": sample_command, "interpolate": interpolate_command,
            "inspect": inspect_command, "manipulate": manipulate_command}

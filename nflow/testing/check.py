"""``check_flow``: every property of ``properties.py`` on inputs hypothesis draws (and shrinks).

Each example is a batch of 2-3 samples of the per-sample shape, entries in [low, high]: drawn entry by entry
(hypothesis then shrinks every entry) when the batch has at most ``ELEMENTWISE_LIMIT`` entries, and from a drawn
seed otherwise. The properties run in the order 0, 1, 3 (cheap, on every backend), 2, 4 (central differences, on
the float64 twin, first backend), 6 (every backend), 5. Once a property has failed, hypothesis's shrinking runs
only that property, so a failure in a cheap property shrinks at its own cost.

Non-smooth points. Properties 2 and 4 difference the layer; a difference that straddles a kink raises
:class:`~nflow.finite_differences.NonDifferentiablePoint`. The point is then moved — every entry by an independent uniform
offset of at most MOVE_FRACTION · (high - low), clipped to [low, high] — and the property runs again there,
up to MAX_MOVES times; a point still non-smooth after that is rejected (``hypothesis.assume(False)``). No
tolerance is widened for it. Moving rather than only rejecting keeps layers with kinks at round inputs (a ReLU at
x = 0, which hypothesis draws often) from running out of examples.

Large inputs. The full Jacobian of a sample costs 4·D evaluations of one sample (x ± h·e_i, x ± 2h·e_i, pushed
through the layer as batches of perturbed copies) and an O(D³) determinant. Up to ``max_jacobian_dim``
coordinates per sample (default 256), property 2 builds it for every sample of every example. Above, every
example still checks that samples stay apart (a finite move of one sample along a random direction must leave
the others' outputs and log-dets unchanged: exact, whatever D), and the full Jacobian of ONE sample at ONE point
drawn from the run's seed is checked once per call, after the hypothesis examples (its time is in the report's
notes). That catches a log-det formula that is wrong everywhere (a sign, a missing factor such as H·W, a missing
term), and cannot catch one that is wrong only in parts of the input range that one point does not reach: check a
large layer at a small shape as well, where every example gets the full Jacobian.
"""
import time
import warnings

import numpy as np

from nflow.backend import cupy_available, numba_available
from nflow.finite_differences import FD_STEP, NonDifferentiablePoint
from nflow.testing import properties as P
from nflow.testing.jacobian import snap
from nflow.testing.optional import require_hypothesis
from nflow.testing.subject import PERTURB_STD, Subject

DEFAULT_MAX_EXAMPLES = 10
MAX_JACOBIAN_DIM = 256
ELEMENTWISE_LIMIT = 256
BATCH_SIZES = (2, 3)
MAX_MOVES = 3
MOVE_FRACTION = 1e-3
KNOWN_BACKENDS = ("numpy", "numba", "cupy")


class FlowCheckReport:
    """What ``check_flow`` ran: ``properties`` (numbers that held), ``skipped`` ({number: why}), ``examples``
    (hypothesis examples run, shrinking included), ``moved`` (points moved off a kink), ``backends``, ``seconds``."""

    def __init__(self, name, backends):
        self.name, self.backends = name, list(backends)
        self.properties, self.skipped = [], {}
        self.examples = self.moved = self.rejected = 0
        self.seconds = 0.0
        self.notes = []

    def __str__(self):
        held = ", ".join(str(p) for p in self.properties)
        text = (f"{self.name}: properties {held} held on {self.examples} examples "
                f"(backends {', '.join(self.backends)}) in {self.seconds:.2f} s")
        if self.moved or self.rejected:
            text += f"; {self.moved} points moved off a kink, {self.rejected} rejected"
        for number, why in sorted(self.skipped.items()):
            text += f"\n  property {number} not run: {why}"
        for note in self.notes:
            text += f"\n  {note}"
        return text

    __repr__ = __str__


class _Context:
    """What the property functions read: the prepared subject, the range, the backends."""

    def __init__(self, subject, low, high, backends, max_jacobian_dim):
        self.subject, self.low, self.high = subject, low, high
        self.backends, self.reference = backends, backends[0]
        # central differences run on the host (the float64 twin lives there): the first host backend asked for
        self.host = next((b for b in backends if b != "cupy"), "numpy")
        self.max_jacobian_dim = max_jacobian_dim


def _validate(layer, input_shape, low, high, dtype, max_examples, backends, max_jacobian_dim, perturb_std):
    from nflow.models.base import FlowModel
    for method in (() if isinstance(layer, FlowModel) else ("forward", "inverse")):
        if not callable(getattr(layer, method, None)):
            raise TypeError(f"check_flow: layer must have forward(x) -> (y, logdet) and inverse(y) -> (x, logdet); "
                            f"{type(layer).__name__} has no {method}()")
    if isinstance(input_shape, (int, np.integer)) and not isinstance(input_shape, bool):
        input_shape = (int(input_shape),)
    if not isinstance(input_shape, (tuple, list)) or not input_shape or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in input_shape):
        raise ValueError(f"check_flow: input_shape must be the per-sample shape, a non-empty tuple of positive "
                         f"integers (no batch axis), got {input_shape!r}")
    try:
        low, high = float(low), float(high)
    except (TypeError, ValueError):
        raise TypeError(f"check_flow: low and high must be numbers, got low={low!r}, high={high!r}") from None
    if not (np.isfinite(low) and np.isfinite(high)) or low >= high:
        raise ValueError(f"check_flow: need finite low < high, got low={low}, high={high}")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"check_flow: dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"check_flow: dtype must be float32 or float64, got {dtype}")
    if not isinstance(max_examples, (int, np.integer)) or isinstance(max_examples, bool) or max_examples < 1:
        raise ValueError(f"check_flow: max_examples must be a positive integer, got {max_examples!r}")
    if not isinstance(max_jacobian_dim, (int, np.integer)) or max_jacobian_dim < 1:
        raise ValueError(f"check_flow: max_jacobian_dim must be a positive integer, got {max_jacobian_dim!r}")
    if not perturb_std >= 0:
        raise ValueError(f"check_flow: perturb_std must be ≥ 0, got {perturb_std!r}")
    available = ["numpy"] + (["numba"] if numba_available() else []) + (["cupy"] if cupy_available() else [])
    if backends is None:
        backends = available
    else:
        if isinstance(backends, str):
            backends = [backends]
        backends = list(backends)
        unknown = [b for b in backends if b not in KNOWN_BACKENDS]
        if unknown or not backends:
            raise ValueError(f"check_flow: backends must be names from {KNOWN_BACKENDS}, got {backends!r}")
        missing = [b for b in backends if b not in available]
        if missing:
            raise ValueError(f"check_flow: backends {missing} are not available on this machine "
                             f"(available: {available}); pass backends=None for all available ones")
    input_shape = tuple(int(s) for s in input_shape)
    if isinstance(layer, FlowModel) and input_shape != layer.input_shape:
        raise ValueError(f"check_flow: input_shape {input_shape} is not the model's input shape {layer.input_shape}")
    return input_shape, low, high, dtype, backends


def _examples(st, shape, low, high, dtype, batch_sizes):
    """A strategy of :class:`~nflow.testing.properties.Example` (seed of directions drawn with it)."""
    from nflow.testing.strategies import batches_with_origin

    @st.composite
    def example(draw):
        x, text = draw(batches_with_origin(shape, low, high, dtype, batch_sizes[0], batch_sizes[1],
                                                elementwise_limit=ELEMENTWISE_LIMIT))
        seed = draw(st.integers(0, 2 ** 31 - 1), label="seed")
        return P.Example(x, seed, text)

    return example()


def _move(ex, ctx, attempt, error):
    rng = np.random.default_rng(ex.seed + 1000 + attempt)
    span = ctx.high - ctx.low
    x = np.clip(ex.x.astype(np.float64) + rng.uniform(-1, 1, ex.x.shape) * MOVE_FRACTION * span, ctx.low, ctx.high)
    return ex.moved(x.astype(ex.x.dtype), f"the central difference ({error.what}) straddled a non-smooth point")


def _away_from_edges(ex, ctx):
    """Central differences step up to 2h = 2⁻¹⁹ each way: keep the base point 4h inside [low, high], and on the
    grid that makes every step exact (``jacobian.snap``; a move of at most 2⁻³⁷)."""
    margin = 4 * FD_STEP
    x = ex.x.astype(np.float64)
    if ctx.high - ctx.low > 4 * margin:
        x = np.clip(x, ctx.low + margin, ctx.high - margin)
    x = snap(x).astype(ex.x.dtype)
    return ex if np.array_equal(x, ex.x) else P.Example(x, ex.seed, ex.text)


def _differenced(prop, ctx, ex, report, assume):
    ex = _away_from_edges(ex, ctx)
    for attempt in range(MAX_MOVES + 1):
        try:
            prop(ctx, ex)
            return
        except NonDifferentiablePoint as error:
            if attempt == MAX_MOVES:
                report.rejected += 1
                assume(False)
            report.moved += 1
            ex = _away_from_edges(_move(ex, ctx, attempt, error), ctx)


def check_flow(layer, input_shape, *, low=-2.0, high=2.0, dtype=np.float64, max_examples=DEFAULT_MAX_EXAMPLES,
               backends=None, batch_sizes=BATCH_SIZES, perturb_std=PERTURB_STD, max_jacobian_dim=MAX_JACOBIAN_DIM,
               seed=None):
    """Property-test a flow layer; raise AssertionError naming the first property that fails.

    ``layer``: anything with ``forward(x) -> (y, logdet)`` and ``inverse(y) -> (x, logdet)`` on nflow Tensors (a
    :class:`~nflow.flows.Flow` subclass, with or without parameters), or a whole model
    (:class:`~nflow.models.FlowModel`, seen as one flow to its concatenated latents). It is not modified: the kit
    checks a copy, run once in training mode, with every parameter perturbed by ``perturb_std``·N(0, 1), in eval mode.
    ``input_shape``: the per-sample shape (no batch axis). Inputs are batches of ``batch_sizes`` = (min, max)
    samples with entries in [``low``, ``high``], in ``dtype`` (the layer's dtype: float32 or float64).
    ``max_examples``: hypothesis examples (each runs every property; shrinking comes on top after a failure).
    ``backends``: names among "numpy", "numba", "cupy" (default: every one this machine has; the first is the
    reference of property 5; central differences run on the first host backend, "numpy" or "numba"). ``max_jacobian_dim``: up to this many coordinates per sample the full
    Jacobian is built for every sample (see the module docstring for larger inputs). ``seed``: an int makes the run
    reproducible (hypothesis's search and the parameters' perturbation seeded with it); None draws both afresh.

    Float32 layers: properties 0, 1, 3, 5, 6 run on the layer with float32 tolerances; 2 and 4 run central
    differences on a float64 twin (same parameters, upcast) and compare the float32 layer's log-dets and gradients
    with the twin's. If no twin can be made, 2 and 4 are skipped and the report says so.

    Returns a :class:`FlowCheckReport`. Raises TypeError/ValueError naming a bad argument.
    """
    input_shape, low, high, dtype, backends = _validate(layer, input_shape, low, high, dtype, max_examples,
                                                        backends, max_jacobian_dim, perturb_std)
    if (not isinstance(batch_sizes, (tuple, list)) or len(batch_sizes) != 2
            or not 1 <= int(batch_sizes[0]) <= int(batch_sizes[1])):
        raise ValueError(f"check_flow: batch_sizes must be (min, max) with 1 ≤ min ≤ max, got {batch_sizes!r}")
    require_hypothesis()
    from hypothesis import HealthCheck, Phase, assume, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable

    start = time.perf_counter()
    run_seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy % 2 ** 32)
    subject = Subject(layer, input_shape, low, high, dtype, perturb_std, np.random.default_rng(run_seed))
    try:
        report = FlowCheckReport(subject.name, backends)
        ctx = _Context(subject, low, high, backends, int(max_jacobian_dim))
        ctx.perturbation = (f"every parameter + {perturb_std}·N(0, 1) drawn by numpy.random.default_rng({run_seed}) "
                            f"(check_flow(..., seed={run_seed}) repeats it)") if subject.params else None
        plan, differenced = _plan(subject, backends, report, assume)
        failed = []

        health = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                  HealthCheck.filter_too_much]
        health += [getattr(HealthCheck, name) for name in ("nested_given", "differing_executors",
                                                           "function_scoped_fixture") if hasattr(HealthCheck, name)]

        @settings(max_examples=int(max_examples), deadline=None, database=None, report_multiple_bugs=False,
                  suppress_health_check=health, print_blob=False,
                  phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink])  # no "explain"
        @given(ex=_examples(st, input_shape, low, high, dtype, batch_sizes))
        def run(ex):
            report.examples += 1
            for number, prop in plan:
                if failed and number != failed[0]:
                    continue  # shrinking a failure: only the property that failed
                try:
                    prop(ctx, ex)
                except P.PropertyFailure:
                    if not failed:
                        failed.append(number)
                    raise

        if seed is not None:
            run = hypothesis_seed(run_seed)(run)
        try:
            run()
        except Unsatisfiable:
            raise RuntimeError(f"check_flow: {subject.name}: every drawn point lay on a non-smooth point of the "
                               f"layer even after {MAX_MOVES} moves; properties 2 and 4 could not be checked") from None
        if 2 in differenced and subject.dim > ctx.max_jacobian_dim:
            _large_jacobian_once(ctx, report, run_seed, dtype, batch_sizes[0])
        report.properties = sorted(set(n for n, _ in plan))
        report.seconds = time.perf_counter() - start
        return report
    finally:
        subject.restore()


def _plan(subject, backends, report, assume):
    """[(property number, fn(ctx, example))] in the order they run, and the central-difference ones."""
    differenced = {2: P.logdet_jacobian, 4: P.gradients}
    if subject.twin is None:
        why = (f"central differences need float64, and no float64 copy of this float32 layer could be made "
               f"({subject.twin_problem}); run check_flow on a float64 instance of the layer for them")
        for number in differenced:
            report.skipped[number] = why
        warnings.warn(f"check_flow: {subject.name}: properties 2 and 4 not run: {why}", UserWarning, stacklevel=3)
        differenced = {}
    if len(backends) < 2:
        report.skipped[5] = f"only one backend ({backends[0]}) to compare"
    reversible_ok = callable(getattr(subject.layer, "backward_from_output", None))
    if not reversible_ok:
        report.skipped[6] = "the layer has no backward_from_output (memory-free backprop)"

    def per_backend(fn):
        return lambda ctx, ex: [fn(ctx, ex, b) for b in backends]

    plan = [(0, per_backend(P.contract)), (1, per_backend(P.round_trip)), (3, per_backend(P.inverse_logdet))]
    plan += [(n, lambda ctx, ex, fn=fn: _differenced(fn, ctx, ex, report, assume)) for n, fn in differenced.items()]
    if reversible_ok:
        plan.append((6, per_backend(P.reversible)))
    if len(backends) > 1:
        plan.append((5, P.backends_agree))
    return plan, differenced


def _large_jacobian_once(ctx, report, seed, dtype, n):
    """Above max_jacobian_dim: the full Jacobian of one sample at one seeded point (module docstring)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(ctx.low, ctx.high, size=(max(n, 1),) + ctx.subject.input_shape).astype(dtype)
    ex = P.Example(x, seed, f"x = numpy.random.default_rng({seed}).uniform({ctx.low}, {ctx.high}, "
                            f"{x.shape}).astype({np.dtype(dtype).name}) (the once-per-call full-Jacobian point)")
    t0 = time.perf_counter()

    def one(ctx, ex):
        x64 = ex.x.astype(np.float64)
        from nflow.testing.evaluate import outputs
        y, ld = outputs(ctx.subject.twin, "forward", x64, ctx.host)
        P.logdet_of_sample(ctx, ex, x64, 0, y[0], ld[0])

    def reject():
        report.notes.append("the full-Jacobian point stayed non-smooth after moves; not checked")

    _differenced(one, ctx, ex, report, lambda ok: reject() if not ok else None)
    report.notes.append(f"property 2: D = {ctx.subject.dim} > max_jacobian_dim = {ctx.max_jacobian_dim}: full "
                        f"Jacobian of one sample at one seeded point ({time.perf_counter() - t0:.1f} s); "
                        "every example checked that samples stay apart")

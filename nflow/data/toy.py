"""Two-dimensional toy densities, generated in code, for watching a flow bend space.

Each ``<density>(n, rng)`` draws ``n`` points from a NumPy Generator and returns a float32 array (n, 2).
Every density is centred and scaled by constants derived in closed form below, so each coordinate has mean 0
and variance 1 exactly in expectation; a flow starting at the identity map with a standard normal prior is
then in the right ballpark from the first step.

The shapes follow the ones used throughout the flow literature (Grathwohl et al. 2019, FFJORD, Fig. 2;
Durkan et al. 2019, Neural Spline Flows, §5.1).
"""
import math

import numpy as np

# -- two moons: two interleaved half circles of radius 1 ---------------------------------------------------
MOONS_NOISE = 0.1  # std of the Gaussian noise added to each coordinate, in the unscaled units
# With t ~ U[0, π]: upper moon (cos t, sin t), lower moon (1 - cos t, 1/2 - sin t), each with probability 1/2.
# E x = 1/2, E x² = 1, so Var x = 3/4;  E y = 1/4, E y² = 5/8 - 1/π, so Var y = 9/16 - 1/π.
MOONS_MEAN = (0.5, 0.25)
MOONS_STD = (math.sqrt(3 / 4 + MOONS_NOISE**2), math.sqrt(9 / 16 - 1 / math.pi + MOONS_NOISE**2))

# -- eight Gaussians on a circle -----------------------------------------------------------------------------
EIGHT_RADIUS = 2.0  # radius of the circle the eight centres sit on (unscaled)
EIGHT_STD = 0.2  # std of each Gaussian (unscaled)
EIGHT_N_MODES = 8
# The centres' coordinates have mean 0 and E cos² = 1/2 over the eight angles, so Var = R²/2 + σ² per axis.
EIGHT_SCALE = math.sqrt(EIGHT_RADIUS**2 / 2 + EIGHT_STD**2)

# -- checkerboard: the black squares of a 4 x 4 board on [-2, 2)² ------------------------------------------
BOARD_SQUARES = 4
# Both marginals are uniform on [-2, 2): variance 4² / 12 = 4/3.
BOARD_SCALE = math.sqrt(BOARD_SQUARES**2 / 12)

# -- rings: four concentric circles, points spread evenly along their length ----------------------------------
RING_RADII = (1.0, 2.0, 3.0, 4.0)
RING_NOISE = 0.1  # std of the radial noise (unscaled)
# P(ring r) ∝ r (equal density along each circle); Var per axis = E[(r + ε)²] / 2 = (Σr³/Σr + σ²) / 2.
RING_SCALE = math.sqrt((sum(r**3 for r in RING_RADII) / sum(RING_RADII) + RING_NOISE**2) / 2)

PLOT_LIMIT = 3.0  # the standardised densities live, almost entirely, in [-3, 3]²


def _out(x, y):
    return np.stack([x, y], axis=1).astype(np.float32)


def two_moons(n, rng):
    """Two interleaving half-moons with Gaussian noise, standardised per axis."""
    t = rng.uniform(0.0, math.pi, n)
    upper = rng.random(n) < 0.5
    x = np.where(upper, np.cos(t), 1.0 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    noise = rng.standard_normal((2, n)) * MOONS_NOISE
    return _out((x + noise[0] - MOONS_MEAN[0]) / MOONS_STD[0], (y + noise[1] - MOONS_MEAN[1]) / MOONS_STD[1])


def eight_gaussians(n, rng):
    """An equal mixture of eight isotropic Gaussians centred on a circle, standardised."""
    angle = 2 * math.pi * rng.integers(0, EIGHT_N_MODES, n) / EIGHT_N_MODES
    noise = rng.standard_normal((2, n)) * EIGHT_STD
    return _out((EIGHT_RADIUS * np.cos(angle) + noise[0]) / EIGHT_SCALE,
                (EIGHT_RADIUS * np.sin(angle) + noise[1]) / EIGHT_SCALE)


def checkerboard(n, rng):
    """Uniform on the squares (column + row even) of a 4×4 board, standardised: a density with sharp edges."""
    half = BOARD_SQUARES / 2
    x = rng.uniform(-half, half, n)
    column = np.floor(x + half).astype(np.int64)  # 0..3
    row = 2 * rng.integers(0, BOARD_SQUARES // 2, n) + column % 2  # rows with (row + column) even
    y = row - half + rng.random(n)
    return _out(x / BOARD_SCALE, y / BOARD_SCALE)


def rings(n, rng):
    """Four concentric noisy circles, each point's ring chosen with probability ∝ its radius, standardised."""
    radii = np.array(RING_RADII)
    ring = rng.choice(len(radii), size=n, p=radii / radii.sum())
    r = radii[ring] + rng.standard_normal(n) * RING_NOISE
    angle = rng.uniform(0.0, 2 * math.pi, n)
    return _out(r * np.cos(angle) / RING_SCALE, r * np.sin(angle) / RING_SCALE)


DENSITIES = {
    "moons": two_moons,
    "8gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "rings": rings,
}


def sample_toy(name, n, rng):
    """Draw ``n`` points from the toy density called ``name`` (a key of :data:`DENSITIES`)."""
    if name not in DENSITIES:
        raise ValueError(f"unknown toy density {name!r}; choose one of {sorted(DENSITIES)}")
    return DENSITIES[name](n, rng)


def grid_points(resolution, limit=PLOT_LIMIT):
    """Points of a ``resolution × resolution`` grid over [-limit, limit]², as float32 (resolution², 2).

    Row-major with the first row at the *top* (y = +limit) and x increasing to the right, so
    ``values.reshape(resolution, resolution)`` is an image the right way up (as
    :func:`nflow.image.histogram_2d` lays out its counts). Points are cell centres.
    """
    centres = (np.arange(resolution) + 0.5) / resolution * 2 * limit - limit
    xs, ys = np.meshgrid(centres, centres[::-1])
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)

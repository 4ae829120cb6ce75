"""The differential entropy of nflow's standardised eight-Gaussians density, by Monte Carlo, independently of any
model: the floor a perfect density model's test NLL reaches on `--data 8gaussians`.

The unscaled density is an equal mixture of eight isotropic Gaussians N(c_k, σ² I), c_k = R (cos 2πk/8, sin 2πk/8)
(``nflow/data/toy.py``: R = EIGHT_RADIUS, σ = EIGHT_STD); its log-density is exact in closed form,

    log p(y) = logsumexp_k [ -|y - c_k|² / (2σ²) ] - log 8 - log(2π σ²).

nflow standardises the points, x = y / s with s = EIGHT_SCALE, so p_x(x) = s² p(s x) in 2-D and

    H(x) = -E log p_x(x) = H(y) - 2 log s.

H(y) = -E log p(y) is estimated as the sample mean over n draws of y (float64, drawn here from the mixture's
definition, not with nflow's sampler), with the standard error std / √n. Run:

    python -m benchmarks.toy_entropy [--n 4000000] [--seed 0]
"""
import argparse
import math

import numpy as np

from nflow.data.toy import EIGHT_N_MODES, EIGHT_RADIUS, EIGHT_SCALE, EIGHT_STD

DEFAULT_SAMPLES = 4_000_000
CHUNK = 1_000_000   # draws per batch, to keep memory small


def centres():
    angles = 2 * math.pi * np.arange(EIGHT_N_MODES) / EIGHT_N_MODES
    return EIGHT_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)   # (8, 2)


def log_density_unscaled(y):
    """Exact log p(y) of the unscaled mixture, y of shape (n, 2), in float64."""
    squared = ((y[:, None, :] - centres()[None, :, :]) ** 2).sum(axis=2)      # (n, 8)
    e = -squared / (2 * EIGHT_STD**2)
    top = e.max(axis=1)
    return top + np.log(np.exp(e - top[:, None]).sum(axis=1)) - math.log(EIGHT_N_MODES) \
        - math.log(2 * math.pi * EIGHT_STD**2)


def entropy(n, seed):
    """(H of the standardised density in nats, its standard error) from n Monte Carlo draws."""
    rng = np.random.default_rng(seed)
    total, total_sq, done = 0.0, 0.0, 0
    while done < n:
        m = min(CHUNK, n - done)
        y = centres()[rng.integers(0, EIGHT_N_MODES, m)] + rng.standard_normal((m, 2)) * EIGHT_STD
        neg_log_p = -(log_density_unscaled(y) + 2 * math.log(EIGHT_SCALE))  # -log p_x(y / s), p_x(x) = s² p(s x)
        total += neg_log_p.sum()
        total_sq += (neg_log_p**2).sum()
        done += m
    mean = total / n
    std = math.sqrt(max(total_sq / n - mean**2, 0.0))
    return mean, std / math.sqrt(n)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=DEFAULT_SAMPLES)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    h, se = entropy(args.n, args.seed)
    # Well-separated modes: H(y) ≈ log 8 + 1 + log(2πσ²), a check on the Monte Carlo figure, not the figure.
    separated = math.log(EIGHT_N_MODES) + 1 + math.log(2 * math.pi * EIGHT_STD**2) - 2 * math.log(EIGHT_SCALE)
    print(f"8gaussians (standardised by s = {EIGHT_SCALE:.6f}): entropy H = {h:.5f} ± {se:.5f} nats "
          f"({args.n:,} float64 draws, seed {args.seed}); separated-modes approximation {separated:.5f}")


if __name__ == "__main__":
    main()

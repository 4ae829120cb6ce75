"""The colour map of the heat maps: values in [0, 1] to RGB."""
import numpy as np

# A viridis-like colormap (dark purple -> blue -> green -> yellow; perceptually ordered, readable in grey):
# the ten colours of viridis(10) (van der Walt & Smith, 2015), evenly spaced on [0, 1], linearly interpolated.
COLORMAP_HEX = ("440154", "482878", "3E4989", "31688E", "26828E", "1F9E89", "35B779", "6DCD59", "B4DE2C", "FDE725")
COLORMAP_ANCHORS = np.array([[int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)] for h in COLORMAP_HEX])
NAN_COLOR = (128, 128, 128)


def colormap(t):
    """Map values ``t`` in [0, 1] (clipped) to RGB uint8 with the built-in viridis-like map; NaN -> grey."""
    t = np.asarray(t, dtype=np.float64)
    nan = np.isnan(t)
    pos = np.clip(np.where(nan, 0.0, t), 0.0, 1.0) * (len(COLORMAP_ANCHORS) - 1)
    i = np.minimum(np.floor(pos).astype(np.int64), len(COLORMAP_ANCHORS) - 2)
    frac = (pos - i)[..., None]
    rgb = COLORMAP_ANCHORS[i] * (1 - frac) + COLORMAP_ANCHORS[i + 1] * frac
    out = np.rint(rgb * 255).astype(np.uint8)
    out[nan] = NAN_COLOR
    return out

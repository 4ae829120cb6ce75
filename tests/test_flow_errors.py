"""Bad input stops with a clear error that names the layer (or model) and the shapes involved: odd spatial sizes
into Squeeze, channel counts a coupling cannot split, wrong input shapes, NaN or inf anywhere in the input of
log_prob / encode / decode, image values outside [0, 1], a singular 1x1 weight loaded from a state dict, and
Glow/RealNVP built for an image size their squeezes cannot halve."""
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nflow
from nflow.flows import (MLP, ActNorm, AdditiveCoupling, AffineCoupling, BatchNormFlow, ConvNet, GlowNet, IAFLayer,
                         InvConv1x1, MAFLayer, NiceScaling, Shuffle, Split, Squeeze)
from nflow.models import IAF, MAF, NICE, Glow, RealNVP


def t32(shape, value=0.0):
    return nflow.tensor(np.full(shape, value, dtype=np.float32))


def shape_text(shape):
    return re.escape(str(tuple(shape)))


def small_glow():
    return Glow((1, 8, 8), levels=2, steps=1, hidden=4)


MODELS = {
    "Glow": small_glow,
    "RealNVP": lambda: RealNVP((1, 4, 4), scales=2, hidden=4),
    "RealNVP/vector": lambda: RealNVP((2,), hidden=4, couplings=2),
    "NICE": lambda: NICE((1, 2, 2), couplings=2, hidden=4, depth=1),
    "MAF": lambda: MAF((1, 2, 2), layers=2, hidden=4, depth=1, batch_norm=True),
    "MAF/vector": lambda: MAF((3,), layers=2, hidden=4),
    "IAF": lambda: IAF((1, 2, 2), layers=2, hidden=4, depth=1),
    "IAF/vector": lambda: IAF((3,), layers=2, hidden=4),
}


# ------------------------------------------------------------------------------------------------ shapes
@settings(max_examples=10)
@given(c=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7))
def test_squeeze_refuses_odd_spatial_sizes(c, h, w):
    x = t32((2, c, h, w))
    if h % 2 == 0 and w % 2 == 0:
        assert Squeeze().forward(x)[0].shape == (2, 4 * c, h // 2, w // 2)
        return
    with pytest.raises(ValueError, match=rf"Squeeze: spatial size must be even.*{shape_text(x.shape)}"):
        Squeeze().forward(x)


def test_squeeze_refuses_wrong_rank_and_inverse_refuses_channels_not_divisible_by_four():
    with pytest.raises(ValueError, match=r"Squeeze: expected a 4-D input, got shape \(2, 3, 4\)"):
        Squeeze().forward(t32((2, 3, 4)))
    with pytest.raises(ValueError, match=r"Squeeze.inverse: channels must be a multiple of 4.*\(2, 6, 2, 2\)"):
        Squeeze().inverse(t32((2, 6, 2, 2)))


@pytest.mark.parametrize("make", [
    lambda: AffineCoupling(1, MLP(1, 2, 4, 1)),
    lambda: AdditiveCoupling(1, MLP(1, 1, 4, 1)),
    lambda: AffineCoupling(1, GlowNet(1, 2, 4)),
], ids=["affine", "additive", "affine-image"])
def test_coupling_refuses_a_single_channel(make):
    with pytest.raises(ValueError, match=r"(Affine|Additive)Coupling: needs at least 2 channels .* got 1"):
        make()


def test_split_refuses_an_odd_channel_count():
    with pytest.raises(ValueError, match=r"Split: needs an even number of channels .* got 3"):
        Split(3)


@pytest.mark.parametrize("layer,shape,pattern", [
    (AffineCoupling(4, MLP(2, 4, 4, 1)), (2, 3), r"AffineCoupling: expected 4 channels on axis 1, got shape \(2, 3\)"),
    (AdditiveCoupling(4, GlowNet(2, 2, 4)), (2, 5, 2, 2),
     r"AdditiveCoupling: expected 4 channels on axis 1, got shape \(2, 5, 2, 2\)"),
    (AffineCoupling(2, ConvNet(2, 4, 4), mask="checkerboard", form="exp"), (2, 2),
     r"AffineCoupling\(checkerboard\): expected a 4-D input, got shape \(2, 2\)"),
    (ActNorm(3), (2, 4, 2, 2), r"ActNorm: expected 3 channels on axis 1, got shape \(2, 4, 2, 2\)"),
    (InvConv1x1(3), (2, 3, 4), r"InvConv1x1: expected a 4-D input, got shape \(2, 3, 4\)"),
    (InvConv1x1(3), (2, 2, 4, 4), r"InvConv1x1: expected 3 channels on axis 1, got shape \(2, 2, 4, 4\)"),
    (NiceScaling(4), (2, 5), r"NiceScaling: expected 4 channels on axis 1, got shape \(2, 5\)"),
    (Split(4), (2, 6, 2, 2), r"Split: expected 4 channels on axis 1, got shape \(2, 6, 2, 2\)"),
    (MAFLayer(4, (8,)), (2, 3), r"MAFLayer: expected 4 channels on axis 1, got shape \(2, 3\)"),
    (IAFLayer(4, (8,)), (2, 4, 1), r"IAFLayer: expected a 2-D input, got shape \(2, 4, 1\)"),
], ids=["affine", "additive", "checkerboard", "actnorm", "invconv-rank", "invconv-channels", "nicescaling", "split",
        "maf-layer", "iaf-layer"])
def test_layers_name_themselves_and_the_shape_on_a_wrong_input(layer, shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        layer.forward(t32(shape, 0.5))
    with pytest.raises(ValueError, match=pattern.replace(":", r"(\.inverse)?:", 1)):
        layer.inverse(t32(shape, 0.5))


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("method", ["log_prob", "encode", "bits_per_dim"])
def test_model_refuses_a_wrong_input_shape(name, method):
    model = MODELS[name]()
    good = model.input_shape
    for shape in [(2,) + good[:-1] + (good[-1] + 1,), (2, int(np.prod(good))) if len(good) > 1 else (2, 1, good[0]),
                  good]:
        x = np.full(shape, 0.5, dtype=np.float32)
        with pytest.raises(ValueError, match=rf"{name.split('/')[0]}: expected input of shape "
                                             rf"\(N, {re.escape(', '.join(map(str, good)))}\), got {shape_text(shape)}"):
            getattr(model, method)(x)


def test_decode_refuses_wrong_latents():
    model = small_glow()
    z = model.encode(np.full((2, 1, 8, 8), 0.5, dtype=np.float32))
    with pytest.raises(ValueError, match=r"Glow: decode needs 2 latents, got 1"):
        model.decode(z[:1])
    with pytest.raises(ValueError, match=r"expected 4 channels on axis 1, got shape \(2, 5, 4, 4\)"):
        model.decode([np.zeros((2, 3, 4, 4), np.float32), z[1]])


def test_model_refuses_an_input_of_another_dtype():
    with pytest.raises(TypeError, match=r"Glow: the model is float32, the input is float64"):
        small_glow().log_prob(np.full((2, 1, 8, 8), 0.5))


# ------------------------------------------------------------------------------------------------ values
@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@settings(max_examples=3)
@given(data=st.data())
def test_non_finite_input_stops_log_prob_encode_and_decode(name, bad, data):
    model = MODELS[name]()
    shape = (3,) + model.input_shape
    x = np.full(shape, 0.5, dtype=np.float32)
    where = data.draw(st.tuples(*[st.integers(0, s - 1) for s in shape]), label="position")
    x_bad = x.copy()
    x_bad[where] = bad
    for method in ("log_prob", "encode"):
        with pytest.raises(FloatingPointError, match=rf"{name.split('/')[0]}: input holds 1 non-finite value"):
            getattr(model, method)(x_bad)
    z = model.encode(x)
    zs = z if isinstance(z, list) else [z]
    k = data.draw(st.integers(0, len(zs) - 1), label="latent")
    zs = [a.copy() for a in zs]
    zs[k].reshape(-1)[data.draw(st.integers(0, zs[k].size - 1), label="index")] = bad
    with pytest.raises(FloatingPointError, match=rf"{name.split('/')[0]}.decode: input holds 1 non-finite value"):
        model.decode(zs if len(zs) > 1 else zs[0])


@pytest.mark.parametrize("name", ["Glow", "RealNVP", "NICE", "MAF", "IAF"])
@settings(max_examples=5)
@given(value=st.one_of(st.floats(-10, -1e-6), st.floats(1 + 1e-6, 10)), data=st.data())
def test_image_models_refuse_values_outside_the_unit_interval(name, value, data):
    model = MODELS[name]()
    x = np.full((2,) + model.input_shape, 0.5, dtype=np.float32)
    x.reshape(-1)[data.draw(st.integers(0, x.size - 1))] = value
    with pytest.raises(ValueError, match=rf"{name}: input values must lie in \[0.0, 1.0\]"):
        model.log_prob(x)
    # the boundary values themselves are accepted
    edges = np.zeros((2,) + model.input_shape, dtype=np.float32)
    edges[1] = 1.0
    assert np.all(np.isfinite(model.log_prob(edges).data))


# ------------------------------------------------------------------------------------------------ singular weights
@settings(max_examples=10)
@given(c=st.integers(2, 6), seed=st.integers(0, 2**32 - 1), rank_drop=st.integers(1, 2))
def test_loading_a_rank_deficient_1x1_weight_is_refused(c, seed, rank_drop):
    rng = np.random.default_rng(seed)
    layer = InvConv1x1(c, lu=False, rng=rng)
    rank = max(c - rank_drop, 1)
    weight = (rng.standard_normal((c, rank)) @ rng.standard_normal((rank, c))).astype(np.float32)
    state = layer.state_dict()
    state["weight"] = weight
    with pytest.raises(ValueError, match=rf"InvConv1x1: the loaded( {c}x{c})? weight is (numerically )?singular"):
        layer.load_state_dict(state)


def test_loading_an_exactly_singular_weight_names_the_size():
    layer = InvConv1x1(3, lu=False)
    state = layer.state_dict()
    state["weight"] = np.array([[1, 2, 3], [2, 4, 6], [0, 1, 0]], dtype=np.float32)
    with pytest.raises(ValueError, match=r"InvConv1x1: the loaded 3x3 weight is singular \(det W = 0\)"):
        layer.load_state_dict(state)


def test_loading_a_singular_weight_into_a_model_is_refused():
    model = Glow((1, 4, 4), levels=1, steps=1, hidden=4, lu=False)
    state = model.state_dict()
    key = next(k for k in state if k.endswith("weight") and state[k].shape == (4, 4))
    state[key] = np.zeros((4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"InvConv1x1: the loaded 4x4 weight is singular"):
        model.load_state_dict(state)


def test_loading_non_finite_lu_log_scale_is_refused():
    layer = InvConv1x1(3, lu=True)
    state = layer.state_dict()
    state["log_s"] = np.array([0.0, -np.inf, 0.0], dtype=np.float32)
    with pytest.raises(ValueError, match=r"log_s holds NaN or inf"):  # Module.load_state_dict, before any change
        layer.load_state_dict(state)


@pytest.mark.parametrize("bad_sign", [0.0, 2.0, 0.5])
def test_loading_lu_signs_that_are_not_plus_or_minus_one_is_refused(bad_sign):
    """sign(s) is fixed at ±1; a 0 makes W singular while Σ log|s| still reports a finite log-det, and any
    other magnitude makes that log-det wrong."""
    layer = InvConv1x1(3, lu=True)
    state = layer.state_dict()
    state["sign_s"] = np.array([1.0, bad_sign, -1.0], dtype=np.float32)
    with pytest.raises(ValueError, match=r"InvConv1x1\(lu=True\): loaded sign\(s\) must be ±1"):
        layer.load_state_dict(state)


@pytest.mark.parametrize("bad", ["all-ones", "repeated-row", "scaled"])
def test_loading_an_lu_permutation_that_is_not_one_is_refused(bad):
    layer = InvConv1x1(3, lu=True)
    state = layer.state_dict()
    p = {"all-ones": np.ones((3, 3)), "repeated-row": np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1]]),
         "scaled": 2 * np.eye(3)}[bad]
    state["permutation"] = p.astype(np.float32)
    with pytest.raises(ValueError, match=r"InvConv1x1\(lu=True\): the loaded permutation is not a permutation"):
        layer.load_state_dict(state)


# ------------------------------------------------------------------------------------------------ architectures
@settings(max_examples=10)
@given(levels=st.integers(1, 4), h=st.integers(1, 5), w=st.integers(1, 5))
def test_glow_refuses_image_sizes_not_divisible_by_two_to_the_levels(levels, h, w):
    size = (4 * h, 4 * w)
    divisible = size[0] % 2**levels == 0 and size[1] % 2**levels == 0
    if divisible:
        return  # building it is tested elsewhere; here only the refusals
    with pytest.raises(ValueError, match=rf"Glow: {levels} levels .* divisible by 2\^{levels} = {2 ** levels}, "
                                         rf"got input shape \(1, {size[0]}, {size[1]}\)"):
        Glow((1,) + size, levels=levels, steps=1, hidden=2)


def test_realnvp_refuses_an_image_it_cannot_squeeze():
    with pytest.raises(ValueError, match=r"RealNVP: scale 1 would squeeze a 3x3 image"):
        RealNVP((1, 6, 6), scales=3, hidden=2)


# ------------------------------------------------------------------------------------------------ loaded values (issue 16)
def test_loading_a_nan_parameter_is_refused_naming_it_and_changes_nothing():
    layer = ActNorm(3, dtype=np.float64)
    before = {k: np.array(v) for k, v in layer.state_dict().items()}
    state = {k: np.array(v) for k, v in before.items()}
    state["bias"] = np.array([0.5, np.nan, 0.0])
    state["log_scale"] = np.array([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"ActNorm.load_state_dict: bias holds NaN or inf"):
        layer.load_state_dict(state)
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(np.asarray(v), before[k])


@pytest.mark.parametrize("perm,inverse,message", [
    ([0, 0, 2], [0, 1, 2], "is not a permutation of 0..2"),
    ([0, 1, 3], [0, 1, 2], "is not a permutation of 0..2"),
    ([2, 0, 1], [2, 0, 1], "is not the inverse of perm"),
])
def test_loading_a_shuffle_that_is_not_a_permutation_is_refused(perm, inverse, message):
    layer = Shuffle(3, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=message):
        layer.load_state_dict({"perm": np.array(perm), "inverse_perm": np.array(inverse)})


@pytest.mark.parametrize("flag", [2, -1])
def test_loading_an_actnorm_flag_other_than_0_or_1_is_refused(flag):
    layer = ActNorm(2, dtype=np.float64)
    state = {k: np.array(v) for k, v in layer.state_dict().items()}
    state["initialised"] = np.array(flag, dtype=np.int8)
    with pytest.raises(ValueError, match="'initialised' flag is"):
        layer.load_state_dict(state)


def test_loading_a_negative_running_variance_is_refused():
    layer = BatchNormFlow(2, dtype=np.float64)
    state = {k: np.array(v) for k, v in layer.state_dict().items()}
    state["running_var"] = np.array([1.0, -0.5])
    with pytest.raises(ValueError, match="running_var has negative entries"):
        layer.load_state_dict(state)

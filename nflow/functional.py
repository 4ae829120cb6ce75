"""The ops users call, gathered in one namespace: ``import nflow.functional as F``.

Each name is a lowercase function that builds the op's :class:`~nflow.tensor.Function` node; the classes
live in ``nflow/ops/`` grouped by family.
"""
from nflow.ops.arithmetic import add, div, mul, neg, pow, sub
from nflow.ops.conv import conv2d
from nflow.ops.elementwise import exp, log, logsigmoid, relu, sigmoid, softplus, tanh
from nflow.ops.linalg import matmul
from nflow.ops.linear import linear
from nflow.ops.reductions import logsumexp, mean, sum, sum_per_sample
from nflow.ops.shape import concat, getitem, pad, reshape, split, transpose

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow",
    "exp", "log", "sigmoid", "logsigmoid", "softplus", "tanh", "relu",
    "sum", "mean", "logsumexp", "sum_per_sample",
    "reshape", "transpose", "concat", "split", "pad", "getitem",
    "matmul", "linear", "conv2d",
]

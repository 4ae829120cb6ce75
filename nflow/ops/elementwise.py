"""Element-wise nonlinearities, written to be stable in float32 over the whole real line.

The logistic family uses ``e = exp(-|x|)``, which never overflows:
``sigmoid(x) = 1/(1+e)`` for x >= 0 and ``e/(1+e)`` for x < 0; ``softplus(x) = max(x, 0) + log1p(e)``;
``logsigmoid(x) = -softplus(-x) = min(x, 0) - log1p(e)``.
"""
from nflow.backend import get_array_module
from nflow.tensor import Function


def _sigmoid_array(x):
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _log1p_exp_neg_abs(x):
    xp = get_array_module(x)
    return xp.log1p(xp.exp(-xp.abs(x)))


class Exp(Function):
    """y = exp(x); dy/dx = y. Keeps: the output."""

    def forward(self, x):
        self.saved = get_array_module(x).exp(x)
        return self.saved

    def backward(self, gy):
        return gy * self.saved


class Log(Function):
    """y = log(x); dy/dx = 1/x. Keeps: the input."""

    def forward(self, x):
        self.saved = x
        return get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.saved


class Sigmoid(Function):
    """y = 1 / (1 + exp(-x)); dy/dx = y (1 - y). Keeps: the output."""

    def forward(self, x):
        self.saved = _sigmoid_array(x)
        return self.saved

    def backward(self, gy):
        y = self.saved
        return gy * y * (1 - y)


class LogSigmoid(Function):
    """y = log sigmoid(x) = min(x, 0) - log1p(exp(-|x|)); dy/dx = sigmoid(-x). Keeps: the input."""

    def forward(self, x):
        self.saved = x
        return get_array_module(x).minimum(x, 0) - _log1p_exp_neg_abs(x)

    def backward(self, gy):
        return gy * _sigmoid_array(-self.saved)


class Softplus(Function):
    """y = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)); dy/dx = sigmoid(x). Keeps: the input."""

    def forward(self, x):
        self.saved = x
        return get_array_module(x).maximum(x, 0) + _log1p_exp_neg_abs(x)

    def backward(self, gy):
        return gy * _sigmoid_array(self.saved)


class Tanh(Function):
    """y = tanh(x); dy/dx = 1 - y². Keeps: the output."""

    def forward(self, x):
        self.saved = get_array_module(x).tanh(x)
        return self.saved

    def backward(self, gy):
        y = self.saved
        return gy * (1 - y * y)


class ReLU(Function):
    """y = max(x, 0); dy/dx = [x > 0]. Keeps: the output (y > 0 exactly where x > 0)."""

    def forward(self, x):
        self.saved = get_array_module(x).maximum(x, 0)
        return self.saved

    def backward(self, gy):
        return gy * (self.saved > 0)


def exp(x):
    return Exp()(x)


def log(x):
    return Log()(x)


def sigmoid(x):
    return Sigmoid()(x)


def logsigmoid(x):
    return LogSigmoid()(x)


def softplus(x):
    return Softplus()(x)


def tanh(x):
    return Tanh()(x)


def relu(x):
    return ReLU()(x)

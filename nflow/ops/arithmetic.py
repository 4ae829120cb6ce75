"""Arithmetic ops: + - * / ** and negation, with NumPy broadcasting.

Each backward sums its gradients back to the operand's own shape (:func:`sum_to`), so ``x + b`` with
``b`` of shape ``(C, 1, 1)`` gives ``b.grad`` of shape ``(C, 1, 1)``.
"""
from nflow.backend import get_array_module
from nflow.ops.broadcast import broadcast_shape, sum_to
from nflow.tensor import Function


class _Binary(Function):
    """Shared input check of the broadcasting binary ops. Keeps: the operand shapes (and what each op says)."""

    def validate(self, a, b):
        if a.dtype != b.dtype:
            raise TypeError(f"{self.name}: operands have dtypes {a.dtype} and {b.dtype}; nflow never up-casts "
                            "silently, convert one explicitly")
        broadcast_shape(self.name, a.shape, b.shape)
        self.shapes = (a.shape, b.shape)


# ----------------------------------------------------------------------------------------------- add / sub
class Add(_Binary):
    """y = a + b. Keeps: nothing but the shapes."""

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        return sum_to(gy, self.shapes[0]), sum_to(gy, self.shapes[1])


class Sub(_Binary):
    """y = a - b. Keeps: nothing but the shapes."""

    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        return sum_to(gy, self.shapes[0]), sum_to(-gy, self.shapes[1])


class Neg(Function):
    """y = -x. Keeps: nothing."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


# ----------------------------------------------------------------------------------------------- mul / div
class Mul(_Binary):
    """y = a * b. Keeps: both inputs (each one's gradient is the other)."""

    def forward(self, a, b):
        self.saved = (a, b)
        return a * b

    def backward(self, gy):
        a, b = self.saved
        ga = sum_to(gy * b, self.shapes[0]) if self.needs_input_grad[0] else None
        gb = sum_to(gy * a, self.shapes[1]) if self.needs_input_grad[1] else None
        return ga, gb


class Div(_Binary):
    """y = a / b. Keeps: b and the output (dy/db = -y / b)."""

    def forward(self, a, b):
        y = a / b
        self.saved = (b, y)
        return y

    def backward(self, gy):
        b, y = self.saved
        ga = gy / b
        gb = sum_to(-ga * y, self.shapes[1]) if self.needs_input_grad[1] else None
        return sum_to(ga, self.shapes[0]), gb


class Pow(_Binary):
    """y = a ** b. Keeps: a, b and the output (dy/da = b a^(b-1), dy/db = y log a)."""

    def forward(self, a, b):
        y = a ** b
        self.saved = (a, b, y)
        return y

    def backward(self, gy):
        a, b, y = self.saved
        xp = get_array_module(a)
        ga = sum_to(gy * b * a ** (b - 1), self.shapes[0]) if self.needs_input_grad[0] else None
        gb = None
        if self.needs_input_grad[1]:
            # d(a^b)/db = a^b log a; where a = 0 the limit (for b > 0) is 0, not nan.
            log_a = xp.log(xp.where(a > 0, a, 1))
            gb = sum_to(gy * y * log_a, self.shapes[1])
        return ga, gb


# ----------------------------------------------------------------------------------------------- the calls
def add(a, b):
    return Add()(a, b)


def sub(a, b):
    return Sub()(a, b)


def mul(a, b):
    return Mul()(a, b)


def div(a, b):
    return Div()(a, b)


def neg(x):
    return Neg()(x)


def pow(a, b):
    return Pow()(a, b)

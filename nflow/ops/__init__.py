"""The ops of the tensor core, one file per family; :mod:`nflow.functional` is what users import.

Importing this package binds Tensor's operators (``+``, ``@``, ``[]``, ...) to their ops: ``operators.py``.
"""
from nflow.ops import operators  # noqa: F401  (binds Tensor's operators once)

"""Modules: ``Module``, ``Parameter``, ``ModuleList``, ``Linear``, ``Conv2d`` and the initialisers in ``init``."""
from nflow.nn import init
from nflow.nn.layers import Conv2d, Linear
from nflow.nn.module import Module, ModuleList, Parameter

__all__ = ["Module", "ModuleList", "Parameter", "Linear", "Conv2d", "init"]

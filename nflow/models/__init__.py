"""The three models of the papers: NICE, RealNVP and Glow."""
from nflow.models.base import FlowModel
from nflow.models.glow import Glow
from nflow.models.nice import NICE
from nflow.models.realnvp import RealNVP

__all__ = ["FlowModel", "NICE", "RealNVP", "Glow"]

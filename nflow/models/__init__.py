"""The models of the papers: NICE, RealNVP, Glow, and the autoregressive MAF and IAF."""
from nflow.models.base import FlowModel
from nflow.models.glow import Glow
from nflow.models.maf import IAF, MAF
from nflow.models.nice import NICE
from nflow.models.realnvp import RealNVP

__all__ = ["FlowModel", "NICE", "RealNVP", "Glow", "MAF", "IAF"]

"""``nflow.testing``: property-test a flow layer — yours or ours — with hypothesis.

    from nflow.testing import check_flow
    check_flow(MyLayer(4), (4,))        # raises AssertionError naming the property that fails

:func:`check_flow` runs, on inputs hypothesis draws and shrinks: the round trip both ways; the log-det against
log|det J| of each sample's own Jacobian by central differences, with samples kept apart; the inverse's log-det as
minus the forward's; gradients of input and every parameter against central differences; agreement of the
backends; memory-free backprop against the stored path (``properties.py`` lists them, ``tolerances.py`` says why
each tolerance is what it is). :mod:`nflow.testing.strategies` holds hypothesis strategies for writing your own
properties; :mod:`nflow.testing.plugin` is a pytest plugin (fixture ``check_flow``, marker ``flowcheck``).

hypothesis is optional for nflow (the ``test`` extra); it is imported when the kit is first used, so
``import nflow.testing`` itself stays cheap (the pytest plugin imports it at pytest's start).
"""

__all__ = ["check_flow", "FlowCheckReport", "PropertyFailure", "ModelFlow", "float64_twin", "DEFAULT_MAX_EXAMPLES"]

_HOMES = {
    "check_flow": "nflow.testing.check", "FlowCheckReport": "nflow.testing.check",
    "DEFAULT_MAX_EXAMPLES": "nflow.testing.check", "PropertyFailure": "nflow.testing.properties",
    "ModelFlow": "nflow.testing.model_flow", "float64_twin": "nflow.testing.subject",
}


def __getattr__(name):
    """Import the kit's pieces on first use (PEP 562), so the plugin's import of this package stays light."""
    if name in _HOMES:
        import importlib
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'nflow.testing' has no attribute {name!r}")

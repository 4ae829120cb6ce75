"""hypothesis is an optional dependency of nflow (the ``test`` extra): imported here, on first use of the kit."""

INSTALL_HINT = ("nflow.testing needs hypothesis (property-based testing): pip install 'nflow[test]' "
                "or pip install 'hypothesis>=6'")


def require_hypothesis():
    """The ``hypothesis`` module, or an ImportError that says how to install it."""
    try:
        import hypothesis
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return hypothesis

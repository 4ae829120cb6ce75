"""nflow's pytest plugin (entry point ``pytest11: nflow``), loaded by pytest wherever nflow is installed.

- fixture ``check_flow``: :func:`nflow.testing.check_flow`, with ``max_examples`` taken from the command line
  option ``--flowcheck-max-examples N`` when it is given (e.g. many more examples in a nightly run);
- marker ``flowcheck``: added to every test that uses the fixture, so ``pytest -m flowcheck`` runs only those.

Nothing heavy is imported here: pytest imports plugins before it configures warnings, and the kit (NumPy,
hypothesis) is imported when a test first asks for the fixture.
"""
import pytest

MARKER = "flowcheck"


def pytest_addoption(parser):
    group = parser.getgroup("nflow", "nflow flow-layer property tests")
    group.addoption("--flowcheck-max-examples", type=int, default=None, metavar="N",
                    help="hypothesis examples per check_flow call made through the check_flow fixture")


def pytest_configure(config):
    config.addinivalue_line("markers", f"{MARKER}: a property test of a flow layer through nflow.testing.check_flow "
                                       "(added to every test that uses the check_flow fixture)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "check_flow" in getattr(item, "fixturenames", ()):
            item.add_marker(MARKER)


@pytest.fixture
def check_flow(request):
    """``check_flow(layer, input_shape, **options)``: nflow.testing.check_flow, honouring --flowcheck-max-examples."""
    from nflow.testing.check import check_flow as run
    examples = request.config.getoption("flowcheck_max_examples")
    if examples is None:
        return run

    def configured(layer, input_shape, **options):
        options.setdefault("max_examples", examples)
        return run(layer, input_shape, **options)

    return configured

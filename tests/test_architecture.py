"""The import layers of docs/ARCHITECTURE.md hold: no module imports from a layer above its own, and the engine
imports no deep-learning framework. Read from the source with ``ast``; nothing is imported."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAYERS = ("core", "kernels", "ops", "nn", "flows", "models", "train", "cli")  # each may import those before it
# the layer of every top-level name under nflow/ (kernels/ installs as nflow.kernels)
LAYER_OF = {
    "tensor": "core", "backend": "core", "random": "core", "atomic": "core", "metrics": "core",
    "finite_differences": "core", "errors": "core", "graph": "core", "distributed": "core", "heap": "core",
    "kernels": "kernels",
    "ops": "ops", "functional": "ops", "gradcheck": "ops",
    "nn": "nn", "optim": "nn",
    "flows": "flows",
    "models": "models", "reversible": "models",
    "train": "train", "data": "train", "checkpoint": "train", "image": "train", "testing": "train", "inspect": "train",
    "latent": "train",
    "cli": "cli", "__main__": "cli",
}
FRAMEWORKS = ("torch", "jax", "tensorflow", "flax", "keras", "autograd")


def _modules():
    """(dotted name, path) of every engine module."""
    for path in sorted((ROOT / "nflow").rglob("*.py")):
        yield ".".join(path.relative_to(ROOT).with_suffix("").parts), path
    for path in sorted((ROOT / "kernels").rglob("*.py")):
        yield ".".join(("nflow",) + path.relative_to(ROOT).with_suffix("").parts), path


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno


def _layer(dotted):
    """The layer of a module inside nflow, None for the package itself (``import nflow``) and outside names."""
    parts = dotted.split(".")
    if parts[0] != "nflow" or len(parts) == 1 or parts[1] == "__init__":
        return None
    if parts[1] not in LAYER_OF:
        raise AssertionError(f"nflow.{parts[1]} has no layer: add it to LAYER_OF here and to docs/ARCHITECTURE.md")
    return LAYER_OF[parts[1]]


MODULES = list(_modules())


def test_every_module_was_found():
    names = {name for name, _ in MODULES}
    assert "nflow.tensor" in names and "nflow.kernels.dispatch" in names and "nflow.cli.commands" in names


def upward_imports(modules):
    """Every import from a layer above the importing module's own, as 'path:line: ...' sentences."""
    found = []
    for name, path in modules:
        own = _layer(name)
        for imported, line in _imports(path):
            target = _layer(imported)
            if own is not None and target is not None and LAYERS.index(target) > LAYERS.index(own):
                found.append(f"{path.name}:{line}: {name} ({own}) imports {imported} ({target})")
    return found


def framework_imports(modules):
    return [f"{path.name}:{line}: {name} imports {imported}" for name, path in modules
            for imported, line in _imports(path) if imported.split(".")[0] in FRAMEWORKS]


def test_no_import_runs_back_up_the_layers():
    assert upward_imports(MODULES) == []


def test_the_engine_imports_no_deep_learning_framework():
    assert framework_imports(MODULES) == []


def test_the_checks_see_a_violation(tmp_path):
    # both tests can fail: an ops module that imports a flow layer, and torch, is caught twice
    bad = tmp_path / "bad.py"
    bad.write_text("from nflow.flows.base import Flow\nimport torch\n")
    assert upward_imports([("nflow.ops.bad", bad)]) == [
        "bad.py:1: nflow.ops.bad (ops) imports nflow.flows.base (flows)"]
    assert framework_imports([("nflow.ops.bad", bad)]) == ["bad.py:2: nflow.ops.bad imports torch"]

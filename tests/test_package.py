"""The package's layout: imports go one way (no cycle, function-level imports included) and no
module imports another's private names; seeds of the named random streams keep their values."""

import ast
import importlib.util
from pathlib import Path

import numpy as np

import qvae_core
from qvae_core.seeds import RunStream, SamplerStream, derived_seed

ROOT = Path(qvae_core.__file__).parent


def _modules() -> dict:
    """Module name -> parsed source of every .py module of the installed package."""
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = (ast.parse(path.read_text(), str(path)), path.name == "__init__.py")
    return modules


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _imports(name: str, tree: ast.Module, is_package: bool):
    """(imported module, imported name or None) for every import statement in `tree`, at any depth."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            source = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield (submodule, None) if _is_module(submodule) else (source, alias.name)


def _cycles(graph: dict) -> list:
    """Every cycle a depth-first walk of `graph` (module -> imported modules) closes, as text."""
    state, path, cycles = {}, [], []

    def visit(module):
        state[module] = "open"
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def _package_imports():
    """(module -> the package's modules it imports, ["M imports _name from N", ...])."""
    graph, private = {}, []
    for name, (tree, is_package) in _modules().items():
        graph.setdefault(name, set())
        for module, imported in _imports(name, tree, is_package):
            if module.split(".")[0] != "qvae_core":
                continue
            graph[name].add(module)
            if imported is not None and imported.startswith("_"):
                private.append(f"{name} imports {imported} from {module}")
    return graph, private


def test_imports_have_no_cycle_and_no_private_names():
    graph, private = _package_imports()
    assert not private, private
    assert not _cycles(graph), _cycles(graph)
    # the walk sees function-level imports and tells submodules (the extension too) from names
    assert {"qvae_core.dvae.priors", "qvae_core.dvae.samplers"} <= graph["qvae_core.dvae.config"]
    assert "qvae_core._core" in graph["qvae_core.models"]


def test_the_checks_find_cycles_and_private_names():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]
    tree = ast.parse("def f():\n    from ..models import _Model, RBM\n    from .. import _core")
    assert list(_imports("qvae_core.dvae.x", tree, False)) == [
        ("qvae_core.models", "_Model"), ("qvae_core.models", "RBM"), ("qvae_core._core", None)]


def test_named_streams_keep_their_seeds():
    """The seeds every training run and checkpoint so far was made with: SeedSequence([seed, purpose,
    index...]) with purposes 1-4 under the run seed and 0-2 under the sampler's."""
    assert derived_seed(0, RunStream.SAMPLER) == 6582426945856704739
    assert derived_seed(0, RunStream.SHUFFLE, 5) == 13922735284947157694
    assert derived_seed(12345, RunStream.LOG_Z, 0) == 2105045783845765369
    assert derived_seed(7, RunStream.EVALUATION, 19) == 12080885095356187273
    assert derived_seed(derived_seed(0, RunStream.SAMPLER), SamplerStream.CHAINS) == 14931255752182663506


def test_rank_zero_is_the_single_process_run():
    for keys in [(3, RunStream.SHUFFLE, 2), (3, SamplerStream.QPU), (2**64 - 1, RunStream.LOG_Z, 1, 2, 3, 4)]:
        plain = derived_seed(*keys)
        assert derived_seed(*keys, rank=0) == plain
        others = {derived_seed(*keys, rank=r) for r in range(1, 50)}
        assert len(others) == 49 and plain not in others
    assert 0 <= derived_seed(1, 2) < 2**64 and isinstance(derived_seed(1, 2), int)
    assert derived_seed(1, 2) == int(np.random.SeedSequence([1, 2]).generate_state(1, np.uint64)[0])

"""The architecture's rules, read from the source: imports go one way, no two modules import each other (not
even through a function-local import), and only entry points read the environment.

Layers, top to bottom (README "Layout"): entry points (root scripts, ``faceanalysis.cli``, ``faceanalysis.batch``,
``faceanalysis.server_main``, ``faceanalysis.__main__``, ``training``, ``bench``) -> service (``faceanalysis.service``)
and the writers (``faceanalysis.writers``) -> pipeline (``faceanalysis.pipeline``) -> task models (``age``,
``gender``, ``emotion``) -> core (``facecore``).
A module may import its own layer or any layer below, never one above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

PACKAGES = ("facecore", "age", "gender", "emotion", "faceanalysis", "training", "bench")
ENTRY_SCRIPTS = ("flaskMain.py", "TestAPI.py", "TestFlask.py", "testForTimeMeasure.py", "evaluate.py")
# Lower number = lower layer. Modules not listed take their package's layer.
LAYERS = {"facecore": 0, "age": 1, "gender": 1, "emotion": 1, "faceanalysis.pipeline": 2,
          "faceanalysis.service": 3, "faceanalysis.writers": 3, "faceanalysis": 4, "faceanalysis.batch": 4,
          "training": 4, "bench": 5}
ENTRY_MODULES = {"faceanalysis.cli", "faceanalysis.__main__", "faceanalysis.server_main"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    found = {module_name(path): path for package in PACKAGES for path in (REPO / package).rglob("*.py")}
    found.update({name.removesuffix(".py"): REPO / name for name in ENTRY_SCRIPTS})
    return found


def imports_of(name: str, path: Path) -> set[str]:
    """Every project module ``path`` imports, at any depth of the file (lazy imports count)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            out.add(target)
            out.update(f"{target}.{alias.name}" for alias in node.names)
    return {target for target in out if target.split(".")[0] in PACKAGES}


def layer(name: str) -> int:
    if name.split(".")[0] not in PACKAGES:
        return 6                    # root entry scripts: the top
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if name == prefix or name.startswith(prefix + "."):
            return LAYERS[prefix]
    raise AssertionError(name)


def test_no_module_imports_a_layer_above_its_own():
    modules = project_modules()
    wrong = []
    for name, path in modules.items():
        for target in imports_of(name, path):
            if target in modules or target.rpartition(".")[0] in modules or target.split(".")[0] in PACKAGES:
                if layer(target) > layer(name):
                    wrong.append(f"{name} (layer {layer(name)}) imports {target} (layer {layer(target)})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_cycle_between_top_level_packages():
    edges: dict[str, set[str]] = {package: set() for package in PACKAGES}
    for name, path in project_modules().items():
        top = name.split(".")[0]
        if top in edges:
            edges[top].update(target.split(".")[0] for target in imports_of(name, path) if target.split(".")[0] != top)
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        for target in sorted(edges.get(node, ())):
            if target in trail:
                cycles.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target in edges:
                visit(target, trail + [target])
    for package in PACKAGES:
        visit(package, [package])
    assert not cycles, "\n".join(sorted(set(cycles)))


def module_imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports, each resolved to the module file it loads: ``from training import
    heads`` is ``training.heads``, ``from age.calibration import Heads`` is ``age.calibration``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                if f"{target}.{alias.name}" in modules:
                    out.add(f"{target}.{alias.name}")
                elif target in modules:
                    out.add(target)
    return out - {name}


def module_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan), each sorted: the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return sorted(found)


def test_no_cycle_between_modules_inside_a_package():
    # Between packages the check above holds; inside one, two modules that import each other (at any depth of the
    # file, so a function-local import counts) are one module cut in two: neither can be read alone.
    modules = project_modules()
    edges = {name: {target for target in module_imports(name, path, modules)
                    if target.split(".")[0] == name.split(".")[0]}
             for name, path in modules.items()}
    cycles = module_cycles(edges)
    assert not cycles, "\n".join(" <-> ".join(cycle) for cycle in cycles)


def test_the_module_cycle_finder_on_hand_made_graphs():
    # a -> b -> c -> a is one cycle; d -> e -> d another; f -> a and c -> g only reach or leave a cycle.
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "g"}, "d": {"e"}, "e": {"d"}, "f": {"a"}, "g": set()}
    assert module_cycles(edges) == [["a", "b", "c"], ["d", "e"]]
    assert module_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def plant(tmp_path, monkeypatch, sources: dict[str, str]) -> None:
    """Make the checks see the project plus these made-up modules (name -> source)."""
    import test_layers
    planted = dict(project_modules())
    for name, source in sources.items():
        planted[name] = tmp_path / f"{name}.py"
        planted[name].write_text(source)
    monkeypatch.setattr(test_layers, "project_modules", lambda: planted)


def test_the_cycle_check_sees_a_cycle(tmp_path, monkeypatch):
    # The walk above must be able to fail: a planted back-edge from the core to the service is a cycle.
    plant(tmp_path, monkeypatch, {"facecore.fake": "from faceanalysis.service.web import create_app\n"})
    with pytest.raises(AssertionError, match="facecore"):
        test_no_cycle_between_top_level_packages()
    with pytest.raises(AssertionError, match="facecore.fake"):
        test_no_module_imports_a_layer_above_its_own()


def test_the_module_cycle_check_sees_a_function_local_cycle(tmp_path, monkeypatch):
    # Two made-up modules of one package, one importing the other at the top, the other importing it back inside a
    # function (the way training/heads.py and training/lifespan.py once did).
    plant(tmp_path, monkeypatch, {"training.fake_cli": "from training.fake_recipe import tune\n",
                                  "training.fake_recipe": "def tune():\n    from training import fake_cli\n"})
    with pytest.raises(AssertionError, match="training.fake_cli <-> training.fake_recipe"):
        test_no_cycle_between_modules_inside_a_package()


# Ray is the batch runner's (faceanalysis.batch, an entry point): the service, and everything it is built on,
# never loads it.
RAY_FREE = ("faceanalysis.service", "faceanalysis.pipeline")


def third_party_imports(path: Path) -> set[str]:
    """The top-level names of every absolute import in ``path``, at any depth of the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_service_and_the_pipeline_never_import_ray():
    modules = project_modules()
    todo = [name for name in modules if any(name == top or name.startswith(top + ".") for top in RAY_FREE)]
    reached = set()
    while todo:                 # everything they import, through project modules, at any depth
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        for target in imports_of(name, modules[name]):
            found = target if target in modules else target.rpartition(".")[0]
            if found in modules:
                todo.append(found)
    assert reached >= {"faceanalysis.service.web", "faceanalysis.pipeline.analyzer", "facecore.frames"}
    wrong = sorted(name for name in reached if "ray" in third_party_imports(modules[name]))
    assert not wrong, f"these modules import ray, and the service or the pipeline imports them: {wrong}"


def test_the_ray_check_sees_an_import_of_ray(tmp_path, monkeypatch):
    # A lazy import of Ray in the core, reached from the pipeline through another module.
    plant(tmp_path, monkeypatch, {"facecore.fake": "def run():\n    import ray.data\n",
                                  "faceanalysis.pipeline.helper": "from facecore.fake import run\n"})
    with pytest.raises(AssertionError, match="facecore.fake"):
        test_the_service_and_the_pipeline_never_import_ray()


def test_only_entry_points_read_the_environment():
    readers = []
    for name, path in project_modules().items():
        if name in ENTRY_MODULES or layer(name) >= 4:
            continue
        text = path.read_text(encoding="utf-8")
        if "os.environ" in text or "getenv" in text:
            readers.append(name)
    assert not readers, f"read the environment below the entry points: {readers}"

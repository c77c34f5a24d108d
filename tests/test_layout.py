"""The package's layering, read from the source: every import (module level and inside
functions alike) goes down a floor or stays on its floor, none goes round in a circle, and no
module is longer than 350 lines (docs/architecture.md)."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("relattr_tf", "beam_jobs")
MAX_LINES = 350
# Bottom to top. The package root holds the commands (top floor) beside the config modules.
FLOORS = {
    "relattr_tf": 0, "relattr_tf.config": 0, "relattr_tf.config_flags": 0,
    "relattr_tf.data": 1, "beam_jobs": 1,
    "relattr_tf.models": 2, "relattr_tf.labelling": 2,
    "relattr_tf.artifacts": 3, "relattr_tf.evaluation": 3,
    "relattr_tf.training": 4,
    "relattr_tf.experiments": 5, "relattr_tf.visualization": 5,
}
COMMANDS_FLOOR = 6


def modules():
    """{module name: path} of every .py file of the packages."""
    out = {}
    for package in PACKAGES:
        for folder, _, names in os.walk(os.path.join(ROOT, package)):
            for name in names:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                    if parts[-1] == "__init__":
                        parts = parts[:-1]
                    out[".".join(parts)] = path
    return out


def floor(module):
    """The floor of a module: its longest prefix in FLOORS; a module at the package root other
    than the config modules is a command. A package missing from FLOORS is an error, so a new
    one must be given its floor."""
    parts = module.split(".")
    if parts[0] == "relattr_tf" and len(parts) == 2 and module not in FLOORS:
        return COMMANDS_FLOOR
    for end in range(len(parts), 1 if parts[0] == "relattr_tf" else 0, -1):
        if ".".join(parts[:end]) in FLOORS:
            return FLOORS[".".join(parts[:end])]
    if module == "relattr_tf":
        return 0
    raise AssertionError(f"{module}: its package has no floor in tests/test_layout.py FLOORS")


def imports(path, known, module=None):
    """The project's modules `path` (the module `module`) imports, at module level and inside
    functions; relative imports are resolved against `module`."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    package = module if module and path.endswith("__init__.py") else (
        module.rpartition(".")[0] if module else "")
    out = set()

    def add(name):
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            out.add(name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                add(full if full in known else base)
    return out


def graph():
    """({module: path}, {module: the project's modules it imports})."""
    known = modules()
    return known, {m: imports(p, known, m) - {m} for m, p in known.items()}


def upward(edges):
    return sorted(f"{a} (floor {floor(a)}) -> {b} (floor {floor(b)})"
                  for a, targets in edges.items() for b in targets if floor(b) > floor(a))


def circles(edges):
    """Every circle a depth-first walk meets. Edges from a package's __init__ to its own
    modules count too: a module importing a name from its package's __init__ while the
    __init__ imports that module is a circle Python trips over."""
    state, stack, found = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                found.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def test_no_import_goes_up_a_floor():
    up = upward(graph()[1])
    assert not up, "imports going up a floor:\n" + "\n".join(up)


def test_no_import_circle():
    found = circles(graph()[1])
    assert not found, "import circles:\n" + "\n".join(found)


def test_no_module_over_the_line_limit():
    long = sorted(f"{os.path.relpath(p, ROOT)}: {n} lines" for p in modules().values()
                  if (n := sum(1 for _ in open(p, encoding="utf-8"))) > MAX_LINES)
    assert not long, f"modules over {MAX_LINES} lines:\n" + "\n".join(long)


def test_the_package_root_holds_commands_and_config_only():
    root = os.path.join(ROOT, "relattr_tf")
    for name in sorted(os.listdir(root)):
        if not name.endswith(".py") or name in ("__init__.py", "cli.py", "config.py",
                                                "config_flags.py"):
            continue
        text = open(os.path.join(root, name), encoding="utf-8").read()
        assert 'if __name__ == "__main__":' in text, f"relattr_tf/{name} is not a command"
        assert sum(1 for _ in text.splitlines()) <= 90, f"relattr_tf/{name}: a command's " \
            f"main should be thin (<= 90 lines)"


def test_the_checks_see_an_upward_import_a_circle_and_a_relative_import(tmp_path):
    """The checks above can fail: on a scratch graph, and on a scratch module's imports."""
    edges = {"relattr_tf.data.schema": {"relattr_tf.training.run"},
             "relattr_tf.models": {"relattr_tf.models.dacrl"},
             "relattr_tf.models.dacrl": {"relattr_tf.models"}}
    assert upward(edges) == ["relattr_tf.data.schema (floor 1) -> relattr_tf.training.run "
                             "(floor 4)"]
    assert circles(edges) == ["relattr_tf.models -> relattr_tf.models.dacrl -> "
                              "relattr_tf.models"]
    path = tmp_path / "bad.py"
    path.write_text("def f():\n    from ..training import run\n"
                    "from relattr_tf.models import ModelParts\n")
    found = imports(str(path), modules(), "relattr_tf.evaluation.bad")
    assert found == {"relattr_tf.training.run", "relattr_tf.models"}
    with pytest.raises(AssertionError, match="no floor"):
        floor("relattr_tf.newpackage.module")

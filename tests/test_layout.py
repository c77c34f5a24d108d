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
# The only places a function may import the project's modules or heavy libraries lazily.
ROOT_COMMANDS_FLOOR = COMMANDS_FLOOR


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
    best = None
    for prefix, level in FLOORS.items():
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, level)
    if best is None or (best[0] == "relattr_tf" and module.count(".") == 1):
        # a module at the package root other than the config modules: a command
        return COMMANDS_FLOOR if module != "relattr_tf" else 0
    return best[1]


def imports(path, known):
    """The project's modules `path` imports (module level and inside functions)."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
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
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                add(full if full in known else node.module)
    return out


def graph():
    known = modules()
    edges = {m: imports(p, known) - {m} for m, p in known.items()}
    # A package's __init__ re-exporting its own modules is not an arrow of the layering.
    return known, {m: {t for t in ts if not m or not t.startswith(m + ".")} | set()
                   for m, ts in edges.items()}


def test_no_import_goes_up_a_floor():
    _, edges = graph()
    up = sorted(f"{a} (floor {floor(a)}) -> {b} (floor {floor(b)})"
                for a, targets in edges.items() for b in targets if floor(b) > floor(a))
    assert not up, "imports going up a floor:\n" + "\n".join(up)


def test_no_import_circle():
    _, edges = graph()
    # A package's __init__ importing its own submodules is how it re-exports; not a circle.
    edges = {a: {b for b in ts if not b.startswith(a + ".")} for a, ts in edges.items()}
    state, stack, circles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                circles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not circles, "import circles:\n" + "\n".join(circles)


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


@pytest.mark.parametrize("name", ["floor", "imports"])
def test_the_checker_sees_a_bad_import(name, tmp_path):
    """The checks above can fail: an upward import in a scratch module is seen."""
    path = tmp_path / "bad.py"
    path.write_text("def f():\n    from relattr_tf.training import run\n")
    found = imports(str(path), modules())
    assert "relattr_tf.training.run" in found
    assert floor("relattr_tf.training.run") > floor("relattr_tf.data.schema")

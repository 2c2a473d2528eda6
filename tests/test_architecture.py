"""Static architecture rules of issue 11, checked on the source text (``ast``, nothing imported).

Each rule is one test; a failure lists every violation as ``module: what``.

- no import cycles between ``batchseg`` modules (module-level and function-level imports; imports
  under ``if TYPE_CHECKING:`` never run and do not count);
- no module uses another module's underscore names (``from m import _x``, ``alias._x`` on an
  imported ``batchseg`` module; dunders are fine);
- no module over 500 lines, no function over 80 (its docstring not counted);
- only ``batchseg/engine/`` and ``batchseg/cluster/`` import dask/distributed;
- only ``batchseg/methods/`` imports torch/torchvision, and only lazily (inside a function);
- only ``batchseg/store/`` spells Zarr paths inside a store (``"catalogue/..."``, ``f"labels/{b}"``,
  or a bare node name such as ``"stats"`` handed to a ``batchseg.store`` function);
- packages depend in one direction (issue 25): a package imports only packages earlier in
  ``LAYERS`` (function-local imports count), so no package imports ``cli/`` but ``cli/``;
- no import cycles between packages (each package taken as one node);
- one place connects to a cluster: only ``batchseg.engine.runner`` calls the cluster package's
  ``connect``, and only ``batchseg/cluster/`` builds a ``Client`` or a cluster object;
- output kinds are compared only in ``batchseg.core.kinds`` (elsewhere code asks a ``Kind``
  member) and method ids only in ``batchseg/methods/``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "batchseg"
MAX_LINES = 500
MAX_FUNCTION_LINES = 80
DASK_HOMES = ("batchseg.engine", "batchseg.cluster")
TORCH_HOME = "batchseg.methods"
STORE_HOME = "batchseg.store"
DASK = ("dask", "distributed")
TORCH = ("torch", "torchvision")
# top-level nodes of a batchseg store (the layout in batchseg/store's docstring)
STORE_NODES = (
    "catalogue",
    "stats",
    "labels",
    "confidence",
    "pyramid",
    "scratch",
    "table",
    "objects",
)
NAMEDTUPLE_API = ("_asdict", "_replace", "_fields", "_make", "_field_defaults")
#: Documented public API of the standard library despite the underscore (``os._exit``: end the
#: process without running exit handlers).
STDLIB_PUBLIC = {"os._exit"}
IMPORT_CALLS = ("importlib.import_module", "import_module", "__import__")
#: The package order, bottom first: a package imports only packages of earlier layers (and
#: itself). Top-level modules are units of their own (``errors``, ``render``, ...).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "words"),
    ("core",),
    ("io", "cluster", "query"),
    ("methods",),
    ("store",),
    ("measure", "render"),
    ("engine",),
    ("job", "evaluate", "export"),
    ("api",),
    ("report",),
    ("serve",),
    ("demo",),
    ("cli",),
)
#: Top-level modules that belong to a package's unit (until they move into it).
UNIT_OF = {"api_jobs": "api", "api_stores": "api", "results": "api"}
#: The one module that connects to a cluster, and the package that builds clients and clusters.
CONNECT_HOME = "batchseg.engine.runner"
CLUSTER_HOME = "batchseg.cluster"
CLUSTER_OBJECTS = {"Client", "LocalCluster", "LocalCUDACluster", "SLURMCluster", "PBSCluster"}
#: Owners of the kind names and of the method ids.
KIND_HOME = "batchseg.core.kinds"
METHOD_HOME = "batchseg.methods"
KIND_NAMES = {"regions", "classes", "instances", "panoptic"}
METHOD_ID = re.compile(r"^(skimage|torchvision)\.\w+$|^(torchscript|kmeans)$")


@dataclass(frozen=True)
class Import:
    """One imported module (``target``), where and how."""

    target: str  # absolute dotted name, e.g. "batchseg.store" or "dask.array"
    names: tuple[str, ...]  # the from-imported names; ("",) for a plain ``import``
    line: int
    lazy: bool  # inside a function (runs on call, not on import)
    typing_only: bool  # under ``if TYPE_CHECKING:`` (never runs)


@dataclass
class Module:
    name: str
    is_package: bool
    tree: ast.Module
    lines: int
    imports: list[Import] = field(default_factory=list)


def within(name: str, home: str) -> bool:
    return name == home or name.startswith(home + ".")


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def dotted(node: ast.expr) -> str:
    """``a.b.c`` for an attribute chain on a name, else ""."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    return ".".join([node.id, *reversed(parts)])


def _is_type_checking(test: ast.expr) -> bool:
    return dotted(test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def _walk(node: ast.AST, lazy: bool = False, typing_only: bool = False) -> Iterator[tuple]:
    """Every node below ``node`` with the (lazy, typing_only) flags of its position."""
    for child in ast.iter_child_nodes(node):
        yield child, lazy, typing_only
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _walk(child, True, typing_only)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield stmt, lazy, True
                yield from _walk(stmt, lazy, True)
            for stmt in child.orelse:
                yield stmt, lazy, typing_only
                yield from _walk(stmt, lazy, typing_only)
        else:
            yield from _walk(child, lazy, typing_only)


class Package:
    """Every module of a package directory, parsed, with its imports resolved to absolute names."""

    def __init__(self, root: Path) -> None:
        self.modules: dict[str, Module] = {}
        for path in sorted(root.rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            parts = list(path.relative_to(root.parent).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            tree = ast.parse(text, str(path))
            self.modules[name] = Module(name, is_package, tree, len(text.splitlines()))
        for mod in self.modules.values():
            mod.imports = list(self._imports(mod))

    def resolve(self, mod: Module, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        package = mod.name.split(".") if mod.is_package else mod.name.split(".")[:-1]
        base = package[: len(package) - (node.level - 1)]
        return ".".join([*base, node.module] if node.module else base)

    def _imports(self, mod: Module) -> Iterator[Import]:
        for node, lazy, typing_only in _walk(mod.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(alias.name, ("",), node.lineno, lazy, typing_only)
            elif isinstance(node, ast.ImportFrom):
                names = tuple(a.name for a in node.names)
                yield Import(self.resolve(mod, node), names, node.lineno, lazy, typing_only)
            elif (
                isinstance(node, ast.Call)
                and dotted(node.func) in IMPORT_CALLS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                yield Import(node.args[0].value, ("",), node.lineno, lazy, typing_only)

    def edges(self, mod: Module) -> Iterator[tuple[str, int]]:
        """Package modules ``mod`` imports at run time: the deepest module each import names."""
        for imp in mod.imports:
            if imp.typing_only:
                continue
            for name in imp.names:
                sub = f"{imp.target}.{name}" if name else ""
                if sub in self.modules:
                    yield sub, imp.line
                elif imp.target in self.modules:
                    yield imp.target, imp.line

    def aliases(self, mod: Module) -> dict[str, str]:
        """Local names bound to a package module by an import (anywhere in ``mod``)."""
        bound: dict[str, str] = {}
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in self.modules:
                        top = a.name.split(".")[0]
                        bound[a.asname or top] = a.name if a.asname else top
            elif isinstance(node, ast.ImportFrom):
                target = self.resolve(mod, node)
                for a in node.names:
                    if f"{target}.{a.name}" in self.modules:
                        bound[a.asname or a.name] = f"{target}.{a.name}"
        return bound

    def module_of(self, node: ast.expr, aliases: dict[str, str]) -> str | None:
        """The package module an expression such as ``store`` or ``batchseg.io.read`` names."""
        if isinstance(node, ast.Name):
            return aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.module_of(node.value, aliases)
            if base is not None and f"{base}.{node.attr}" in self.modules:
                return f"{base}.{node.attr}"
        return None


# ---------------------------------------------------------------- the rules


def cycles(pkg: Package) -> list[str]:
    """One shortest cycle per strongly connected component of the import graph."""
    graph = {
        name: sorted({t for t, _ in pkg.edges(m) if t != name}) for name, m in pkg.modules.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = stack[stack.index(v) :]
            del stack[stack.index(v) :]
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)

    out = []
    for comp in components:
        start, members = comp[0], set(comp)
        paths = {start: [start]}
        frontier = [start]
        cycle: list[str] = []
        while frontier and not cycle:  # breadth first: the shortest cycle through ``start``
            nxt = []
            for v in frontier:
                if start in graph[v]:
                    cycle = [*paths[v], start]
                    break
                for w in graph[v]:
                    if w in members and w not in paths:
                        paths[w] = [*paths[v], w]
                        nxt.append(w)
            frontier = nxt
        line = min(n for t, n in pkg.edges(pkg.modules[start]) if t == cycle[1])
        others = (
            f" (component of {len(comp)}: {', '.join(comp)})" if len(comp) > len(cycle) - 1 else ""
        )
        out.append(f"{start}: import cycle {' -> '.join(cycle)} (line {line}){others}")
    return sorted(out)


def unit(module: str) -> str | None:
    """The package (or top-level module) a module belongs to; None for the package root."""
    parts = module.split(".")
    return UNIT_OF.get(parts[1], parts[1]) if len(parts) > 1 else None


def _layer(name: str) -> int | None:
    return next((i for i, layer in enumerate(LAYERS) if name in layer), None)


def _unit_edges(pkg: Package) -> Iterator[tuple[str, str, str, str, int]]:
    """(source unit, target unit, source module, target module, line) across units."""
    for mod in pkg.modules.values():
        src = unit(mod.name)
        for target, line in pkg.edges(mod):
            dst = unit(target)
            if src is not None and dst is not None and dst != src:
                yield src, dst, mod.name, target, line


def package_order(pkg: Package) -> list[str]:
    out = set()
    for mod in pkg.modules.values():
        name = unit(mod.name)
        if name is not None and _layer(name) is None:
            out.add(f"{mod.name}: package {name!r} is not in the package order (LAYERS)")
    for src, dst, module, target, line in _unit_edges(pkg):
        a, b = _layer(src), _layer(dst)
        if a is not None and b is not None and b >= a:
            where = "the same layer as" if a == b else "a later layer than"
            out.add(f"{module}: imports {target} (line {line}); {dst} is in {where} {src}")
    return sorted(out)


def package_cycles(pkg: Package) -> list[str]:
    """Every strongly connected set of packages, with one import that closes each edge."""
    graph: dict[str, dict[str, str]] = {}
    for src, dst, module, target, line in sorted(_unit_edges(pkg)):
        graph.setdefault(src, {}).setdefault(dst, f"{module} -> {target} (line {line})")
    reach = {v: _reachable(graph, v) for v in graph}
    out = set()
    for v in graph:
        comp = sorted(w for w in reach[v] if v in reach.get(w, set()))
        if len(comp) > 1 and comp[0] == v:
            via = "; ".join(graph[a][b] for a in comp for b in sorted(graph[a]) if b in comp)
            out.add(f"packages {' <-> '.join(comp)} import each other: {via}")
    return sorted(out)


def _reachable(graph: dict[str, dict[str, str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for w in graph.get(todo.pop(), {}):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def cluster_connections(pkg: Package) -> list[str]:
    out = []
    for mod in pkg.modules.values():
        aliases = pkg.aliases(mod)
        connects = {
            a.asname or a.name
            for node in ast.walk(mod.tree)
            if isinstance(node, ast.ImportFrom) and within(pkg.resolve(mod, node), CLUSTER_HOME)
            for a in node.names
            if a.name == "connect"
        }
        for node in ast.walk(mod.tree):
            if not isinstance(node, ast.Call):
                continue
            name = dotted(node.func).split(".")[-1]
            if name in CLUSTER_OBJECTS and not within(mod.name, CLUSTER_HOME):
                out.append(
                    f"{mod.name}: builds a {name} (line {node.lineno}); only {CLUSTER_HOME} may"
                )
            if mod.name == CONNECT_HOME or within(mod.name, CLUSTER_HOME) or name != "connect":
                continue
            func = node.func
            owner = pkg.module_of(func.value, aliases) if isinstance(func, ast.Attribute) else None
            if (isinstance(func, ast.Name) and func.id in connects) or (
                owner is not None and within(owner, CLUSTER_HOME)
            ):
                out.append(
                    f"{mod.name}: connects to a cluster (line {node.lineno}); "
                    f"only {CONNECT_HOME} may"
                )
    return sorted(out)


def _constants(node: ast.expr) -> Iterator[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.Tuple | ast.List | ast.Set):
        for element in node.elts:
            yield from _constants(element)


def name_comparisons(pkg: Package) -> list[str]:
    """Kind names compared with a ``kind`` expression, method ids with an ``id``/``method``
    expression, outside their owners."""
    out = []
    for mod in pkg.modules.values():
        for node in ast.walk(mod.tree):
            if not isinstance(node, ast.Compare):
                continue
            operands = [node.left, *node.comparators]
            texts = [ast.unparse(o).lower() for o in operands if not list(_constants(o))]
            for value in (v for o in operands for v in _constants(o)):
                if (
                    value in KIND_NAMES
                    and mod.name != KIND_HOME
                    and any("kind" in t for t in texts)
                ):
                    out.append(
                        f"{mod.name}: compares a kind with {value!r} (line {node.lineno}); "
                        "ask a batchseg.core.kinds.Kind member"
                    )
                elif (
                    METHOD_ID.match(value)
                    and not within(mod.name, METHOD_HOME)
                    and any("id" in t or "method" in t for t in texts)
                ):
                    out.append(
                        f"{mod.name}: compares a method id with {value!r} (line {node.lineno}); "
                        f"only {METHOD_HOME} may"
                    )
    return sorted(out)


def private_names(pkg: Package) -> list[str]:
    out = set()
    for mod in pkg.modules.values():
        for imp in mod.imports:
            if imp.target in pkg.modules or imp.target.split(".")[0] == mod.name.split(".")[0]:
                if imp.target == mod.name:
                    continue
                for name in imp.names:
                    if private(name):
                        out.add(f"{mod.name}: imports {imp.target}.{name} (line {imp.line})")
        aliases = pkg.aliases(mod)
        own = _own_names(mod.tree)
        for node in ast.walk(mod.tree):
            if not (isinstance(node, ast.Attribute) and private(node.attr)):
                continue
            owner = pkg.module_of(node.value, aliases)
            if owner is not None:
                if owner != mod.name:
                    out.add(f"{mod.name}: uses {owner}.{node.attr} (line {node.lineno})")
            elif (
                dotted(node.value) not in ("self", "cls")
                and node.attr not in own
                and node.attr not in NAMEDTUPLE_API
                and f"{dotted(node.value)}.{node.attr}" not in STDLIB_PUBLIC
            ):  # an object's private attribute that this module does not define
                what = dotted(node.value) or "an object"
                out.add(f"{mod.name}: uses {what}.{node.attr}, not its own (line {node.lineno})")
    return sorted(out)


def _own_names(tree: ast.Module) -> set[str]:
    """Names a module defines itself: functions, classes, assigned names and attributes."""
    own = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
        elif isinstance(node, ast.arg):
            own.add(node.arg)
    return own


def sizes(pkg: Package) -> list[str]:
    return [
        f"{m.name}: {m.lines} lines (at most {MAX_LINES})"
        for m in pkg.modules.values()
        if m.lines > MAX_LINES
    ]


def function_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of ``node`` without its docstring: the public API's numpydoc docstrings (with
    their examples) are documentation, not size."""
    lines = (node.end_lineno or node.lineno) - node.lineno + 1
    first = node.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        lines -= (first.end_lineno or first.lineno) - first.lineno + 1
    return lines


def long_functions(pkg: Package) -> list[str]:
    return [
        f"{m.name}.{node.name}: {function_lines(node)} lines (at most {MAX_FUNCTION_LINES})"
        for m in pkg.modules.values()
        for node in ast.walk(m.tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and function_lines(node) > MAX_FUNCTION_LINES
    ]


def dask_imports(pkg: Package) -> list[str]:
    return [
        f"{m.name}: imports {imp.target} (line {imp.line}); only {' and '.join(DASK_HOMES)} may"
        for m in pkg.modules.values()
        if not any(within(m.name, home) for home in DASK_HOMES)
        for imp in m.imports
        if any(within(imp.target, top) for top in DASK)
    ]


def torch_imports(pkg: Package) -> list[str]:
    out = []
    for m in pkg.modules.values():
        for imp in m.imports:
            if not any(within(imp.target, top) for top in TORCH):
                continue
            if not within(m.name, TORCH_HOME):
                out.append(
                    f"{m.name}: imports {imp.target} (line {imp.line}); only {TORCH_HOME} may"
                )
            elif not (imp.lazy or imp.typing_only):
                out.append(f"{m.name}: imports {imp.target} at module level (line {imp.line})")
    return out


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _strings(tree: ast.Module) -> Iterator[tuple[ast.expr, str]]:
    """Every str literal and f-string with its leading literal text (docstrings left out)."""
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node, node.value
        elif isinstance(node, ast.JoinedStr):
            first = node.values[0] if node.values else None
            lead = first.value if isinstance(first, ast.Constant) else ""
            yield node, lead if isinstance(lead, str) else ""


def _is_store_path(text: str) -> bool:
    return any(text.startswith(node + "/") for node in STORE_NODES)


def store_paths(pkg: Package) -> list[str]:
    out = set()
    for m in pkg.modules.values():
        if within(m.name, STORE_HOME):
            continue
        for node, text in _strings(m.tree):
            if _is_store_path(text):
                out.add(f"{m.name}: store path {text!r} (line {node.lineno})")
        # a bare node name ("stats") handed to a function of the store package
        aliases = pkg.aliases(m)
        from_store = {
            a.asname or a.name
            for node in ast.walk(m.tree)
            if isinstance(node, ast.ImportFrom) and within(pkg.resolve(m, node), STORE_HOME)
            for a in node.names
        }
        for node in ast.walk(m.tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            owner = pkg.module_of(func.value, aliases) if isinstance(func, ast.Attribute) else None
            if (owner and within(owner, STORE_HOME)) or (
                isinstance(func, ast.Name) and func.id in from_store
            ):
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    if isinstance(arg, ast.Constant) and arg.value in STORE_NODES:
                        out.add(f"{m.name}: store path {arg.value!r} (line {arg.lineno})")
    return sorted(out)


RULES: dict[str, Callable[[Package], list[str]]] = {
    "import cycles": cycles,
    "underscore names of other modules": private_names,
    f"modules over {MAX_LINES} lines": sizes,
    f"functions over {MAX_FUNCTION_LINES} lines": long_functions,
    "dask/distributed outside engine/ and cluster/": dask_imports,
    "torch outside methods/ or not lazy": torch_imports,
    "Zarr store paths outside store/": store_paths,
    "package order": package_order,
    "package cycles": package_cycles,
    "one place connects to a cluster": cluster_connections,
    "kind and method-id comparisons outside their owners": name_comparisons,
}


@pytest.fixture(scope="module")
def batchseg() -> Package:
    pkg = Package(ROOT)
    assert {"batchseg.store", "batchseg.engine.execute", "batchseg.methods.semantic"} <= set(
        pkg.modules
    ), "the scanner does not see the package"
    return pkg


@pytest.mark.parametrize("rule", list(RULES))
def test_architecture(batchseg: Package, rule: str) -> None:
    violations = RULES[rule](batchseg)
    assert not violations, f"{rule}:\n" + "\n".join(violations)


# ---------------------------------------------------------------- the checker on a made-up package

BAD = {
    "__init__.py": "",
    "store/__init__.py": '"""Layout: catalogue/uri, labels/<b>."""\nPATH = "catalogue/uri"\n',
    "store/lock.py": (
        "def _secret():\n    return 1\n"
        "class View:\n"
        "    def __init__(self):\n        self._root = 1\n"
        "    def same(self, other):\n        return other._root == self._root\n"
    ),
    "io/__init__.py": "",
    "io/a.py": (
        "from batchseg.io import b\n"
        "from batchseg.store.lock import _secret\n"
        "import batchseg.store.lock as lk\n"
        "from batchseg import store\n"
        "x = lk._secret() + store.lock._secret()\n"
        "y = lk.__name__\n"
        'z = store.array(None, "stats")\n'
        'w = f"pyramid/{x}/0"\n'
        'v = "labels"\n'
        "import dask.array\n"
        "u = lk.View()._root + b.f()._asdict()\n"
    ),
    "io/b.py": (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from batchseg.job import c\n"
        "    import torch\n"
        "def f():\n"
        "    from batchseg.io import a\n"
        "    return a\n"
    ),
    "job/__init__.py": "",
    "job/c.py": "from ..io import a\nimport torchvision\n",
    "methods/__init__.py": "",
    "methods/m.py": "import torch\ndef f():\n    import torch.nn\n    import distributed\n",
    "engine/__init__.py": "",
    "engine/e.py": "from distributed import Client\n" + "x = 1\n" * MAX_LINES,
    "store/s.py": "from batchseg.io import b\n",
    "cli/__init__.py": "",
    "report.py": "def f():\n    from batchseg.cli import x\n    return x\n",
    "oddity.py": "",
    "job/k.py": (
        "def f(view, m):\n"
        '    return view.kind == "classes" or m.method_id in ("skimage.otsu",) or "classes" in m\n'
    ),
    "job/n.py": (
        "from batchseg.cluster import connect\nfrom batchseg import cluster\n"
        "def g(p):\n    return connect(p), cluster.connect(p)\n"
    ),
    "cluster/__init__.py": "def connect(p):\n    return p\n",
    "engine/f.py": "from distributed import Client\nc = Client()\n",
    # one line of code too many; a long docstring over short code is not size
    "job/d.py": (
        'def long():\n    """Doc."""\n'
        + "    x = 1\n" * MAX_FUNCTION_LINES
        + 'def documented():\n    """'
        + "doc\n" * MAX_FUNCTION_LINES
        + '"""\n    return 1\n'
    ),
}


def test_checker_finds_each_kind_of_violation(tmp_path: Path) -> None:
    for rel, text in BAD.items():
        path = tmp_path / "batchseg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    pkg = Package(tmp_path / "batchseg")
    found = {rule: check(pkg) for rule, check in RULES.items()}
    assert found["import cycles"] == [
        "batchseg.io.a: import cycle batchseg.io.a -> batchseg.io.b -> batchseg.io.a (line 1)"
    ]  # job.c -> io.a is one way; b -> job.c is typing-only
    assert found["underscore names of other modules"] == [
        "batchseg.io.a: imports batchseg.store.lock._secret (line 2)",
        "batchseg.io.a: uses an object._root, not its own (line 11)",
        "batchseg.io.a: uses batchseg.store.lock._secret (line 5)",
    ]
    assert found[f"modules over {MAX_LINES} lines"] == [
        f"batchseg.engine.e: {MAX_LINES + 1} lines (at most {MAX_LINES})"
    ]
    assert found[f"functions over {MAX_FUNCTION_LINES} lines"] == [
        f"batchseg.job.d.long: {MAX_FUNCTION_LINES + 1} lines (at most {MAX_FUNCTION_LINES})"
    ]
    assert [v.split(" (")[0] for v in found["dask/distributed outside engine/ and cluster/"]] == [
        "batchseg.io.a: imports dask.array",
        "batchseg.methods.m: imports distributed",
    ]
    assert found["torch outside methods/ or not lazy"] == [
        "batchseg.io.b: imports torch (line 4); only batchseg.methods may",
        "batchseg.job.c: imports torchvision (line 2); only batchseg.methods may",
        "batchseg.methods.m: imports torch at module level (line 1)",
    ]
    assert found["package order"] == [
        "batchseg.io.a: imports batchseg.store (line 4); store is in a later layer than io",
        "batchseg.io.a: imports batchseg.store.lock (line 2); store is in a later layer than io",
        "batchseg.io.a: imports batchseg.store.lock (line 3); store is in a later layer than io",
        "batchseg.oddity: package 'oddity' is not in the package order (LAYERS)",
        "batchseg.report: imports batchseg.cli (line 2); cli is in a later layer than report",
    ]  # function-local imports count; job.c -> io.a is allowed; b -> job.c is typing-only
    assert found["package cycles"] == [
        "packages io <-> store import each other: batchseg.io.a -> batchseg.store (line 4); "
        "batchseg.store.s -> batchseg.io.b (line 1)"
    ]
    assert found["one place connects to a cluster"] == [
        "batchseg.engine.f: builds a Client (line 2); only batchseg.cluster may",
        "batchseg.job.n: connects to a cluster (line 4); only batchseg.engine.runner may",
        "batchseg.job.n: connects to a cluster (line 4); only batchseg.engine.runner may",
    ]
    assert found["kind and method-id comparisons outside their owners"] == [
        "batchseg.job.k: compares a kind with 'classes' (line 2); ask a batchseg.core.kinds.Kind "
        "member",
        "batchseg.job.k: compares a method id with 'skimage.otsu' (line 2); only batchseg.methods "
        "may",
    ]  # "classes" in m: not a kind
    assert found["Zarr store paths outside store/"] == [
        "batchseg.io.a: store path 'pyramid/' (line 8)",
        "batchseg.io.a: store path 'stats' (line 7)",
    ]

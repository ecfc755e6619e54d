"""The package's layering, read from its imports (docs/layers.md).

Every module of fast_style/ is parsed, never imported, so these hold for the code as written: no
import loop among fast_style's modules (counting imports inside functions, and the package
``__init__`` that importing ``a.b.c`` runs), the networks import only the core below them, and no
module imports inside a function except where :data:`DEFERRED` says why.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import fast_style

ROOT = Path(fast_style.__file__).parent
PACKAGE = "fast_style"

# What fast_style.networks may import (besides its own modules): the core below every kind.
NETWORK_IMPORTS = {"fast_style.config", "fast_style.errors", "fast_style.precision", "fast_style.losses",
                   "fast_style.vgg", "fast_style.winograd", "fast_style.transformer", "fast_style.inference",
                   "fast_style.tiling", "fast_style.paintings"}
# What fast_style.networks must never reach, directly or through the core: model files, loading and
# running models, training them, and the commands.
ABOVE_NETWORKS = ("fast_style.checkpoint", "fast_style.model_file", "fast_style.models", "fast_style.stylize",
                  "fast_style.stylize_files", "fast_style.export", "fast_style.compare", "fast_style.sweep",
                  "fast_style.bench", "fast_style.video", "fast_style.training", "fast_style.commands",
                  "fast_style.cli")
# Modules allowed to import fast_style modules inside functions, and why: start-up time only, never a loop.
DEFERRED = {
    "fast_style": "load_model: `import fast_style` stays light, no torch until a model is loaded",
    "fast_style.commands": "each command imports its work inside main(), so `fast-style --help` is instant",
}


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int
    in_function: bool
    type_only: bool  # under `if TYPE_CHECKING:`: never runs


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def targets(importer: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The fast_style modules an import statement runs: the named ones, and the packages above them
    (``import a.b.c`` runs ``a/b/__init__.py`` first) that the importer is not itself inside."""
    if isinstance(node, ast.Import):
        named = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = importer.split(".") if MODULES[importer].name == "__init__.py" else importer.split(".")[:-1]
            base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
        named = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
    for name in named:
        if not within(name, PACKAGE):
            continue
        while name not in MODULES:
            name = name.rsplit(".", 1)[0]
        parts = name.split(".")
        for depth in range(2, len(parts)):
            package = ".".join(parts[:depth])
            if not within(importer, package):
                yield package
        if name != importer:
            yield name


def is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING" or \
        isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"


def imports_of(module: str) -> list[Import]:
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool, type_only: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.extend(Import(module, target, node.lineno, in_function, type_only)
                         for target in dict.fromkeys(targets(module, node)))
        for child in ast.iter_child_nodes(node):
            visit(child, in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)),
                  type_only or isinstance(node, ast.If) and is_type_checking(node) and child in node.body)

    visit(ast.parse(MODULES[module].read_text(encoding="utf-8")), False, False)
    return found


IMPORTS = [found for module in MODULES for found in imports_of(module)]


def graph(*, type_only: bool) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {module: set() for module in MODULES}
    for found in IMPORTS:
        if type_only or not found.type_only:
            edges[found.importer].add(found.target)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import loop as the modules along it (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[module] = 2
        path.pop()
        return None

    for module in sorted(edges):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_the_reader_sees_the_package() -> None:
    """The parser finds the modules and the imports these tests rely on (a broken one would pass everything)."""
    assert {"fast_style.networks", "fast_style.networks.johnson2016", "fast_style.training.trainer",
            "fast_style.checkpoint", "fast_style.cli"} <= set(MODULES)
    imports = {(found.importer, found.target) for found in IMPORTS}
    assert ("fast_style.checkpoint", "fast_style.networks") in imports  # from fast_style.networks import get_kind
    assert ("fast_style.training.trainer", "fast_style.training.tasks") in imports
    assert ("fast_style", "fast_style.stylize") in imports  # load_model's deferred import


def test_find_cycle_finds_a_loop_through_a_function_level_import() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(edges) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_loop() -> None:
    """Module-level and function-level imports alike: a loop dodged by importing inside a function is still one."""
    cycle = find_cycle(graph(type_only=False))
    assert cycle is None, "import loop: " + " -> ".join(cycle or [])


def test_networks_import_only_the_core() -> None:
    """A kind of network is built, stored, run, tiled and exported from the core alone: it knows nothing
    of model files, loading, stylizing, training or commands (type-only imports count too)."""
    wrong = [f"{found.importer}:{found.line} imports {found.target}" for found in IMPORTS
             if within(found.importer, "fast_style.networks") and not within(found.target, "fast_style.networks")
             and found.target not in NETWORK_IMPORTS]
    assert not wrong, "fast_style.networks reaches above the core:\n" + "\n".join(wrong)


def test_networks_reach_nothing_above_them_through_the_core() -> None:
    edges = graph(type_only=True)
    reached, todo = set(), [module for module in MODULES if within(module, "fast_style.networks")]
    while todo:
        module = todo.pop()
        for target in edges[module] - reached:
            reached.add(target)
            todo.append(target)
    above = sorted(module for module in reached if any(within(module, banned) for banned in ABOVE_NETWORKS))
    assert not above, f"fast_style.networks imports, through the core, {', '.join(above)}"


@pytest.mark.parametrize(("layer", "users"), [
    ("fast_style.training", ("fast_style.training", "fast_style.commands", "fast_style.bench")),
    ("fast_style.commands", ("fast_style.commands",)),  # fast_style.cli imports them by name, at run time
    ("fast_style.cli", ()),
])
def test_upper_layers_are_imported_only_from_above(layer: str, users: tuple[str, ...]) -> None:
    """Training is used by the train command and its benchmark alone; nothing in the package imports the commands."""
    wrong = [f"{found.importer}:{found.line} imports {found.target}" for found in IMPORTS
             if within(found.target, layer) and not any(within(found.importer, user) for user in users)]
    assert not wrong, f"{layer} imported from below:\n" + "\n".join(wrong)


def test_imports_inside_functions_only_where_deferred_for_start_up() -> None:
    """An import inside a function that dodges a loop hides the layering; only the listed start-up deferrals may."""
    wrong = [f"{found.importer}:{found.line} imports {found.target} inside a function" for found in IMPORTS
             if found.in_function and not any(within(found.importer, allowed) and
                                              (allowed != PACKAGE or found.importer == PACKAGE)
                                              for allowed in DEFERRED)]
    assert not wrong, ("move these imports to the top of their module (or, if deferred for start-up time, list "
                       "the module in DEFERRED with the reason):\n" + "\n".join(wrong))


@pytest.mark.parametrize("module", sorted(DEFERRED))
def test_every_deferral_is_still_needed(module: str) -> None:
    """DEFERRED does not outlive its reason: each listed module still defers an import."""
    assert any(found.in_function and (found.importer == module or module != PACKAGE and within(found.importer, module))
               for found in IMPORTS)

"""The import graph keeps its shape: no cycles, and what a layer may import is one-way
(top → understanding/llm/voice → skills → adapters → transport/registry/messages)."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("assistant", "skills", "device_adapters")

# What each group may import from the project, besides its own package.
ALLOWED = {
    "device_adapters": ("assistant.messages", "assistant.registry", "assistant.device_data",
                        "assistant.templating", "device_adapters"),
    "assistant.transport": ("assistant.messages", "assistant.config", "assistant.transport"),
}
# The core reasons about entities and commands, never about a wire or an adapter's errors.
CORE = ("assistant.conversation", "assistant.understanding", "assistant.llm", "skills",
        "assistant.safety", "assistant.automation", "assistant.rules")
CORE_FORBIDDEN = ("assistant.transport", "assistant.virtual", "device_adapters")
CORE_EXCEPTIONS = ("device_adapters.base",)  # the adapter contract's ReportWait
# Only the command line and the simulator's own modules reach the simulator.
SIMULATOR_USERS = ("assistant.cli", "assistant.virtual")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (REPO / package).rglob("*.py")}


def imported_modules(path: Path, name: str, known: Iterable[str]) -> set[str]:
    """Every project module ``path`` imports, at the top or inside a function."""
    known = set(known)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    modules = set()
    for module in found:
        while module and module not in known:
            module = module.rpartition(".")[0]
        if module and module != name:
            modules.add(module)
    return modules


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imported_modules(path, name, modules) for name, path in modules.items()}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def within(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(graph: Mapping[str, set[str]]) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            for group, allowed in ALLOWED.items():
                if within(module, (group,)) and not within(target, allowed):
                    found.append(f"{module} -> {target}")
            if within(module, CORE) and within(target, CORE_FORBIDDEN) \
                    and not within(target, CORE_EXCEPTIONS):
                found.append(f"{module} -> {target}")
            if within(target, ("assistant.virtual",)) and not within(module, SIMULATOR_USERS):
                found.append(f"{module} -> {target}")
    return found


def test_the_project_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "assistant.daemon" in graph and graph["assistant.daemon"]  # the graph is read
    assert cycles(graph) == []


def test_layers_import_one_way() -> None:
    assert violations(import_graph()) == []


def test_the_checks_see_a_cycle_and_a_wrong_way_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert violations({"device_adapters.x": {"assistant.conversation"}}) == [
        "device_adapters.x -> assistant.conversation"]
    assert violations({"assistant.conversation": {"assistant.transport.mqtt_link"}}) == [
        "assistant.conversation -> assistant.transport.mqtt_link"]
    assert violations({"assistant.conversation": {"device_adapters.base"},
                       "device_adapters.x": {"assistant.registry"}}) == []


def test_lazy_imports_count() -> None:
    source = "def f():\n    from assistant.registry import Entity\n"
    path = REPO / "tests" / "data" / "_lazy_import_probe.py"
    path.write_text(source, encoding="utf-8")
    try:
        assert imported_modules(path, "probe", ["assistant.registry"]) == {"assistant.registry"}
    finally:
        path.unlink()

"""Housekeeping the reviewers asked for (issue 9): one rule for model ids, no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

from kandanim import spec
from kandanim.models import ModelSpec
from kandanim.plan import resolve_models

PACKAGE = Path(__file__).resolve().parents[1] / "kandanim"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every kandanim module → the kandanim modules it imports anywhere (top level,
    inside functions, under TYPE_CHECKING): a lazy import is still a dependency."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for child in sorted(graph[node]):
            if state.get(child) == "open":
                found.append(trail[trail.index(child):] + [child])
            elif child not in state:
                visit(child, [*trail, child])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_package_has_no_import_cycles() -> None:
    graph = import_graph()
    assert "kandanim.depth_models" in graph["kandanim.depth"]  # the walker sees lazy imports
    assert cycles(graph) == []


def test_model_ids_follow_one_rule_wherever_they_are_resolved() -> None:
    env = {"KANDANIM_DECODER": "env/decoder", "KANDANIM_DEPTH": "env/depth"}
    chosen = {"prior": "play/prior", "decoder": None, "inpaint": None, "depth": None}
    from_plan = resolve_models(spec.Models(**chosen), env)
    from_store = ModelSpec.resolve(chosen, env=env).as_dict()
    assert from_plan == from_store == spec.resolve_model_ids(chosen, env) == {
        "prior": "play/prior", "decoder": "env/decoder",
        "inpaint": spec.DEFAULT_INPAINT, "depth": "env/depth",
    }

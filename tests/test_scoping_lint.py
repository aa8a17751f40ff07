"""Tenant scoping is written in one place: no hand-made ``tenant_id ==`` filters elsewhere."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {ROOT / "domain" / "db.py"}
PACKAGES = ("api", "domain", "portal", "workers", "milepost")


def _compares_tenant_id(node: ast.Compare) -> bool:
    operands = [node.left, *node.comparators]
    return any(isinstance(o, ast.Attribute) and o.attr == "tenant_id" for o in operands) and any(
        isinstance(op, ast.Eq | ast.NotEq | ast.In) for op in node.ops
    )


def test_no_module_filters_on_tenant_id_by_hand() -> None:
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path in ALLOWED:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Compare) and _compares_tenant_id(node):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_the_lint_catches_a_hand_written_filter() -> None:
    tree = ast.parse("select(Shipment).where(Shipment.tenant_id == scope.tenant_id)")
    compares = [n for n in ast.walk(tree) if isinstance(n, ast.Compare)]
    assert [_compares_tenant_id(n) for n in compares] == [True]

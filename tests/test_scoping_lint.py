"""Tenant scoping is written in one place: no hand-made ``tenant_id ==`` filters elsewhere."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {ROOT / "domain" / "db.py"}
PACKAGES = ("api", "domain", "portal", "workers", "milepost")


def _is_tenant_id(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "tenant_id"


def _is_model_tenant_id(node: ast.expr) -> bool:
    """``Model.tenant_id`` (a column of a mapped class), as opposed to ``scope.tenant_id`` (a value)."""
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "tenant_id"
        and isinstance(node.value, ast.Name)
        and node.value.id[:1].isupper()
    )


def _compares_tenant_id(node: ast.Compare) -> bool:
    """A filter on tenant_id. A join condition (``A.tenant_id == B.tenant_id``) is not one: joins between
    tenant tables must match tenants, which is what keeps them distributable."""
    operands = [node.left, *node.comparators]
    if all(_is_model_tenant_id(o) for o in operands):
        return False
    return any(_is_tenant_id(o) for o in operands) and any(
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


def test_the_lint_catches_a_hand_written_filter_but_not_a_join() -> None:
    tree = ast.parse(
        "select(Shipment).where(Shipment.tenant_id == scope.tenant_id)"
        ".join(Leg, Leg.tenant_id == Shipment.tenant_id)"
    )
    compares = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Compare)), key=lambda n: n.col_offset)
    assert [_compares_tenant_id(n) for n in compares] == [True, False]

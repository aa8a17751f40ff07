from __future__ import annotations

from pathlib import Path

from api.graphql.schema import schema

COMMITTED = Path(__file__).resolve().parents[2] / "api" / "schema.graphql"


def test_the_committed_sdl_matches_the_code() -> None:
    # regenerate with `make schema` when this fails on purpose
    assert COMMITTED.read_text().rstrip() == schema.as_str().rstrip()


def test_every_type_and_field_has_a_description() -> None:
    missing = []
    for name, graphql_type in schema._schema.type_map.items():
        if name.startswith("__") or name in {
            "String",
            "Boolean",
            "Int",
            "Float",
            "ID",
            "JSON",
            "DateTime",
            "Decimal",
        }:
            continue
        if not graphql_type.description:
            missing.append(name)
        for field_name, field in (getattr(graphql_type, "fields", None) or {}).items():
            if not field.description:
                missing.append(f"{name}.{field_name}")
    assert missing == []

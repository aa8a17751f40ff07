"""Hot read paths compiled to one SQL statement that returns the response's JSON.

Why: a page of 50 shipments with timelines and open exceptions is a few thousand fields; strawberry and
graphql-core spend microseconds on each (resolver call, result completion, type checks), which made such
a page cost far more in Python than in PostgreSQL (docs/decisions.md, "Compiled reads"). For the fields
in a compiled vocabulary, one statement builds each node with ``json_build_object`` and its lists with
correlated ``json_agg`` subqueries, and the executor puts what PostgreSQL built into the response as it
is.

How: a resolver returns a :class:`Source` (what to read, arguments checked, permissions applied) instead of
objects. The executor (:class:`CompilingExecutionContext`), which knows the whole selection below the
field with fragments and ``@skip``/``@include`` resolved, asks the source to compile it. A source answers
:class:`Compiled` when every selected field is in its vocabulary (:data:`Vocabulary`), else the ordinary
objects, which strawberry then resolves field by field. Both paths give the same response; the tests
compare them. ``MILEPOST_GRAPHQL_COMPILED_READS=false`` turns compilation off.

The SQL here only formats values (ids, enums, times) as the GraphQL scalars do; what to read (tenant
scope, filters, order, pagination) comes from the same repository functions the resolvers use.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson
from graphql import GraphQLObjectType, GraphQLOutputType, get_named_type, is_object_type
from graphql.execution.collect_fields import FieldDetailsList
from sqlalchemy import ColumnElement, Text, case, cast, func, literal_column, null
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")


@dataclass(frozen=True, slots=True)
class Compiled:
    """A field's complete result, already in response form."""

    value: Any


class Source(ABC):
    """What a resolver returns for a field that may be compiled."""

    @abstractmethod
    async def complete(
        self, execution: CompilingExecutionContext, return_type: GraphQLObjectType, fields: FieldDetailsList
    ) -> Compiled | object:
        """:class:`Compiled` for the selection ``fields`` of ``return_type``, or the objects strawberry
        resolves when the selection is not compiled."""


class CompilingExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, completing a :class:`Source` through the source itself."""

    def complete_value(
        self,
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: Any,
        path: Any,
        result: Any,
        position_context: Any,
    ) -> Any:
        if not isinstance(result, Source) or not isinstance(get_named_type(return_type), GraphQLObjectType):
            return super().complete_value(
                return_type, field_details_list, info, path, result, position_context
            )
        return self._complete_source(return_type, field_details_list, info, path, result, position_context)

    async def _complete_source(
        self,
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: Any,
        path: Any,
        source: Source,
        position_context: Any,
    ) -> Any:
        named = get_named_type(return_type)
        assert isinstance(named, GraphQLObjectType)
        value = await source.complete(self, named, field_details_list)
        if isinstance(value, Compiled):
            return value.value
        completed = super().complete_value(
            return_type, field_details_list, info, path, value, position_context
        )
        if self.is_awaitable(completed):
            completed = await completed
        return completed


# --- plans, built once per selection ------------------------------------------------------------------

CACHE_SIZE = 512


class IdentityCache:
    """Values built from objects kept by identity (parsed field nodes, plans), least recently used dropped
    first. The key holds those objects, so an id is never reused while its value is kept.

    Plans are kept by selection and caller: building a plan's expressions costs far more than running it,
    and the same query text arrives again and again (its parsed document is cached, so its field nodes are
    the same objects). Finished statements are kept by plan and shape (which parameters the request has):
    one runs again with other values (its named parameters), and SQLAlchemy keys it once instead of walking
    the whole tree per request."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._values: OrderedDict[Hashable, tuple[tuple[object, ...], Any]] = OrderedDict()

    def get(self, held: tuple[object, ...], key: Hashable, build: Callable[[], Any]) -> Any:
        full_key = (tuple(map(id, held)), key)
        found = self._values.get(full_key)
        if found is not None and all(a is b for a, b in zip(found[0], held, strict=True)):
            self._values.move_to_end(full_key)
            return found[1]
        value = build()
        self._values[full_key] = (held, value)
        if len(self._values) > self._size:
            self._values.popitem(last=False)
        return value


def selection_key(execution: CompilingExecutionContext, fields: FieldDetailsList) -> tuple[Any, ...]:
    """What a plan for ``fields`` depends on besides the nodes themselves: the boolean variables, which
    ``@skip``/``@include`` read."""
    return tuple(sorted((k, v) for k, v in execution.variable_values.coerced.items() if isinstance(v, bool)))


# --- building one JSON value per row --------------------------------------------------------------------

# A field's SQL: (the build, the row's columns, the field's GraphQL type, its field nodes) -> expression, or
# None when this selection cannot be compiled (e.g. a nested field outside the vocabulary).
FieldSQL = Callable[["Build", Any, GraphQLOutputType, FieldDetailsList], "ColumnElement[Any] | None"]
Vocabulary = Mapping[str, Mapping[str, FieldSQL]]  # GraphQL type name -> field name -> its SQL


@dataclass(frozen=True)
class Build:
    """What compiling one selection needs: the executor (to collect sub-selections), the vocabulary and
    whatever the vocabulary's functions read (the caller, the clock)."""

    execution: CompilingExecutionContext
    vocabulary: Vocabulary
    facts: Any

    def object(
        self, graphql_type: GraphQLOutputType, fields: FieldDetailsList, columns: Any
    ) -> ColumnElement[Any] | None:
        """``json_build_object`` of the selected fields of ``graphql_type`` (keys in selection order, as
        aliased), over ``columns``; None when something selected is not compiled."""
        named = get_named_type(graphql_type)
        if not is_object_type(named):
            return None
        assert isinstance(named, GraphQLObjectType)
        known = self.vocabulary.get(named.name)
        collected = self.execution.collect_subfields(named, fields)
        if known is None or collected.new_defer_usages:
            return None
        pairs: list[ColumnElement[Any]] = []
        for key, details in collected.grouped_field_set.items():
            node = details[0].node
            name = node.name.value
            if name == "__typename":
                expression: ColumnElement[Any] | None = text_literal(named.name)
            elif name in known and (not node.arguments or getattr(known[name], "takes_arguments", False)):
                expression = known[name](self, columns, named.fields[name].type, details)
            else:
                return None
            if expression is None:
                return None
            pairs += [text_literal(key), expression]
        if not pairs or len(pairs) > 100:  # json_build_object takes at most 100 arguments
            return None
        return func.json_build_object(*pairs)

    def selection(
        self, graphql_type: GraphQLObjectType, fields: FieldDetailsList
    ) -> list[tuple[str, str, FieldDetailsList]]:
        """(response key, field name, field nodes) of the selected fields of a type handled in Python
        (connections, edges, page info)."""
        collected = self.execution.collect_subfields(graphql_type, fields)
        return [
            (key, details[0].node.name.value, details) for key, details in collected.grouped_field_set.items()
        ]


def as_json_text(expression: ColumnElement[Any]) -> ColumnElement[str]:
    """A JSON value as its text: the driver hands it back unparsed."""
    return cast(expression, Text)


def json_value(text: str, raw: bool) -> Any:
    """PostgreSQL's JSON text as a response value: as it is when the response is written with orjson
    (``Context.raw_json``), else parsed. Parsing and writing again cost more than the statement itself."""
    return orjson.Fragment(text) if raw else orjson.loads(text)


def text_literal(value: str) -> ColumnElement[str]:
    """A response key, type name or enum name, inlined (names only: checked against GraphQL's name
    syntax), so equal selections give equal statements and share one prepared plan."""
    if not _NAME.fullmatch(value):
        raise ValueError(f"not a GraphQL name: {value!r}")
    return literal_column(f"'{value}'", Text)


def enum_name(enum: type[Enum], column: ColumnElement[Any]) -> ColumnElement[Any]:
    """The GraphQL enum value (the member's name) for a column holding the member's value."""
    return case(
        *((column == literal_column(f"'{m.value}'"), text_literal(m.name)) for m in enum), else_=null()
    )


def global_id(type_name: str, id_column: ColumnElement[Any]) -> ColumnElement[str]:
    """:func:`api.graphql.relay.to_global_id` in SQL: unpadded URL-safe base64 of ``Type:uuid``."""
    text_literal(type_name)  # checks the name
    prefix = literal_column(f"'{type_name}:'", Text)
    encoded = func.encode(
        func.convert_to(prefix + cast(id_column, Text), literal_column("'UTF8'")), literal_column("'base64'")
    )
    return func.rtrim(
        func.translate(encoded, literal_column("E'+/\\n'"), literal_column("'-_'")), literal_column("'='")
    )


def iso_datetime(column: ColumnElement[Any]) -> ColumnElement[str]:
    """A ``timestamptz`` as strawberry writes a DateTime (``datetime.isoformat()`` of the UTC value the
    driver reads): microseconds only when there are some. Null stays null."""
    utc = func.timezone(literal_column("'UTC'"), column)
    text = func.to_char(utc, literal_column('\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\''))
    return func.replace(text, literal_column("'.000000+'"), literal_column("'+'"))


def takes_arguments(sql: FieldSQL) -> FieldSQL:
    """Marks a field's SQL as reading its own arguments (from the field node: literals only, since a plan
    is kept per document and variables change between requests); other fields with arguments are not
    compiled."""
    setattr(sql, "takes_arguments", True)  # noqa: B010
    return sql


def column(name: str) -> FieldSQL:
    """A field that is a column as it is (strings, ints, booleans, JSON)."""
    return lambda build, columns, graphql_type, fields: getattr(columns, name)


def time_column(name: str) -> FieldSQL:
    return lambda build, columns, graphql_type, fields: iso_datetime(getattr(columns, name))


def enum_column(enum: type[Enum], name: str) -> FieldSQL:
    return lambda build, columns, graphql_type, fields: enum_name(enum, getattr(columns, name))


def id_column(type_name: str, name: str = "id") -> FieldSQL:
    return lambda build, columns, graphql_type, fields: global_id(type_name, getattr(columns, name))

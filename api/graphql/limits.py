"""What a GraphQL request may ask for, checked before anything runs.

One schema extension, :class:`Hardening`, applies to every field of the schema:

- **parse** with a token limit, through a cache (a repeated query is not parsed again);
- **validate** through a cache keyed by the query text and the caller's audience, in two steps: first
  our limits (depth, aliases, repeated fields or directives) and the access map
  (``api/graphql/access.py``: every field, introspection included, for the callers it allows), then —
  only when those pass — the specification's rules, against the schema as the caller sees it (fields
  hidden from the caller left out). The spec's rules include overlapping-fields checks whose cost grows
  with the square of the repeats, which is why the cheap checks go first and the document is refused on
  them alone. Field suggestions ("Did you mean ...") are left out of every message;
- **cost** of the selected operation, with its variables: every field costs 1, and a field with a
  ``first`` argument (a connection) multiplies the cost of what it selects by its page size.

Strawberry ships ``QueryDepthLimiter``, ``MaxAliasesLimiter``, ``MaxTokensLimiter``, ``ParserCache`` and
``ValidationCache``; we use none of them as is. The depth and alias limiters walk fragments again at every
spread (time exponential in a chain of fragments spreading the next one twice), the depth limiter fails
with a ``KeyError`` on an unknown fragment and neither names the value found; the token limiter's message
is graphql-core's; and the validation cache cannot pass ``hide_suggestions`` nor put our limits first.
The caches below are the same idea (``functools.lru_cache``, bounded) with those differences.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import strawberry
from graphql import (
    BooleanValueNode,
    ConstListValueNode,
    ConstObjectFieldNode,
    ConstObjectValueNode,
    ConstValueNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FloatValueNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLArgument,
    GraphQLDefaultInput,
    GraphQLError,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLSyntaxError,
    InlineFragmentNode,
    IntValueNode,
    NameNode,
    NullValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValidationRule,
    VariableNode,
    get_named_type,
    is_composite_type,
    parse,
    validate,
)
from graphql.validation import ASTValidationRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types import ExecutionContext

from api.graphql.access import (
    INTROSPECTION_FIELDS,
    Audience,
    access_rule,
    filter_introspection,
    visible_schema,
)
from api.graphql.relay import DEFAULT_PAGE_SIZE
from milepost.settings import Settings

# Distinct query texts kept parsed and validated per process. Bounded, so a stream of unique queries costs
# parse and validation time (limited by the token limit) but no memory.
CACHE_SIZE = 512


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits in force (``MILEPOST_GRAPHQL_*``); see docs/api.md, "Limits and hardening"."""

    max_tokens: int = 1000
    max_depth: int = 10
    max_aliases: int = 30
    max_cost: int = 10_000
    max_page_size: int = 100
    default_page_size: int = DEFAULT_PAGE_SIZE

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_tokens=settings.graphql_max_tokens,
            max_depth=settings.graphql_max_depth,
            max_aliases=settings.graphql_max_aliases,
            max_cost=settings.graphql_max_cost,
            max_page_size=settings.graphql_max_page_size,
        )


class LimitExceeded(GraphQLError):
    """A request over one of our limits; ``extensions`` name the limit, its maximum and what was found."""

    def __init__(
        self, message: str, *, limit: str, maximum: int, actual: int | None, nodes: Any = None
    ) -> None:
        extensions: dict[str, Any] = {"code": "LIMIT_EXCEEDED", "limit": limit, "max": maximum}
        if actual is not None:
            extensions["actual"] = actual
        super().__init__(message, nodes, extensions=extensions)


# --- parse -------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=CACHE_SIZE)
def parse_document(query: str, max_tokens: int) -> DocumentNode:
    """``query`` parsed, at most ``max_tokens`` tokens; cached. Raises :class:`LimitExceeded` or the
    syntax error."""
    try:
        return parse(query, max_tokens=max_tokens)
    except GraphQLSyntaxError as error:
        # graphql-core stops at the limit without counting further, so the value is "more than"
        if "tokens. Parsing aborted." in error.message:
            raise LimitExceeded(
                f"The document has more than {max_tokens} tokens; the limit is {max_tokens}.",
                limit="tokens",
                maximum=max_tokens,
                actual=None,
            ) from None
        raise


# --- validate ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Shape:
    depth: int
    aliases: int


class _DocumentLimitsRule(ValidationRule):
    """Depth and aliases per operation (fragments expanded, each measured once), and no field or directive
    written twice at one place."""

    limits: ClassVar[Limits]

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._fragments: dict[str, _Shape] = {}

    def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> None:
        shape = self._measure(node.selection_set, frozenset())
        limits = self.limits
        if shape.depth > limits.max_depth:
            self.report_error(
                LimitExceeded(
                    f"Query depth {shape.depth} exceeds the limit of {limits.max_depth}.",
                    limit="depth",
                    maximum=limits.max_depth,
                    actual=shape.depth,
                    nodes=node,
                )
            )
        if shape.aliases > limits.max_aliases:
            self.report_error(
                LimitExceeded(
                    f"The query uses {shape.aliases} aliases; the limit is {limits.max_aliases}.",
                    limit="aliases",
                    maximum=limits.max_aliases,
                    actual=shape.aliases,
                    nodes=node,
                )
            )

    def _measure(self, selection_set: SelectionSetNode, entered: frozenset[str]) -> _Shape:
        depth = aliases = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                aliases += selection.alias is not None
                inner = (
                    self._measure(selection.selection_set, entered)
                    if selection.selection_set
                    else _Shape(0, 0)
                )
                aliases += inner.aliases
                # introspection is bounded by graphql-core's MaxIntrospectionDepthRule instead: the
                # standard introspection query nests `ofType` deeper than any data query needs
                if selection.name.value not in INTROSPECTION_FIELDS:
                    depth = max(depth, 1 + inner.depth)
            elif isinstance(selection, InlineFragmentNode):
                inner = self._measure(selection.selection_set, entered)
                depth, aliases = max(depth, inner.depth), aliases + inner.aliases
            elif isinstance(selection, FragmentSpreadNode):
                inner = self._fragment(selection.name.value, entered)
                depth, aliases = max(depth, inner.depth), aliases + inner.aliases
        return _Shape(depth, aliases)

    def _fragment(self, name: str, entered: frozenset[str]) -> _Shape:
        known = self._fragments.get(name)
        if known is not None:
            return known
        fragment = self.context.get_fragment(name)
        if fragment is None or name in entered:  # unknown or cyclic: the spec's rules report those
            return _Shape(0, 0)
        shape = self._measure(fragment.selection_set, entered | {name})
        self._fragments[name] = shape
        return shape

    def enter_selection_set(self, node: SelectionSetNode, *_args: Any) -> None:
        counts: dict[str, int] = {}
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                key = (selection.alias or selection.name).value
                counts[key] = counts.get(key, 0) + 1
        for key, count in counts.items():
            if count > 1:
                self.report_error(
                    LimitExceeded(
                        f"Field '{key}' is selected {count} times in one selection set; select it once.",
                        limit="fieldRepeats",
                        maximum=1,
                        actual=count,
                        nodes=node,
                    )
                )

    def enter_directive(self, node: DirectiveNode, key: Any, parent: Any, *_args: Any) -> None:
        if key != 0 or not isinstance(parent, Sequence):  # check each location once, at its first
            return
        counts: dict[str, int] = {}
        for directive in parent:
            counts[directive.name.value] = counts.get(directive.name.value, 0) + 1
        for name, count in counts.items():
            definition = self.context.schema.get_directive(name)
            if count > 1 and not (definition is not None and definition.is_repeatable):
                self.report_error(
                    LimitExceeded(
                        f"Directive '@{name}' is used {count} times at one location; use it once.",
                        limit="directiveRepeats",
                        maximum=1,
                        actual=count,
                        nodes=node,
                    )
                )


@functools.cache
def _first_rules(limits: Limits, audience: Audience) -> tuple[type[ASTValidationRule], ...]:
    # one class per distinct limits, so the validation cache sees equal keys for equal limits
    limit_rule = type("DocumentLimitsRule", (_DocumentLimitsRule,), {"limits": limits})
    return (limit_rule, access_rule(audience))


@functools.lru_cache(maxsize=CACHE_SIZE)
def validate_document(
    schema: GraphQLSchema,
    query: str,
    limits: Limits,
    audience: Audience,
    spec_rules: tuple[type[ASTValidationRule], ...],
) -> list[GraphQLError]:
    """Our limits and the access map, then (when they pass) the spec's rules, for one query text and one
    audience; cached. The document is validated against the schema as the audience sees it (without the
    fields hidden from it). The errors are shared by every request that sends the same text with the
    same audience, so nothing may change them afterwards."""
    document = parse_document(query, limits.max_tokens)
    visible = visible_schema(schema, audience)
    errors = validate(visible, document, _first_rules(limits, audience), hide_suggestions=True)
    if errors:
        return errors
    rules = (*spec_rules, MaybeNullValidationRule, OneOfInputValidationRule)
    return validate(visible, document, rules, hide_suggestions=True)


# --- cost --------------------------------------------------------------------------------------------


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any],
    limits: Limits,
) -> int:
    """1 per field; a field with a ``first`` argument multiplies what it selects by its page size (the
    literal, the variable's value, else the default page size), at most the largest page a connection
    returns. Union and interface branches all count. Runs on a valid document only."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    defaults = {d.variable.name.value: d.default_value for d in operation.variable_definitions or ()}
    memo: dict[str, int] = {}

    def page_size(field: FieldNode, argument: GraphQLArgument) -> int:
        value: Any = next((a.value for a in field.arguments or () if a.name.value == "first"), None)
        if isinstance(value, VariableNode):
            name = value.name.value
            value = variables[name] if name in variables else defaults.get(name)
        if isinstance(value, IntValueNode):
            value = int(value.value)
        elif isinstance(value, NullValueNode):
            value = None
        if value is None:  # omitted or null: the connection's default page
            size = _int_default(argument) or limits.default_page_size
        elif isinstance(value, int) and not isinstance(value, bool):
            size = value
        else:  # fails coercion before anything runs; count the worst case meanwhile
            size = limits.max_page_size
        return max(0, min(size, limits.max_page_size))

    def cost(selection_set: SelectionSetNode, parent: GraphQLNamedType | None) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                definition = (
                    schema.get_field(parent, selection.name.value)
                    if parent is not None and is_composite_type(parent)
                    else None
                )
                inner = 0
                multiplier = 1
                if definition is not None and selection.selection_set:
                    inner = cost(selection.selection_set, get_named_type(definition.type))
                    if "first" in definition.args:
                        multiplier = page_size(selection, definition.args["first"])
                total += 1 + multiplier * inner
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = schema.get_type(condition.name.value) if condition else parent
                total += cost(selection.selection_set, target)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in memo:
                    memo[name] = 0  # validation has refused cycles; this only guards the walk
                    fragment = fragments[name]
                    target = schema.get_type(fragment.type_condition.name.value)
                    memo[name] = cost(fragment.selection_set, target)
                total += memo[name]
        return total

    return cost(operation.selection_set, schema.get_root_type(operation.operation))


def _int_default(argument: GraphQLArgument) -> int | None:
    # strawberry sets `default_value`; a schema built from SDL by graphql-core 3.3 sets `default`
    default: Any = argument.default_value
    if argument.default is not None:
        default = argument.default.value
        if isinstance(argument.default.literal, IntValueNode):
            default = int(argument.default.literal.value)
    return default if isinstance(default, int) and not isinstance(default, bool) else None


def _selected_operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
            name is None or (definition.name is not None and definition.name.value == name)
        ):
            return definition
    return None


# --- the extension -----------------------------------------------------------------------------------


def limits_of(context: Any) -> Limits:
    state = getattr(context, "state", None)
    return Limits.from_settings(state.settings) if state is not None else Limits()


class Hardening(SchemaExtension):
    """Token-limited cached parsing, cached validation (limits and the access map first, no suggestions)
    and the cost limit, for queries, mutations and subscriptions alike. A caller without a principal
    (in-process use) is allowed nothing but ``__typename``."""

    def on_operation(self) -> Iterator[None]:
        self.limits = limits_of(self.execution_context.context)
        # strawberry's own parser, should it ever run, gets the same limit
        self.execution_context.parse_options["max_tokens"] = self.limits.max_tokens
        yield

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            context.graphql_document = parse_document(context.query, self.limits.max_tokens)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        # setting pre_execution_errors (even to []) tells strawberry validation has been done
        context.pre_execution_errors = self._errors(context)
        yield

    def _errors(self, context: ExecutionContext) -> list[GraphQLError]:
        assert context.query is not None
        assert context.graphql_document is not None
        schema = context.schema._schema
        audience = Audience.of(getattr(context.context, "principal", None))
        errors = validate_document(
            schema, context.query, self.limits, audience, tuple(context.validation_rules)
        )
        if errors:
            return list(errors)  # the cached list is shared
        document = context.graphql_document
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        # strawberry would pick the first operation; the spec's GetOperation asks the client to choose
        if len(operations) > 1 and getattr(context, "_provided_operation_name", None) is None:
            return [GraphQLError("Must provide operation name if query contains multiple operations.")]
        operation = _selected_operation(document, context.operation_name)
        if operation is None:  # strawberry has already refused a missing operation
            return []
        total = operation_cost(schema, document, operation, context.variables or {}, self.limits)
        if total <= self.limits.max_cost:
            return []
        return [
            LimitExceeded(
                f"Query cost {total} exceeds the limit of {self.limits.max_cost} (each field costs 1; "
                "a connection's `first` multiplies the cost of what it selects).",
                limit="cost",
                maximum=self.limits.max_cost,
                actual=total,
                nodes=operation,
            )
        ]


class HardenedSchema(strawberry.Schema):
    """A strawberry schema that never suggests names, leaves error logging to us, introspects no field
    hidden from the caller, and can introspect defaults of JSON arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        filter_introspection()  # introspection lists no field hidden from the caller
        # graphql-core cannot turn an object or list default of a custom scalar (`parameters: JSON! = {}`)
        # into a literal, so introspecting its `defaultValue` failed; give it the literal itself
        for value in _input_values(self._schema):
            default = value.default_value
            scalar = isinstance(get_named_type(value.type), GraphQLScalarType)
            if value.default is None and scalar and isinstance(default, (dict, list)):
                value.default = GraphQLDefaultInput(literal=_json_literal(default))

    def _get_custom_context_kwargs(
        self, operation_extensions: dict[str, Any] | None = None, *, sync: bool = False
    ) -> dict[str, Any]:
        # graphql-core's execute takes hide_suggestions (variable coercion errors would otherwise name
        # the enum values and input fields closest to what was sent); strawberry passes these through
        kwargs = super()._get_custom_context_kwargs(operation_extensions, sync=sync)
        return {**kwargs, "hide_suggestions": True}

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Strawberry logs every error at ERROR level, including a client's syntax and validation errors.
        # Unexpected ones are logged once, with the request id, by MaskInternalErrors (resolvers) and the
        # endpoint (anything else); a client's mistakes are not server errors.
        return None


def _input_values(schema: GraphQLSchema) -> Iterator[GraphQLArgument | GraphQLInputField]:
    for named in schema.type_map.values():
        if isinstance(named, GraphQLInputObjectType):
            yield from named.fields.values()
        elif isinstance(named, (GraphQLObjectType, GraphQLInterfaceType)):
            for field in named.fields.values():
                yield from field.args.values()


def _json_literal(value: Any) -> ConstValueNode:
    if isinstance(value, dict):
        return ConstObjectValueNode(
            fields=tuple(
                ConstObjectFieldNode(name=NameNode(value=key), value=_json_literal(item))
                for key, item in value.items()
            )
        )
    if isinstance(value, list):
        return ConstListValueNode(values=tuple(_json_literal(item) for item in value))
    if isinstance(value, bool):
        return BooleanValueNode(value=value)
    if isinstance(value, int):
        return IntValueNode(value=str(value))
    if isinstance(value, float):
        return FloatValueNode(value=repr(value))
    if isinstance(value, str):
        return StringValueNode(value=value)
    return NullValueNode()

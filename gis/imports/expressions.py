"""Attribute expressions: how one source record becomes one attribute value.

An expression is a small Python-syntax formula over the record's fields, checked against a
whitelist before it is ever evaluated, so a mapping file can compute but never reach outside:

    NAME                                  a field (identifiers resolve to fields; missing → None)
    field('addr:street')                  a field whose name is not an identifier (OSM tags)
    'school', 12, 3.5, true               constants (true/false/null also accepted)
    num(field('height')) or floors * 3    arithmetic, `or` as "first non-empty", `x if c else y`
                                          (as in SQL, arithmetic on an empty value gives empty)
    lookup(amenity, {'fuel': 'gas_station'}, 'other')
    join(' ', field('addr:street'), field('addr:housenumber'))

Plain field names and constants (most command-line mappings) skip evaluation entirely.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_ALLOWED = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div,
    ast.FloorDiv, ast.Mod, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.Compare, ast.Eq, ast.NotEq,
    ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot, ast.IfExp, ast.Call,
    ast.Name, ast.Load, ast.Constant, ast.Dict, ast.List, ast.Tuple,
)
_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?")


class ExpressionError(ValueError):
    """An expression that cannot be accepted; the message quotes it and says why."""


def _blank(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _num(value: Any) -> float | None:
    """The first number in a value: '12 m' → 12.0, '3,5' → 3.5, None/'' → None."""
    if _blank(value) or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = _NUMBER.search(str(value))
    return float(match.group().replace(",", ".")) if match else None


def _int(value: Any) -> int | None:
    number = _num(value)
    return None if number is None else int(round(number))


def _join(separator: str, *parts: Any) -> str | None:
    kept = [str(p) for p in parts if not _blank(p)]
    return separator.join(kept) if kept else None


def _lookup(value: Any, table: Mapping, default: Any = None) -> Any:
    if _blank(value):
        return default
    return table.get(value, table.get(str(value), default))


def _first(*values: Any) -> Any:
    return next((v for v in values if not _blank(v)), None)


FUNCTIONS: dict[str, Callable] = {
    "num": _num,
    "int": _int,
    "str": lambda v: None if _blank(v) else str(v),
    "lower": lambda v: None if _blank(v) else str(v).lower(),
    "upper": lambda v: None if _blank(v) else str(v).upper(),
    "strip": lambda v: None if _blank(v) else str(v).strip(),
    "join": _join,
    "lookup": _lookup,
    "first": _first,
    "round": lambda v, n=0: None if v is None else round(v, n),
}
_CONSTANTS = {"true": True, "false": False, "null": None, "None": None, "True": True, "False": False}


_OPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
}


def _null_op(name: str, a: Any, b: Any) -> Any:
    """Arithmetic and ordering as in SQL: an empty operand makes the result empty (None)."""
    if _blank(a) or _blank(b):
        return None
    return _OPS_BY_NAME[name](a, b)


_OPS_BY_NAME = {op.__name__: fn for op, fn in _OPS.items()}


class _NullSafe(ast.NodeTransformer):
    """Rewrites `a * b` and `a < b` into calls that let a missing value through as None."""

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        return ast.Call(ast.Name("__null_op", ast.Load()), [ast.Constant(type(node.op).__name__), node.left, node.right], [])

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        if len(node.ops) != 1 or type(node.ops[0]) not in _OPS:
            return node
        return ast.Call(
            ast.Name("__null_op", ast.Load()), [ast.Constant(type(node.ops[0]).__name__), node.left, node.comparators[0]], []
        )


class _Row(Mapping):
    """Name lookups for eval(): functions, constants, then the record's fields (None if absent)."""

    __slots__ = ("fields", "index")

    def __init__(self, fields: Mapping[str, Sequence], index: int):
        self.fields, self.index = fields, index

    def __getitem__(self, name: str) -> Any:
        if name in FUNCTIONS:
            return FUNCTIONS[name]
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        if name == "field":
            return self.field
        if name == "__null_op":
            return _null_op
        column = self.fields.get(name)
        return None if column is None else column[self.index]

    def field(self, name: str) -> Any:
        column = self.fields.get(name)
        return None if column is None else column[self.index]

    def __iter__(self):
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)


@dataclass(frozen=True)
class Expression:
    source: str
    kind: str  # "field", "constant" or "formula"
    value: Any = None  # the field name or the constant
    code: Any = None

    @classmethod
    def parse(cls, raw: Any) -> "Expression":
        """YAML scalars other than strings are constants; strings are formulas."""
        if not isinstance(raw, str):
            if isinstance(raw, (dict, list)):
                raise ExpressionError(f"{raw!r}: an attribute maps to one expression (a string) or a constant")
            return cls(repr(raw), "constant", raw)
        text = raw.strip()
        if not text:
            raise ExpressionError("an empty expression: name a source field, or quote a constant like 'school'")
        try:
            # parenthesised so a formula may span lines (YAML folded scalars)
            tree = ast.parse(f"(\n{text}\n)", mode="eval")
        except SyntaxError as err:
            raise ExpressionError(f"{raw!r} is not an expression ({err.msg}); quote text constants: 'school'") from None
        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED):
                raise ExpressionError(f"{raw!r}: {type(node).__name__} is not allowed in a mapping expression")
            if isinstance(node, ast.Call):
                if not isinstance(node.func, ast.Name) or node.func.id not in {*FUNCTIONS, "field"}:
                    raise ExpressionError(
                        f"{raw!r}: only these functions exist: field, {', '.join(sorted(FUNCTIONS))}"
                    )
                if node.keywords:
                    raise ExpressionError(f"{raw!r}: functions take positional arguments only")
        body = tree.body
        if isinstance(body, ast.Name) and body.id not in _CONSTANTS:
            return cls(raw, "field", body.id)
        if isinstance(body, ast.Constant):
            return cls(raw, "constant", body.value)
        if isinstance(body, ast.Name):
            return cls(raw, "constant", _CONSTANTS[body.id])
        if (
            isinstance(body, ast.Call) and body.func.id == "field"
            and len(body.args) == 1 and isinstance(body.args[0], ast.Constant)
        ):
            return cls(raw, "field", str(body.args[0].value))
        tree = ast.fix_missing_locations(_NullSafe().visit(tree))
        return cls(raw, "formula", code=compile(tree, f"<{raw}>", "eval"))

    def fields(self) -> set[str]:
        """Source fields the expression reads, for the 'no such field' check."""
        if self.kind == "field":
            return {self.value}
        if self.kind == "constant":
            return set()
        tree = ast.parse(f"(\n{self.source.strip()}\n)", mode="eval")
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(FUNCTIONS) - set(_CONSTANTS) - {"field"}
        for call in ast.walk(tree):
            if isinstance(call, ast.Call) and call.func.id == "field" and call.args and isinstance(call.args[0], ast.Constant):
                names.add(str(call.args[0].value))
        return names

    def column(self, fields: Mapping[str, Sequence], n: int) -> tuple[list, dict[int, str]]:
        """The values for all `n` records, and the rows whose evaluation failed, with why."""
        if self.kind == "constant":
            return [self.value] * n, {}
        if self.kind == "field":
            column = fields.get(self.value)
            return (list(column) if column is not None else [None] * n), {}
        values: list = [None] * n
        failures: dict[int, str] = {}
        empty_globals = {"__builtins__": {}}
        for i in range(n):
            try:
                values[i] = eval(self.code, empty_globals, _Row(fields, i))  # noqa: S307 - whitelisted AST
            except Exception as err:  # the formula met a value it cannot handle: that row is bad
                failures[i] = f"{self.source!r} failed: {type(err).__name__}: {err}"
        return values, failures

"""Deforum keyframe schedules, evaluated safely.

The grammar is sd-webui-deforum's (REALWORLD.md §A.2): `"frame: (value), frame: (value)"`.
The text is split on commas, each piece on its one colon. A key is a frame number or an
expression of `max_f` (= max_frames - 1) and `s` (the seed), truncated to a whole frame. A
number holds only at its key and numbers are joined linearly; an expression is evaluated
at every frame from its key until the next key, with `t` = the frame index (0-based).
Frames before the first key take the first value and frames after the last key the last.
Keys outside `0 … max_frames-1` are ignored (Deforum's loop never reaches them).

Differences from Deforum, on purpose:

* A piece with two colons (`"0: 0: (expr)"`, which Deforum silently reads as 0) or none
  is refused, naming the position, instead of dropping the expression.
* A schedule without a key at frame 0 holds its first value (Deforum crashes).
* Expressions run on `simpleeval` behind an AST allowlist (numbers, `t`, `max_f`, `s`,
  `pi`, `e`, arithmetic, comparisons and the math functions in `FUNCTIONS`), parsed once,
  in floating point like numexpr. Anything else — attributes, strings, `__import__`,
  lambdas — is refused before anything runs; constant sub-expressions are folded while
  checking, so `9**9**9` is refused at parse time too. Results must be finite numbers.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from simpleeval import SimpleEval

from kandanim.errors import UserError
from kandanim.sources import did_you_mean

MAX_SCHEDULE_CHARS = 4_000_000  # the 1 MB per-frame export has ~200 kB per field
MAX_EXPRESSION_CHARS = 5_000
MAX_EXPRESSION_NODES = 1_000
MAX_KEYS = 200_000
# Parts of expressions evaluated over a whole import (expression size × frames it covers):
# ~2 µs each, so a few seconds at most. Real files need a few tens of thousands.
EVALUATION_BUDGET = 2_000_000


class ScheduleError(UserError):
    """A schedule that cannot be read: `field`, and `offset` (0-based character) inside it."""

    def __init__(self, field_name: str, message: str, offset: int | None = None,
                 hint: str | None = None) -> None:
        where = f"character {offset + 1}: " if offset is not None else ""
        super().__init__(f"{field_name}: {where}{message}", hint=hint)
        self.field = field_name
        self.detail = message
        self.offset = offset


# --------------------------------------------------------------------------- evaluator


def _where(condition: float, a: float, b: float) -> float:
    return a if condition else b


def _sign(x: float) -> float:
    return float(np.sign(x))


def _two(fn: Callable[[float, float], float]) -> Callable[[float, float], float]:
    return lambda a, b: fn(float(a), float(b))


# numexpr's scalar functions (Deforum's vocabulary) mapped to `math`; min/max take two
# arguments here (numexpr's are reductions, which a per-frame scalar cannot use).
FUNCTIONS: dict[str, tuple[Callable[..., float], int]] = {
    **{name: (getattr(math, name), 1) for name in (
        "sin", "cos", "tan", "sinh", "cosh", "tanh", "sqrt", "exp", "log", "log10", "log1p",
        "log2", "expm1", "floor", "ceil", "trunc", "asin", "acos", "atan", "asinh", "acosh",
        "atanh")},
    "arcsin": (math.asin, 1), "arccos": (math.acos, 1), "arctan": (math.atan, 1),
    "arcsinh": (math.asinh, 1), "arccosh": (math.acosh, 1), "arctanh": (math.atanh, 1),
    "abs": (abs, 1), "round": (round, 1), "sign": (_sign, 1),
    "hypot": (_two(math.hypot), 2), "copysign": (_two(math.copysign), 2),
    "fmod": (_two(math.fmod), 2), "arctan2": (_two(math.atan2), 2), "atan2": (_two(math.atan2), 2),
    "minimum": (_two(min), 2), "maximum": (_two(max), 2), "min": (_two(min), 2),
    "max": (_two(max), 2), "where": (_where, 3),
}
CONSTANTS = {"pi": math.pi, "e": math.e}
FRAME_NAMES = ("t", "max_f", "s")  # what a schedule value may use
KEY_NAMES = ("max_f", "s")  # what a key expression may use


def _power(a: float, b: float) -> float:
    result = float(a) ** float(b)  # floats: an overflow raises at once, never a huge int
    if isinstance(result, complex):
        raise ValueError("a negative number to a fractional power has no real value")  # noqa: TRY004
    return result


def _truth(x: float) -> bool:
    return bool(x)


_OPERATORS: dict[type, Callable[..., object]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: _power, ast.USub: operator.neg, ast.UAdd: operator.pos,
    ast.Not: lambda a: not a, ast.Invert: lambda a: not a,
    ast.BitAnd: lambda a, b: _truth(a) and _truth(b), ast.BitOr: lambda a, b: _truth(a) or _truth(b),
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_STRUCTURE = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.IfExp,
              ast.Call, ast.Name, ast.Constant, ast.Load, ast.And, ast.Or)


@dataclass(frozen=True, eq=False)
class Expression:
    """One checked expression, parsed once; `evaluate` runs it for given names."""

    text: str
    tree: ast.expr
    names: frozenset[str]  # the variables it uses (a subset of the allowed ones)
    size: int  # parts of the tree: the cost of one evaluation
    _evaluator: SimpleEval = field(repr=False)

    def evaluate(self, **names: float) -> float:
        """The value as a finite float; ValueError with a reason otherwise."""
        self._evaluator.names.update(names)
        try:
            value = self._evaluator.eval(self.text, previously_parsed=self.tree)
        except (ArithmeticError, ValueError, TypeError) as error:
            raise ValueError(_reason(error)) from None
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"the result is {value}")
        return value


def _reason(error: Exception) -> str:
    if isinstance(error, ZeroDivisionError):
        return "division by zero"
    if isinstance(error, OverflowError):
        return "the number is too large"
    return str(error) or type(error).__name__


def compile_expression(text: str, allowed_names: tuple[str, ...]) -> Expression:
    """Parse and check an expression; ValueError (with a reason) if it is not allowed."""
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"the expression is {len(text)} characters long "
                         f"(at most {MAX_EXPRESSION_CHARS})")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        detail = getattr(error, "msg", None) or type(error).__name__
        if text.count("(") != text.count(")"):
            detail += "; Deforum splits a schedule at every comma, so a value cannot hold one"
        raise ValueError(f"not a valid expression ({detail})") from None
    used: set[str] = set()
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_EXPRESSION_NODES:
        raise ValueError(f"the expression is too complex ({len(nodes)} parts, "
                         f"at most {MAX_EXPRESSION_NODES})")
    callees = {id(n.func) for n in nodes if isinstance(n, ast.Call)}
    for node in nodes:
        if id(node) not in callees:  # a function's name is checked with its call
            _check_node(node, allowed_names, used)
    names = {name: 0.0 for name in allowed_names} | CONSTANTS
    functions = {name: fn for name, (fn, _) in FUNCTIONS.items()}
    evaluator = SimpleEval(operators=dict(_OPERATORS), functions=functions, names=names)
    expression = Expression(text.strip(), tree.body, frozenset(used), len(nodes), evaluator)
    _fold_constants(tree.body, evaluator, text.strip())
    return expression


def _check_node(node: ast.AST, allowed_names: tuple[str, ...], used: set[str]) -> None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ValueError(f"only numbers are allowed, found {node.value!r}")  # noqa: TRY004
        node.value = float(node.value)  # numexpr works in floats: no huge integers
        return
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return
        if node.id not in allowed_names:
            allowed = ", ".join((*allowed_names, *CONSTANTS))
            raise ValueError(f"unknown name '{node.id}' (allowed: {allowed})")
        used.add(node.id)
        return
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS or node.keywords:
            shown = name or ast.unparse(node.func)
            suggestion = did_you_mean(shown, FUNCTIONS) or \
                " (math functions such as sin, cos, sqrt, abs, floor, min, max, where)"
            raise ValueError(f"'{shown}(…)' is not an allowed function{suggestion}")
        arity = FUNCTIONS[name][1]
        if len(node.args) != arity:
            raise ValueError(f"{name}() takes {arity} argument{'s' * (arity != 1)}, "
                             f"got {len(node.args)}")
        return
    if isinstance(node, ast.Name) or type(node) in _OPERATORS or isinstance(node, _STRUCTURE):
        return
    raise ValueError(f"{type(node).__name__} is not allowed in a schedule expression")


def _fold_constants(node: ast.expr, evaluator: SimpleEval, text: str) -> None:
    """Evaluate every sub-expression without variables once, so `9**9**9` fails here."""
    for sub in _constant_subtrees(node):
        try:
            evaluator.eval("", previously_parsed=sub)
        except (ArithmeticError, ValueError, TypeError) as error:
            shown = ast.get_source_segment(text, sub) or ast.unparse(sub)
            raise ValueError(f"'{shown}': {_reason(error)}") from None


def _constant_subtrees(node: ast.expr) -> Iterator[ast.expr]:
    """The largest sub-expressions that use no variable (bottom-up would repeat work)."""
    variables = (n for n in ast.walk(node) if isinstance(n, ast.Name) and n.id not in CONSTANTS
                 and n.id not in FUNCTIONS)
    if not any(True for _ in variables):
        if not isinstance(node, ast.Constant):
            yield node
        return
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.expr):
            yield from _constant_subtrees(child)


# --------------------------------------------------------------------------- schedules


@dataclass(frozen=True)
class Key:
    """One `frame: (value)` pair: a number, or an expression evaluated per frame."""

    frame: int
    number: float | None
    expression: Expression | None
    offset: int  # where the pair starts in the schedule text


@dataclass(frozen=True)
class Schedule:
    field: str
    keys: tuple[Key, ...]

    def ignored(self, frames: int) -> list[int]:
        """Key frames outside 0 … frames-1 (sorted)."""
        return sorted(k.frame for k in self.keys if not 0 <= k.frame < frames)

    def cost(self, frames: int) -> int:
        """Parts evaluated by `values(frames)`: expression size × frames it runs for."""
        starts = sorted({k.frame: k for k in self.keys if 0 <= k.frame < frames}.items())
        total = 0
        for index, (start, key) in enumerate(starts):
            if key.expression is not None:
                stop = starts[index + 1][0] if index + 1 < len(starts) else frames
                span = stop - start if "t" in key.expression.names else 1
                total += key.expression.size * span
        return total

    def values(self, frames: int, seed: float = 0.0) -> np.ndarray:
        """(frames,) float64: the value at every frame (ScheduleError if one fails)."""
        active: dict[int, Key] = {}
        for key in self.keys:  # a later duplicate key wins, as in Deforum's dict
            if 0 <= key.frame < frames:
                active[key.frame] = key
        if not active and self.keys:  # every key is past the end: hold the first one
            first = min(self.keys, key=lambda k: k.frame)
            active = {0: Key(0, first.number, first.expression, first.offset)}
        series = np.full(frames, np.nan)
        ordered = sorted(active)
        for index, start in enumerate(ordered):
            key = active[start]
            if key.expression is None:
                series[start] = key.number
                continue
            stop = ordered[index + 1] if index + 1 < len(ordered) else frames
            series[start:stop] = self._run(key, start, stop, frames, seed)
        known = np.flatnonzero(~np.isnan(series))
        if known.size == 0:
            return np.zeros(frames)
        return np.interp(np.arange(frames), known, series[known])

    def _run(self, key: Key, start: int, stop: int, frames: int, seed: float) -> np.ndarray:
        expression = key.expression
        assert expression is not None
        out = np.empty(stop - start)
        base = {"max_f": float(frames - 1), "s": float(seed)}
        if "t" not in expression.names:  # constant over its segment: evaluate once
            out[:] = self._one(key, start, base)
            return out
        for i, frame in enumerate(range(start, stop)):
            out[i] = self._one(key, frame, base)
        return out

    def _one(self, key: Key, frame: int, base: dict[str, float]) -> float:
        assert key.expression is not None
        try:
            return key.expression.evaluate(t=float(frame), **base)
        except ValueError as error:
            raise ScheduleError(
                self.field, f"'{key.expression.text}' fails at frame {frame}: {error}",
                key.offset,
            ) from None


def check_budget(schedules: list[Schedule], frames: int) -> None:
    """Refuse (before anything runs) schedules whose expressions would take too long."""
    costs = {s.field: s.cost(frames) for s in schedules}
    if sum(costs.values()) > EVALUATION_BUDGET:
        worst = max(costs, key=lambda name: costs[name])
        raise ScheduleError(
            worst, f"its expressions would be evaluated {costs[worst]:,} parts over {frames} "
            f"frames (all fields: {sum(costs.values()):,}; at most {EVALUATION_BUDGET:,})",
            hint="simplify the expression or shorten the animation")


def parse_schedule(text: object, field_name: str, *, max_frames: int, seed: float = 0.0) -> Schedule:
    """Read a schedule string (a bare number is accepted as a constant schedule).

    Raises ScheduleError naming the field and the character position for malformed
    pairs, bad keys and refused expressions; nothing is evaluated before all pairs parse.
    """
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ScheduleError(field_name, f"expected a schedule such as '0: (1.0)', found "
                            f"{type(text).__name__}")
    if isinstance(text, (int, float)):
        return Schedule(field_name, (Key(0, float(text), None, 0),))
    if len(text) > MAX_SCHEDULE_CHARS:
        raise ScheduleError(field_name, f"the schedule is {len(text)} characters long "
                            f"(at most {MAX_SCHEDULE_CHARS})")
    keys: list[Key] = []
    for offset, piece in _pieces(text):
        keys.append(_pair(piece, offset, field_name, max_frames, seed))
        if len(keys) > MAX_KEYS:
            raise ScheduleError(field_name, f"more than {MAX_KEYS} keys")
    return Schedule(field_name, tuple(keys))


def _pieces(text: str) -> Iterator[tuple[int, str]]:
    offset = 0
    for piece in text.split(","):
        if piece.strip():
            yield offset + len(piece) - len(piece.lstrip()), piece.strip()
        offset += len(piece) + 1


_EXAMPLE_HINT = "write each key as 'frame: (value)', e.g. '0: (0), 30: (1.5*sin(t/10))'"


def _pair(piece: str, offset: int, field_name: str, max_frames: int, seed: float) -> Key:
    parts = piece.split(":")
    if len(parts) != 2:
        shown = piece if len(piece) <= 60 else piece[:57] + "..."
        if len(parts) == 1:
            raise ScheduleError(field_name, f"malformed pair '{shown}': a key without a value",
                                offset, hint=_EXAMPLE_HINT + "; a comma cannot appear inside a value")
        second = offset + len(parts[0]) + 1 + len(parts[1])
        raise ScheduleError(
            field_name, f"malformed pair '{shown}': a second ':' after key {parts[0].strip()}",
            second, hint="sd-webui-deforum reads this pair as the value "
            f"'{parts[1].strip()}' and drops the rest; write one 'frame: (value)' per key, "
            f"e.g. '{parts[0].strip()}: {_abridged(':'.join(parts[2:]).strip())}'")
    key_text, value_text = parts[0].strip(), parts[1].strip()
    frame = _key_frame(key_text, field_name, offset, max_frames, seed)
    value_offset = offset + len(parts[0]) + 1 + (len(parts[1]) - len(parts[1].lstrip()))
    bare = value_text.replace("'", "").replace('"', "").replace("(", "").replace(")", "")
    number = _number(bare)
    if number is not None:
        return Key(frame, number, None, offset)
    if not bare.strip():
        raise ScheduleError(field_name, "a key without a value", value_offset, hint=_EXAMPLE_HINT)
    try:
        expression = compile_expression(value_text, FRAME_NAMES)
    except ValueError as error:
        raise ScheduleError(field_name, f"refused expression: {error}", value_offset) from None
    return Key(frame, None, expression, offset)


def _abridged(value: str) -> str:
    return value if len(value) <= 40 else "(…)"


def _key_frame(text: str, field_name: str, offset: int, max_frames: int, seed: float) -> int:
    cleaned = text.strip().strip("'\"").strip()
    number = _number(cleaned)
    if number is not None:
        return int(number)
    try:
        expression = compile_expression(cleaned, KEY_NAMES)
        return int(expression.evaluate(max_f=float(max_frames - 1), s=float(seed)))
    except ValueError as error:
        raise ScheduleError(field_name, f"bad key '{text}': {error}", offset,
                            hint="a key is a frame number or an expression of max_f and s") from None


def _number(text: str) -> float | None:
    """A plain decimal number (also 1e-3 and 1.), not 'nan'/'inf' words."""
    if not text or text.lstrip("+-")[:1].isalpha():
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None

"""Safe arithmetic on ``x`` for NNTool-style input normalisation (``-N "x: x/128-1"``).

A normalisation expression comes from the user's command line or a saved state file, so it is
never handed to the Python interpreter. :func:`compile_expression` parses it with
:func:`ast.parse` and walks a whitelist once: numbers, the name ``x``, the constants ``pi`` and
``e``, unary ``+``/``-``, the binary operators ``+ - * / ** // %`` and a few elementwise numpy
functions. Everything else (attribute access, subscripts, other names, strings, lambdas inside
the body, comprehensions, keyword arguments, ...) is rejected with one
:class:`~nnshell.errors.ExpressionError` that names what was found. The accepted tree is turned
into a tree of small closures, so evaluating it many times costs no further parsing.

A list (or tuple) of numbers, ``[0.485, 0.456, 0.406]``, is one value per channel: it broadcasts
over the image's channel axis (``x: (x/255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]``,
the torchvision normalisation). Its entries are constant arithmetic (no ``x``), every list in an
expression has the same length (at most :data:`MAX_CHANNELS`), and the caller says which axis
is the channel axis.

Accepted spellings: ``"x: x/128-1"``, ``"x:x/255"``, ``"lambda x: x/128 - 1"`` and the bare body
``"x/128 - 1"``.

Arithmetic is done in float64 and the result is cast to float32. ``round`` rounds half up
(``floor(v + 0.5)``), which is what a microcontroller pre-processing loop usually does, not
Python's or numpy's round-half-to-even.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable

import numpy as np

from nnshell.errors import ExpressionError

#: Deepest accepted syntax tree (counted over all AST nodes, operators included).
MAX_DEPTH = 50
#: Largest accepted ``|exponent|`` of ``**``; the exponent must not depend on ``x``.
MAX_EXPONENT = 64
#: Most entries of a per-channel list.
MAX_CHANNELS = 64
#: Longest accepted expression text; anything longer is not a normalisation formula.
MAX_LENGTH = 2000

_HINT = 'use e.g. "x: x/128-1"'

_Fn = Callable[[np.ndarray], np.ndarray]

_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}


def _round_half_up(v: np.ndarray) -> np.ndarray:
    return np.floor(v + 0.5)


#: name -> (number of arguments, numpy implementation)
_FUNCTIONS: dict[str, tuple[int, Callable[..., np.ndarray]]] = {
    "abs": (1, np.abs),
    "sqrt": (1, np.sqrt),
    "exp": (1, np.exp),
    "log": (1, np.log),
    "floor": (1, np.floor),
    "ceil": (1, np.ceil),
    "round": (1, _round_half_up),
    "minimum": (2, np.minimum),
    "maximum": (2, np.maximum),
    "clip": (3, lambda v, lo, hi: np.minimum(np.maximum(v, lo), hi)),
}

_BINOPS: dict[type[ast.operator], Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.Pow: np.power,
    ast.FloorDiv: np.floor_divide,
    ast.Mod: np.mod,
}

_OP_SYMBOLS: dict[type[ast.AST], str] = {
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.Invert: "~",
    ast.Not: "not",
}

#: Friendly names of the node kinds a user is most likely to try.
_NODE_NAMES: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "a subscript",
    ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.IfExp: "a conditional expression",
    ast.Compare: "a comparison",
    ast.BoolOp: "a boolean operator",
    ast.List: "a list",
    ast.Tuple: "a tuple",
    ast.Dict: "a dict",
    ast.Set: "a set",
    ast.NamedExpr: "an assignment expression",
    ast.JoinedStr: "an f-string",
    ast.Starred: "star arguments",
    ast.Slice: "a slice",
    ast.Await: "await",
}

_PREFIX = re.compile(r"\s*x\s*:(?!=)", re.ASCII)


class _Reject(Exception):
    """Internal: the tree holds something outside the whitelist; the text says what."""


class NormFunc:
    """A compiled normalisation expression: ``f(x) -> float32 array`` of the same shape as ``x``.

    Build it with :func:`compile_expression`; ``text`` is the expression as the user wrote it
    (kept so it can be shown and saved).
    """

    __slots__ = ("text", "_fn", "_uses_x", "channels")

    def __init__(self, text: str, fn: _Fn, uses_x: bool, channels: int = 0) -> None:
        self.text = text
        self._fn = fn
        self._uses_x = uses_x
        #: Length of the per-channel lists in the expression (0: none, purely elementwise).
        self.channels = channels

    def __call__(self, x: np.ndarray, channel_axis: int | None = None) -> np.ndarray:
        """Apply the expression elementwise to ``x`` (per-channel lists along ``channel_axis``).

        Raises :class:`ExpressionError` when the result is not finite (``log(0)``, ``x/0``, ...),
        because infinities would silently poison calibration statistics, and when the lists do
        not match the channel axis.
        """
        arr = np.asarray(x, dtype=np.float64)
        if self.channels:
            axis = -1 if channel_axis is None else channel_axis
            if arr.ndim == 0 or arr.shape[axis] != self.channels:
                raise ExpressionError(
                    f"input_norm_func: '{self.text}' has lists of {self.channels} values but the "
                    f"input has shape {arr.shape}",
                    hint="one value per channel",
                )
            arr = np.moveaxis(arr, axis, -1)  # the lists broadcast over the last axis
        with np.errstate(all="ignore"):
            out = self._fn(arr)
        out = np.broadcast_to(out, arr.shape) if not self._uses_x else np.asarray(out)
        if out.shape != arr.shape:
            out = np.broadcast_to(out, arr.shape)
        if self.channels:
            out = np.moveaxis(out, -1, -1 if channel_axis is None else channel_axis)
        result = out.astype(np.float32)
        if not np.all(np.isfinite(result)):
            raise ExpressionError(
                f"input_norm_func: '{self.text}' gives inf or nan on this input",
                hint="check for division by zero, log/sqrt of values <= 0 or overflow",
            )
        return result

    def __repr__(self) -> str:
        return f"NormFunc({self.text!r})"


def _fail(text: str, found: str) -> ExpressionError:
    if len(text) > 60:
        text = text[:57] + "..."
    return ExpressionError(f"input_norm_func: '{text}' is not arithmetic on x: {found}", hint=_HINT)


def _describe(node: ast.AST) -> str:
    """Say in a few words what ``node`` is, for the rejection message."""
    if type(node) in _NODE_NAMES:
        return _NODE_NAMES[type(node)]
    if type(node) in _OP_SYMBOLS:
        return f"operator '{_OP_SYMBOLS[type(node)]}'"
    return f"unsupported syntax ({type(node).__name__})"


def _split_body(text: str) -> str:
    """Return the body of ``x: ...`` / ``lambda x: ...`` / a bare expression, as source text."""
    m = _PREFIX.match(text)
    if m:
        return text[m.end() :]
    return text


def _parse(text: str) -> ast.expr:
    """Parse ``text`` into the body expression, handling the three accepted spellings."""
    if len(text) > MAX_LENGTH:
        raise _fail(text, f"longer than {MAX_LENGTH} characters")
    body = _split_body(text)
    if not body.strip():
        raise _fail(text, "the expression is empty")
    try:
        tree = ast.parse(body.strip(), mode="eval")
    except SyntaxError as exc:
        raise _fail(text, f"syntax error ({exc.msg})") from None
    except (ValueError, RecursionError, MemoryError):
        raise _fail(text, "it cannot be parsed (too deep or invalid characters)") from None
    node = tree.body
    if isinstance(node, ast.Lambda) and body is text:
        args = node.args
        if (
            args.posonlyargs
            or args.kwonlyargs
            or args.vararg
            or args.kwarg
            or args.defaults
            or len(args.args) != 1
            or args.args[0].arg != "x"
        ):
            raise _fail(text, "the lambda must take exactly one argument named x")
        node = node.body
    return node


def _check_depth(text: str, root: ast.AST) -> None:
    """Reject trees deeper than :data:`MAX_DEPTH` without recursing (deep input is hostile)."""
    stack: list[tuple[ast.AST, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _fail(text, f"nesting deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _uses_x(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "x" for n in ast.walk(node))


class _Builder:
    """Turn a depth-checked body into a closure tree, rejecting anything off the whitelist."""

    def __init__(self) -> None:
        #: Length of the per-channel lists met so far (0: none yet).
        self.channels = 0

    def build(self, node: ast.AST) -> _Fn:
        if isinstance(node, (ast.List, ast.Tuple)):
            return self._vector(node)
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node)
        if isinstance(node, ast.BinOp):
            return self._binary(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        raise _Reject(_describe(node))

    def _constant(self, node: ast.Constant) -> _Fn:
        value = node.value
        if isinstance(value, (str, bytes)):
            raise _Reject("a string constant")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Reject(f"the constant {value!r}")
        try:
            number = float(value)
        except OverflowError:
            raise _Reject("a numeric constant too large for float") from None
        if not math.isfinite(number):
            raise _Reject("a non-finite numeric constant")
        const = np.float64(number)
        return lambda _x: const

    def _vector(self, node: ast.List | ast.Tuple) -> _Fn:
        """A per-channel list: constant entries, one length per expression."""
        n = len(node.elts)
        if not 1 <= n <= MAX_CHANNELS:
            raise _Reject(f"a list of {n} values (1 to {MAX_CHANNELS} channels)")
        if self.channels and n != self.channels:
            raise _Reject(f"lists of {self.channels} and {n} values")
        values = []
        for elt in node.elts:
            if isinstance(elt, (ast.List, ast.Tuple)):
                raise _Reject("a nested list")
            if _uses_x(elt):
                raise _Reject(f"x inside {_describe(node)} (per-channel entries are constants)")
            fn = self.build(elt)
            with np.errstate(all="ignore"):
                v = float(np.asarray(fn(np.zeros(1))).reshape(-1)[0])
            if not math.isfinite(v):
                raise _Reject("a non-finite list entry")
            values.append(v)
        self.channels = n
        vec = np.array(values, dtype=np.float64)
        vec.setflags(write=False)
        return lambda _x: vec

    def _name(self, node: ast.Name) -> _Fn:
        if node.id == "x":
            return lambda x: x
        if node.id in _CONSTANTS:
            const = np.float64(_CONSTANTS[node.id])
            return lambda _x: const
        raise _Reject(f"unknown name '{node.id}'")

    def _unary(self, node: ast.UnaryOp) -> _Fn:
        operand = self.build(node.operand)
        if isinstance(node.op, ast.USub):
            return lambda x: np.negative(operand(x))
        if isinstance(node.op, ast.UAdd):
            return operand
        raise _Reject(_describe(node.op))

    def _binary(self, node: ast.BinOp) -> _Fn:
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise _Reject(_describe(node.op))
        left = self.build(node.left)
        right = self.build(node.right)
        if isinstance(node.op, ast.Pow):
            self._check_exponent(node.right, right)
        return lambda x: op(left(x), right(x))

    def _check_exponent(self, node: ast.AST, right: _Fn) -> None:
        if _uses_x(node):
            raise _Reject("an exponent that depends on x")
        with np.errstate(all="ignore"):
            exponent = np.asarray(right(np.zeros(1)))
        if exponent.size != 1:
            raise _Reject("a per-channel exponent")
        value = float(exponent.reshape(-1)[0])
        if not math.isfinite(value) or abs(value) > MAX_EXPONENT:
            raise _Reject(f"an exponent of magnitude above {MAX_EXPONENT} ({value:g})")

    def _call(self, node: ast.Call) -> _Fn:
        if isinstance(node.func, ast.Attribute):
            raise _Reject("attribute access")
        if not isinstance(node.func, ast.Name):
            raise _Reject(f"a call of {_describe(node.func)}")
        name = node.func.id
        if name not in _FUNCTIONS:
            raise _Reject(f"a call of unknown function '{name}'")
        if node.keywords:
            kw = node.keywords[0].arg
            raise _Reject(f"keyword argument '{kw}'" if kw else "keyword arguments (**)")
        nargs, fn = _FUNCTIONS[name]
        if len(node.args) != nargs:
            raise _Reject(f"{name}() takes {nargs} argument(s), got {len(node.args)}")
        args = [self.build(a) for a in node.args]
        if nargs == 1:
            (a,) = args
            return lambda x: fn(a(x))
        return lambda x: fn(*(a(x) for a in args))


def compile_expression(text: str) -> NormFunc:
    """Validate a normalisation expression once and return it as a reusable :class:`NormFunc`.

    Raises :class:`ExpressionError` naming the first construct that is not plain arithmetic on
    ``x`` (or the syntax error, the excessive depth, the too-large exponent).
    """
    if not isinstance(text, str):
        raise ExpressionError(
            f"input_norm_func: expected text, got {type(text).__name__}", hint=_HINT
        )
    shown = text.strip()
    body = _parse(shown)
    _check_depth(shown, body)
    builder = _Builder()
    try:
        fn = builder.build(body)
    except _Reject as exc:
        raise _fail(shown, str(exc)) from None
    except RecursionError:
        raise _fail(shown, f"nesting deeper than {MAX_DEPTH} levels") from None
    return NormFunc(shown, fn, _uses_x(body), builder.channels)

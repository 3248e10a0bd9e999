"""Tests of the safe normalisation-expression compiler (nnshell.input.expr)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnshell.errors import ExpressionError
from nnshell.input.expr import MAX_DEPTH, NormFunc, compile_expression

X = np.array([[0.0, 1.0, 127.0], [128.0, 200.0, 255.0]], dtype=np.float32)


@pytest.mark.parametrize(
    ("text", "reference"),
    [
        ("x: x/128-1", lambda x: x / 128 - 1),
        ("x: (x/255 - 0.5)/0.5", lambda x: (x / 255 - 0.5) / 0.5),
        ("x:x/255", lambda x: x / 255),
        ("lambda x: x/128 - 1", lambda x: x / 128 - 1),
        ("x / 128 - 1", lambda x: x / 128 - 1),
        ("  x :  -x + +2  ", lambda x: -x + 2),
        ("x: x*2**3", lambda x: x * 8),
        ("x: x**0.5", np.sqrt),
        ("x: x // 7 + x % 7", lambda x: np.floor_divide(x, 7) + np.mod(x, 7)),
        ("x: abs(x - 128)", lambda x: np.abs(x - 128)),
        ("x: sqrt(x)", np.sqrt),
        ("x: exp(x/255)", lambda x: np.exp(x / 255)),
        ("x: log(x + 1)", lambda x: np.log(x + 1)),
        ("x: minimum(x, 100)", lambda x: np.minimum(x, 100)),
        ("x: maximum(x, 100)", lambda x: np.maximum(x, 100)),
        ("x: clip(x, 10, 200)", lambda x: np.clip(x, 10, 200)),
        ("x: floor(x / 3)", lambda x: np.floor(x / 3)),
        ("x: ceil(x / 3)", lambda x: np.ceil(x / 3)),
        ("x: x * pi / e", lambda x: x * math.pi / math.e),
        ("x: 2", lambda x: np.full_like(x, 2)),
    ],
)
def test_valid_expressions_match_numpy(text: str, reference: object) -> None:
    f = compile_expression(text)
    assert isinstance(f, NormFunc)
    assert f.text == text.strip()
    out = f(X)
    assert out.dtype == np.float32
    assert out.shape == X.shape
    want = reference(X.astype(np.float64)).astype(np.float32)  # type: ignore[operator]
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)


def test_round_is_half_up() -> None:
    f = compile_expression("x: round(x)")
    out = f(np.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.4], dtype=np.float32))
    np.testing.assert_array_equal(out, [1, 2, 3, 0, -1, 2])


def test_compiled_once_evaluated_many_times() -> None:
    f = compile_expression("x: x/2")
    for k in range(3):
        np.testing.assert_array_equal(f(np.full(4, k * 2.0)), np.full(4, k, np.float32))


def test_non_finite_result_is_an_expression_error() -> None:
    f = compile_expression("x: log(x)")
    with pytest.raises(ExpressionError, match="inf or nan"):
        f(np.array([0.0, 1.0]))


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("__import__('os').system('echo hi')", "attribute access"),
        ("__import__('os')", "unknown function '__import__'"),
        ("x.__class__", "attribute access"),
        ("np.abs(x)", "attribute access"),
        ("[1][0]", "subscript"),
        ("x[0]", "subscript"),
        ("open('f')", "unknown function 'open'"),
        ("(lambda: 1)()", "lambda"),
        ("x: lambda x: x", "lambda"),
        ("lambda y: y / 2", "exactly one argument named x"),
        ("lambda x, y: x", "exactly one argument named x"),
        ("x if x else 1", "conditional expression"),
        ("9**9**9", "exponent of magnitude above 64"),
        ("x ** 65", "exponent of magnitude above 64"),
        ("x ** -100", "exponent of magnitude above 64"),
        ("x ** x", "exponent that depends on x"),
        ("[v for v in x]", "comprehension"),
        ("sum(v for v in x)", "unknown function 'sum'"),
        ("x + 'a'", "string constant"),
        ("x + b'a'", "string constant"),
        ("f'{x}'", "f-string"),
        ("True + x", "the constant True"),
        ("None", "the constant None"),
        ("1j * x", "the constant 1j"),
        ("clip(x, lo=0, hi=1)", "keyword argument 'lo'"),
        ("abs(*x)", "star arguments"),
        ("sqrt(x, 2)", "sqrt() takes 1 argument"),
        ("y + 1", "unknown name 'y'"),
        ("x < 1", "comparison"),
        ("x and 1", "boolean operator"),
        ("x @ x", "operator '@'"),
        ("x << 2", "operator '<<'"),
        ("~x", "operator '~'"),
        ("not x", "operator 'not'"),
        ("(x, 1)", "tuple"),
        ("{1: x}", "dict"),
        ("(y := 3)", "assignment expression"),
        ("x +", "syntax error"),
        ("x: x; 1", "syntax error"),
        ("", "empty"),
        ("x:", "empty"),
        ("1e400 * x", "non-finite"),
        ("-" * (MAX_DEPTH + 10) + "x", f"deeper than {MAX_DEPTH}"),
        ("(" * 300 + "x" + ")" * 300, "syntax error"),
        ("x" + "+x" * 2000, "longer than"),
    ],
)
def test_rejections_name_the_cause(text: str, found: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(text)
    err = info.value
    assert err.message.startswith("input_norm_func: '")
    assert "is not arithmetic on x" in err.message
    assert found in err.message
    assert err.hint is not None and "x: x/128-1" in err.hint
    assert "\n" not in str(err)


def test_rejection_message_quotes_short_expression() -> None:
    with pytest.raises(ExpressionError, match=r"'x\.__class__'"):
        compile_expression("x.__class__")


def test_non_text_is_rejected() -> None:
    with pytest.raises(ExpressionError):
        compile_expression(3)  # type: ignore[arg-type]


def test_no_side_effect_from_rejected_code(tmp_path: object, capfd: pytest.CaptureFixture) -> None:
    with pytest.raises(ExpressionError):
        compile_expression("__import__('os').system('echo hi')")
    assert "hi" not in capfd.readouterr().out


# --- property: random + - * trees agree with numpy or are cleanly rejected ---------------------

_leaf = st.one_of(
    st.just(("x",)),
    st.integers(-1000, 1000).map(lambda v: ("c", float(v))),
    st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32).map(
        lambda v: ("c", float(v))
    ),
)


def _extend(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.tuples(st.sampled_from(["+", "-", "*"]), children, children),
        st.tuples(st.just("neg"), children),
    )


def _chain(steps: list[tuple[str, tuple]]) -> tuple:
    """A left-nested chain: long enough ones exceed the depth limit."""
    tree: tuple = ("x",)
    for op, leaf in steps:
        tree = ("neg", tree) if op == "neg" else (op, tree, leaf)
    return tree


_chains = st.lists(
    st.tuples(st.sampled_from(["+", "-", "*", "neg"]), _leaf), min_size=20, max_size=70
).map(_chain)
_trees = st.one_of(st.recursive(_leaf, _extend, max_leaves=80), _chains)


def _render(t: tuple) -> str:
    if t[0] == "x":
        return "x"
    if t[0] == "c":
        return f"({t[1]!r})"
    if t[0] == "neg":
        return f"(-{_render(t[1])})"
    return f"({_render(t[1])} {t[0]} {_render(t[2])})"


def _reference(t: tuple, x: np.ndarray) -> np.ndarray:
    if t[0] == "x":
        return x
    if t[0] == "c":
        return np.float64(t[1])
    if t[0] == "neg":
        return np.negative(_reference(t[1], x))
    a, b = _reference(t[1], x), _reference(t[2], x)
    return {"+": np.add, "-": np.subtract, "*": np.multiply}[t[0]](a, b)


@settings(max_examples=200, deadline=None)
@given(tree=_trees, prefix=st.sampled_from(["", "x: ", "lambda x: "]))
def test_random_arithmetic_matches_numpy_or_is_rejected(tree: tuple, prefix: str) -> None:
    text = prefix + _render(tree)
    x = np.linspace(-3.0, 3.0, 7)
    try:
        f = compile_expression(text)
        out = f(x)
    except ExpressionError:
        return  # too deep, or overflowed to inf: a clean rejection is fine
    with np.errstate(all="ignore"):
        want = np.broadcast_to(_reference(tree, x), x.shape).astype(np.float32)
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=0)

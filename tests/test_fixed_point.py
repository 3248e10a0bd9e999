"""The SQ8 integer arithmetic of ``nnshell.quant.fixed_point``, checked against docs/SQ8.md.

The worked example of SQ8 §9 and the checks of §4 are reproduced number for number; the
properties pin down the rounding rules (ties, negatives) and the bounds the kernels rely on.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nnshell.errors import ModelFileError, NnshellError, QuantizationError
from nnshell.quant.fixed_point import (
    QType,
    c_div_trunc,
    check_int32,
    clip8,
    clip_range,
    exact_float_dtype,
    header_qscale_qnorm,
    int_matmul_exact,
    multiplier,
    multiplier_headroom,
    multipliers,
    qtype_from_range,
    quantize_bias,
    requant_scale,
    requantize,
    rnorm,
    round_half_up,
    weight_qtype_per_channel,
    wide_multiplier,
    zero_point_offset,
)

# --------------------------------------------------------------------------------------------
# §1 primitives
# --------------------------------------------------------------------------------------------


def test_round_half_up_ties_and_types() -> None:
    assert [round_half_up(v) for v in (0.5, -0.5, 1.5, 2.5, -2.5, -1.4999)] == [1, 0, 2, 3, -2, -1]
    assert isinstance(round_half_up(np.float32(2.5)), int)
    arr = round_half_up(np.array([0.5, -0.5, 2.5, -2.5], dtype=np.float32))
    assert arr.dtype == np.int64
    assert arr.tolist() == [1, 0, 3, -2]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), [1.0, float("nan")], [1e300]])
def test_round_half_up_refuses_non_finite(bad: object) -> None:
    with pytest.raises(ValueError):
        round_half_up(bad)


@given(st.integers(-(2**40), 2**40))
def test_round_half_up_ties_go_up_unlike_np_round(k: int) -> None:
    x = k + 0.5
    assert round_half_up(x) == k + 1
    assert round_half_up(np.array([x]))[0] == k + 1
    # np.round rounds ties to even: it disagrees exactly on the even k.
    assert (int(np.round(x)) != k + 1) == (k % 2 == 0)


@given(st.floats(-1e12, 1e12, allow_nan=False))
def test_round_half_up_is_nearest_integer(x: float) -> None:
    r = round_half_up(x)
    assert r == math.floor(x + 0.5)
    assert abs(Fraction(r) - Fraction(x)) <= Fraction(1, 2)


def test_rnorm_examples() -> None:
    assert rnorm(5, 1) == 3  # 2.5 -> 3
    assert rnorm(-5, 1) == -2  # -2.5 -> -2 (half towards +inf)
    assert rnorm(-6, 2) == -1  # -1.5 -> -1
    assert rnorm(-7, 2) == -2  # -1.75 -> -2
    assert rnorm(12345, 0) == 12345
    assert rnorm(np.array([-5, 5]), 0).tolist() == [-5, 5]
    # one shift per channel, broadcast
    out = rnorm(np.array([[10, 10, 10], [-10, -10, -10]]), np.array([0, 1, 2]))
    assert out.tolist() == [[10, 5, 3], [-10, -5, -2]]
    assert out.dtype == np.int64


def test_rnorm_refuses_negative_shift_and_floats() -> None:
    with pytest.raises(ValueError):
        rnorm(10, -1)
    with pytest.raises(ValueError):
        rnorm(np.array([10, 10]), np.array([1, -1]))
    with pytest.raises(TypeError):
        rnorm(np.array([1.5]), 1)
    with pytest.raises(TypeError):
        rnorm(1.5, 1)


@given(st.integers(-(2**40), 2**40), st.integers(0, 20))
def test_rnorm_is_floor_of_half_up_division(v: int, n: int) -> None:
    expected = v if n == 0 else math.floor(Fraction(v + 2 ** (n - 1), 2**n))
    assert rnorm(v, n) == expected
    assert rnorm(np.array([v], dtype=np.int64), np.array([n]))[0] == expected
    if n > 0:  # = round_half_up of the exact quotient
        assert expected == math.floor(Fraction(v, 2**n) + Fraction(1, 2))


def test_clip() -> None:
    assert clip8(300) == 127
    assert clip8(-300) == -128
    assert clip8(np.array([-129, -128, 0, 127, 128])).tolist() == [-128, -128, 0, 127, 127]
    assert clip8(np.array([1], dtype=np.int8)).dtype == np.int64
    assert clip_range(np.array([-200, 5, 200]), -127, 127).tolist() == [-127, 5, 127]
    assert clip_range(-5, 0, 3) == 0
    with pytest.raises(TypeError):
        clip8(np.array([1.5]))


def test_c_div_trunc_examples() -> None:
    assert c_div_trunc(-7, 2) == -3
    assert c_div_trunc(7, -2) == -3
    assert c_div_trunc(-7, -2) == 3
    assert c_div_trunc(np.array([-7, 7, -8]), 2).tolist() == [-3, 3, -4]
    with pytest.raises(ZeroDivisionError):
        c_div_trunc(1, 0)


@given(st.integers(-(2**40), 2**40), st.integers(-(2**20), 2**20).filter(bool))
def test_c_div_trunc_truncates_toward_zero(a: int, b: int) -> None:
    expected = math.trunc(Fraction(a, b))
    assert c_div_trunc(a, b) == expected
    assert c_div_trunc(np.array([a]), np.array([b]))[0] == expected


def test_check_int32() -> None:
    check_int32(np.array([-(2**31), 2**31 - 1]), "bias", "conv1")
    with pytest.raises(QuantizationError, match="conv9"):
        check_int32(np.array([2**31]), "bias", "conv9")


# --------------------------------------------------------------------------------------------
# §2 activation qtypes
# --------------------------------------------------------------------------------------------


def test_qtype_degenerate_and_forced_ranges() -> None:
    assert qtype_from_range(0, 0, True).scale == 1 / 127  # [-1, 1]
    assert qtype_from_range(3, 3, True).scale == max(3 / 127, 3 / 128)  # [-3, 3]
    assert qtype_from_range(-2, -2, True).scale == max(2 / 127, 2 / 128)
    assert qtype_from_range(1, 2, True).scale == 2 / 127  # forced to [0, 2]
    assert qtype_from_range(-4, -1, True).scale == 4 / 128  # forced to [-4, 0]
    asym = qtype_from_range(-3, 0, False)  # hi == 0: every code below the zero point
    assert (asym.zero_point, asym.scale) == (127, 3 / 255)
    with pytest.raises(QuantizationError):
        qtype_from_range(2, 1, True)
    with pytest.raises(QuantizationError):
        qtype_from_range(float("nan"), 1, False)
    with pytest.raises(QuantizationError, match="conv5"):  # 5e-324/255 underflows to 0
        qtype_from_range(5e-324, 5e-324, False, name="conv5")


def test_qtype_symmetric_scale() -> None:
    q = qtype_from_range(-1, 0.9921875, True)
    assert q.scale == 2**-7 and q.zero_point == 0 and q.symmetric
    assert qtype_from_range(-1, 2, True).scale == 2 / 127
    assert qtype_from_range(-2, 1, True).scale == 2 / 128


def test_qtype_asymmetric_zero_point() -> None:
    q = qtype_from_range(-1.0, 2.3, False)
    s = 3.3 / 255
    assert q.scale == s
    assert q.zero_point == round_half_up(-128 + 1.0 / s) == -51
    assert not q.symmetric


def test_qtype_validation() -> None:
    with pytest.raises(ValueError):
        QType(scale=0.1, zero_point=3, symmetric=True)
    with pytest.raises(ValueError):
        QType(scale=0.0)
    with pytest.raises(ValueError):
        QType(scale=0.1, zero_point=-200, symmetric=False)


@given(st.floats(1e-6, 1e6))
def test_relu_range_uses_all_codes(hi: float) -> None:
    q = qtype_from_range(0.0, hi, False)
    assert q.zero_point == -128
    assert q.scale == hi / 255


ranges = st.tuples(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4)).map(sorted)


@given(ranges, st.booleans())
def test_qtype_from_range_properties(r: list[float], symmetric: bool) -> None:
    lo, hi = r
    assume(hi - lo > 1e-3 or lo == hi)
    assume(lo == hi == 0.0 or max(abs(lo), abs(hi)) > 1e-300)  # a subnormal range has no scale
    q = qtype_from_range(lo, hi, symmetric)
    assert q.scale > 0 and -128 <= q.zero_point <= 127
    # 0.0 is exactly a code: the zero point
    assert q.quantize(np.array([0.0]))[0] == q.zero_point
    lo0, hi0 = min(lo, 0.0), max(hi, 0.0)
    if lo != hi:  # the codes cover the forced range to within one code
        assert (-128 - q.zero_point) * q.scale <= lo0 + q.scale * (1 + 1e-9)
        assert (127 - q.zero_point) * q.scale >= hi0 - q.scale * (1 + 1e-9)


@given(ranges, st.booleans(), st.booleans())
def test_quantize_dequantize_round_trip(r: list[float], symmetric: bool, narrow: bool) -> None:
    lo, hi = r
    assume(hi - lo > 1e-3)
    base = qtype_from_range(lo, hi, symmetric)
    narrow = narrow and symmetric  # narrow (-127..127) is a symmetric weight format
    q = QType(base.scale, base.zero_point, symmetric=symmetric, narrow=narrow)
    codes = np.arange(q.qmin, q.qmax + 1, dtype=np.int8)
    back = q.quantize(q.dequantize(codes))
    assert back.dtype == np.int8
    assert np.array_equal(back, codes)


def test_quantize_saturates_and_rounds_half_up() -> None:
    q = QType(scale=0.5, zero_point=-128, symmetric=False)
    x = np.array([-1000.0, -64.25, -63.75, 0.0, 0.25, 1000.0])
    # x/S = -2000, -128.5, -127.5, 0, 0.5, 2000 (+Z = -128)
    assert q.quantize(x).tolist() == [-128, -128, -128, -128, -127, 127]
    assert q.dequantize(np.array([-128, 127], dtype=np.int8)).tolist() == [0.0, 127.5]


def test_qtype_json_round_trip_is_exact() -> None:
    qs = [
        QType(scale=0.1 + 0.2, zero_point=-128, symmetric=False),
        QType(scale=5.3 / 127, forced_by="conv2 (padding)"),
        QType(
            scale=np.array([0.42 / 127, 1.0, 1 / 3]), narrow=True, symmetric=True, forced_by=None
        ),
    ]
    for q in qs:
        back = QType.from_dict(json.loads(json.dumps(q.to_dict())))
        assert back == q and hash(back) == hash(q)
        assert np.array_equal(np.asarray(back.scale), np.asarray(q.scale))
        assert back.per_channel == q.per_channel
    assert qs[0] != qs[1]
    with pytest.raises(ModelFileError):
        QType.from_dict({"scale": 0.1})


def test_qtype_is_frozen_and_owns_its_scales() -> None:
    s = np.array([0.5, 0.25])
    q = QType(scale=s, narrow=True)
    s[0] = 9.0
    assert q.scale[0] == 0.5
    with pytest.raises(ValueError):
        q.scale[0] = 1.0  # read-only
    with pytest.raises(AttributeError):
        q.zero_point = 3  # type: ignore[misc]
    w = np.array([[1.0, -0.5], [0.25, 0.3]])
    assert q.quantize(w, axis=0).tolist() == [[2, -1], [1, 1]]
    assert q.quantize(w.T, axis=1).tolist() == [[2, 1], [-1, 1]]


# --------------------------------------------------------------------------------------------
# §3 weights and bias
# --------------------------------------------------------------------------------------------


def test_weight_qtype_per_channel() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 2, 5, 5))
    w[1] = 0.0
    w[2, 0, 0, 0] = -10.0  # the extreme of channel 2 maps to -127 (narrow)
    sw, wq = weight_qtype_per_channel(w)
    assert wq.dtype == np.int8 and wq.shape == w.shape
    assert sw.shape == (3,) and sw[1] == 1.0
    assert sw[0] == np.abs(w[0]).max() / 127 and sw[2] == 10 / 127
    assert not wq[1].any()
    assert wq[2, 0, 0, 0] == -127 and wq.min() >= -127
    assert np.abs(wq[0]).max() == 127
    expected = np.clip(np.floor(w / sw[:, None, None, None] + 0.5), -127, 127)
    assert np.array_equal(wq, expected)


def test_weight_qtype_per_tensor_and_axis() -> None:
    w = np.array([[0.5, -0.25], [0.1, 0.2], [0.0, 0.0]])
    sw, wq = weight_qtype_per_channel(w, per_tensor=True)
    assert sw.tolist() == [0.5 / 127] * 3
    assert wq[0].tolist() == [127, -63]  # -63.5 rounds half up
    sw_t, wq_t = weight_qtype_per_channel(w.T, axis=1)
    sw_c, wq_c = weight_qtype_per_channel(w, axis=0)
    assert np.array_equal(sw_t, sw_c) and np.array_equal(wq_t, wq_c.T)
    with pytest.raises(QuantizationError, match="fc1"):
        weight_qtype_per_channel(np.array([[np.nan]]), layer="fc1")


def test_quantize_bias() -> None:
    bq = quantize_bias(np.array([0.12, -0.12, 0.0]), 2**-7, np.array([0.42 / 127] * 3), "c1")
    assert bq.dtype == np.int32 and bq.tolist() == [4645, -4645, 0]
    with pytest.raises(QuantizationError, match="conv7"):
        quantize_bias(np.array([1e6]), 1e-6, np.array([1e-6]), "conv7")
    with pytest.raises(QuantizationError, match="conv8"):
        quantize_bias(np.array([1e300]), 1e-300, np.array([1e-300]), "conv8")
    # the last value that rounds into int32 is accepted, the next is not
    assert quantize_bias(np.array([2**31 - 1.0]), 1.0, np.array([1.0]), "x")[0] == 2**31 - 1
    with pytest.raises(QuantizationError):
        quantize_bias(np.array([2**31 - 0.5]), 1.0, np.array([1.0]), "x")


# --------------------------------------------------------------------------------------------
# §4 multipliers
# --------------------------------------------------------------------------------------------


def test_multiplier_sq8_checks() -> None:
    assert multiplier(0.75, 1) == (3, 2)
    assert multiplier(4, 1) == (4, 0)
    assert multiplier(0.0006191, 75) == (81, 17)
    assert multiplier(0.0, 75) == (0, 0)


def test_multiplier_headroom() -> None:
    assert multiplier_headroom(1) == (14, 8)
    assert multiplier_headroom(75) == (21, 8)
    assert multiplier_headroom(512) == (23, 8)
    assert multiplier_headroom(513) == (24, 7)
    assert multiplier_headroom(2**17) == (31, 0)
    assert multiplier_headroom(2**17 + 1) == (32, 0)  # clamped (SQ8 leaves b < 0 undefined)
    with pytest.raises(ValueError):
        multiplier_headroom(0)


def test_multiplier_errors_name_the_layer() -> None:
    for m in (256.0, 1000.0, 255.6):  # 255.6 would need M = 256 with N = 0
        with pytest.raises(QuantizationError, match="conv3"):
            multiplier(m, 9, "conv3")
    assert multiplier(255.4, 9) == (255, 0)
    with pytest.raises(QuantizationError):
        multiplier(float("nan"), 9, "conv3")
    with pytest.raises(NnshellError, match="conv4"):
        multipliers(np.array([0.5, 300.0]), 9, "conv4")


def test_multipliers_match_scalar() -> None:
    ms = np.array([0.75, 4.0, 0.0006191, 0.0, 0.00124308, 1e-9])
    mm, nn = multipliers(ms, 75)
    assert mm.dtype == np.uint8 and mm.shape == ms.shape
    assert list(zip(mm.tolist(), nn.tolist(), strict=True)) == [multiplier(m, 75) for m in ms]


def _budget_bits(k: int) -> int:
    """SQ8 §4 from first principles, without the code under test: ``K`` products of int8 x int8
    have magnitude at most ``K·2^14``; the accumulator needs the smallest ``a`` with
    ``K·2^14 <= 2^a``, and ``acc·M`` must stay within 31 bits, so ``M`` gets ``31 - a`` bits,
    at most 8 and (K > 2^17) at least 0."""
    a = 0
    while k * 128 * 128 > 2**a:
        a += 1
    return max(0, min(8, 31 - a))


def _exponent(m: Fraction) -> int:
    """``e`` with ``2^(e-1) <= m < 2^e``, by exact comparisons."""
    e = m.numerator.bit_length() - m.denominator.bit_length()
    while Fraction(2) ** e <= m:
        e += 1
    while Fraction(2) ** (e - 1) > m:
        e -= 1
    return e


def _b_eff(m: float, k: int) -> int:
    """The bits that decide M·2^-N: the headroom budget, less what N <= 24 costs."""
    return max(0, min(_budget_bits(k), 24 + _exponent(Fraction(m))))


def test_budget_oracle_on_hand_values() -> None:
    # K = 75: 75·2^14 <= 2^21, so 10 bits remain: 8; K = 513: 2^24, 7 bits; 2^17: 2^31, 0
    assert [_budget_bits(k) for k in (1, 75, 512, 513, 2**17, 2**17 + 1)] == [8, 8, 8, 7, 0, 0]
    assert [_exponent(Fraction(x)) for x in (0.75, 1.0, 2**-40, 255.0)] == [0, 1, -39, 8]


small_m = st.floats(2.0**-40, 1.0, exclude_max=True)
reductions = st.integers(1, 2**17)


@settings(max_examples=300)
@given(small_m, reductions)
def test_multiplier_relative_error_bound(m: float, k: int) -> None:
    """Proved bound: |M·2^-N - m| / m <= 2^-b_eff with b_eff = max(0, min(b, 24 + e)).

    Why: stepping b down while M is even never changes M·2^-N (if round(f·2^b) = 2j then
    round(f·2^(b-1)) = j), and M = 256 is even; only the N > 24 steps lose bits. So the value is
    round_half_up(f·2^b_eff)·2^(e-b_eff), whose error is at most 1/2 on a mantissa
    f·2^b_eff >= 2^(b_eff-1). For the usual b = 8 and N <= 24 that is 2^-8.
    """
    mm, nn = multiplier(m, k)
    exact, e = Fraction(m), _exponent(Fraction(m))
    b = _b_eff(m, k)
    value = Fraction(mm, 2**nn)
    grid = Fraction(2) ** (e - b)  # round half up of m on the grid of b significant bits
    assert value == math.floor(exact / grid + Fraction(1, 2)) * grid
    assert abs(value - exact) / exact <= Fraction(1, 2**b)
    assert 1 <= mm <= 255 and mm % 2 == 1 or nn == 0


@settings(max_examples=300)
@given(st.floats(1.0, 255.49), st.integers(1, 512))
def test_multiplier_large_m_with_full_budget(m: float, k: int) -> None:
    mm, nn = multiplier(m, k)
    b = _b_eff(m, k)
    assert 1 <= mm <= 255 and nn >= 0
    assert abs(Fraction(mm, 2**nn) - Fraction(m)) / Fraction(m) <= Fraction(1, 2**b)


@settings(max_examples=300)
@given(st.floats(2.0**-30, 200.0), st.integers(9, 30))
def test_wide_multiplier_precision_and_int64_product(m: float, bits: int) -> None:
    """open -q's multipliers: M < 2^bits, odd (or N == 0), relative error <= 2^-bits (checked in
    exact rationals), and the C product (acc + bias)·M of two int32 fits int64."""
    mm, nn = wide_multiplier(m, bits)
    assert 1 <= mm < 2**bits and 0 <= nn <= 62 and (mm % 2 == 1 or nn == 0)
    assert abs(Fraction(mm, 2**nn) - Fraction(m)) / Fraction(m) <= Fraction(1, 2**bits)
    assert (2**32) * mm < 2**63
    arr, shifts = multipliers(np.array([m, m / 3]), 100, "x", bits)
    assert arr.dtype == np.int32 and (int(arr[0]), int(shifts[0])) == (mm, nn)


@settings(max_examples=300)
@given(small_m, reductions)
def test_acc_times_m_stays_in_31_bits(m: float, k: int) -> None:
    acc_bits, b = multiplier_headroom(k)
    # the rule's assumption: K products of int8 x int8 are at most K·2^14 <= 2^acc_bits
    assert k * 128 * 128 <= 2**acc_bits
    mm, nn = multiplier(m, k)
    assert mm <= 2**b
    worst = 2**acc_bits - 1
    for acc in (worst, -worst):
        prod = int(requantize(np.array([acc]), np.array([mm]), np.array([nn]))[0])
        assert abs(acc * mm) <= 2**31 - 1
        assert prod == rnorm(acc * mm, nn)


# --------------------------------------------------------------------------------------------
# zero points, requantization, header constants
# --------------------------------------------------------------------------------------------


def test_zero_point_offset_undoes_the_input_zero_point() -> None:
    rng = np.random.default_rng(1)
    wq = rng.integers(-127, 128, size=(4, 3, 3, 3), dtype=np.int8)
    xq = rng.integers(-128, 128, size=27, dtype=np.int8)
    zi = -128
    sw = np.array([0.01, 0.02, 0.03, 1.0])
    off = zero_point_offset(wq, zi, 0, 0.1, 0.5, sw)  # Zo = 0: only the input term
    w2 = wq.reshape(4, -1).astype(np.int64)
    assert np.array_equal(w2 @ xq.astype(np.int64) + off, w2 @ (xq.astype(np.int64) - zi))
    off2 = zero_point_offset(wq, zi, -128, 0.1, 0.5, sw)
    assert np.array_equal(off2 - off, round_half_up(-128 * 0.1 / (0.5 * sw)))


def test_requantize_per_channel_axis() -> None:
    rng = np.random.default_rng(2)
    acc = rng.integers(-(2**20), 2**20, size=(2, 3, 4, 4))
    mm, nn = multipliers(np.array([0.001, 0.02, 0.3]), 75)
    out = requantize(acc, mm, nn, channel_axis=1)
    for c in range(3):
        expected = [rnorm(int(v) * int(mm[c]), int(nn[c])) for v in acc[:, c].ravel()]
        assert out[:, c].ravel().tolist() == expected
    nhwc = requantize(np.moveaxis(acc, 1, -1), mm, nn, channel_axis=-1)
    assert np.array_equal(np.moveaxis(nhwc, -1, 1), out)
    assert requantize(acc, 81, 17).tolist() == rnorm(acc * 81, 17).tolist()


def test_header_qscale_qnorm() -> None:
    assert header_qscale_qnorm(5.3 / 127) == (85, 11)
    assert header_qscale_qnorm(0.999) == (64, 6)  # mantissa rounds to 128: renormalised
    assert header_qscale_qnorm(1.0) == (64, 6)
    assert header_qscale_qnorm(2**-7) == (64, 13)
    with pytest.raises(ValueError):
        header_qscale_qnorm(0.0)


@given(st.floats(1e-12, 1e12))
def test_header_qscale_bound(s: float) -> None:
    qs, qn = header_qscale_qnorm(s)
    assert 64 <= qs <= 127
    assert abs(Fraction(qs) / Fraction(2) ** qn - Fraction(s)) / Fraction(s) <= Fraction(1, 128)


# --------------------------------------------------------------------------------------------
# §9 worked example
# --------------------------------------------------------------------------------------------


def test_sq8_worked_example() -> None:
    k = 75
    # Input normalised x/128 - 1: range [-1, 0.9921875] -> Si = 2^-7
    qi = qtype_from_range(-1.0, 0.9921875, True)
    si = qi.scale
    assert si == 2**-7 and qi.zero_point == 0
    # Channel 0 weights in [-0.42, 0.37] -> Sw = 0.42/127
    w = np.linspace(-0.42, 0.37, k).reshape(1, 3, 5, 5)
    sw, _ = weight_qtype_per_channel(w)
    assert sw[0] == 0.42 / 127 and round(float(sw[0]), 8) == 0.00330709
    # Symmetric ReLU output, max 5.3 -> So = 5.3/127
    qo = qtype_from_range(0.0, 5.3, True)
    so = qo.scale
    assert so == 5.3 / 127 and round(so, 7) == 0.0417323
    bq = quantize_bias(np.array([0.12]), si, sw, "conv1")
    assert bq.tolist() == [4645]
    m = requant_scale(si, sw, so)
    assert round(float(m[0]), 8) == 0.00061910
    mm, nn = multipliers(m, k, "conv1")
    assert (int(mm[0]), int(nn[0])) == (81, 17)
    acc = 50328 + int(bq[0])
    assert acc == 54973
    y = requantize(np.array([[acc]]), mm, nn)
    assert int(clip8(y)[0, 0]) == 34
    assert round(34 * so, 4) == 1.4189
    assert header_qscale_qnorm(so) == (85, 11)

    # The same pixel with the default asymmetric ReLU output
    qa = qtype_from_range(0.0, 5.3, False)
    assert qa.scale == 5.3 / 255 and round(qa.scale, 7) == 0.0207843
    assert qa.zero_point == -128
    ma = requant_scale(si, sw, qa.scale)
    assert round(float(ma[0]), 8) == 0.00124308
    mma, nna = multipliers(ma, k, "conv1")
    assert (int(mma[0]), int(nna[0])) == (163, 17)
    wq0 = np.zeros((1, k), dtype=np.int8)  # Zi = 0: the weights do not enter the offset
    off = zero_point_offset(wq0, qi.zero_point, qa.zero_point, qa.scale, si, sw)
    assert off.tolist() == [-102970]
    acc_a = 50328 + int(bq[0]) + int(off[0])
    assert acc_a == -47997
    ya = int(clip8(requantize(np.array([[acc_a]]), mma, nna))[0, 0])
    assert ya == -60 == rnorm(-47997 * 163, 17)
    assert round((ya - qa.zero_point) * qa.scale, 4) == 1.4133


def test_integer_linear_layer_tracks_float() -> None:
    """All the pieces together (asymmetric in and out): the integer layer equals, to within the
    multiplier's rounding, the float layer evaluated on the dequantized operands — which catches
    any sign or scale slip in the bias and zero point offsets."""
    rng = np.random.default_rng(3)
    k, c = 64, 8
    x = rng.uniform(0.0, 2.0, size=(16, k))
    w = rng.normal(scale=0.2, size=(c, k))
    b = rng.normal(scale=0.1, size=c)
    y = np.maximum(x @ w.T + b, 0.0)
    qi = qtype_from_range(0.0, float(x.max()), False)
    qo = qtype_from_range(0.0, float(y.max()), False)
    sw, wq = weight_qtype_per_channel(w)
    bq = quantize_bias(b, qi.scale, sw, "fc").astype(np.int64)
    off = zero_point_offset(wq, qi.zero_point, qo.zero_point, qo.scale, qi.scale, sw)
    mm, nn = multipliers(requant_scale(qi.scale, sw, qo.scale), k, "fc")
    xq = qi.quantize(x)
    acc = int_matmul_exact(xq, wq.T) + bq + off
    yq = np.maximum(clip8(requantize(acc, mm, nn)), qo.zero_point)
    y_deq = np.maximum(qi.dequantize(xq) @ (wq * sw[:, None]).T + bq * qi.scale * sw, 0.0)
    assert np.abs(yq - qo.quantize(y_deq).astype(np.int64)).max() <= 1
    assert np.abs(yq - qo.quantize(y).astype(np.int64)).max() <= 6  # plus quantization noise


# --------------------------------------------------------------------------------------------
# exact integer matmul through float BLAS
# --------------------------------------------------------------------------------------------


def test_exact_float_dtype_limits() -> None:
    assert exact_float_dtype(1024, 128, 128) is np.float32  # K·2^14 = 2^24 exactly
    assert exact_float_dtype(1025, 128, 128) is np.float64
    assert exact_float_dtype(2**39, 128, 128) is np.float64
    assert exact_float_dtype(2**39 + 1, 128, 128) is None


@pytest.mark.parametrize("k", [1, 7, 1000, 1023, 1024, 1025, 1032, 1100, 4096])
def test_int_matmul_exact_extremes(k: int) -> None:
    rng = np.random.default_rng(k)
    a = rng.choice(np.array([-128, 127], dtype=np.int8), size=(9, k))
    b = rng.choice(np.array([-128, 127], dtype=np.int8), size=(k, 5))
    a[0] = -128  # row 0 x column 0: every product is +2^14, the largest possible sum
    b[:, 0] = -128
    a[1] = 127  # row 1 x column 0: the most negative sum
    got = int_matmul_exact(a, b)
    assert got.dtype == np.int64
    assert np.array_equal(got, a.astype(np.int64) @ b.astype(np.int64))
    assert got[0, 0] == k * 2**14 and got[1, 0] == -k * 127 * 128


def test_float32_would_not_be_exact_past_the_limit() -> None:
    k = 1025  # sum = 1024·2^14 + 1 = 2^24 + 1: not a float32
    a = np.full((1, k), -128, dtype=np.int8)
    a[0, -1] = 1
    b = a.T.copy()
    naive = (a.astype(np.float32) @ b.astype(np.float32)).astype(np.int64)
    assert naive[0, 0] != 2**24 + 1
    assert int_matmul_exact(a, b)[0, 0] == 2**24 + 1


def test_int_matmul_exact_batched_and_wide_types() -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, size=(2, 6, 300), dtype=np.int8)
    b = rng.integers(-128, 128, size=(300, 4), dtype=np.int8)
    assert np.array_equal(int_matmul_exact(a, b), a.astype(np.int64) @ b.astype(np.int64))
    # zero-point-shifted inputs (int16, up to 255) and an int64 fallback for huge values
    a16 = (a.astype(np.int16) + 128)[0]
    assert np.array_equal(int_matmul_exact(a16, b), a16.astype(np.int64) @ b.astype(np.int64))
    big = np.array([[2**30 + 1, 1]], dtype=np.int64)  # (2^30+1)^2 + 1 is not a float64
    assert exact_float_dtype(2, 2**30 + 1, 2**30 + 1) is None
    assert int_matmul_exact(big, big.T)[0, 0] == (2**30 + 1) ** 2 + 1
    with pytest.raises(TypeError):
        int_matmul_exact(np.ones((2, 2)), np.ones((2, 2), dtype=np.int8))


@settings(max_examples=50)
@given(st.integers(1, 2100), st.integers(0, 2**32 - 1))
def test_int_matmul_exact_random(k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vals = np.array([-128, -127, -1, 0, 1, 126, 127], dtype=np.int8)
    a = rng.choice(vals, size=(3, k))
    b = rng.choice(vals, size=(k, 2))
    assert np.array_equal(int_matmul_exact(a, b), a.astype(np.int64) @ b.astype(np.int64))


@given(
    st.lists(st.integers(-(1 << 20), 1 << 20), min_size=1, max_size=40),
    st.integers(-(1 << 20), 1 << 20),
    st.integers(0, 255),
    st.integers(0, 24),
)
def test_requantize_clip8_equals_reference(accs: list[int], bias: int, m: int, n: int) -> None:
    from nnshell.quant.fixed_point import requantize_clip8

    a = np.array(accs, np.int64).reshape(1, -1, 1)
    got = requantize_clip8(
        a, np.array([bias] * a.shape[1]), np.array([m] * a.shape[1]), np.array([n] * a.shape[1])
    )
    want = clip8(requantize(a + bias, m, n)).astype(np.int8)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, want)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.floats(-1e4, 1e4, allow_nan=False, width=32) | st.sampled_from([0.0, 0.5, -0.5, 1.5]),
        min_size=1,
        max_size=48,
    ),
    st.sampled_from([1, 2, 3, 4]),
    st.booleans(),
    st.sampled_from(["float32", "float64"]),
)
def test_weight_quantization_is_the_sq8_formula(
    values: list[float], channels: int, per_tensor: bool, dtype: str
) -> None:
    """The in-place implementation gives exactly ``Sw = max|W[c]|/127`` (1 when 0) and
    ``clip(round_half_up(W/Sw), -127, 127)`` computed literally in float64 (SQ8 §3)."""
    from nnshell.quant.fixed_point import clip_range, round_half_up, weight_qtype_per_channel

    n = len(values) // channels * channels
    assume(n > 0)
    w = np.asarray(values[:n], dtype).reshape(channels, -1)
    sw, wq = weight_qtype_per_channel(w, per_tensor=per_tensor)
    wf = w.astype(np.float64)
    amax = np.abs(wf).max(axis=1)
    if per_tensor:
        amax = np.full(channels, np.abs(wf).max())
    want_sw = np.where(amax > 0, amax / 127, 1.0)
    want_q = clip_range(round_half_up(wf / want_sw[:, None]), -127, 127).astype(np.int8)
    assert np.array_equal(sw, want_sw) and np.array_equal(wq, want_q) and wq.dtype == np.int8

/*
 * nn_pow2.h - the POW2 (power-of-two Qm.n) integer kernels of nnshell's portable C target
 * (C99, no malloc, no floating point). Every kernel is a literal transcription of
 * docs/POW2.md and of nnshell's Python POW2 executor (the run_int_pow2 methods of the op classes
 * in nnshell/ops, arithmetic in nnshell/ops/_pow2.py), which it matches
 * bit for bit. A code is a signed integer of `esize` bytes (2: POW2-16, 1: POW2-8) with q
 * fractional bits, real = code * 2^-q. There are no multipliers, only shifts:
 *
 *   shift_round(v, n) = (v + (1 << (n - 1))) >> n   for n > 0 (arithmetic shift),
 *                       v                           for n == 0,
 *                       v * 2^-n                    for n < 0 (exact left shift),
 *   clip(v)           = saturation to the esize container,
 *
 * with int64 accumulators. Tensors are CHW contiguous (batch 1). The pool descriptor, the step
 * callback and the data movers (copy, transpose) come from nn_kernels.h. This file is copied
 * verbatim by `gen --target c` for POW2 graphs.
 *
 * Names and argument order follow the rule written at the top of nn_kernels.h.
 */
#ifndef NN_POW2_H
#define NN_POW2_H

#include <stddef.h>
#include <stdint.h>

#include "nn_kernels.h"

/* An activation on codes at one Q: NN_ACT_CLAMP keeps [lo, hi] (ReLU: lo = 0, ReLU6 / Clip:
 * the bounds as codes), NN_ACT_LEAKY maps y < 0 to shift_round(y * alpha, 15) (alpha: the
 * slope in Q15). Each result is saturated to the container before the next one runs. */
typedef struct {
    int kind;
    int32_t lo;
    int32_t hi;
    int32_t alpha;
    int32_t beta;
} nn_p2_act_t;

/* activations: function activations from codes at Q lo (the head's intermediate Q) to codes
 * at Q hi, integer only (the exp of nn_p2_exp_neg_q15):
 *   NN_ACT_SIGMOID  sigmoid in Q15, then to Q hi;  NN_ACT_TANH  the same for tanh;
 *   NN_ACT_HSIGMOID t = clip(shift_round(x * alpha, lo) + beta, 0, 2^15) (alpha, beta Q15);
 *   NN_ACT_HSWISH   shift_round(x * clip(x + 3, 0, 6) * 5461, 2 lo + 15 - hi);
 *   NN_ACT_SWISH    shift_round(x * sigmoid_q15(x), lo + 15 - hi). */
enum {
    NN_ACT_SIGMOID = 4,
    NN_ACT_TANH = 5,
    NN_ACT_HSIGMOID = 6,
    NN_ACT_HSWISH = 7,
    NN_ACT_SWISH = 8
};

/* A (grouped, depthwise) POW2 convolution; out_h x out_w is the convolution's own output,
 * before any fused pool. Weights (out_c, in_c/group, kh, kw) and biases (out_c) are codes of
 * esize bytes, like the activations:
 *   acc = sum w * shift_round(x, in_shift) + b * 2^bias_shift,
 *   out = clip(shift_round(acc, out_shift)). */
typedef struct {
    int in_c, in_h, in_w;
    int out_c, out_h, out_w;
    int kh, kw, sh, sw, dh, dw, pt, pl;
    int group;
    int esize;
    int in_shift, bias_shift, out_shift;
    const void *weights;
    const void *bias;
} nn_p2_conv_t;

/* Convolution + optional pool (at the output Q) + activations before (pre) and after (post)
 * the pool. */
void nn_p2_conv(const void *in, void *out, const nn_p2_conv_t *cv, const nn_pool_t *pool,
                const nn_p2_act_t *pre, int npre, const nn_p2_act_t *post, int npost);
/* Transposed convolution (no fused pool or activation): the arithmetic of nn_p2_conv over the
 * taps with i * s + k * d == o + p (pt / pl: the crop begins); weights out_c, in_c/group, kh,
 * kw (output channel first). */
void nn_p2_conv_transpose(const void *in, void *out, const nn_p2_conv_t *cv);
/* Fully connected layer over the flattened input, the arithmetic of nn_p2_conv. */
void nn_p2_linear(const void *in, void *out, int in_n, int out_n, int esize, const void *weights,
                  const void *bias, int in_shift, int bias_shift, int out_shift);
/* Max / average pool (average: shift_round(sum * floor(65536 / count), 16)), then
 * clip(shift_round(v, out_shift)). */
void nn_p2_pool(const void *in, void *out, int c, int h, int w, int esize, const nn_pool_t *pool,
                int out_shift);
/* Global max: clip(shift_round(max, out_shift)). */
void nn_p2_global_max(const void *in, void *out, int c, int hw, int esize, int out_shift);
/* Global average: t = trunc((sum << 7) / hw), clip(shift_round(t, out_shift)). */
void nn_p2_global_avg(const void *in, void *out, int c, int hw, int esize, int out_shift);
/* Add: clip(shift_round(sum_i x_i * 2^in_shift[i], out_shift)) over n values. */
void nn_p2_add(const void *const *ins, int nin, void *out, const int8_t *in_shift, int out_shift,
               size_t n, int esize);
/* The activations in order (each saturated before the next), then
 * clip(shift_round(v, out_shift)); in may equal out. */
void nn_p2_act(const void *in, void *out, size_t n, int esize, const nn_p2_act_t *acts, int nacts,
               int out_shift);
/* Sigmoid / tanh of codes at q_in (in_esize bytes) to codes at q_out (out_esize bytes), with
 * the integer exp of nn_p2_exp_neg_q15. */
void nn_p2_sigmoid(const void *in, void *out, size_t n, int in_esize, int out_esize, int q_in,
                   int q_out);
void nn_p2_tanh(const void *in, void *out, size_t n, int in_esize, int out_esize, int q_in,
                int q_out);
/* Softmax along an axis of length len (outer x len x inner values) to Q15 int16:
 * e_j = E(max - x_j), y_j = min(32767, (e_j << 15) / sum e). */
void nn_p2_softmax(const void *in, int16_t *out, int outer, int len, int inner, int esize,
                   int q_in);
/* Concatenation: for each of `outer` rows, input i contributes block[i] codes, each
 * clip(shift_round(x, shift[i])). */
void nn_p2_concat(const void *const *ins, int nin, void *out, const int32_t *block,
                  const int8_t *shift, int outer, int esize);
/* round(2^15 * e^(-d * 2^-q)) for d >= 0 with integers only (Q30 table of 2^(-i/256),
 * linear interpolation): the exp of the sigmoid, tanh and softmax kernels. */
int64_t nn_p2_exp_neg_q15(int64_t d, int q);

/* ==== issue 17 (branch elt): broadcasting elementwise, channel affine =========================
 * Binary of two broadcast inputs (bc[12] as in nn_kernels.h), op 0 add, 1 sub, 2 mul:
 *   acc = op(a << sa, b << sb); out = clip(shift_round(acc, out_shift)) */
void nn_p2_ew(const void *a, const void *b, void *out, const int32_t *bc, int op, int sa,
              int sb, int out_shift, int esize);
/* Per-channel affine (a depthwise 1x1 conv): c channels of `inner` codes,
 *   out = clip(shift_round(shift_round(x, in_shift) * w[c] + (b[c] << bias_shift), out_shift)) */
void nn_p2_affine(const void *in, void *out, int c, int inner, const void *w, const void *b,
                  int in_shift, int bias_shift, int out_shift, int esize);
/* ==== end of issue 17 (branch elt) ============================================================ */

#endif /* NN_POW2_H */

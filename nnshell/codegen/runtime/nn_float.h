/*
 * nn_float.h - float layers of nnshell's portable C runtime (gen --target c after
 * `qtune * float bfloat16`). Written for nnshell; see docs/FLOAT16.md for the contract:
 * tensors are stored as bfloat16 / float16 words (or float32), every layer computes in IEEE
 * float32 in a fixed order, and its output is rounded once to nearest, ties to even, when
 * stored. The executor of nnshell follows the same order, so the two agree exactly.
 *
 * Names and argument order follow the rule written at the top of nn_kernels.h.
 */
#ifndef NN_FLOAT_H
#define NN_FLOAT_H

#include <float.h>
#include "nn_kernels.h"

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "nn_float.c needs FLT_EVAL_METHOD 0 (float arithmetic in float, e.g. SSE2 or a float FPU)"
#endif

/* storage types of a float tensor */
#define NN_BF16 1
#define NN_F16 2
#define NN_F32 3

/* activations after a float layer: none, max(x, 0), clip to [lo, hi] */
#define NN_FACT_NONE 0
#define NN_FACT_RELU 1
#define NN_FACT_CLIP 2

typedef struct {
    int kind;
    int32_t lo_bits; /* float32 bit patterns of the clip bounds */
    int32_t hi_bits;
} nn_f_act_t;

typedef struct {
    int c, h, w;         /* input map */
    int oh, ow;          /* output map */
    int kh, kw, sh, sw, dh, dw, pt, pl;
} nn_f_pool_t;

typedef struct {
    int cin, h, w;       /* input map */
    int cout, oh, ow;    /* convolution output (before any pool) */
    int kh, kw, sh, sw, dh, dw, pt, pl;
    int group;
    int t;               /* storage type of input, weights, bias and output */
} nn_f_conv_t;

float nn_f_load(const void *p, int i, int t);
void nn_f_store(void *p, int i, int t, float v);
uint16_t nn_f32_to_bf16(float v);
uint16_t nn_f32_to_f16(float v);
float nn_bf16_to_f32(uint16_t h);
float nn_f16_to_f32(uint16_t h);

/* conv (2-D; a 1-D conv is 1 x L) then an optional max pool then an optional activation */
void nn_f_conv(const void *in, void *out, const nn_f_conv_t *p, const nn_f_pool_t *pool,
               const nn_f_act_t *act, const void *w, const void *b);
/* y[o] = b[o] + sum_k W[o][k] x[k], then an optional activation */
void nn_f_linear(const void *in, void *out, int nin, int nout, int t, const void *w, const void *b,
                 const nn_f_act_t *act);
/* a max pool alone, then an optional activation */
void nn_f_maxpool(const void *in, void *out, const nn_f_pool_t *pool, int t, const nn_f_act_t *act);
/* an activation alone over n values */
void nn_f_act(const void *in, void *out, int n, int t, const nn_f_act_t *act);
/* y = a + b over n values (same shapes), then an optional activation */
void nn_f_add(const void *a, const void *b, void *out, int n, int t, const nn_f_act_t *act);
/* per channel: acc += x over the hw positions in order, then acc / hw */
void nn_f_avgpool_global(const void *in, void *out, int c, int hw, int t);
/* exp(v) for v <= 0 from float32 multiplies and adds only (bit-reproducible; 0 below -87) */
float nn_f_exp(float v);
/* softmax of each of `rows` runs of n values: e = exp(x - max), s = sum e in order, e / s */
void nn_f_softmax(const void *in, void *out, int rows, int n, int t);
/* copy n stored values (a reshape) */
void nn_f_copy(const void *in, void *out, int n, int t);

/* conversion layers of mixed graphs (nnshell/ops/convert.py): integer codes of esize bytes
 * (1: int8, 2: int16) <-> stored floats; scale_bits / inv_scale_bits are float32 bit patterns */
void nn_f_dequantize(const void *in, void *out, int n, int esize, int zero_point,
                     int32_t scale_bits, int t);
void nn_f_quantize(const void *in, void *out, int n, int t, int32_t inv_scale_bits, int zero_point,
                   int qmin, int qmax, int esize);

#endif /* NN_FLOAT_H */

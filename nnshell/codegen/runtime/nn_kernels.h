/*
 * nn_kernels.h - the SQ8 integer kernels of nnshell's portable C target (C99, no malloc,
 * no floating point). Every kernel is a literal transcription of the arithmetic of
 * docs/SQ8.md and of nnshell's Python integer executor, which it matches bit for bit:
 *
 *   rnorm(v, n) = (v + (1 << (n - 1))) >> n   (n > 0; arithmetic shift), v when n == 0
 *   clip8(v)    = min(127, max(-128, v))
 *   requantize  = clip8(rnorm((acc + bias) * M, N)), the product in int64
 *                 (M: 8 bits in SQ8, up to 30 bits for a TFLite file opened with -q)
 *
 * Tensors are CHW contiguous (batch 1). This file is copied verbatim by `gen --target c`.
 *
 * Naming and argument order, the same in nn_kernels.h (SQ8), nn_pow2.h (POW2) and nn_float.h
 * (float layers):
 *   - a kernel is nn_<op> for SQ8, nn_p2_<op> for POW2, nn_f_<op> for a float layer;
 *   - the struct a kernel takes is the kernel's name with _t (nn_conv / nn_conv_t,
 *     nn_p2_conv / nn_p2_conv_t, nn_f_conv / nn_f_conv_t; a transposed convolution takes
 *     its convolution's struct: nn_conv_transpose an nn_conv_t, nn_p2_conv_transpose an
 *     nn_p2_conv_t); a struct shared by several kernels is named after what it holds (nn_pool_t,
 *     nn_act_t, nn_rescale_t);
 *   - arguments: the input(s) first (a list of inputs as ins, nin), then the output, then the
 *     geometry (a struct or the sizes), then constants and the remaining parameters.
 */
#ifndef NN_KERNELS_H
#define NN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Widest row the convolution keeps on the stack (4 bytes per column, 2 buffers plus one of
 * int8); wider maps fall back to one pixel at a time. */
#ifndef NN_MAX_ROW
#define NN_MAX_ROW 256
#endif
/* The tiled convolution (nn_kernels.c) keeps NN_COL_BUF int16 input codes (default 16384) and
 * twice as many int16 weights, and NN_POOL_BUF bytes (16384) of conv rows plus 16 x NN_MAX_ROW
 * int32 before a fused pool, in static buffers (.bss: 96 KiB + 32 KiB at the defaults, not on
 * the stack; the runtime is not reentrant). For a small RAM build with e.g. -DNN_COL_BUF=2048
 * -DNN_POOL_BUF=2048 (layers whose weight row does not fit fall back to the row kernels, same
 * results), or -DNN_COL_BUF=1 to build without it (the row kernels do all convolutions). */

/* Called after every step by the generated <graph>_run() when not NULL (test harnesses). */
typedef void (*nn_step_fn)(int step, const void *data, size_t nbytes, void *user);

/* An activation applied to int8 codes: a clamp to [lo, hi] (ReLU, ReLU6, Clip), the
 * LeakyReLU y < 0 ? rnorm(y * alpha, 7) : y, or (activations: function activations) a
 * 256-entry table table[y + 128] from the head's intermediate codes to the output codes
 * (Sigmoid, Tanh, HardSigmoid, HardSwish, Swish; table is NULL for the other kinds). */
enum { NN_ACT_CLAMP = 1, NN_ACT_LEAKY = 2, NN_ACT_TABLE = 3 };
typedef struct {
    int kind;
    int lo;
    int hi;
    int alpha;
    const int8_t *table;
} nn_act_t;

/* A pooling window over a C x H x W int8 map. Positions are o * s - p + k * d; positions
 * outside the map never win a max; an average divides by the number of positions inside
 * [cnt_h0, cnt_h1) x [cnt_w0, cnt_w1) (count_include_pad widens them) and adds pad (the input
 * zero point, the code of real 0) for each of them outside the map. */
enum { NN_POOL_MAX = 1, NN_POOL_AVG = 2 };
typedef struct {
    int kind;
    int kh, kw, sh, sw, dh, dw, pt, pl;
    int oh, ow;
    int cnt_h0, cnt_h1, cnt_w0, cnt_w1;
    int pad;
} nn_pool_t;

/* A (grouped, depthwise when group == in_c == out_c) convolution; out_h x out_w is the
 * convolution's own output, before any fused pool. Weights are out_c, in_c/group, kh, kw.
 * Positions in the padding read the code pad: the input zero point (the code of real 0), so
 * the zero-point offset folded into bias is exact at the borders too. */
typedef struct {
    int in_c, in_h, in_w;
    int out_c, out_h, out_w;
    int kh, kw, sh, sw, dh, dw, pt, pl;
    int group;
    const int8_t *weights;
    const int32_t *bias;
    const int32_t *mul;
    const int8_t *shift;
    int pad;
} nn_conv_t;

/* A (grouped) transposed convolution takes an nn_conv_t too: out[co, o] sums
 * w[co, c, k] * in[g * cg + c, i] over the taps with i * s + k * d == o + p (p: the crop begin,
 * pt / pl), then requantizes like nn_conv. Weights are out_c, in_c/group, kh, kw (output
 * channel first, as nn_conv). */

/* Requantization of one Concat input (on == 0: copied unchanged). */
typedef struct {
    int on;
    int zin, mul, shift, zout;
} nn_rescale_t;

/* One pooling window, shared by the SQ8 and POW2 pools: read(src, c, y, x) gives a value at a
 * position inside the map. Max: *value is the largest value read and *count how many were read
 * (0: none, *value untouched). Average: *count is the number of positions inside [cnt_h0,
 * cnt_h1) x [cnt_w0, cnt_w1) and *value the sum of their values, p->pad for those outside the
 * map. */
typedef int64_t (*nn_pool_read_fn)(const void *src, int c, int y, int x);
void nn_pool_window(const void *src, nn_pool_read_fn read, int h, int w, const nn_pool_t *p,
                    int c, int oy, int ox, int64_t *value, int32_t *count);

/* Convolution + optional pool + activations before (pre) and after (post) the pool. */
void nn_conv(const int8_t *in, int8_t *out, const nn_conv_t *cv, const nn_pool_t *pool,
             const nn_act_t *pre, int npre, const nn_act_t *post, int npost);
/* Fully connected layer over the flattened input: out[o] = requant(sum_k W[o,k] x[k]). */
void nn_linear(const int8_t *in, int8_t *out, int in_n, int out_n, const int8_t *weights,
               const int32_t *bias, const int32_t *mul, const int8_t *shift);
/* Max / average pool of a C x H x W map. */
void nn_pool(const int8_t *in, int8_t *out, int c, int h, int w, const nn_pool_t *pool);
void nn_global_max(const int8_t *in, int8_t *out, int c, int hw);
/* t = trunc(((sum - zin * hw) << 7) / hw) (zin: the input zero point); out = clip8(rnorm(t * M,
 * N)). */
void nn_global_avg(const int8_t *in, int8_t *out, int c, int hw, int zin, int mul, int shift);
/* In place: x = clip8(rnorm((x - zin) * M, N) + zout). */
void nn_rescale(int8_t *x, size_t n, int zin, int mul, int shift, int zout);
/* out = min(max(in, lo), hi). */
void nn_clamp(const int8_t *in, int8_t *out, size_t n, int lo, int hi);
/* In place: the activations of a fused layer, in order. */
void nn_act_inplace(int8_t *x, size_t n, const nn_act_t *acts, int nacts);
/* out = table[in + 128]. */
void nn_table(const int8_t *in, int8_t *out, size_t n, const int8_t *table);
/* Per-channel affine: out = requant(x * W[c] + bias[c]) over c x inner values. */
void nn_affine(const int8_t *in, int8_t *out, int c, int inner, const int8_t *weights,
               const int32_t *bias, const int32_t *mul, const int8_t *shift);
/* MatAdd: acc = x_ref + sum_{i != ref} rnorm(x_i * M_i, N_i); out = clip8(rnorm(acc * Mo, No)). */
void nn_matadd(const int8_t *const *ins, int nin, int8_t *out, int ref, const uint8_t *mul,
               const int8_t *shift, int out_mul, int out_shift, size_t n);
/* Q15 softmax along an axis of length len (outer x len x inner values), exp table E[0..255]. */
void nn_softmax(const int8_t *in, int16_t *out, int outer, int len, int inner,
                const int32_t *table);
/* Concatenation: for each of `outer` rows, input i contributes block[i] elements of esize
 * bytes, rescaled when rs[i].on (int8 only). */
void nn_concat(const void *const *ins, int nin, void *out, const int32_t *block,
               const nn_rescale_t *rs, int outer, size_t esize);
/* Axis permutation of a tensor padded to 5-D (shape of the input, out axis a = in axis perm[a]). */
void nn_transpose(const void *in, void *out, const int32_t *shape, const int32_t *perm,
                  size_t esize);
/* Tile of a tensor padded to 5-D (shape of the input): out has shape[a] * reps[a] values on
 * axis a, out[i] = in[i mod shape] per axis. */
void nn_tile(const void *in, void *out, const int32_t *shape, const int32_t *reps, size_t esize);
/* Pad (or crop) a tensor of rank <= 5 (shapes padded to 5-D): maps holds, axis after axis, one
 * source index per output index (out_shape[0] + ... + out_shape[4] values, -1 outside the
 * input); an output element with any -1 is the code value, the others copy in[source]. */
void nn_pad(const void *in, void *out, const int32_t *in_shape, const int32_t *out_shape,
            const int32_t *maps, int value, size_t esize);
/* Transposed convolution (no fused pool or activation). */
void nn_conv_transpose(const int8_t *in, int8_t *out, const nn_conv_t *ct);
/* First and one-past-last kernel tap k with 0 <= base + k * d < size (the taps of a window
 * that fall inside a map of `size`; shared by the SQ8 and POW2 convolutions). */
void nn_tap_range(int base, int d, int k, int size, int *lo, int *hi);
/* Byte copy (reshape, flatten, squeeze, identity). */
void nn_copy(const void *in, void *out, size_t nbytes);
/* Input formatter (imageformat): raw H x W x C pixels 0..255 -> C x H x W int8 codes.
 * Raw elements: NN_RAW_U8 one byte per channel, NN_RAW_U16 one 16-bit word per channel,
 * NN_RAW_RGB565 one 16-bit 5-6-5 word per pixel (R = r5 << 3, G = g6 << 2, B = b5 << 3).
 * Codes: NN_NORM_OFFSET q = p - 128, NN_NORM_SHIFT q = p >> 1. */
enum { NN_RAW_U8 = 1, NN_RAW_U16 = 2, NN_RAW_RGB565 = 3 };
enum { NN_NORM_OFFSET = 1, NN_NORM_SHIFT = 2 };
void nn_format(const void *raw, int8_t *out, int h, int w, int c, int layout, int norm);
/* the same pixels -> CHW int16 codes q = p << 7 (NNTool's out_int16; POW2 16-bit inputs) */
void nn_format16(const void *raw, int16_t *out, int h, int w, int c, int layout);

/* ==== issue 17 (branch elt): broadcasting elementwise, Resize ==================================
 * Broadcast geometry bc[12]: bc[0..3] the output dims without the batch axis padded to 4
 * (leading 1s), bc[4..7] and bc[8..11] the element strides of inputs a and b at every output
 * index (0 on a broadcast axis). */
/* Walks the output of a broadcast binary op in order: nn_bc_start sets the 4-D index and both
 * source offsets to 0 and returns the number of outputs; nn_bc_next moves to the next output,
 * carrying like an odometer (the offsets follow incrementally: ka = sum idx[d] * bc[4 + d]). */
typedef struct {
    int32_t idx[4];
    size_t ka, kb;
} nn_bc_walk_t;
size_t nn_bc_start(nn_bc_walk_t *it, const int32_t *bc);
void nn_bc_next(nn_bc_walk_t *it, const int32_t *bc);
/* SQ8 binary of two broadcast int8 inputs, op 0 add, 1 sub, 2 mul:
 *   add/sub: the reference input (ref) unscaled, the other rnorm(x * in_mul, in_shift);
 *            out = clip8(rnorm((a' +/- b') * mul, shift))
 *   mul:     out = clip8(rnorm((a - za) * (b - zb) * mul, shift) + zout) */
void nn_ew_sq8(const int8_t *a, const int8_t *b, int8_t *out, const int32_t *bc, int op,
               int ref, int in_mul, int in_shift, int mul, int shift, int za, int zb,
               int zout);
/* Nearest Resize of c x h x w codes (esize bytes each) to c x oh x ow: out[y][x] = in[iy[y]][ix[x]]. */
void nn_resize_nearest(const void *in, void *out, int c, int h, int w, int oh, int ow,
                       const int32_t *iy, const int32_t *ix, int esize);
/* Bilinear Resize with weights wy, wx in Q(frac) (each axis' two weights sum to 2^frac):
 *   v = rnorm((2^f - wy) * ((2^f - wx) * p00 + wx * p01) + wy * ((2^f - wx) * p10 + wx * p11), 2f) */
void nn_resize_bilinear(const void *in, void *out, int c, int h, int w, int oh, int ow,
                        const int32_t *y0, const int32_t *y1, const int32_t *wy,
                        const int32_t *x0, const int32_t *x1, const int32_t *wx, int frac,
                        int esize);
/* Strided copy (Slice, one output of a Split): g[0..3] output dims without the batch axis
 * (padded with leading 1s), g[4..7] input element strides (times the step), g[8] the offset of
 * the first element: out[i] = in[g[8] + sum_k i_k * g[4 + k]]. */
void nn_slice(const void *in, void *out, const int32_t *g, int esize);
/* ==== end of issue 17 (branch elt) ============================================================ */

#endif /* NN_KERNELS_H */

/*
 * nn_kernels.c - the SQ8 integer kernels of nnshell's portable C target (see nn_kernels.h).
 * Plain C99: int32 accumulators, int64 requantization products, C truncating division.
 * Copied verbatim by `gen --target c`.
 */
#include "nn_kernels.h"

#include <string.h>

static int64_t rnorm64(int64_t v, int n)
{
    return n > 0 ? (v + ((int64_t)1 << (n - 1))) >> n : v;
}

static int8_t clip8(int64_t v)
{
    return (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
}

static int8_t requant(int64_t acc, int32_t bias, int32_t mul, int8_t shift)
{
    return clip8(rnorm64((acc + bias) * (int64_t)mul, shift));
}

/* The activations of a fused layer on one int8 code, in order (as the executor: each result
 * is stored as int8, so an out-of-range LeakyReLU product wraps like numpy's astype). */
static int8_t act_apply(int8_t v, const nn_act_t *acts, int nacts)
{
    int i;
    for (i = 0; i < nacts; i++) {
        const nn_act_t *a = &acts[i];
        if (a->kind == NN_ACT_CLAMP) {
            v = (int8_t)(v < a->lo ? a->lo : (v > a->hi ? a->hi : v));
        } else if (a->kind == NN_ACT_LEAKY && v < 0) {
            v = (int8_t)rnorm64((int64_t)v * a->alpha, 7);
        } else if (a->kind == NN_ACT_TABLE) { /* activations: function activations */
            v = a->table[v + 128];
        }
    }
    return v;
}

void nn_tap_range(int base, int d, int k, int size, int *lo, int *hi)
{
    int a = 0, b = k;
    while (a < k && base + a * d < 0) {
        a++;
    }
    while (b > a && base + (b - 1) * d >= size) {
        b--;
    }
    *lo = a;
    *hi = b;
}

/* acc[ox - x0] += pad * w for every tap of output pixels (co, oy, ox), ox in [x0, x1), that
 * falls in the padding: the padding holds cv->pad, the input zero point (nothing when 0). */
static void conv_pad_taps(const nn_conv_t *cv, int co, int oy, int x0, int x1, int32_t *acc)
{
    const int cg = cv->in_c / cv->group;
    const int iy0 = oy * cv->sh - cv->pt;
    const size_t taps = (size_t)cv->kh * cv->kw;
    const int8_t *w = cv->weights + (size_t)co * cg * taps;
    int ky, kx, ci, ox;
    if (cv->pad == 0) {
        return;
    }
    for (ky = 0; ky < cv->kh; ky++) {
        const int y = iy0 + ky * cv->dh;
        const int row_out = y < 0 || y >= cv->in_h;
        for (kx = 0; kx < cv->kw; kx++) {
            const int off = kx * cv->dw - cv->pl; /* input column = ox * sw + off */
            const int last = cv->in_w - 1 - off;
            /* columns [lo, hi) read the map; the others (all of a padded row) read pad */
            int lo = row_out ? x1 : (off >= 0 ? 0 : (-off + cv->sw - 1) / cv->sw);
            int hi = row_out ? x1 : (last >= 0 ? last / cv->sw + 1 : 0);
            int32_t wsum = 0;
            hi = hi > lo ? hi : lo;
            if (lo <= x0 && hi >= x1) {
                continue;
            }
            for (ci = 0; ci < cg; ci++) {
                wsum += w[(size_t)ci * taps + (size_t)ky * cv->kw + kx];
            }
            wsum *= cv->pad;
            for (ox = x0; ox < x1 && ox < lo; ox++) {
                acc[ox - x0] += wsum;
            }
            for (ox = hi > x0 ? hi : x0; ox < x1; ox++) {
                acc[ox - x0] += wsum;
            }
        }
    }
}

/* One requantized convolution output (before any pool), with the pre-pool activations.
 * Taps in the padding are skipped here and added by conv_pad_taps. */
static int8_t conv_pixel(const int8_t *in, const nn_conv_t *cv, int co, int oy, int ox,
                         const nn_act_t *pre, int npre)
{
    const int cg = cv->in_c / cv->group;
    const int mg = cv->out_c / cv->group;
    const int c0 = (co / mg) * cg;
    const int iy0 = oy * cv->sh - cv->pt;
    const int ix0 = ox * cv->sw - cv->pl;
    const int8_t *w = cv->weights + (size_t)co * cg * cv->kh * cv->kw;
    int32_t acc = 0;
    int ky0, ky1, kx0, kx1, ci, ky, kx;
    nn_tap_range(iy0, cv->dh, cv->kh, cv->in_h, &ky0, &ky1);
    nn_tap_range(ix0, cv->dw, cv->kw, cv->in_w, &kx0, &kx1);
    for (ci = 0; ci < cg; ci++) {
        const int8_t *x = in + (size_t)(c0 + ci) * cv->in_h * cv->in_w + ix0;
        const int8_t *wc = w + (size_t)ci * cv->kh * cv->kw;
        for (ky = ky0; ky < ky1; ky++) {
            const int8_t *xr = x + (size_t)(iy0 + ky * cv->dh) * cv->in_w;
            const int8_t *wr = wc + (size_t)ky * cv->kw;
            if (cv->dw == 1) {
                for (kx = kx0; kx < kx1; kx++) {
                    acc += (int32_t)wr[kx] * (int32_t)xr[kx];
                }
            } else {
                for (kx = kx0; kx < kx1; kx++) {
                    acc += (int32_t)wr[kx] * (int32_t)xr[kx * cv->dw];
                }
            }
        }
    }
    conv_pad_taps(cv, co, oy, ox, ox + 1, &acc);
    return act_apply(requant(acc, cv->bias[co], cv->mul[co], cv->shift[co]), pre, npre);
}

/* ==== tiled convolution (issue 21): im2col tiles of int16 codes, 4 x 2 register tiles ========
 * A tile of output pixels is gathered once into col[p][k] (k = (ci * kh + ky) * kw + kx, the
 * order of a weight row; taps in the padding read cv->pad, the input zero point, which is what
 * conv_pad_taps adds on the other path), then every output channel of the group is a
 * contiguous dot product of its int8 weight row with the int16 column of each pixel. Four
 * channels x two pixels are computed at once in eight local int32 sums: gcc -O3 keeps them in
 * registers and vectorises the k loop (int8 x int8 products fit int16, pairs of them int32).
 * Integer sums do not depend on the order: the results are the other path's, bit for bit. */

/* int16 elements of the gathered tile (a static buffer; NN_COL_BUF / K pixels per tile). */
#ifndef NN_COL_BUF
#define NN_COL_BUF 16384
#endif
#define NN_TILE_PX 64

static void dot4x2(const int16_t *w0, const int16_t *w1, const int16_t *w2, const int16_t *w3,
                   const int16_t *x0, const int16_t *x1, int n8, int32_t r[8])
{
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
    int i;
    for (i = 0; i < n8 * 8; i++) { /* a multiple of 8: gcc -O2 vectorises it too (no tail) */
        const int16_t q0 = w0[i], q1 = w1[i], q2 = w2[i], q3 = w3[i];
        const int16_t y0 = x0[i], y1 = x1[i];
        a0 += q0 * y0;
        a1 += q1 * y0;
        a2 += q2 * y0;
        a3 += q3 * y0;
        b0 += q0 * y1;
        b1 += q1 * y1;
        b2 += q2 * y1;
        b3 += q3 * y1;
    }
    r[0] = a0;
    r[1] = a1;
    r[2] = a2;
    r[3] = a3;
    r[4] = b0;
    r[5] = b1;
    r[6] = b2;
    r[7] = b3;
}

/* A weight row of k values padded with zeros to a multiple of 8 (zeros add nothing). */
static int conv_row_pad(int k)
{
    return (k + 7) / 8 * 8;
}

/* Pixels a tile holds for a weight row of k values (0: the tiled path does not apply). */
static int conv_tile_px(int k)
{
    const int n = NN_COL_BUF / conv_row_pad(k > 0 ? k : 1);
    return n < 2 ? 0 : (n > NN_TILE_PX ? NN_TILE_PX : n);
}

/* col[p][.] = the k = cg * kh * kw input codes of output pixel pix0 + p (flattened over
 * out_h x out_w) for the channels c0.. of one group, then zeros up to conv_row_pad(k); a window
 * wholly inside the map is copied without bounds checks. */
static void conv_gather(const int8_t *in, const nn_conv_t *cv, int c0, int pix0, int np,
                        int16_t *col)
{
    const int cg = cv->in_c / cv->group;
    const size_t plane = (size_t)cv->in_h * cv->in_w;
    const int ylast = (cv->kh - 1) * cv->dh, xlast = (cv->kw - 1) * cv->dw;
    const int k = cg * cv->kh * cv->kw, kp = conv_row_pad(k);
    int p, ci, ky, kx;
    for (p = 0; p < np; p++) {
        const int iy0 = ((pix0 + p) / cv->out_w) * cv->sh - cv->pt;
        const int ix0 = ((pix0 + p) % cv->out_w) * cv->sw - cv->pl;
        const int8_t *x = in + (size_t)c0 * plane;
        int16_t *c = col;
        for (ci = k; ci < kp; ci++) {
            c[ci] = 0;
        }
        col += kp;
        if (cv->kh == 1 && cv->kw == 1 && iy0 >= 0 && iy0 < cv->in_h && ix0 >= 0 &&
            ix0 < cv->in_w) {
            x += (size_t)iy0 * cv->in_w + ix0;
            for (ci = 0; ci < cg; ci++) {
                c[ci] = x[(size_t)ci * plane];
            }
            continue;
        }
        if (iy0 >= 0 && iy0 + ylast < cv->in_h && ix0 >= 0 && ix0 + xlast < cv->in_w &&
            cv->kh == 3 && cv->kw == 3 && cv->dw == 1) { /* the common 3 x 3 window */
            const size_t r1 = (size_t)cv->dh * cv->in_w, r2 = 2 * r1;
            x += (size_t)iy0 * cv->in_w + ix0;
            for (ci = 0; ci < cg; ci++, x += plane, c += 9) {
                c[0] = x[0];
                c[1] = x[1];
                c[2] = x[2];
                c[3] = x[r1];
                c[4] = x[r1 + 1];
                c[5] = x[r1 + 2];
                c[6] = x[r2];
                c[7] = x[r2 + 1];
                c[8] = x[r2 + 2];
            }
            continue;
        }
        if (iy0 >= 0 && iy0 + ylast < cv->in_h && ix0 >= 0 && ix0 + xlast < cv->in_w) {
            for (ci = 0; ci < cg; ci++, x += plane) {
                for (ky = 0; ky < cv->kh; ky++) {
                    const int8_t *xr = x + (size_t)(iy0 + ky * cv->dh) * cv->in_w + ix0;
                    for (kx = 0; kx < cv->kw; kx++) {
                        *c++ = xr[kx * cv->dw];
                    }
                }
            }
            continue;
        }
        for (ci = 0; ci < cg; ci++, x += plane) {
            for (ky = 0; ky < cv->kh; ky++) {
                const int iy = iy0 + ky * cv->dh;
                for (kx = 0; kx < cv->kw; kx++) {
                    const int ix = ix0 + kx * cv->dw;
                    const int inside = iy >= 0 && iy < cv->in_h && ix >= 0 && ix < cv->in_w;
                    *c++ = (int16_t)(inside ? x[(size_t)iy * cv->in_w + ix] : cv->pad);
                }
            }
        }
    }
}

/* Requantized outputs (pre-pool activations, then post) of channels co0 .. co0 + nco - 1 (one
 * group) at output pixels pix0 .. pix0 + npix - 1: dst[(co - co0) * stride + pix - pix0]. */
static void conv_tiled(const int8_t *in, const nn_conv_t *cv, int co0, int nco, int pix0,
                       int npix, int8_t *dst, size_t stride, const nn_act_t *pre, int npre,
                       const nn_act_t *post, int npost)
{
    /* static, not on the stack: 96 KiB at the default size would overflow a microcontroller's
     * stack silently, where a .bss buffer too large for the RAM fails at link time */
    static int16_t col[NN_COL_BUF];
    static int16_t wide[2 * NN_COL_BUF]; /* 4 weight rows as int16 (kp <= NN_COL_BUF / 2) */
    int8_t act[256]; /* the activations are a function of the int8 code: one table lookup */
    int32_t r[8];
    const int cg = cv->in_c / cv->group;
    const int k = cg * cv->kh * cv->kw, kp = conv_row_pad(k);
    const int tp = conv_tile_px(k);
    const int c0 = (co0 / (cv->out_c / cv->group)) * cg;
    int q0, np, co, p, b, j;
    for (j = 0; j < 256; j++) {
        act[j] = act_apply(act_apply((int8_t)(j - 128), pre, npre), post, npost);
    }
    for (q0 = 0; q0 < npix; q0 += np) {
        np = npix - q0 < tp ? npix - q0 : tp;
        conv_gather(in, cv, c0, pix0 + q0, np, col);
        for (co = 0; co < nco; co += 4) {
            const int nb = nco - co < 4 ? nco - co : 4;
            const int16_t *w[4];
            int64_t bias[4], mul[4], half[4];
            int shift[4];
            int8_t *o[4];
            for (b = 0; b < 4; b++) { /* requantization constants in locals (int8 stores may
                                       * alias anything: they would be reloaded otherwise) */
                const int c = co0 + co + (b < nb ? b : nb - 1);
                bias[b] = cv->bias[c];
                mul[b] = cv->mul[c];
                shift[b] = cv->shift[c];
                half[b] = shift[b] > 0 ? (int64_t)1 << (shift[b] - 1) : 0; /* rnorm64's */
                o[b] = dst + (size_t)(co + b) * stride + q0;
            }
            for (b = 0; b < 4; b++) { /* a short block repeats its last row (result unused) */
                const int8_t *src = cv->weights + (size_t)(co0 + co + (b < nb ? b : nb - 1)) * k;
                int16_t *dw = wide + (size_t)b * kp;
                for (j = 0; j < kp; j++) {
                    dw[j] = (int16_t)(j < k ? src[j] : 0);
                }
                w[b] = dw;
            }
            for (p = 0; p < np; p += 2) {
                const int16_t *x0 = col + (size_t)p * kp;
                const int16_t *x1 = p + 1 < np ? x0 + kp : x0;
                dot4x2(w[0], w[1], w[2], w[3], x0, x1, kp / 8, r);
                for (b = 0; b < nb; b++) { /* requant(): clip8(rnorm64((acc + bias) * M, N)) */
                    for (j = 0; j < 2 && p + j < np; j++) {
                        const int64_t t = ((r[4 * j + b] + bias[b]) * mul[b] + half[b]) >> shift[b];
                        o[b][p + j] = act[clip8(t) + 128];
                    }
                }
            }
        }
    }
}
/* ==== end of tiled convolution ================================================================ */

/* Where a pooling window reads: an int8 map, or a convolution computed on the fly. */
typedef struct {
    const int8_t *in;
    const nn_conv_t *cv;
    const nn_act_t *pre;
    int npre;
    int h, w;
} pool_src_t;

static int8_t src_value(const pool_src_t *s, int c, int y, int x)
{
    if (s->cv != NULL) {
        return conv_pixel(s->in, s->cv, c, y, x, s->pre, s->npre);
    }
    return s->in[((size_t)c * s->h + y) * s->w + x];
}

void nn_pool_window(const void *src, nn_pool_read_fn read, int h, int w, const nn_pool_t *p,
                    int c, int oy, int ox, int64_t *value, int32_t *count)
{
    const int y0 = oy * p->sh - p->pt;
    const int x0 = ox * p->sw - p->pl;
    int64_t acc = 0;
    int32_t n = 0;
    int ky, kx;
    for (ky = 0; ky < p->kh; ky++) {
        const int y = y0 + ky * p->dh;
        for (kx = 0; kx < p->kw; kx++) {
            const int x = x0 + kx * p->dw;
            const int inside = y >= 0 && y < h && x >= 0 && x < w;
            if (p->kind == NN_POOL_MAX) {
                if (inside) {
                    const int64_t v = read(src, c, y, x);
                    acc = (n == 0 || v > acc) ? v : acc;
                    n++;
                }
                continue;
            }
            if (y >= p->cnt_h0 && y < p->cnt_h1 && x >= p->cnt_w0 && x < p->cnt_w1) {
                acc += inside ? read(src, c, y, x) : p->pad;
                n++;
            } else if (inside) {
                acc += read(src, c, y, x);
            }
        }
    }
    if (p->kind != NN_POOL_MAX || n > 0) {
        *value = acc;
    }
    *count = n;
}

static int64_t src_read(const void *src, int c, int y, int x)
{
    return src_value((const pool_src_t *)src, c, y, x);
}

static int8_t pool_window(const pool_src_t *s, const nn_pool_t *p, int c, int oy, int ox)
{
    int64_t v = -129;
    int32_t count = 0;
    nn_pool_window(s, src_read, s->h, s->w, p, c, oy, ox, &v, &count);
    if (p->kind == NN_POOL_MAX) {
        return (int8_t)v;
    }
    return clip8(rnorm64(v * (65536 / count), 16));
}

static void pool_map(const pool_src_t *s, int8_t *out, int c, const nn_pool_t *p,
                     const nn_act_t *post, int npost)
{
    int ch, oy, ox;
    for (ch = 0; ch < c; ch++) {
        for (oy = 0; oy < p->oh; oy++) {
            for (ox = 0; ox < p->ow; ox++) {
                *out++ = act_apply(pool_window(s, p, ch, oy, ox), post, npost);
            }
        }
    }
}

/* acc[ox - x0] = the dot product of output pixel (co, oy, ox) for ox in [x0, x1): the row is
 * accumulated tap by tap over contiguous runs of the input row (padding taps skipped). */
static void conv_row(const int8_t *in, const nn_conv_t *cv, int co, int oy, int x0, int x1,
                     int32_t *acc)
{
    const int cg = cv->in_c / cv->group;
    const int c0 = (co / (cv->out_c / cv->group)) * cg;
    const int iy0 = oy * cv->sh - cv->pt;
    const int sw = cv->sw;
    int ky0, ky1, ci, ky, kx, ox;
    for (ox = x0; ox < x1; ox++) {
        acc[ox - x0] = 0;
    }
    nn_tap_range(iy0, cv->dh, cv->kh, cv->in_h, &ky0, &ky1);
    for (ci = 0; ci < cg; ci++) {
        const int8_t *x = in + (size_t)(c0 + ci) * cv->in_h * cv->in_w;
        const int8_t *w = cv->weights + ((size_t)co * cg + ci) * cv->kh * cv->kw;
        for (ky = ky0; ky < ky1; ky++) {
            const int8_t *xr = x + (size_t)(iy0 + ky * cv->dh) * cv->in_w;
            for (kx = 0; kx < cv->kw; kx++) {
                const int32_t wv = w[ky * cv->kw + kx];
                const int off = kx * cv->dw - cv->pl; /* input column = ox * sw + off */
                const int last = cv->in_w - 1 - off;
                int lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
                int hi = last >= 0 ? last / sw + 1 : 0;
                lo = lo > x0 ? lo : x0;
                hi = hi < x1 ? hi : x1;
                if (sw == 1) {
                    for (ox = lo; ox < hi; ox++) {
                        acc[ox - x0] += wv * xr[ox + off];
                    }
                } else {
                    for (ox = lo; ox < hi; ox++) {
                        acc[ox - x0] += wv * xr[ox * sw + off];
                    }
                }
            }
        }
    }
    conv_pad_taps(cv, co, oy, x0, x1, acc);
}

/* Conv + pool with row buffers: each pooled row reads the conv rows of its window. */
static void conv_pool_rows(const int8_t *in, int8_t *out, const nn_conv_t *cv,
                           const nn_pool_t *p, const nn_act_t *pre, int npre,
                           const nn_act_t *post, int npost)
{
    int32_t acc[NN_MAX_ROW];
    int32_t best[NN_MAX_ROW];
    int8_t row[NN_MAX_ROW];
    int co, py, px, ky, kx, x;
    for (co = 0; co < cv->out_c; co++) {
        for (py = 0; py < p->oh; py++) {
            int ny = 0;
            for (px = 0; px < p->ow; px++) {
                best[px] = p->kind == NN_POOL_MAX ? -129 : 0;
            }
            for (ky = 0; ky < p->kh; ky++) {
                const int y = py * p->sh - p->pt + ky * p->dh;
                const int ycnt = y >= p->cnt_h0 && y < p->cnt_h1;
                ny += ycnt;
                if (y < 0 || y >= cv->out_h) {
                    for (px = 0; px < p->ow && ycnt && p->kind != NN_POOL_MAX; px++) {
                        for (kx = 0; kx < p->kw; kx++) { /* a padded row: pad where counted */
                            x = px * p->sw - p->pl + kx * p->dw;
                            best[px] += (x >= p->cnt_w0 && x < p->cnt_w1) ? p->pad : 0;
                        }
                    }
                    continue;
                }
                conv_row(in, cv, co, y, 0, cv->out_w, acc);
                for (x = 0; x < cv->out_w; x++) {
                    row[x] = act_apply(requant(acc[x], cv->bias[co], cv->mul[co], cv->shift[co]),
                                       pre, npre);
                }
                for (px = 0; px < p->ow; px++) {
                    for (kx = 0; kx < p->kw; kx++) {
                        x = px * p->sw - p->pl + kx * p->dw;
                        if (x < 0 || x >= cv->out_w) {
                            if (p->kind != NN_POOL_MAX && x >= p->cnt_w0 && x < p->cnt_w1) {
                                best[px] += p->pad;
                            }
                            continue;
                        }
                        if (p->kind == NN_POOL_MAX) {
                            best[px] = row[x] > best[px] ? row[x] : best[px];
                        } else {
                            best[px] += row[x];
                        }
                    }
                }
            }
            for (px = 0; px < p->ow; px++) {
                int8_t v = (int8_t)best[px];
                if (p->kind != NN_POOL_MAX) {
                    int nx = 0;
                    for (kx = 0; kx < p->kw; kx++) {
                        x = px * p->sw - p->pl + kx * p->dw;
                        nx += x >= p->cnt_w0 && x < p->cnt_w1;
                    }
                    v = clip8(rnorm64((int64_t)best[px] * (65536 / (ny * nx)), 16));
                }
                *out++ = act_apply(v, post, npost);
            }
        }
    }
}

#define NN_CO_BLOCK 4

/* conv_row for nb <= NN_CO_BLOCK output channels co.. of one group at once: each run of input
 * values is loaded once for the nb weights (stride 1: a contiguous, vectorisable loop). */
static void conv_row_block(const int8_t *in, const nn_conv_t *cv, int co, int nb, int oy,
                           int x0, int x1, int32_t acc[][NN_MAX_ROW])
{
    const int cg = cv->in_c / cv->group;
    const int c0 = (co / (cv->out_c / cv->group)) * cg;
    const int iy0 = oy * cv->sh - cv->pt;
    const int sw = cv->sw;
    const size_t taps = (size_t)cv->kh * cv->kw;
    int ky0, ky1, ci, ky, kx, ox, b;
    for (b = 0; b < nb; b++) {
        memset(acc[b], 0, (size_t)(x1 - x0) * sizeof(int32_t));
    }
    nn_tap_range(iy0, cv->dh, cv->kh, cv->in_h, &ky0, &ky1);
    for (ci = 0; ci < cg; ci++) {
        const int8_t *x = in + (size_t)(c0 + ci) * cv->in_h * cv->in_w;
        const int8_t *w = cv->weights + ((size_t)co * cg + ci) * taps;
        for (ky = ky0; ky < ky1; ky++) {
            const int8_t *xr = x + (size_t)(iy0 + ky * cv->dh) * cv->in_w;
            for (kx = 0; kx < cv->kw; kx++) {
                const int off = kx * cv->dw - cv->pl; /* input column = ox * sw + off */
                const int last = cv->in_w - 1 - off;
                const size_t t = (size_t)ky * cv->kw + kx;
                int lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
                int hi = last >= 0 ? last / sw + 1 : 0;
                lo = lo > x0 ? lo : x0;
                hi = hi < x1 ? hi : x1;
                if (nb == NN_CO_BLOCK && sw == 1) {
                    const size_t step = (size_t)cg * taps;
                    const int32_t w0 = w[t], w1 = w[step + t];
                    const int32_t w2 = w[2 * step + t], w3 = w[3 * step + t];
                    int32_t *a0 = acc[0], *a1 = acc[1], *a2 = acc[2], *a3 = acc[3];
                    for (ox = lo; ox < hi; ox++) {
                        const int32_t xv = xr[ox + off];
                        a0[ox - x0] += w0 * xv;
                        a1[ox - x0] += w1 * xv;
                        a2[ox - x0] += w2 * xv;
                        a3[ox - x0] += w3 * xv;
                    }
                    continue;
                }
                for (b = 0; b < nb; b++) {
                    const int32_t wv = w[(size_t)b * cg * taps + t];
                    int32_t *a = acc[b];
                    if (sw == 1) {
                        for (ox = lo; ox < hi; ox++) {
                            a[ox - x0] += wv * xr[ox + off];
                        }
                    } else {
                        for (ox = lo; ox < hi; ox++) {
                            a[ox - x0] += wv * xr[ox * sw + off];
                        }
                    }
                }
            }
        }
    }
    for (b = 0; b < nb; b++) {
        conv_pad_taps(cv, co + b, oy, x0, x1, acc[b]);
    }
}

/* Unpadded stride-1 1x1 convolution: a matrix product over the input channels. Four output
 * channels share each contiguous run of input pixels (each int8 input value is loaded once for
 * four products), the accumulators of a run stay in a small stack block, and the inner loop is
 * a plain contiguous multiply-add that compilers vectorise (gcc -O3). Integer sums do
 * not depend on the order of the additions: the results are the reference's, bit for bit. */
static void conv_1x1(const int8_t *in, int8_t *out, const nn_conv_t *cv, const nn_act_t *pre,
                     int npre, const nn_act_t *post, int npost)
{
    int32_t acc[NN_CO_BLOCK][NN_MAX_ROW];
    const int cg = cv->in_c / cv->group;
    const int mg = cv->out_c / cv->group;
    const size_t plane = (size_t)cv->in_h * cv->in_w;
    int co, b, ci, p;
    size_t p0;
    for (co = 0; co < cv->out_c; co += b) {
        const int gend = (co / mg + 1) * mg; /* a block never crosses a group */
        const int nb = gend - co < NN_CO_BLOCK ? gend - co : NN_CO_BLOCK;
        const int8_t *xg = in + (size_t)(co / mg) * cg * plane;
        const int8_t *w = cv->weights + (size_t)co * cg;
        for (p0 = 0; p0 < plane; p0 += NN_MAX_ROW) {
            const int n = plane - p0 < NN_MAX_ROW ? (int)(plane - p0) : NN_MAX_ROW;
            for (b = 0; b < nb; b++) {
                memset(acc[b], 0, (size_t)n * sizeof(int32_t));
            }
            for (ci = 0; ci < cg; ci++) {
                const int8_t *x = xg + (size_t)ci * plane + p0;
                if (nb == NN_CO_BLOCK) {
                    const int32_t w0 = w[ci], w1 = w[cg + ci];
                    const int32_t w2 = w[2 * cg + ci], w3 = w[3 * cg + ci];
                    int32_t *a0 = acc[0], *a1 = acc[1], *a2 = acc[2], *a3 = acc[3];
                    for (p = 0; p < n; p++) {
                        const int32_t xv = x[p];
                        a0[p] += w0 * xv;
                        a1[p] += w1 * xv;
                        a2[p] += w2 * xv;
                        a3[p] += w3 * xv;
                    }
                } else {
                    for (b = 0; b < nb; b++) {
                        const int32_t wv = w[(size_t)b * cg + ci];
                        int32_t *a = acc[b];
                        for (p = 0; p < n; p++) {
                            a[p] += wv * (int32_t)x[p];
                        }
                    }
                }
            }
            for (b = 0; b < nb; b++) { /* requantization constants hoisted per channel */
                const int32_t bias = cv->bias[co + b];
                const int32_t mul = cv->mul[co + b]; /* up to 30 bits (a TFLite -q file) */
                const int8_t shift = cv->shift[co + b];
                int8_t *o = out + (size_t)(co + b) * plane + p0;
                for (p = 0; p < n; p++) {
                    const int8_t v = requant(acc[b][p], bias, mul, shift);
                    o[p] = act_apply(act_apply(v, pre, npre), post, npost);
                }
            }
        }
        b = nb;
    }
}

/* Conv + pool over the tiled convolution: up to NN_POOL_CB channels at a time, each conv row
 * computed once (conv_tiled, the gathered inputs shared by the channels) into one of p->kh row
 * slots and reused by every pooled row whose window reads it. 0: not applicable (the caller
 * takes conv_pool_rows). */
#define NN_POOL_CB 16
#define NN_POOL_SLOTS 8
#ifndef NN_POOL_BUF
#define NN_POOL_BUF 16384
#endif
static int conv_pool_tiled(const int8_t *in, int8_t *out, const nn_conv_t *cv,
                           const nn_pool_t *p, const nn_act_t *pre, int npre,
                           const nn_act_t *post, int npost)
{
    static int8_t rows[NN_POOL_BUF]; /* static, as conv_tiled's buffers */
    static int32_t best[NN_POOL_CB][NN_MAX_ROW];
    int tag[NN_POOL_SLOTS];
    const int mg = cv->out_c / cv->group;
    const int ow = cv->out_w;
    int cb, co, nco, py, px, ky, kx, x, s, b;
    if (p->kh > NN_POOL_SLOTS || p->ow > NN_MAX_ROW || mg < NN_CO_BLOCK ||
        conv_tile_px(cv->in_c / cv->group * cv->kh * cv->kw) == 0) {
        return 0;
    }
    cb = NN_POOL_BUF / (p->kh * ow);
    cb = cb < NN_POOL_CB ? cb : NN_POOL_CB;
    if (cb < 1) {
        return 0;
    }
    for (co = 0; co < cv->out_c; co += nco) {
        const int gend = (co / mg + 1) * mg; /* a block never crosses a group */
        nco = gend - co < cb ? gend - co : cb;
        for (s = 0; s < p->kh; s++) {
            tag[s] = -1;
        }
        for (py = 0; py < p->oh; py++) {
            const int ybase = py * p->sh - p->pt;
            int ny = 0;
            for (b = 0; b < nco; b++) {
                for (px = 0; px < p->ow; px++) {
                    best[b][px] = p->kind == NN_POOL_MAX ? -129 : 0;
                }
            }
            for (ky = 0; ky < p->kh; ky++) {
                const int y = ybase + ky * p->dh;
                const int ycnt = y >= p->cnt_h0 && y < p->cnt_h1;
                const int8_t *base;
                ny += ycnt;
                if (y < 0 || y >= cv->out_h) {
                    for (b = 0; b < nco && ycnt && p->kind != NN_POOL_MAX; b++) {
                        for (px = 0; px < p->ow; px++) { /* a padded row: pad where counted */
                            for (kx = 0; kx < p->kw; kx++) {
                                x = px * p->sw - p->pl + kx * p->dw;
                                best[b][px] += (x >= p->cnt_w0 && x < p->cnt_w1) ? p->pad : 0;
                            }
                        }
                    }
                    continue;
                }
                for (s = 0; s < p->kh && tag[s] != y; s++) {
                }
                if (s == p->kh) { /* not computed yet: take a slot no row of this window holds */
                    for (s = 0; s < p->kh; s++) {
                        const int d = tag[s] - ybase;
                        if (tag[s] < 0 || d < 0 || d % p->dh != 0 || d / p->dh >= p->kh) {
                            break;
                        }
                    }
                    tag[s] = y;
                    conv_tiled(in, cv, co, nco, y * ow, ow, rows + (size_t)s * cb * ow,
                               (size_t)ow, pre, npre, NULL, 0);
                }
                base = rows + (size_t)s * cb * ow;
                for (b = 0; b < nco; b++) {
                    const int8_t *row = base + (size_t)b * ow;
                    int32_t *bb = best[b];
                    for (px = 0; px < p->ow; px++) {
                        for (kx = 0; kx < p->kw; kx++) {
                            x = px * p->sw - p->pl + kx * p->dw;
                            if (x < 0 || x >= ow) {
                                if (p->kind != NN_POOL_MAX && x >= p->cnt_w0 && x < p->cnt_w1) {
                                    bb[px] += p->pad;
                                }
                                continue;
                            }
                            if (p->kind == NN_POOL_MAX) {
                                bb[px] = row[x] > bb[px] ? row[x] : bb[px];
                            } else {
                                bb[px] += row[x];
                            }
                        }
                    }
                }
            }
            for (b = 0; b < nco; b++) {
                int8_t *o = out + ((size_t)(co + b) * p->oh + py) * p->ow;
                for (px = 0; px < p->ow; px++) {
                    int8_t v = (int8_t)best[b][px];
                    if (p->kind != NN_POOL_MAX) {
                        int nx = 0;
                        for (kx = 0; kx < p->kw; kx++) {
                            x = px * p->sw - p->pl + kx * p->dw;
                            nx += x >= p->cnt_w0 && x < p->cnt_w1;
                        }
                        v = clip8(rnorm64((int64_t)best[b][px] * (65536 / (ny * nx)), 16));
                    }
                    o[px] = act_apply(v, post, npost);
                }
            }
        }
    }
    return 1;
}

void nn_conv(const int8_t *in, int8_t *out, const nn_conv_t *cv, const nn_pool_t *pool,
             const nn_act_t *pre, int npre, const nn_act_t *post, int npost)
{
    int32_t acc[NN_CO_BLOCK][NN_MAX_ROW];
    int8_t act[256];
    int co, oy, x0, ox, b, nb = 1;
    if (pool == NULL && cv->out_c / cv->group >= NN_CO_BLOCK &&
        conv_tile_px(cv->in_c / cv->group * cv->kh * cv->kw) > 0) {
        const int mg = cv->out_c / cv->group;
        const size_t plane = (size_t)cv->out_h * cv->out_w;
        for (co = 0; co < cv->out_c; co += mg) { /* one group at a time */
            conv_tiled(in, cv, co, mg, 0, (int)plane, out + (size_t)co * plane, plane, pre, npre,
                       post, npost);
        }
        return;
    }
    if (pool == NULL && cv->kh == 1 && cv->kw == 1 && cv->sh == 1 && cv->sw == 1 &&
        cv->pt == 0 && cv->pl == 0 && cv->out_h == cv->in_h && cv->out_w == cv->in_w) {
        conv_1x1(in, out, cv, pre, npre, post, npost);
        return;
    }
    if (pool != NULL && conv_pool_tiled(in, out, cv, pool, pre, npre, post, npost)) {
        return;
    }
    if (pool != NULL && cv->out_w <= NN_MAX_ROW && pool->ow <= NN_MAX_ROW) {
        conv_pool_rows(in, out, cv, pool, pre, npre, post, npost);
        return;
    }
    if (pool != NULL) { /* rows too wide for the stack buffers: one conv pixel at a time */
        pool_src_t s;
        s.in = in;
        s.cv = cv;
        s.pre = pre;
        s.npre = npre;
        s.h = cv->out_h;
        s.w = cv->out_w;
        pool_map(&s, out, cv->out_c, pool, post, npost);
        return;
    }
    for (co = 0; co < 256; co++) { /* the activations as a table of the int8 code */
        act[co] = act_apply(act_apply((int8_t)(co - 128), pre, npre), post, npost);
    }
    for (co = 0; co < cv->out_c; co += nb) {
        const int mg = cv->out_c / cv->group;
        const int gend = (co / mg + 1) * mg; /* a block never crosses a group */
        nb = gend - co < NN_CO_BLOCK ? gend - co : NN_CO_BLOCK;
        for (oy = 0; oy < cv->out_h; oy++) {
            for (x0 = 0; x0 < cv->out_w; x0 += NN_MAX_ROW) {
                const int x1 = x0 + NN_MAX_ROW < cv->out_w ? x0 + NN_MAX_ROW : cv->out_w;
                conv_row_block(in, cv, co, nb, oy, x0, x1, acc);
                for (b = 0; b < nb; b++) { /* requantization constants hoisted per channel */
                    const int32_t bias = cv->bias[co + b];
                    const int32_t mul = cv->mul[co + b]; /* up to 30 bits (a TFLite -q file) */
                    const int8_t shift = cv->shift[co + b];
                    int8_t *o = out + ((size_t)(co + b) * cv->out_h + oy) * cv->out_w;
                    for (ox = x0; ox < x1; ox++) {
                        o[ox] = act[requant(acc[b][ox - x0], bias, mul, shift) + 128];
                    }
                }
            }
        }
    }
}

void nn_linear(const int8_t *in, int8_t *out, int in_n, int out_n, const int8_t *weights,
               const int32_t *bias, const int32_t *mul, const int8_t *shift)
{
    int o, k;
    for (o = 0; o < out_n; o++) {
        const int8_t *w = weights + (size_t)o * in_n;
        int32_t acc = 0;
        for (k = 0; k < in_n; k++) {
            acc += (int32_t)w[k] * (int32_t)in[k];
        }
        out[o] = requant(acc, bias[o], mul[o], shift[o]);
    }
}

void nn_pool(const int8_t *in, int8_t *out, int c, int h, int w, const nn_pool_t *pool)
{
    pool_src_t s;
    s.in = in;
    s.cv = NULL;
    s.pre = NULL;
    s.npre = 0;
    s.h = h;
    s.w = w;
    pool_map(&s, out, c, pool, NULL, 0);
}

void nn_global_max(const int8_t *in, int8_t *out, int c, int hw)
{
    int ch, i;
    for (ch = 0; ch < c; ch++) {
        int8_t best = in[(size_t)ch * hw];
        for (i = 1; i < hw; i++) {
            const int8_t v = in[(size_t)ch * hw + i];
            best = v > best ? v : best;
        }
        out[ch] = best;
    }
}

void nn_global_avg(const int8_t *in, int8_t *out, int c, int hw, int zin, int mul, int shift)
{
    int ch, i;
    for (ch = 0; ch < c; ch++) {
        int64_t sum = -(int64_t)zin * hw; /* the sum of x - zin: real 0 is code zin */
        int64_t t;
        for (i = 0; i < hw; i++) {
            sum += in[(size_t)ch * hw + i];
        }
        t = (sum * 128) / hw; /* C division truncates toward zero, as SQ8 §5 says */
        out[ch] = clip8(rnorm64(t * mul, shift));
    }
}

void nn_rescale(int8_t *x, size_t n, int zin, int mul, int shift, int zout)
{
    size_t i;
    for (i = 0; i < n; i++) {
        x[i] = clip8(rnorm64((int64_t)(x[i] - zin) * mul, shift) + zout);
    }
}

void nn_clamp(const int8_t *in, int8_t *out, size_t n, int lo, int hi)
{
    size_t i;
    for (i = 0; i < n; i++) {
        out[i] = (int8_t)(in[i] < lo ? lo : (in[i] > hi ? hi : in[i]));
    }
}

void nn_act_inplace(int8_t *x, size_t n, const nn_act_t *acts, int nacts)
{
    int8_t table[256]; /* a function of the int8 code: tabulated once for a long run */
    size_t i;
    if (n < 1024) {
        for (i = 0; i < n; i++) {
            x[i] = act_apply(x[i], acts, nacts);
        }
        return;
    }
    for (i = 0; i < 256; i++) {
        table[i] = act_apply((int8_t)((int)i - 128), acts, nacts);
    }
    for (i = 0; i < n; i++) {
        x[i] = table[x[i] + 128];
    }
}

void nn_table(const int8_t *in, int8_t *out, size_t n, const int8_t *table)
{
    size_t i;
    for (i = 0; i < n; i++) {
        out[i] = table[in[i] + 128];
    }
}

void nn_affine(const int8_t *in, int8_t *out, int c, int inner, const int8_t *weights,
               const int32_t *bias, const int32_t *mul, const int8_t *shift)
{
    int ch, i;
    for (ch = 0; ch < c; ch++) {
        for (i = 0; i < inner; i++) {
            const size_t at = (size_t)ch * inner + i;
            out[at] = requant((int64_t)in[at] * weights[ch], bias[ch], mul[ch], shift[ch]);
        }
    }
}

void nn_matadd(const int8_t *const *ins, int nin, int8_t *out, int ref, const uint8_t *mul,
               const int8_t *shift, int out_mul, int out_shift, size_t n)
{
    size_t k;
    int i;
    if (nin == 2 && out_mul >= 0 && out_mul < 32768 && out_shift >= 0 && out_shift < 30 &&
        shift[1 - ref] >= 0 && shift[1 - ref] < 30) {
        /* the common residual add in int32, exact: |x * mul| <= 128 * 255, |acc| < 2^15 + 2^8,
         * |acc * out_mul| + 2^28 < 2^31 (a vectorisable loop) */
        const int8_t *a = ins[ref], *b = ins[1 - ref];
        const int32_t m = mul[1 - ref], sb = shift[1 - ref], so = out_shift, mo = out_mul;
        const int32_t hb = sb > 0 ? 1 << (sb - 1) : 0, ho = so > 0 ? 1 << (so - 1) : 0;
        for (k = 0; k < n; k++) {
            const int32_t acc = a[k] + ((b[k] * m + hb) >> sb);
            const int32_t v = (acc * mo + ho) >> so;
            out[k] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
        }
        return;
    }
    for (k = 0; k < n; k++) {
        int64_t acc = ins[ref][k];
        for (i = 0; i < nin; i++) {
            if (i != ref) {
                acc += rnorm64((int64_t)ins[i][k] * mul[i], shift[i]);
            }
        }
        out[k] = clip8(rnorm64(acc * out_mul, out_shift));
    }
}

void nn_softmax(const int8_t *in, int16_t *out, int outer, int len, int inner,
                const int32_t *table)
{
    int o, j, i;
    for (o = 0; o < outer; o++) {
        for (i = 0; i < inner; i++) {
            const size_t base = (size_t)o * len * inner + i;
            int best = in[base];
            int64_t sum = 0;
            for (j = 1; j < len; j++) {
                const int v = in[base + (size_t)j * inner];
                best = v > best ? v : best;
            }
            for (j = 0; j < len; j++) {
                sum += table[best - in[base + (size_t)j * inner]];
            }
            for (j = 0; j < len; j++) {
                const size_t at = base + (size_t)j * inner;
                const int64_t y = ((int64_t)table[best - in[at]] << 15) / sum;
                out[at] = (int16_t)(y > 32767 ? 32767 : y);
            }
        }
    }
}

void nn_concat(const void *const *ins, int nin, void *out, const int32_t *block,
               const nn_rescale_t *rs, int outer, size_t esize)
{
    unsigned char *dst = (unsigned char *)out;
    int o, i;
    for (o = 0; o < outer; o++) {
        for (i = 0; i < nin; i++) {
            const size_t nbytes = (size_t)block[i] * esize;
            const unsigned char *src = (const unsigned char *)ins[i] + (size_t)o * nbytes;
            memcpy(dst, src, nbytes);
            if (rs[i].on) {
                nn_rescale((int8_t *)dst, (size_t)block[i], rs[i].zin, rs[i].mul, rs[i].shift,
                           rs[i].zout);
            }
            dst += nbytes;
        }
    }
}

void nn_transpose(const void *in, void *out, const int32_t *shape, const int32_t *perm,
                  size_t esize)
{
    const unsigned char *src = (const unsigned char *)in;
    unsigned char *dst = (unsigned char *)out;
    size_t stride[5];
    size_t ps[5];
    int os[5];
    int a, i0, i1, i2, i3, i4;
    stride[4] = 1;
    for (a = 3; a >= 0; a--) {
        stride[a] = stride[a + 1] * (size_t)shape[a + 1];
    }
    for (a = 0; a < 5; a++) {
        os[a] = shape[perm[a]];
        ps[a] = stride[perm[a]] * esize;
    }
    for (i0 = 0; i0 < os[0]; i0++) {
        for (i1 = 0; i1 < os[1]; i1++) {
            for (i2 = 0; i2 < os[2]; i2++) {
                for (i3 = 0; i3 < os[3]; i3++) {
                    for (i4 = 0; i4 < os[4]; i4++) {
                        const size_t at = i0 * ps[0] + i1 * ps[1] + i2 * ps[2] + i3 * ps[3] +
                                          i4 * ps[4];
                        memcpy(dst, src + at, esize);
                        dst += esize;
                    }
                }
            }
        }
    }
}

void nn_copy(const void *in, void *out, size_t nbytes)
{
    if (in != out) {
        memmove(out, in, nbytes);
    }
}

static int nn_raw_pixel(const void *raw, int layout, int i, int k, int c)
{
    if (layout == NN_RAW_RGB565) {
        unsigned v = ((const uint16_t *)raw)[i];
        if (k == 0) {
            return (int)((v >> 11) << 3);
        }
        return k == 1 ? (int)(((v >> 5) & 63u) << 2) : (int)((v & 31u) << 3);
    }
    if (layout == NN_RAW_U16) {
        return (int)((const uint16_t *)raw)[i * c + k];
    }
    return (int)((const uint8_t *)raw)[i * c + k];
}

void nn_format(const void *raw, int8_t *out, int h, int w, int c, int layout, int norm)
{
    int hw = h * w, i, k;
    for (k = 0; k < c; k++) {
        int8_t *o = out + (size_t)k * (size_t)hw;
        for (i = 0; i < hw; i++) {
            int p = nn_raw_pixel(raw, layout, i, k, c);
            o[i] = (int8_t)(norm == NN_NORM_OFFSET ? p - 128 : p >> 1);
        }
    }
}

void nn_format16(const void *raw, int16_t *out, int h, int w, int c, int layout)
{
    int hw = h * w, i, k;
    for (k = 0; k < c; k++) {
        int16_t *o = out + (size_t)k * (size_t)hw;
        for (i = 0; i < hw; i++) {
            o[i] = (int16_t)(nn_raw_pixel(raw, layout, i, k, c) * 128);
        }
    }
}

void nn_tile(const void *in, void *out, const int32_t *shape, const int32_t *reps, size_t esize)
{
    const unsigned char *src = (const unsigned char *)in;
    unsigned char *dst = (unsigned char *)out;
    const size_t row = (size_t)shape[4] * esize;
    size_t stride[4];
    int os[4];
    int a, i0, i1, i2, i3, r;
    stride[3] = row;
    for (a = 2; a >= 0; a--) {
        stride[a] = stride[a + 1] * (size_t)shape[a + 1];
    }
    for (a = 0; a < 4; a++) {
        os[a] = shape[a] * reps[a];
    }
    for (i0 = 0; i0 < os[0]; i0++) {
        for (i1 = 0; i1 < os[1]; i1++) {
            for (i2 = 0; i2 < os[2]; i2++) {
                for (i3 = 0; i3 < os[3]; i3++) {
                    const unsigned char *s = src + (size_t)(i0 % shape[0]) * stride[0] +
                                             (size_t)(i1 % shape[1]) * stride[1] +
                                             (size_t)(i2 % shape[2]) * stride[2] +
                                             (size_t)(i3 % shape[3]) * stride[3];
                    for (r = 0; r < reps[4]; r++) {
                        memcpy(dst, s, row);
                        dst += row;
                    }
                }
            }
        }
    }
}

void nn_conv_transpose(const int8_t *in, int8_t *out, const nn_conv_t *ct)
{
    const int cg = ct->in_c / ct->group;
    const int mg = ct->out_c / ct->group;
    const size_t plane = (size_t)ct->in_h * ct->in_w;
    int co, oy, ox, ci, ky, kx;
    for (co = 0; co < ct->out_c; co++) {
        const int8_t *xg = in + (size_t)(co / mg) * cg * plane;
        const int8_t *w = ct->weights + (size_t)co * cg * ct->kh * ct->kw;
        for (oy = 0; oy < ct->out_h; oy++) {
            for (ox = 0; ox < ct->out_w; ox++) {
                int32_t acc = 0;
                for (ky = 0; ky < ct->kh; ky++) {
                    const int ty = oy + ct->pt - ky * ct->dh;
                    int iy;
                    if (ty < 0 || ty % ct->sh != 0 || (iy = ty / ct->sh) >= ct->in_h) {
                        continue;
                    }
                    for (kx = 0; kx < ct->kw; kx++) {
                        const int tx = ox + ct->pl - kx * ct->dw;
                        const int8_t *x;
                        const int8_t *wk;
                        int ix;
                        if (tx < 0 || tx % ct->sw != 0 || (ix = tx / ct->sw) >= ct->in_w) {
                            continue;
                        }
                        x = xg + (size_t)iy * ct->in_w + ix;
                        wk = w + (size_t)ky * ct->kw + kx;
                        for (ci = 0; ci < cg; ci++) {
                            acc += (int32_t)wk[(size_t)ci * ct->kh * ct->kw] *
                                   (int32_t)x[(size_t)ci * plane];
                        }
                    }
                }
                *out++ = requant(acc, ct->bias[co], ct->mul[co], ct->shift[co]);
            }
        }
    }
}

/* ==== issue 17 (branch elt): broadcasting elementwise, Resize ================================ */

size_t nn_bc_start(nn_bc_walk_t *it, const int32_t *bc)
{
    it->idx[0] = it->idx[1] = it->idx[2] = it->idx[3] = 0;
    it->ka = it->kb = 0;
    return (size_t)bc[0] * (size_t)bc[1] * (size_t)bc[2] * (size_t)bc[3];
}

void nn_bc_next(nn_bc_walk_t *it, const int32_t *bc)
{
    int d;
    for (d = 3; d >= 0; d--) {
        it->ka += (size_t)bc[4 + d];
        it->kb += (size_t)bc[8 + d];
        if (++it->idx[d] < bc[d] || d == 0) {
            return;
        }
        it->ka -= (size_t)bc[d] * (size_t)bc[4 + d];
        it->kb -= (size_t)bc[d] * (size_t)bc[8 + d];
        it->idx[d] = 0;
    }
}

void nn_ew_sq8(const int8_t *a, const int8_t *b, int8_t *out, const int32_t *bc, int op,
               int ref, int in_mul, int in_shift, int mul, int shift, int za, int zb,
               int zout)
{
    nn_bc_walk_t it;
    size_t k;
    const size_t n = nn_bc_start(&it, bc);
    for (k = 0; k < n; k++, nn_bc_next(&it, bc)) {
        int64_t va = a[it.ka];
        int64_t vb = b[it.kb];
        if (op == 2) {
            out[k] = clip8(rnorm64((va - za) * (vb - zb) * mul, shift) + zout);
            continue;
        }
        if (ref == 0) {
            vb = rnorm64(vb * in_mul, in_shift);
        } else {
            va = rnorm64(va * in_mul, in_shift);
        }
        out[k] = clip8(rnorm64((op == 1 ? va - vb : va + vb) * mul, shift));
    }
}

void nn_resize_nearest(const void *in, void *out, int c, int h, int w, int oh, int ow,
                       const int32_t *iy, const int32_t *ix, int esize)
{
    int ch, y, x;
    const char *src = (const char *)in;
    char *dst = (char *)out;
    for (ch = 0; ch < c; ch++) {
        for (y = 0; y < oh; y++) {
            const char *row = src + ((size_t)ch * h + (size_t)iy[y]) * (size_t)w * esize;
            for (x = 0; x < ow; x++) {
                memcpy(dst, row + (size_t)ix[x] * esize, (size_t)esize);
                dst += esize;
            }
        }
    }
}

static int64_t rs_load(const void *p, size_t i, int esize)
{
    return esize == 1 ? (int64_t)((const int8_t *)p)[i] : (int64_t)((const int16_t *)p)[i];
}

void nn_resize_bilinear(const void *in, void *out, int c, int h, int w, int oh, int ow,
                        const int32_t *y0, const int32_t *y1, const int32_t *wy,
                        const int32_t *x0, const int32_t *x1, const int32_t *wx, int frac,
                        int esize)
{
    const int64_t one = (int64_t)1 << frac;
    int ch, y, x;
    size_t k = 0;
    for (ch = 0; ch < c; ch++) {
        const size_t base = (size_t)ch * h * w;
        for (y = 0; y < oh; y++) {
            const size_t r0 = base + (size_t)y0[y] * w, r1 = base + (size_t)y1[y] * w;
            for (x = 0; x < ow; x++, k++) {
                const int64_t t = (one - wx[x]) * rs_load(in, r0 + x0[x], esize) +
                                  wx[x] * rs_load(in, r0 + x1[x], esize);
                const int64_t u = (one - wx[x]) * rs_load(in, r1 + x0[x], esize) +
                                  wx[x] * rs_load(in, r1 + x1[x], esize);
                const int64_t v = rnorm64((one - wy[y]) * t + wy[y] * u, 2 * frac);
                if (esize == 1) {
                    ((int8_t *)out)[k] = (int8_t)v;
                } else {
                    ((int16_t *)out)[k] = (int16_t)v;
                }
            }
        }
    }
}

void nn_slice(const void *in, void *out, const int32_t *g, int esize)
{
    int i0, i1, i2, i3;
    const char *src = (const char *)in;
    char *dst = (char *)out;
    for (i0 = 0; i0 < g[0]; i0++) {
        for (i1 = 0; i1 < g[1]; i1++) {
            for (i2 = 0; i2 < g[2]; i2++) {
                for (i3 = 0; i3 < g[3]; i3++) {
                    const long k = (long)g[8] + (long)i0 * g[4] + (long)i1 * g[5] +
                                   (long)i2 * g[6] + (long)i3 * g[7];
                    memcpy(dst, src + k * esize, (size_t)esize);
                    dst += esize;
                }
            }
        }
    }
}
/* ==== end of issue 17 (branch elt) ============================================================ */

void nn_pad(const void *in, void *out, const int32_t *in_shape, const int32_t *out_shape,
            const int32_t *maps, int value, size_t esize)
{
    const int32_t *m[5];
    size_t stride[5];
    size_t o = 0;
    int a, i0, i1, i2, i3, i4;
    m[0] = maps;
    for (a = 1; a < 5; a++) {
        m[a] = m[a - 1] + out_shape[a - 1];
    }
    stride[4] = 1;
    for (a = 3; a >= 0; a--) {
        stride[a] = stride[a + 1] * (size_t)in_shape[a + 1];
    }
    for (i0 = 0; i0 < out_shape[0]; i0++) {
        for (i1 = 0; i1 < out_shape[1]; i1++) {
            for (i2 = 0; i2 < out_shape[2]; i2++) {
                for (i3 = 0; i3 < out_shape[3]; i3++) {
                    for (i4 = 0; i4 < out_shape[4]; i4++, o++) {
                        const int32_t s0 = m[0][i0], s1 = m[1][i1], s2 = m[2][i2];
                        const int32_t s3 = m[3][i3], s4 = m[4][i4];
                        int v = value;
                        if (s0 >= 0 && s1 >= 0 && s2 >= 0 && s3 >= 0 && s4 >= 0) {
                            const size_t at = (size_t)s0 * stride[0] + (size_t)s1 * stride[1] +
                                              (size_t)s2 * stride[2] + (size_t)s3 * stride[3] +
                                              (size_t)s4;
                            v = esize == 1 ? ((const int8_t *)in)[at] : ((const int16_t *)in)[at];
                        }
                        if (esize == 1) {
                            ((int8_t *)out)[o] = (int8_t)v;
                        } else {
                            ((int16_t *)out)[o] = (int16_t)v;
                        }
                    }
                }
            }
        }
    }
}

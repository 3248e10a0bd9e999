/*
 * nn_float.c - float layers of nnshell's portable C runtime (see nn_float.h, docs/FLOAT16.md).
 */
#include <string.h>
#include "nn_float.h"

uint16_t nn_f32_to_bf16(float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) {
        return (uint16_t)(((u >> 16) & 0x8000u) | 0x7FC0u); /* NaN stays NaN */
    }
    u += 0x7FFFu + ((u >> 16) & 1u); /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

float nn_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float v;
    memcpy(&v, &u, 4);
    return v;
}

static uint32_t rne_shift(uint32_t m, int s)
{
    uint32_t r = m >> s;
    uint32_t rem = m & ((1u << s) - 1u);
    uint32_t half = 1u << (s - 1);
    if (rem > half || (rem == half && (r & 1u))) {
        r++;
    }
    return r;
}

uint16_t nn_f32_to_f16(float v)
{
    uint32_t u, ax, sign, e;
    memcpy(&u, &v, 4);
    sign = (u >> 16) & 0x8000u;
    ax = u & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) {
        return (uint16_t)(sign | 0x7E00u);
    }
    if (ax >= 0x47800000u) { /* 65536 and above (and inf): infinity */
        return (uint16_t)(sign | 0x7C00u);
    }
    e = ax >> 23;
    if (e < 102u) { /* below 2^-25: zero */
        return (uint16_t)sign;
    }
    if (e < 113u) { /* a float16 subnormal: round m * 2^(e-126) */
        return (uint16_t)(sign | rne_shift((ax & 0x7FFFFFu) | 0x800000u, (int)(126u - e)));
    }
    /* normal: the carry of the rounding may reach the exponent, even infinity (RNE) */
    return (uint16_t)(sign | rne_shift(((e - 112u) << 23) | (ax & 0x7FFFFFu), 13));
}

float nn_f16_to_f32(uint16_t h)
{
    uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    uint32_t e = ((uint32_t)h >> 10) & 0x1Fu;
    uint32_t m = (uint32_t)h & 0x3FFu;
    uint32_t u;
    float v;
    if (e == 0u) {
        v = (float)m * 5.9604644775390625e-8f; /* m * 2^-24, exact */
        return sign ? -v : v;
    }
    if (e == 31u) {
        u = sign | 0x7F800000u | (m << 13);
    } else {
        u = sign | ((e + 112u) << 23) | (m << 13);
    }
    memcpy(&v, &u, 4);
    return v;
}

float nn_f_load(const void *p, int i, int t)
{
    const unsigned char *b = (const unsigned char *)p;
    if (t == NN_F32) {
        float v;
        memcpy(&v, b + 4 * (size_t)i, 4);
        return v;
    } else {
        uint16_t h;
        memcpy(&h, b + 2 * (size_t)i, 2);
        return t == NN_BF16 ? nn_bf16_to_f32(h) : nn_f16_to_f32(h);
    }
}

void nn_f_store(void *p, int i, int t, float v)
{
    unsigned char *b = (unsigned char *)p;
    v = v + 0.0f; /* a stored zero is +0 (-0 + +0 = +0), as in the executor */
    if (t == NN_F32) {
        memcpy(b + 4 * (size_t)i, &v, 4);
    } else {
        uint16_t h = t == NN_BF16 ? nn_f32_to_bf16(v) : nn_f32_to_f16(v);
        memcpy(b + 2 * (size_t)i, &h, 2);
    }
}

static float bits_f32(int32_t bits)
{
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

static float apply_act(const nn_f_act_t *act, float v)
{
    if (act == NULL || act->kind == NN_FACT_NONE) {
        return v;
    }
    if (act->kind == NN_FACT_RELU) {
        return v > 0.0f ? v : 0.0f;
    } else {
        float lo = bits_f32(act->lo_bits), hi = bits_f32(act->hi_bits);
        v = v > lo ? v : lo;
        return v < hi ? v : hi;
    }
}

static float conv_at(const nn_f_conv_t *p, const void *in, const void *w, const void *b, int co,
                     int y, int x)
{
    int cig = p->cin / p->group, cog = p->cout / p->group;
    int g = co / cog, ci, ky, kx;
    float acc = b != NULL ? nn_f_load(b, co, p->t) : 0.0f;
    for (ci = 0; ci < cig; ci++) {
        int c = g * cig + ci;
        for (ky = 0; ky < p->kh; ky++) {
            int iy = y * p->sh + ky * p->dh - p->pt;
            for (kx = 0; kx < p->kw; kx++) {
                int ix = x * p->sw + kx * p->dw - p->pl;
                float xv = 0.0f; /* a padded position reads +0.0 */
                float wv = nn_f_load(w, ((co * cig + ci) * p->kh + ky) * p->kw + kx, p->t);
                if (iy >= 0 && iy < p->h && ix >= 0 && ix < p->w) {
                    xv = nn_f_load(in, (c * p->h + iy) * p->w + ix, p->t);
                }
                acc += wv * xv;
            }
        }
    }
    return acc;
}

void nn_f_conv(const void *in, void *out, const nn_f_conv_t *p, const nn_f_pool_t *pool,
               const nn_f_act_t *act, const void *w, const void *b)
{
    int co, y, x;
    int oh = pool != NULL ? pool->oh : p->oh, ow = pool != NULL ? pool->ow : p->ow;
    for (co = 0; co < p->cout; co++) {
        for (y = 0; y < oh; y++) {
            for (x = 0; x < ow; x++) {
                float v;
                if (pool == NULL) {
                    v = conv_at(p, in, w, b, co, y, x);
                } else {
                    int py, px, any = 0;
                    v = 0.0f;
                    for (py = 0; py < pool->kh; py++) {
                        int cy = y * pool->sh + py * pool->dh - pool->pt;
                        for (px = 0; px < pool->kw; px++) {
                            int cx = x * pool->sw + px * pool->dw - pool->pl;
                            float c;
                            if (cy < 0 || cy >= p->oh || cx < 0 || cx >= p->ow) {
                                continue; /* pool padding is -inf: never the max */
                            }
                            c = conv_at(p, in, w, b, co, cy, cx);
                            if (!any || c > v) {
                                v = c;
                            }
                            any = 1;
                        }
                    }
                }
                nn_f_store(out, (co * oh + y) * ow + x, p->t, apply_act(act, v));
            }
        }
    }
}

void nn_f_linear(const void *in, void *out, int nin, int nout, int t, const void *w, const void *b,
                 const nn_f_act_t *act)
{
    int o, k;
    for (o = 0; o < nout; o++) {
        float acc = b != NULL ? nn_f_load(b, o, t) : 0.0f;
        for (k = 0; k < nin; k++) {
            acc += nn_f_load(w, o * nin + k, t) * nn_f_load(in, k, t);
        }
        nn_f_store(out, o, t, apply_act(act, acc));
    }
}

void nn_f_maxpool(const void *in, void *out, const nn_f_pool_t *pool, int t, const nn_f_act_t *act)
{
    int c, y, x, py, px;
    for (c = 0; c < pool->c; c++) {
        for (y = 0; y < pool->oh; y++) {
            for (x = 0; x < pool->ow; x++) {
                float v = 0.0f;
                int any = 0;
                for (py = 0; py < pool->kh; py++) {
                    int iy = y * pool->sh + py * pool->dh - pool->pt;
                    for (px = 0; px < pool->kw; px++) {
                        int ix = x * pool->sw + px * pool->dw - pool->pl;
                        float s;
                        if (iy < 0 || iy >= pool->h || ix < 0 || ix >= pool->w) {
                            continue;
                        }
                        s = nn_f_load(in, (c * pool->h + iy) * pool->w + ix, t);
                        if (!any || s > v) {
                            v = s;
                        }
                        any = 1;
                    }
                }
                nn_f_store(out, (c * pool->oh + y) * pool->ow + x, t, apply_act(act, v));
            }
        }
    }
}

void nn_f_act(const void *in, void *out, int n, int t, const nn_f_act_t *act)
{
    int i;
    for (i = 0; i < n; i++) {
        nn_f_store(out, i, t, apply_act(act, nn_f_load(in, i, t)));
    }
}

void nn_f_add(const void *a, const void *b, void *out, int n, int t, const nn_f_act_t *act)
{
    int i;
    for (i = 0; i < n; i++) {
        nn_f_store(out, i, t, apply_act(act, nn_f_load(a, i, t) + nn_f_load(b, i, t)));
    }
}

void nn_f_avgpool_global(const void *in, void *out, int c, int hw, int t)
{
    int k, i;
    for (k = 0; k < c; k++) {
        float acc = 0.0f;
        for (i = 0; i < hw; i++) {
            acc += nn_f_load(in, k * hw + i, t);
        }
        nn_f_store(out, k, t, acc / (float)hw);
    }
}

float nn_f_exp(float v)
{
    /* exact float32 constants (hexadecimal: no decimal rounding to disagree about) */
    const float log2e = 0x1.715476p+0f, ln2_hi = 0x1.62e4p-1f, ln2_lo = 0x1.7f7d1cp-20f;
    float t = v * log2e + 0.5f, kf, r, p;
    int32_t k;
    uint32_t bits;
    float scale;
    if (t < -126.0f) {
        t = -126.0f;
    }
    k = (int32_t)t;
    if ((float)k > t) {
        k--; /* floor */
    }
    kf = (float)k;
    r = (v - kf * ln2_hi) - kf * ln2_lo;
    p = 0x1.6c16c2p-10f; /* 1/720, 1/120, 1/24, 1/6 rounded to float32 */
    p = p * r + 0x1.111112p-7f;
    p = p * r + 0x1.555556p-5f;
    p = p * r + 0x1.555556p-3f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    bits = (uint32_t)(k + 127) << 23;
    memcpy(&scale, &bits, 4);
    return v < -87.0f ? 0.0f : p * scale;
}

void nn_f_softmax(const void *in, void *out, int rows, int n, int t)
{
    int row, j;
    for (row = 0; row < rows; row++) {
        int base = row * n;
        float m = nn_f_load(in, base, t), s = 0.0f;
        for (j = 1; j < n; j++) {
            float v = nn_f_load(in, base + j, t);
            m = v > m ? v : m;
        }
        for (j = 0; j < n; j++) {
            s += nn_f_exp(nn_f_load(in, base + j, t) - m);
        }
        for (j = 0; j < n; j++) {
            nn_f_store(out, base + j, t, nn_f_exp(nn_f_load(in, base + j, t) - m) / s);
        }
    }
}

void nn_f_copy(const void *in, void *out, int n, int t)
{
    memmove(out, in, (size_t)n * (t == NN_F32 ? 4u : 2u));
}

void nn_f_dequantize(const void *in, void *out, int n, int esize, int zero_point,
                     int32_t scale_bits, int t)
{
    float s = bits_f32(scale_bits);
    int i;
    for (i = 0; i < n; i++) {
        int q = esize == 1 ? ((const int8_t *)in)[i] : ((const int16_t *)in)[i];
        nn_f_store(out, i, t, (float)(q - zero_point) * s);
    }
}

void nn_f_quantize(const void *in, void *out, int n, int t, int32_t inv_scale_bits, int zero_point,
                   int qmin, int qmax, int esize)
{
    float inv = bits_f32(inv_scale_bits);
    float lo = (float)(qmin - zero_point), hi = (float)(qmax - zero_point + 1);
    int i;
    for (i = 0; i < n; i++) {
        float v = nn_f_load(in, i, t) * inv + 0.5f;
        int q;
        if (!(v == v)) {
            v = 0.0f; /* NaN */
        }
        v = v < lo ? lo : (v > hi ? hi : v);
        q = (int)v;
        if ((float)q > v) {
            q--; /* floor of a negative value */
        }
        q += zero_point;
        q = q < qmin ? qmin : (q > qmax ? qmax : q);
        if (esize == 1) {
            ((int8_t *)out)[i] = (int8_t)q;
        } else {
            ((int16_t *)out)[i] = (int16_t)q;
        }
    }
}

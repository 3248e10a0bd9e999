/*
 * nn_pow2.c - the POW2 integer kernels of nnshell's portable C target (see nn_pow2.h).
 * Plain C99: int64 accumulators, arithmetic right shifts, C truncating division.
 * Copied verbatim by `gen --target c` for POW2 graphs.
 */
#include "nn_pow2.h"

/* T[i] = round_half_up(2^30 * 2^(-i/256)), i = 0..256 (nnshell.fixed_pow2.EXP2_TABLE). */
static const int32_t nn_p2_exp2_table[257] = {
    1073741824, 1070838486, 1067942999, 1065055341, 1062175491, 1059303428,
    1056439131, 1053582579, 1050733751, 1047892626, 1045059183, 1042233401,
    1039415261, 1036604740, 1033801819, 1031006477, 1028218693, 1025438448,
    1022665720, 1019900489, 1017142735, 1014392438, 1011649578, 1008914134,
    1006186087, 1003465416, 1000752102, 998046124, 995347464, 992656100,
    989972014, 987295185, 984625594, 981963222, 979308048, 976660054,
    974019220, 971385527, 968758955, 966139485, 963527098, 960921775,
    958323496, 955732243, 953147997, 950570738, 948000448, 945437108,
    942880699, 940331203, 937788600, 935252872, 932724001, 930201967,
    927686753, 925178340, 922676710, 920181844, 917693724, 915212331,
    912737649, 910269657, 907808339, 905353676, 902905651, 900464244,
    898029440, 895601218, 893179563, 890764456, 888355878, 885953814,
    883558244, 881169153, 878786521, 876410331, 874040567, 871677210,
    869320244, 866969651, 864625413, 862287515, 859955938, 857630665,
    855311680, 852998965, 850692504, 848392279, 846098274, 843810471,
    841528855, 839253408, 836984114, 834720956, 832463917, 830212982,
    827968132, 825729353, 823496627, 821269938, 819049271, 816834607,
    814625932, 812423229, 810226483, 808035676, 805850792, 803671817,
    801498734, 799331526, 797170178, 795014675, 792865000, 790721137,
    788583072, 786450787, 784324269, 782203500, 780088465, 777979150,
    775875538, 773777614, 771685363, 769598769, 767517817, 765442492,
    763372778, 761308661, 759250125, 757197155, 755149737, 753107854,
    751071493, 749040637, 747015274, 744995386, 742980960, 740971982,
    738968435, 736970306, 734977579, 732990241, 731008277, 729031671,
    727060411, 725094480, 723133865, 721178552, 719228525, 717283772,
    715344277, 713410026, 711481005, 709557200, 707638598, 705725183,
    703816941, 701913860, 700015924, 698123120, 696235434, 694352853,
    692475362, 690602947, 688735596, 686873293, 685016026, 683163781,
    681316545, 679474303, 677637043, 675804750, 673977412, 672155015,
    670337545, 668524990, 666717336, 664914570, 663116678, 661323648,
    659535466, 657752119, 655973594, 654199878, 652430958, 650666822,
    648907455, 647152846, 645402981, 643657847, 641917433, 640181724,
    638450708, 636724373, 635002706, 633285695, 631573326, 629865587,
    628162466, 626463950, 624770026, 623080683, 621395908, 619715688,
    618040012, 616368866, 614702239, 613040119, 611382493, 609729349,
    608080675, 606436459, 604796689, 603161352, 601530438, 599903933,
    598281827, 596664106, 595050760, 593441776, 591837143, 590236848,
    588640881, 587049229, 585461881, 583878825, 582300049, 580725543,
    579155293, 577589290, 576027521, 574469975, 572916640, 571367506,
    569822560, 568281792, 566745190, 565212742, 563684439, 562160268,
    560640218, 559124278, 557612438, 556104685, 554601009, 553101399,
    551605844, 550114332, 548626854, 547143398, 545663953, 544188508,
    542717053, 541249576, 539786068, 538326517, 536870912
};

static int64_t p2_shift(int64_t v, int n)
{
    if (n > 0) {
        return (v + ((int64_t)1 << (n - 1))) >> n;
    }
    return n == 0 ? v : v * ((int64_t)1 << -n);
}

static int64_t p2_clip(int64_t v, int esize)
{
    const int64_t hi = esize == 1 ? 127 : 32767;
    return v < -hi - 1 ? -hi - 1 : (v > hi ? hi : v);
}

static int64_t p2_load(const void *p, size_t i, int esize)
{
    return esize == 1 ? (int64_t)((const int8_t *)p)[i] : (int64_t)((const int16_t *)p)[i];
}

/* v must already fit the container. */
static void p2_store(void *p, size_t i, int esize, int64_t v)
{
    if (esize == 1) {
        ((int8_t *)p)[i] = (int8_t)v;
    } else {
        ((int16_t *)p)[i] = (int16_t)v;
    }
}

/* ---- activations: function activations (nn_p2_act_t kinds NN_ACT_SIGMOID..NN_ACT_SWISH) ---- */
static int64_t p2_sigmoid_q15(int64_t x, int q)
{
    const int64_t e = nn_p2_exp_neg_q15(x < 0 ? -x : x, q);
    const int64_t p = ((int64_t)1 << 30) / (32768 + e);
    return x >= 0 ? p : 32768 - p;
}

static int64_t p2_fn_act(int64_t x, const nn_p2_act_t *a)
{
    const int qi = (int)a->lo;
    const int qo = (int)a->hi;
    switch (a->kind) {
    case NN_ACT_SIGMOID:
        return p2_shift(p2_sigmoid_q15(x, qi), 15 - qo);
    case NN_ACT_TANH: {
        const int64_t e = nn_p2_exp_neg_q15(2 * (x < 0 ? -x : x), qi);
        const int64_t y = p2_shift(((32768 - e) * 32768) / (32768 + e), 15 - qo);
        return x < 0 ? -y : y;
    }
    case NN_ACT_HSIGMOID: {
        int64_t t = p2_shift(x * a->alpha, qi) + a->beta;
        t = t < 0 ? 0 : (t > 32768 ? 32768 : t);
        return p2_shift(t, 15 - qo);
    }
    case NN_ACT_HSWISH: {
        const int64_t three = (int64_t)3 << qi;
        int64_t t = x + three;
        t = t < 0 ? 0 : (t > 2 * three ? 2 * three : t);
        return p2_shift(x * t * 5461, 2 * qi + 15 - qo);
    }
    case NN_ACT_SWISH:
        return p2_shift(x * p2_sigmoid_q15(x, qi), qi + 15 - qo);
    default:
        return x;
    }
}
/* ---- end of activations block ---- */

/* The activations in order, each result saturated (the executor stores after each one). */
static int64_t p2_acts(int64_t v, const nn_p2_act_t *acts, int nacts, int esize)
{
    int i;
    for (i = 0; i < nacts; i++) {
        const nn_p2_act_t *a = &acts[i];
        if (a->kind == NN_ACT_CLAMP) {
            v = v < a->lo ? a->lo : (v > a->hi ? a->hi : v);
        } else if (a->kind == NN_ACT_LEAKY && v < 0) {
            v = p2_shift(v * a->alpha, 15);
        } else if (a->kind >= NN_ACT_SIGMOID) {
            v = p2_fn_act(v, a);
        }
        v = p2_clip(v, esize);
    }
    return v;
}

/* sum w * shift_round(x, s) over the taps inside the map, for one code width (the compiler
 * unrolls each width on its own: no width test in the inner loop). */
#define NN_P2_DOT(T)                                                                               \
    do {                                                                                           \
        const T *xs = (const T *)in;                                                               \
        const T *ws = (const T *)cv->weights + w0;                                                 \
        for (ci = 0; ci < cg; ci++) {                                                              \
            const T *xc = xs + (size_t)(c0 + ci) * cv->in_h * cv->in_w;                            \
            const T *wc = ws + (size_t)ci * cv->kh * cv->kw;                                       \
            for (ky = ky0; ky < ky1; ky++) {                                                       \
                const T *xr = xc + (size_t)(iy0 + ky * cv->dh) * cv->in_w;                         \
                const T *wr = wc + (size_t)ky * cv->kw;                                            \
                if (cv->in_shift == 0) {                                                           \
                    for (kx = kx0; kx < kx1; kx++) {                                               \
                        acc += (int64_t)wr[kx] * xr[ix0 + kx * cv->dw];                            \
                    }                                                                              \
                } else {                                                                           \
                    for (kx = kx0; kx < kx1; kx++) {                                               \
                        acc += (int64_t)wr[kx] * p2_shift(xr[ix0 + kx * cv->dw], cv->in_shift);    \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* One convolution output (before any pool): clip(shift_round(acc, out_shift)), then the
 * pre-pool activations. Taps in the zero padding are skipped: they would add 0. */
static int64_t p2_conv_value(const void *in, const nn_p2_conv_t *cv, int co, int oy, int ox,
                             const nn_p2_act_t *pre, int npre)
{
    const int cg = cv->in_c / cv->group;
    const int c0 = (co / (cv->out_c / cv->group)) * cg;
    const int iy0 = oy * cv->sh - cv->pt;
    const int ix0 = ox * cv->sw - cv->pl;
    const size_t w0 = (size_t)co * cg * cv->kh * cv->kw;
    int64_t acc = 0;
    int ci, ky, kx, ky0, ky1, kx0, kx1;
    nn_tap_range(iy0, cv->dh, cv->kh, cv->in_h, &ky0, &ky1);
    nn_tap_range(ix0, cv->dw, cv->kw, cv->in_w, &kx0, &kx1);
    if (cv->esize == 1) {
        NN_P2_DOT(int8_t);
    } else {
        NN_P2_DOT(int16_t);
    }
    acc += p2_load(cv->bias, (size_t)co, cv->esize) * ((int64_t)1 << cv->bias_shift);
    return p2_acts(p2_clip(p2_shift(acc, cv->out_shift), cv->esize), pre, npre, cv->esize);
}

/* Where a pooling window reads: a map of codes, or a convolution computed on the fly. */
typedef struct {
    const void *in;
    const nn_p2_conv_t *cv;
    const nn_p2_act_t *pre;
    int npre;
    int h, w, esize;
} p2_src_t;

static int64_t p2_src_value(const p2_src_t *s, int c, int y, int x)
{
    if (s->cv != NULL) {
        return p2_conv_value(s->in, s->cv, c, y, x, s->pre, s->npre);
    }
    return p2_load(s->in, ((size_t)c * s->h + y) * s->w + x, s->esize);
}

static int64_t p2_src_read(const void *src, int c, int y, int x)
{
    return p2_src_value((const p2_src_t *)src, c, y, x);
}

/* Max over the positions inside the map, or shift_round(sum * floor(65536 / count), 16)
 * saturated (positions outside add 0; count from the descriptor's counting bounds). */
static int64_t p2_pool_window(const p2_src_t *s, const nn_pool_t *p, int c, int oy, int ox)
{
    int64_t v = 0;
    int32_t count = 0;
    nn_pool_window(s, p2_src_read, s->h, s->w, p, c, oy, ox, &v, &count);
    if (p->kind == NN_POOL_MAX) {
        return v;
    }
    return p2_clip(p2_shift(v * (65536 / count), 16), s->esize);
}

void nn_p2_conv(const void *in, void *out, const nn_p2_conv_t *cv, const nn_pool_t *pool,
                const nn_p2_act_t *pre, int npre, const nn_p2_act_t *post, int npost)
{
    size_t at = 0;
    int co, oy, ox;
    if (pool != NULL) {
        const p2_src_t s = {in, cv, pre, npre, cv->out_h, cv->out_w, cv->esize};
        for (co = 0; co < cv->out_c; co++) {
            for (oy = 0; oy < pool->oh; oy++) {
                for (ox = 0; ox < pool->ow; ox++) {
                    const int64_t v = p2_pool_window(&s, pool, co, oy, ox);
                    p2_store(out, at++, cv->esize, p2_acts(v, post, npost, cv->esize));
                }
            }
        }
        return;
    }
    for (co = 0; co < cv->out_c; co++) {
        for (oy = 0; oy < cv->out_h; oy++) {
            for (ox = 0; ox < cv->out_w; ox++) {
                const int64_t v = p2_conv_value(in, cv, co, oy, ox, pre, npre);
                p2_store(out, at++, cv->esize, p2_acts(v, post, npost, cv->esize));
            }
        }
    }
}

void nn_p2_linear(const void *in, void *out, int in_n, int out_n, int esize, const void *weights,
                  const void *bias, int in_shift, int bias_shift, int out_shift)
{
    int o, k;
    for (o = 0; o < out_n; o++) {
        const size_t w0 = (size_t)o * in_n;
        int64_t acc = p2_load(bias, (size_t)o, esize) * ((int64_t)1 << bias_shift);
        for (k = 0; k < in_n; k++) {
            acc += p2_load(weights, w0 + k, esize) *
                   p2_shift(p2_load(in, (size_t)k, esize), in_shift);
        }
        p2_store(out, (size_t)o, esize, p2_clip(p2_shift(acc, out_shift), esize));
    }
}

void nn_p2_pool(const void *in, void *out, int c, int h, int w, int esize, const nn_pool_t *pool,
                int out_shift)
{
    const p2_src_t s = {in, NULL, NULL, 0, h, w, esize}; /* a map of codes: no conv */
    size_t at = 0;
    int ch, oy, ox;
    for (ch = 0; ch < c; ch++) {
        for (oy = 0; oy < pool->oh; oy++) {
            for (ox = 0; ox < pool->ow; ox++) {
                const int64_t v = p2_pool_window(&s, pool, ch, oy, ox);
                p2_store(out, at++, esize, p2_clip(p2_shift(v, out_shift), esize));
            }
        }
    }
}

void nn_p2_global_max(const void *in, void *out, int c, int hw, int esize, int out_shift)
{
    int ch, i;
    for (ch = 0; ch < c; ch++) {
        int64_t best = p2_load(in, (size_t)ch * hw, esize);
        for (i = 1; i < hw; i++) {
            const int64_t v = p2_load(in, (size_t)ch * hw + i, esize);
            best = v > best ? v : best;
        }
        p2_store(out, (size_t)ch, esize, p2_clip(p2_shift(best, out_shift), esize));
    }
}

void nn_p2_global_avg(const void *in, void *out, int c, int hw, int esize, int out_shift)
{
    int ch, i;
    for (ch = 0; ch < c; ch++) {
        int64_t sum = 0;
        int64_t t;
        for (i = 0; i < hw; i++) {
            sum += p2_load(in, (size_t)ch * hw + i, esize);
        }
        t = (sum * 128) / hw; /* C division truncates toward zero */
        p2_store(out, (size_t)ch, esize, p2_clip(p2_shift(t, out_shift), esize));
    }
}

void nn_p2_add(const void *const *ins, int nin, void *out, const int8_t *in_shift, int out_shift,
               size_t n, int esize)
{
    size_t k;
    int i;
    for (k = 0; k < n; k++) {
        int64_t acc = 0;
        for (i = 0; i < nin; i++) {
            acc += p2_load(ins[i], k, esize) * ((int64_t)1 << in_shift[i]);
        }
        p2_store(out, k, esize, p2_clip(p2_shift(acc, out_shift), esize));
    }
}

void nn_p2_act(const void *in, void *out, size_t n, int esize, const nn_p2_act_t *acts, int nacts,
               int out_shift)
{
    size_t k;
    int i;
    for (k = 0; k < n; k++) {
        int64_t v = p2_load(in, k, esize);
        for (i = 0; i < nacts; i++) { /* saturated between activations, not after the last */
            const nn_p2_act_t *a = &acts[i];
            if (a->kind == NN_ACT_CLAMP) {
                v = v < a->lo ? a->lo : (v > a->hi ? a->hi : v);
            } else if (a->kind == NN_ACT_LEAKY && v < 0) {
                v = p2_shift(v * a->alpha, 15);
            } else if (a->kind >= NN_ACT_SIGMOID) { /* activations: function activations */
                v = p2_fn_act(v, a);
            }
            if (i + 1 < nacts) {
                v = p2_clip(v, esize);
            }
        }
        p2_store(out, k, esize, p2_clip(p2_shift(v, out_shift), esize));
    }
}

int64_t nn_p2_exp_neg_q15(int64_t d, int q)
{
    const int64_t u = p2_shift(d * 47274, q); /* d * 2^-q * log2(e) in Q15 */
    const int64_t k = u >> 15;
    const int64_t f = u & 0x7FFF;
    const int64_t lo = nn_p2_exp2_table[f >> 7];
    const int64_t hi = nn_p2_exp2_table[(f >> 7) + 1];
    const int64_t e30 = lo - p2_shift((lo - hi) * (f & 127), 7);
    if (15 + k > 62) {
        return 0;
    }
    return p2_shift(e30, (int)(15 + k));
}

void nn_p2_sigmoid(const void *in, void *out, size_t n, int in_esize, int out_esize, int q_in,
                   int q_out)
{
    size_t k;
    for (k = 0; k < n; k++) {
        const int64_t x = p2_load(in, k, in_esize);
        const int64_t e = nn_p2_exp_neg_q15(x < 0 ? -x : x, q_in);
        const int64_t p = ((int64_t)1 << 30) / (32768 + e); /* Q15 of 1 / (1 + e^-|x|) */
        const int64_t y = p2_shift(x >= 0 ? p : 32768 - p, 15 - q_out);
        p2_store(out, k, out_esize, p2_clip(y, out_esize));
    }
}

void nn_p2_tanh(const void *in, void *out, size_t n, int in_esize, int out_esize, int q_in,
                int q_out)
{
    size_t k;
    for (k = 0; k < n; k++) {
        const int64_t x = p2_load(in, k, in_esize);
        const int64_t e = nn_p2_exp_neg_q15(2 * (x < 0 ? -x : x), q_in);
        const int64_t t = ((32768 - e) * 32768) / (32768 + e); /* Q15 of tanh |x| */
        const int64_t y = p2_shift(t, 15 - q_out);
        p2_store(out, k, out_esize, p2_clip(x < 0 ? -y : y, out_esize));
    }
}

void nn_p2_softmax(const void *in, int16_t *out, int outer, int len, int inner, int esize,
                   int q_in)
{
    int o, j, i;
    for (o = 0; o < outer; o++) {
        for (i = 0; i < inner; i++) {
            const size_t base = (size_t)o * len * inner + i;
            int64_t best = p2_load(in, base, esize);
            int64_t sum = 0;
            for (j = 1; j < len; j++) {
                const int64_t v = p2_load(in, base + (size_t)j * inner, esize);
                best = v > best ? v : best;
            }
            for (j = 0; j < len; j++) {
                sum += nn_p2_exp_neg_q15(best - p2_load(in, base + (size_t)j * inner, esize), q_in);
            }
            for (j = 0; j < len; j++) {
                const size_t at = base + (size_t)j * inner;
                const int64_t e = nn_p2_exp_neg_q15(best - p2_load(in, at, esize), q_in);
                const int64_t y = (e * 32768) / sum;
                out[at] = (int16_t)(y > 32767 ? 32767 : y);
            }
        }
    }
}

void nn_p2_concat(const void *const *ins, int nin, void *out, const int32_t *block,
                  const int8_t *shift, int outer, int esize)
{
    size_t at = 0;
    int o, i, k;
    for (o = 0; o < outer; o++) {
        for (i = 0; i < nin; i++) {
            const size_t base = (size_t)o * block[i];
            for (k = 0; k < block[i]; k++) {
                const int64_t v = p2_load(ins[i], base + k, esize);
                p2_store(out, at++, esize, p2_clip(p2_shift(v, shift[i]), esize));
            }
        }
    }
}

/* One transposed-convolution output: sum w * shift_round(x, in_shift) over the taps with
 * i * s + k * d == o + p, for one code width. */
#define NN_P2_TDOT(T)                                                                              \
    do {                                                                                           \
        const T *xg = (const T *)in + (size_t)c0 * plane;                                          \
        const T *ws = (const T *)cv->weights + w0;                                                 \
        for (ky = 0; ky < cv->kh; ky++) {                                                          \
            const int ty = oy + cv->pt - ky * cv->dh;                                              \
            if (ty < 0 || ty % cv->sh != 0 || ty / cv->sh >= cv->in_h) {                           \
                continue;                                                                          \
            }                                                                                      \
            for (kx = 0; kx < cv->kw; kx++) {                                                      \
                const int tx = ox + cv->pl - kx * cv->dw;                                          \
                const T *x;                                                                        \
                const T *wk;                                                                       \
                if (tx < 0 || tx % cv->sw != 0 || tx / cv->sw >= cv->in_w) {                       \
                    continue;                                                                      \
                }                                                                                  \
                x = xg + (size_t)(ty / cv->sh) * cv->in_w + tx / cv->sw;                           \
                wk = ws + (size_t)ky * cv->kw + kx;                                                \
                for (ci = 0; ci < cg; ci++) {                                                      \
                    acc += (int64_t)wk[(size_t)ci * cv->kh * cv->kw] *                             \
                           p2_shift(x[(size_t)ci * plane], cv->in_shift);                          \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    } while (0)

void nn_p2_conv_transpose(const void *in, void *out, const nn_p2_conv_t *cv)
{
    const int cg = cv->in_c / cv->group;
    const int mg = cv->out_c / cv->group;
    const size_t plane = (size_t)cv->in_h * cv->in_w;
    size_t at = 0;
    int co, oy, ox, ci, ky, kx;
    for (co = 0; co < cv->out_c; co++) {
        const int c0 = (co / mg) * cg;
        const size_t w0 = (size_t)co * cg * cv->kh * cv->kw;
        const int64_t b = p2_load(cv->bias, (size_t)co, cv->esize) * ((int64_t)1 << cv->bias_shift);
        for (oy = 0; oy < cv->out_h; oy++) {
            for (ox = 0; ox < cv->out_w; ox++) {
                int64_t acc = 0;
                if (cv->esize == 1) {
                    NN_P2_TDOT(int8_t);
                } else {
                    NN_P2_TDOT(int16_t);
                }
                const int64_t v = p2_clip(p2_shift(acc + b, cv->out_shift), cv->esize);
                p2_store(out, at++, cv->esize, v);
            }
        }
    }
}

/* ==== issue 17 (branch elt): broadcasting elementwise, channel affine ======================== */

void nn_p2_ew(const void *a, const void *b, void *out, const int32_t *bc, int op, int sa,
              int sb, int out_shift, int esize)
{
    nn_bc_walk_t it;
    size_t k;
    const size_t n = nn_bc_start(&it, bc);
    for (k = 0; k < n; k++, nn_bc_next(&it, bc)) {
        const int64_t va = p2_load(a, it.ka, esize) * ((int64_t)1 << sa);
        const int64_t vb = p2_load(b, it.kb, esize) * ((int64_t)1 << sb);
        const int64_t acc = op == 2 ? va * vb : (op == 1 ? va - vb : va + vb);
        p2_store(out, k, esize, p2_clip(p2_shift(acc, out_shift), esize));
    }
}

void nn_p2_affine(const void *in, void *out, int c, int inner, const void *w, const void *b,
                  int in_shift, int bias_shift, int out_shift, int esize)
{
    int ch, i;
    size_t k = 0;
    for (ch = 0; ch < c; ch++) {
        const int64_t wc = p2_load(w, (size_t)ch, esize);
        const int64_t bc = p2_load(b, (size_t)ch, esize) * ((int64_t)1 << bias_shift);
        for (i = 0; i < inner; i++, k++) {
            const int64_t acc = p2_shift(p2_load(in, k, esize), in_shift) * wc + bc;
            p2_store(out, k, esize, p2_clip(p2_shift(acc, out_shift), esize));
        }
    }
}
/* ==== end of issue 17 (branch elt) ============================================================ */

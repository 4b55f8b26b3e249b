// weft/ops/cpu/attention.hpp: the CPU kernels behind scaled_dot_product_attention
// (ops/attention.hpp), FlashAttention-2's blocked algorithm with weft's own block products.
//
//   cpu::attention::Problem<float> p = ...;      // inputs, masks, dropout, block sizes
//   cpu::attention::forward(p, out, lse);         // out [B, H, L, Ev], lse [B, H, L]
//   cpu::attention::backward(p, grad_out, out, lse, dq, dk, dv);
//
// Forward: one task per (batch, head, block of queries). It multiplies its queries with one
// block of keys at a time into a [block_q, block_k] score block, updates each row's running
// maximum and sum (online softmax), and accumulates P·V into a [block_q, Ev] buffer, so no
// [L, S] matrix ever exists. Only the output and each row's logsumexp are kept.
//
// Backward: one task per (batch, head), or per (batch, head, group of key blocks) when there
// are fewer heads than threads. For each key block it walks the query blocks, recomputes
// P = exp(S - logsumexp) and accumulates dV += Pᵀ·dO, dS = P ∘ (dO·Vᵀ - rowsum(dO ∘ O)),
// dK += dSᵀ·Q·scale and dQ += dS·K·scale. dK and dV of a key block belong to one task; dQ is
// summed over the key groups afterwards, so no two threads ever write the same element.
//
// The block products are not BLAS calls: a call per 96x256 block costs OpenBLAS its packing
// and its thread hand-off, and OpenBLAS must not start its own threads inside weft's. Instead
// each operand that plays the right-hand side of a product is packed once per (batch, head)
// into panels of NR columns ([k, NR] rows, contiguous), and a 6 x NR register tile (12
// vector accumulators) runs over them. On 96 x 256 x 64 blocks it measured 45-85 GFLOP/s on
// one core of the (shared, noisy) Zen 3 development machine, where OpenBLAS's sgemm on the
// same blocks measured 40-57. Left-hand sides are read in place with any row and column step
// (Pᵀ and dSᵀ are the same buffers as P and dS).
//
// Padding: the key count and the head dimensions are rounded up to NR, the padded keys masked
// (-inf) and the padded elements zero, so every tile is whole in its columns; a product's rows
// end in a narrower tile instead.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "../../core/philox.hpp"
#include "../../core/tensor.hpp"
#include "../../exec/cpu/thread_pool.hpp"
#include "../../expr/math.hpp"

namespace weft::cpu::attention {

// ---- vectors -------------------------------------------------------------------------------

// SIMD registers in GCC/Clang's vector extension, so one source serves float and double: 32
// bytes with AVX, else 16 (SSE2, NEON). (A 32-byte vector without AVX would change the
// function-call ABI, and GCC warns about it.)
#if defined(__AVX__)
inline constexpr int vector_bytes = 32;
#else
inline constexpr int vector_bytes = 16;
#endif
template <class T>
struct VecOf {
    typedef T type __attribute__((vector_size(vector_bytes)));
};
template <class T>
using Vec = typename VecOf<T>::type;
template <class T>
inline constexpr int lanes = int(vector_bytes / sizeof(T));

// The register tile of the block products: MR rows by NR columns (two vectors).
inline constexpr int MR = 6;
template <class T>
inline constexpr index_t NR = 2 * lanes<T>;

template <class T>
WEFT_FORCE_INLINE Vec<T> load(const T* p) {
    Vec<T> v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
template <class T>
WEFT_FORCE_INLINE void store(T* p, Vec<T> v) {
    std::memcpy(p, &v, sizeof v);
}
// x - 0 is x exactly (-0 included), so this folds into one broadcast where x + 0 would not.
template <class T>
WEFT_FORCE_INLINE Vec<T> splat(T x) {
    return x - Vec<T>{};
}

// a * b + c with one rounding. Without -ffp-contract=fast (weft compiles as ISO C++), GCC
// keeps a * b + c as two instructions, which halves the products' speed.
WEFT_FORCE_INLINE Vec<float> fmadd(Vec<float> a, Vec<float> b, Vec<float> c) {
#if defined(__FMA__) && defined(__AVX__)
    return _mm256_fmadd_ps(a, b, c);
#else
    return a * b + c;
#endif
}
WEFT_FORCE_INLINE Vec<double> fmadd(Vec<double> a, Vec<double> b, Vec<double> c) {
#if defined(__FMA__) && defined(__AVX__)
    return _mm256_fmadd_pd(a, b, c);
#else
    return a * b + c;
#endif
}

// max(a, b) and min(a, b) of each lane; a NaN in b comes through (the x86 rule for the second
// operand), which the generic form keeps too. One instruction where a ?: would be a blend.
WEFT_FORCE_INLINE Vec<float> vmax(Vec<float> a, Vec<float> b) {
#if defined(__AVX__)
    return _mm256_max_ps(a, b);
#else
    return a > b ? a : b;
#endif
}
WEFT_FORCE_INLINE Vec<double> vmax(Vec<double> a, Vec<double> b) {
#if defined(__AVX__)
    return _mm256_max_pd(a, b);
#else
    return a > b ? a : b;
#endif
}
WEFT_FORCE_INLINE Vec<float> vmin(Vec<float> a, Vec<float> b) {
#if defined(__AVX__)
    return _mm256_min_ps(a, b);
#else
    return a < b ? a : b;
#endif
}

// exp of each lane: Cephes' expf (range reduction by ln 2, degree-6 polynomial; within
// 1 ulp of std::exp on [-87, 0]). Arguments below -87.34, -inf included, give exactly 0: a
// masked score contributes nothing; NaN stays NaN. <cmath>'s exp does not vectorize under ISO
// C++ flags.
WEFT_FORCE_INLINE Vec<float> exp_vec(Vec<float> x) {
    using V = Vec<float>;
    using I = Vec<std::int32_t>;
    const V lo = splat(-87.33654f);
    const V xc = vmin(splat(88.0f), vmax(lo, x));
    const V kf = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln 2)
    const V p = math::detail::exp_remainder(xc, kf);
    const I k = __builtin_convertvector(kf, I);
    const V y = p * std::bit_cast<V>((k + 127) << 23);
    return std::bit_cast<V>(std::bit_cast<I>(y) & ~I(x < lo));  // below the range: +0
}

// x[i] = exp(x[i] - shift) for n (a multiple of NR) elements; returns their sum.
inline float exp_shift_sum(float* x, index_t n, float shift) {
    using V = Vec<float>;
    constexpr int W = lanes<float>;
    V acc0{}, acc1{};
    const V sh = splat(shift);
    for (index_t i = 0; i < n; i += 2 * W) {
        const V e0 = exp_vec(load(x + i) - sh), e1 = exp_vec(load(x + i + W) - sh);
        store(x + i, e0);
        store(x + i + W, e1);
        acc0 += e0;
        acc1 += e1;
    }
    acc0 += acc1;
    float s = 0;
    for (int l = 0; l < W; ++l) s += acc0[l];
    return s;
}
inline double exp_shift_sum(double* x, index_t n, double shift) {
    double s = 0;
    for (index_t i = 0; i < n; ++i) s += (x[i] = std::exp(x[i] - shift));
    return s;
}

// The largest of n (a multiple of NR) elements.
template <class T>
T row_max(const T* x, index_t n) {
    using V = Vec<T>;
    constexpr int W = lanes<T>;
    V m0 = splat(-std::numeric_limits<T>::infinity()), m1 = m0;
    for (index_t i = 0; i < n; i += 2 * W) {
        m0 = vmax(m0, load(x + i));
        m1 = vmax(m1, load(x + i + W));
    }
    m0 = vmax(m0, m1);
    T m = m0[0];
    for (int l = 1; l < W; ++l) m = std::max(m, T(m0[l]));
    return m;
}

// ---- block products ------------------------------------------------------------------------

// f(integral_constant<int, 0>), ..., f(integral_constant<int, N-1>): an unrolled loop that
// needs no pragma (GCC keeps a loop over the rows at -O2, and the accumulators then live in
// memory instead of registers).
template <class F, int... I>
WEFT_FORCE_INLINE void unrolled(std::integer_sequence<int, I...>, F&& f) {
    (f(std::integral_constant<int, I>{}), ...);
}

// C[Rows, NR] (+)= A[Rows, k] · B[k, NR], where A(r, p) = a[r * ars + p * acs] and B is one
// packed panel (row p at b + p * NR). The accumulators stay in registers for the whole k loop.
template <class T, int Rows, bool Accumulate>
void tile(index_t k, const T* a, index_t ars, index_t acs, const T* b, T* c, index_t ldc) {
    using V = Vec<T>;
    constexpr int W = lanes<T>;
    constexpr auto rows = std::make_integer_sequence<int, Rows>{};
    V acc[Rows][2];
    // Not `Accumulate ? load(...) : V{}`: nvcc's front end folds that into a vector constant it
    // cannot emit ("unsupported aggregate constant"), and CUDA tests instantiate this as reference.
    unrolled(rows, [&](auto r) {
        if constexpr (Accumulate) {
            acc[r][0] = load(c + r * ldc);
            acc[r][1] = load(c + r * ldc + W);
        } else {
            acc[r][0] = acc[r][1] = splat(T(0));
        }
    });
    for (index_t p = 0; p < k; ++p) {
        const V b0 = load(b + p * 2 * W), b1 = load(b + p * 2 * W + W);
        const T* ap = a + p * acs;
        unrolled(rows, [&](auto r) {
            const V ar = splat(ap[r * ars]);
            acc[r][0] = fmadd(ar, b0, acc[r][0]);
            acc[r][1] = fmadd(ar, b1, acc[r][1]);
        });
    }
    unrolled(rows, [&](auto r) {
        store(c + r * ldc, acc[r][0]);
        store(c + r * ldc + W, acc[r][1]);
    });
}

// C[m, n] (+)= A[m, k] · B[k, n] for n a multiple of NR. A(r, p) = a[r * ars + p * acs]; B is
// packed: panel t (columns t*NR ... t*NR + NR-1) starts at b + t * panel_stride, NR per row.
// C is row-major with leading dimension ldc. Each panel stays in L1 while every row tile of A
// passes over it.
template <class T, bool Accumulate>
void gemm_panels(index_t m, index_t n, index_t k, const T* a, index_t ars, index_t acs, const T* b,
                 index_t panel_stride, T* c, index_t ldc) {
    constexpr index_t nr = NR<T>;
    const index_t full = m - m % MR;
    for (index_t t = 0; t < n / nr; ++t) {
        const T* bt = b + t * panel_stride;
        T* ct = c + t * nr;
        for (index_t r = 0; r < full; r += MR) tile<T, MR, Accumulate>(k, a + r * ars, ars, acs, bt, ct + r * ldc, ldc);
        const T* ar = a + full * ars;
        T* cr = ct + full * ldc;
        switch (m - full) {
            case 1: tile<T, 1, Accumulate>(k, ar, ars, acs, bt, cr, ldc); break;
            case 2: tile<T, 2, Accumulate>(k, ar, ars, acs, bt, cr, ldc); break;
            case 3: tile<T, 3, Accumulate>(k, ar, ars, acs, bt, cr, ldc); break;
            case 4: tile<T, 4, Accumulate>(k, ar, ars, acs, bt, cr, ldc); break;
            case 5: tile<T, 5, Accumulate>(k, ar, ars, acs, bt, cr, ldc); break;
            default: break;
        }
    }
}

// Packs B[k, n] with B(p, j) = src[p * sk + j * sn] (p < k, j < n; zero up to k_pad, n_pad)
// into n_pad / NR panels of [k_pad, NR], each panel_stride = k_pad * NR elements apart.
template <class T>
void pack_panels(T* dst, index_t k, index_t k_pad, index_t n, index_t n_pad, const T* src, index_t sk,
                 index_t sn, T scale = T(1)) {
    constexpr index_t nr = NR<T>;
    for (index_t t = 0; t < n_pad / nr; ++t) {
        T* panel = dst + t * k_pad * nr;
        const index_t j0 = t * nr, width = std::clamp<index_t>(n - j0, 0, nr);
        for (index_t p = 0; p < k_pad; ++p) {
            T* row = panel + p * nr;
            if (p < k) {
                const T* s = src + p * sk + j0 * sn;
                for (index_t j = 0; j < width; ++j) row[j] = scale * s[j * sn];
                for (index_t j = width; j < nr; ++j) row[j] = T(0);
            } else {
                for (index_t j = 0; j < nr; ++j) row[j] = T(0);
            }
        }
    }
}

// Copies a strided [rows, cols] matrix into a dense one (leading dimension ld), times scale.
template <class T>
void copy_rows(T* dst, index_t ld, index_t rows, index_t cols, const T* src, index_t rs, index_t cs, T scale) {
    for (index_t r = 0; r < rows; ++r) {
        const T* s = src + r * rs;
        T* d = dst + r * ld;
        for (index_t c = 0; c < cols; ++c) d[c] = scale * s[c * cs];
    }
}

inline index_t round_up(index_t x, index_t m) { return (x + m - 1) / m * m; }

// ---- the problem ---------------------------------------------------------------------------

// One call, as the kernels read it: the inputs (CPU views of any strides), the masks, the
// dropout stream and the block sizes. ops/attention.hpp validates and fills it.
template <class T>
struct Problem {
    Tensor<T, 4> q, k, v;               // [B, H, L, E], [B, H, S, E], [B, H, S, Ev]
    Tensor<T, 2> mask;                  // [L, S] additive, or undefined
    Tensor<T, 3> mask_batched;          // [B*H | B | 1, L, S] additive, or undefined
    Tensor<bool, 2> key_padding;        // [B, S], true = ignore the key, or undefined
    bool causal = false;
    T scale = T(1);
    double dropout = 0;                 // probability of zeroing an attention weight
    std::uint64_t seed = 0, offset = 0; // Philox key and first counter of the dropout mask
    index_t block_q = 0, block_k = 0;   // 0: the defaults below

    index_t batch() const { return q.size(0); }
    index_t heads() const { return q.size(1); }
    index_t queries() const { return q.size(2); }
    index_t keys() const { return k.size(2); }
    index_t qk_dim() const { return q.size(3); }
    index_t v_dim() const { return v.size(3); }
};

// Defaults measured on a Zen 3 core (512 KiB L2) with 12 heads of 64 at L = S = 1024: a
// 96 x 256 score block (96 KiB in float) plus the 256 keys' K and V panels (128 KiB) stay in L2.
inline constexpr index_t default_block_q = 96;
inline constexpr index_t default_block_k = 256;

// What a kernel derives from a Problem: padded extents, block sizes, mask pointers.
template <class T>
struct Plan {
    static constexpr T neg_inf = -std::numeric_limits<T>::infinity();

    index_t B, H, L, S, E, Ev;
    index_t Sp, Ep, Evp;  // S, E, Ev rounded up to NR
    index_t bq, bk;       // bk a multiple of NR
    T scale;
    bool causal;
    // masks
    const T* mask = nullptr;
    index_t mask_rs = 0, mask_cs = 0;
    const T* mask3 = nullptr;
    index_t mask3_bs = 0, mask3_rs = 0, mask3_cs = 0;
    int mask3_mode = 0;              // 0: one [L, S] for all; 1: per batch; 2: per (batch, head)
    std::vector<T> key_bias;         // [B, Sp]: 0, or -inf for padding keys and j >= S
    bool key_bias_needed = false;    // some key < S is padding
    // dropout
    bool dropout = false;
    std::uint32_t keep_below = 0;    // a 24-bit draw below this keeps the weight
    T keep_scale = T(1);             // 1 / (1 - p), or 0 when p = 1
    std::uint64_t seed = 0, offset = 0, row_blocks = 0;

    explicit Plan(const Problem<T>& p)
        : B(p.batch()), H(p.heads()), L(p.queries()), S(p.keys()), E(p.qk_dim()), Ev(p.v_dim()) {
        constexpr index_t nr = NR<T>;
        Sp = round_up(S, nr);
        Ep = round_up(E, nr);
        Evp = round_up(Ev, nr);
        bq = std::max<index_t>(1, p.block_q > 0 ? p.block_q : default_block_q);
        bk = round_up(std::max<index_t>(1, p.block_k > 0 ? p.block_k : default_block_k), nr);
        scale = p.scale;
        causal = p.causal;
        if (p.mask.defined()) {
            mask = p.mask.data();
            mask_rs = p.mask.stride(0);
            mask_cs = p.mask.stride(1);
        }
        if (p.mask_batched.defined()) {
            const auto& m = p.mask_batched;
            mask3 = m.data();
            mask3_bs = m.stride(0);
            mask3_rs = m.stride(1);
            mask3_cs = m.stride(2);
            mask3_mode = m.size(0) == B * H ? 2 : (m.size(0) == B && B > 1 ? 1 : 0);
        }
        key_bias.assign(std::size_t(B * Sp), T(0));
        for (index_t b = 0; b < B; ++b) {
            T* kb = key_bias.data() + b * Sp;
            for (index_t j = S; j < Sp; ++j) kb[j] = neg_inf;
            if (p.key_padding.defined())
                for (index_t j = 0; j < S; ++j)
                    if (p.key_padding(b, j)) {
                        kb[j] = neg_inf;
                        key_bias_needed = true;
                    }
        }
        if (p.dropout > 0) {
            dropout = true;
            // uniform_float(w) < 1 - p, as ops/dropout.hpp decides, in integers: w's top 24 bits
            // are below ceil((1 - p) * 2^24).
            keep_below = std::uint32_t(std::ceil((1.0 - p.dropout) * 16777216.0));
            keep_scale = p.dropout < 1 ? T(1.0 / (1.0 - p.dropout)) : T(0);
            seed = p.seed;
            offset = p.offset;
            row_blocks = std::uint64_t((S + 3) / 4);
        }
    }

    index_t mask3_offset(index_t bh) const {
        return mask3_mode == 2 ? bh * mask3_bs : (mask3_mode == 1 ? (bh / H) * mask3_bs : 0);
    }

    // Adds every mask to the score block s[rows, cols] (leading dimension lds) of queries
    // i0 ... and keys j0 ... (cols a multiple of NR; keys >= S are padding).
    void apply_masks(T* s, index_t lds, index_t bh, index_t i0, index_t rows, index_t j0, index_t cols) const {
        const index_t real = std::clamp<index_t>(S - j0, 0, cols);
        const T* kb = key_bias.data() + (bh / H) * Sp + j0;
        const bool bias = key_bias_needed || real < cols;
        const T* m3 = mask3 ? mask3 + mask3_offset(bh) : nullptr;
        for (index_t r = 0; r < rows; ++r) {
            T* row = s + r * lds;
            const index_t i = i0 + r;
            if (bias)
                for (index_t c = 0; c < cols; ++c) row[c] += kb[c];
            if (mask) {
                const T* mr = mask + i * mask_rs + j0 * mask_cs;
                for (index_t c = 0; c < real; ++c) row[c] += mr[c * mask_cs];
            }
            if (m3) {
                const T* mr = m3 + i * mask3_rs + j0 * mask3_cs;
                for (index_t c = 0; c < real; ++c) row[c] += mr[c * mask3_cs];
            }
            if (causal)  // key j > query i is in the future
                for (index_t c = std::max<index_t>(0, i + 1 - j0); c < cols; ++c) row[c] = neg_inf;
        }
    }

    // z[c] = keep_scale, or 0 where the weight of (bh, query i, key j0 + c) is dropped. Element
    // (bh, i, j) draws word j % 4 of Philox block offset + (bh * L + i) * ceil(S / 4) + j / 4:
    // the mask is Tensor<float, 4>::rand({B, H, L, 4 * ceil(S / 4)}, gen) < 1 - p, cut to S keys.
    void dropout_row(T* z, index_t bh, index_t i, index_t j0, index_t cols) const {
        const std::uint64_t base = offset + std::uint64_t(bh * L + i) * row_blocks;
        for (index_t c = 0; c < cols; c += 4) {  // j0 and cols are multiples of 4
            const PhiloxBlock w = philox4x32_10(base + std::uint64_t(j0 + c) / 4, 0, seed);
            for (int l = 0; l < 4; ++l) z[c + l] = (w.w[l] >> 8) < keep_below ? keep_scale : T(0);
        }
    }

    // The first query block that sees key j0 under the causal mask (0 without it).
    index_t first_query_block(index_t j0) const { return causal ? j0 / bq : 0; }
    // One past the last key a query block [i0, i0 + rows) sees.
    index_t key_end(index_t i0, index_t rows) const { return causal ? std::min(S, i0 + rows) : S; }
};

// Per-thread scratch that keeps its memory between calls (a few hundred KiB per thread).
template <class T, int Slot>
T* scratch(std::size_t n) {
    thread_local std::vector<T> buf;
    if (buf.size() < n) buf.resize(n);
    return buf.data();
}

// ---- forward -------------------------------------------------------------------------------

// out [B, H, L, Ev] and lse [B, H, L] (dense, new) receive the attention and each query's
// log of the softmax denominator; +inf in lse marks a query with every key masked.
template <class T>
void forward(const Problem<T>& problem, const Tensor<T, 4>& out, const Tensor<T, 3>& lse) {
    const Plan<T> pl(problem);
    constexpr index_t nr = NR<T>;
    const index_t BH = pl.B * pl.H, L = pl.L, S = pl.S, E = pl.E, Ev = pl.Ev;
    if (BH == 0 || L == 0) return;
    const auto& q = problem.q;
    const auto& k = problem.k;
    const auto& v = problem.v;

    // Kᵀ as panels of keys ([E, NR] each) and V as panels of its columns ([Sp, NR] each).
    const index_t kt_size = pl.Sp * E, vp_size = pl.Evp * pl.Sp;
    auto kt = Tensor<T, 1>::empty({std::max<index_t>(1, BH * kt_size)});
    auto vp = Tensor<T, 1>::empty({std::max<index_t>(1, BH * vp_size)});
    parallel_for(0, BH, 1, [&](index_t b0, index_t b1) {
        for (index_t bh = b0; bh < b1; ++bh) {
            const index_t b = bh / pl.H, h = bh % pl.H;
            const T* kp = k.data() + b * k.stride(0) + h * k.stride(1);
            const T* vq = v.data() + b * v.stride(0) + h * v.stride(1);
            pack_panels(kt.data() + bh * kt_size, E, E, S, pl.Sp, kp, k.stride(3), k.stride(2));
            pack_panels(vp.data() + bh * vp_size, S, pl.Sp, Ev, pl.Evp, vq, v.stride(2), v.stride(3));
        }
    });

    const index_t nqb = (L + pl.bq - 1) / pl.bq;
    const index_t tasks = BH * nqb;
    WEFT_CHECK(tasks <= index_t(std::numeric_limits<int>::max()), "scaled_dot_product_attention: ", tasks,
               " query blocks are too many for one call");
    // Claimed one at a time, so causal blocks (whose work grows with the query index) balance.
    thread_pool().run(int(tasks), [&](int task) {
        const index_t bh = task / nqb, qb = task % nqb;
        const index_t b = bh / pl.H, h = bh % pl.H;
        const index_t i0 = qb * pl.bq, rows = std::min(pl.bq, L - i0), bk = pl.bk, Evp = pl.Evp;
        T* qbuf = scratch<T, 0>(std::size_t(rows * E));
        T* sbuf = scratch<T, 1>(std::size_t(rows * bk));
        T* obuf = scratch<T, 2>(std::size_t(rows * Evp));
        T* m = scratch<T, 3>(std::size_t(2 * rows));
        T* l = m + rows;
        copy_rows(qbuf, E, rows, E, q.data() + b * q.stride(0) + h * q.stride(1) + i0 * q.stride(2), q.stride(2),
                  q.stride(3), pl.scale);
        std::fill(obuf, obuf + rows * Evp, T(0));
        std::fill(m, m + rows, Plan<T>::neg_inf);
        std::fill(l, l + rows, T(0));

        const index_t end = pl.key_end(i0, rows);
        for (index_t j0 = 0; j0 < end; j0 += bk) {
            const index_t cols = std::min(bk, pl.Sp - j0);
            // s = (scale · Q) · Kᵀ for this block, then the masks.      // [rows, cols]
            gemm_panels<T, false>(rows, cols, E, qbuf, E, 1, kt.data() + bh * kt_size + j0 * E, E * nr, sbuf, bk);
            pl.apply_masks(sbuf, bk, bh, i0, rows, j0, cols);
            for (index_t r = 0; r < rows; ++r) {
                T* s = sbuf + r * bk;
                const T m_new = std::max(m[r], row_max(s, cols));
                if (m_new == Plan<T>::neg_inf) {  // every key so far masked: weights 0, not NaN
                    std::fill(s, s + cols, T(0));
                    continue;
                }
                const T alpha = std::exp(m[r] - m_new);  // rescales what earlier blocks summed
                l[r] = l[r] * alpha + exp_shift_sum(s, cols, m_new);
                m[r] = m_new;
                if (alpha != T(1)) {
                    T* o = obuf + r * Evp;
                    for (index_t c = 0; c < Evp; ++c) o[c] *= alpha;
                }
            }
            if (pl.dropout) {  // after the sums: dropout scales the weights, not the softmax
                T* z = scratch<T, 4>(std::size_t(cols));
                for (index_t r = 0; r < rows; ++r) {
                    pl.dropout_row(z, bh, i0 + r, j0, cols);
                    T* s = sbuf + r * bk;
                    for (index_t c = 0; c < cols; ++c) s[c] *= z[c];
                }
            }
            // o += p · V                                                // [rows, Evp]
            gemm_panels<T, true>(rows, Evp, cols, sbuf, bk, 1, vp.data() + bh * vp_size + j0 * nr, pl.Sp * nr, obuf,
                                 Evp);
        }
        T* orow = out.data() + b * out.stride(0) + h * out.stride(1) + i0 * out.stride(2);
        T* lrow = lse.data() + b * lse.stride(0) + h * lse.stride(1) + i0 * lse.stride(2);
        for (index_t r = 0; r < rows; ++r) {
            const bool seen = l[r] > T(0);
            const T inv = seen ? T(1) / l[r] : T(0);
            for (index_t c = 0; c < Ev; ++c) orow[r * out.stride(2) + c * out.stride(3)] = obuf[r * Evp + c] * inv;
            lrow[r * lse.stride(2)] = seen ? m[r] + std::log(l[r]) : std::numeric_limits<T>::infinity();
        }
    });
}

// ---- backward ------------------------------------------------------------------------------

// Gradients of sum(grad_out * attention) into dq, dk, dv (dense, new; any may be undefined
// when not needed). out and lse are what forward() wrote.
template <class T>
void backward(const Problem<T>& problem, const Tensor<T, 4>& grad_out, const Tensor<T, 4>& out,
              const Tensor<T, 3>& lse, const Tensor<T, 4>& dq, const Tensor<T, 4>& dk, const Tensor<T, 4>& dv) {
    const Plan<T> pl(problem);
    constexpr index_t nr = NR<T>;
    const index_t BH = pl.B * pl.H, L = pl.L, S = pl.S, E = pl.E, Ev = pl.Ev;
    const index_t Sp = pl.Sp, Ep = pl.Ep, Evp = pl.Evp, bq = pl.bq, bk = pl.bk;
    const bool need_q = dq.defined(), need_k = dk.defined(), need_v = dv.defined();
    if (BH == 0) return;
    const auto& q = problem.q;
    const auto& k = problem.k;
    const auto& v = problem.v;
    const auto& g = grad_out;

    // Key blocks are split into `groups` per head when heads alone cannot keep every thread
    // busy; each group then sums its own dQ, added up at the end.
    const index_t nkb = (S + bk - 1) / bk;
    const index_t want = 2 * index_t(num_threads());
    const index_t groups = std::clamp<index_t>((want + BH - 1) / BH, 1, std::max<index_t>(nkb, 1));
    std::vector<T> dq_parts;
    if (need_q && groups > 1) dq_parts.assign(std::size_t(BH * groups * L * Ep), T(0));
    const index_t tasks = BH * groups;
    WEFT_CHECK(tasks <= index_t(std::numeric_limits<int>::max()), "scaled_dot_product_attention: ", tasks,
               " backward tasks are too many for one call");

    thread_pool().run(int(tasks), [&](int task) {
        const index_t bh = task / groups, grp = task % groups;
        const index_t b = bh / pl.H, h = bh % pl.H;
        const index_t kb0 = nkb * grp / groups, kb1 = nkb * (grp + 1) / groups;

        // This head's operands, packed for the products below.
        const T* qh = q.data() + b * q.stride(0) + h * q.stride(1);
        const T* kh = k.data() + b * k.stride(0) + h * k.stride(1);
        const T* vh = v.data() + b * v.stride(0) + h * v.stride(1);
        const T* gh = g.data() + b * g.stride(0) + h * g.stride(1);
        const T* oh = out.data() + b * out.stride(0) + h * out.stride(1);
        const T* lh = lse.data() + b * lse.stride(0) + h * lse.stride(1);
        T* qs = scratch<T, 0>(std::size_t(L * E));          // scale · Q, rows          [L, E]
        T* qs_p = scratch<T, 1>(std::size_t(Ep * L));       // scale · Q, panels        [Ep/NR][L, NR]
        T* kt_p = scratch<T, 2>(std::size_t(Sp * E));       // Kᵀ, panels of keys       [Sp/NR][E, NR]
        T* k_p = scratch<T, 3>(std::size_t(Ep * Sp));       // K, panels                [Ep/NR][Sp, NR]
        T* vt_p = scratch<T, 4>(std::size_t(Sp * Ev));      // Vᵀ, panels of keys       [Sp/NR][Ev, NR]
        T* go = scratch<T, 5>(std::size_t(L * Ev));         // dO, rows                 [L, Ev]
        T* go_p = scratch<T, 6>(std::size_t(Evp * L));      // dO, panels               [Evp/NR][L, NR]
        T* rows_d = scratch<T, 7>(std::size_t(2 * L));      // rowsum(dO ∘ O), then logsumexp
        T* lse_r = rows_d + L;
        T* sbuf = scratch<T, 8>(std::size_t(bq * bk));      // P                        [bq, bk]
        T* pbuf = scratch<T, 9>(std::size_t(bq * bk));      // P ∘ dropout, then dP, then dS
        T* zbuf = scratch<T, 10>(std::size_t(pl.dropout ? bq * bk : 1));  // the dropout factors
        T* dk_acc = scratch<T, 11>(std::size_t(bk * Ep));   // [bk, Ep]
        T* dv_acc = scratch<T, 12>(std::size_t(bk * Evp));  // [bk, Evp]
        T* dq_acc = need_q ? (groups > 1 ? dq_parts.data() + std::size_t(task) * std::size_t(L * Ep)
                                         : scratch<T, 13>(std::size_t(L * Ep)))
                           : nullptr;                       // [L, Ep]

        copy_rows(qs, E, L, E, qh, q.stride(2), q.stride(3), pl.scale);
        pack_panels(qs_p, L, L, E, Ep, qh, q.stride(2), q.stride(3), pl.scale);
        pack_panels(kt_p, E, E, S, Sp, kh, k.stride(3), k.stride(2));
        pack_panels(k_p, S, Sp, E, Ep, kh, k.stride(2), k.stride(3));
        pack_panels(vt_p, Ev, Ev, S, Sp, vh, v.stride(3), v.stride(2));
        copy_rows(go, Ev, L, Ev, gh, g.stride(2), g.stride(3), T(1));
        pack_panels(go_p, L, L, Ev, Evp, gh, g.stride(2), g.stride(3));
        for (index_t i = 0; i < L; ++i) {
            T d = 0;
            for (index_t c = 0; c < Ev; ++c) d += go[i * Ev + c] * oh[i * out.stride(2) + c * out.stride(3)];
            rows_d[i] = d;
            lse_r[i] = lh[i * lse.stride(2)];
        }
        if (need_q && groups == 1) std::fill(dq_acc, dq_acc + L * Ep, T(0));

        for (index_t kb = kb0; kb < kb1; ++kb) {
            const index_t j0 = kb * bk, cols = std::min(bk, Sp - j0);
            std::fill(dk_acc, dk_acc + cols * Ep, T(0));
            std::fill(dv_acc, dv_acc + cols * Evp, T(0));
            for (index_t i0 = pl.first_query_block(j0) * bq; i0 < L; i0 += bq) {
                const index_t rows = std::min(bq, L - i0);
                // P = exp(scale · Q Kᵀ + masks - logsumexp): the forward's weights, recomputed.
                gemm_panels<T, false>(rows, cols, E, qs + i0 * E, E, 1, kt_p + j0 * E, E * nr, sbuf, bk);
                pl.apply_masks(sbuf, bk, bh, i0, rows, j0, cols);
                for (index_t r = 0; r < rows; ++r) exp_shift_sum(sbuf + r * bk, cols, lse_r[i0 + r]);
                const T* pd = sbuf;  // the weights V was multiplied with
                if (pl.dropout) {
                    for (index_t r = 0; r < rows; ++r) {
                        T* z = zbuf + r * bk;
                        pl.dropout_row(z, bh, i0 + r, j0, cols);
                        for (index_t c = 0; c < cols; ++c) pbuf[r * bk + c] = sbuf[r * bk + c] * z[c];
                    }
                    pd = pbuf;
                }
                // dV += Pdᵀ · dO                                          // [cols, Evp]
                if (need_v)
                    gemm_panels<T, true>(cols, Evp, rows, pd, 1, bk, go_p + i0 * nr, L * nr, dv_acc, Evp);
                if (!need_q && !need_k) continue;
                // dP = dO · Vᵀ (times the dropout factors)                // [rows, cols]
                gemm_panels<T, false>(rows, cols, Ev, go + i0 * Ev, Ev, 1, vt_p + j0 * Ev, Ev * nr, pbuf, bk);
                // dS = P ∘ (dP - rowsum(dO ∘ O))
                for (index_t r = 0; r < rows; ++r) {
                    T* dp = pbuf + r * bk;
                    const T* p = sbuf + r * bk;
                    const T d = rows_d[i0 + r];
                    if (pl.dropout) {
                        const T* z = zbuf + r * bk;
                        for (index_t c = 0; c < cols; ++c) dp[c] = p[c] * (dp[c] * z[c] - d);
                    } else {
                        for (index_t c = 0; c < cols; ++c) dp[c] = p[c] * (dp[c] - d);
                    }
                }
                // dK += dSᵀ · (scale · Q)                                 // [cols, Ep]
                if (need_k)
                    gemm_panels<T, true>(cols, Ep, rows, pbuf, 1, bk, qs_p + i0 * nr, L * nr, dk_acc, Ep);
                // dQ += dS · K (scaled at the end)                        // [rows, Ep]
                if (need_q)
                    gemm_panels<T, true>(rows, Ep, cols, pbuf, bk, 1, k_p + j0 * nr, Sp * nr, dq_acc + i0 * Ep, Ep);
            }
            const index_t real = std::min(cols, S - j0);
            if (need_k) {
                T* d = dk.data() + b * dk.stride(0) + h * dk.stride(1) + j0 * dk.stride(2);
                for (index_t r = 0; r < real; ++r)
                    for (index_t c = 0; c < E; ++c) d[r * dk.stride(2) + c * dk.stride(3)] = dk_acc[r * Ep + c];
            }
            if (need_v) {
                T* d = dv.data() + b * dv.stride(0) + h * dv.stride(1) + j0 * dv.stride(2);
                for (index_t r = 0; r < real; ++r)
                    for (index_t c = 0; c < Ev; ++c) d[r * dv.stride(2) + c * dv.stride(3)] = dv_acc[r * Evp + c];
            }
        }
        if (need_q && groups == 1) {
            T* d = dq.data() + b * dq.stride(0) + h * dq.stride(1);
            for (index_t i = 0; i < L; ++i)
                for (index_t c = 0; c < E; ++c) d[i * dq.stride(2) + c * dq.stride(3)] = pl.scale * dq_acc[i * Ep + c];
        }
    });

    if (need_q && groups > 1) {
        parallel_for(0, BH, 1, [&](index_t b0, index_t b1) {
            for (index_t bh = b0; bh < b1; ++bh) {
                const index_t b = bh / pl.H, h = bh % pl.H;
                T* d = dq.data() + b * dq.stride(0) + h * dq.stride(1);
                for (index_t i = 0; i < L; ++i)
                    for (index_t c = 0; c < E; ++c) {
                        T s = 0;
                        for (index_t grp = 0; grp < groups; ++grp)
                            s += dq_parts[std::size_t(((bh * groups + grp) * L + i) * Ep + c)];
                        d[i * dq.stride(2) + c * dq.stride(3)] = pl.scale * s;
                    }
            }
        });
    }
}

}  // namespace weft::cpu::attention

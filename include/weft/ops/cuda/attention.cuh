// weft/ops/cuda/attention.cuh: the CUDA kernels behind scaled_dot_product_attention
// (ops/attention.hpp), FlashAttention-2's tiled algorithm; the same contract as the CPU kernels of
// ops/cpu/attention.hpp (masks, scale, fully masked rows, logsumexp, the Philox dropout rule).
//
//   cuda::AttentionProblem<bf16> p = ...;        // device tensors of any strides, masks, dropout
//   cuda::attention_forward(p, out, lse);        // out [B, H, L, Ev] (T), lse [B, H, L] (float)
//   cuda::attention_backward(p, grad_out, out, lse, dq, dk, dv);
//
// Types: float, bf16 and half; everything accumulates in float. double attention stays on the CPU
// (ops/attention.hpp says so at compile time). Head dimensions: max(E, Ev) up to 128, as one of
// three compiled buckets (32, 64, 128): the tiles are padded with zeros to the bucket.
//
// Forward: one block of 4 warps per (batch·head, 64 queries). Each warp owns 16 query rows. For
// each tile of 64 keys the block stages K and V in shared memory; each warp multiplies its Q rows
// with Kᵀ into a float score tile, updates each row's running maximum and sum (online softmax;
// two lanes per row, 32 keys each), writes the weights P (in T, as the tensor cores take them) and
// adds P·V into its float output rows, rescaled by exp(old max - new max) first. No [L, S] matrix
// exists; the output and one float logsumexp per query are written at the end.
//
// Backward: a small kernel computes D = rowsum(dO ∘ O) per query; then one block per
// (batch·head, 64 keys), each warp owning 16 keys, walks the query tiles: Sᵀ = K·Qᵀ and
// dPᵀ = V·dOᵀ per warp, P = exp(scale·S + masks - logsumexp) recomputed, dS = P ∘ (dP ∘ z - D)
// (z: the dropout factors, regenerated from the seed), dV += (P ∘ z)ᵀ·dO and dK += dSᵀ·Q in
// registers; dQ += dS·K for the tile's 64 queries is added with atomicAdd into a float buffer
// (dq itself for float), converted to T at the end for bf16 and half. dQ's rounding therefore
// depends on the order the atomics land in; everything else is deterministic.
//
// Products: bf16 and half use the tensor cores through nvcuda::wmma (16x16x16, float
// accumulators, needs sm_80+); float uses an FMA register tile with the same interface
// (`WarpAcc`), so one kernel source serves all three types. Every operand is read from shared
// memory, padded by 16 bytes per row to spread the banks and keep wmma's 32-byte alignment.
//
// Shared memory per block (tile 64, bucket D; see ForwardLayout / BackwardLayout): forward 112 KiB
// (bf16, D = 128), 70 KiB (bf16, D = 64), 149 KiB (float, D = 128); backward 121 KiB (bf16,
// D = 128), 166 KiB (float, D = 128). The launchers raise cudaFuncAttributeMaxDynamicSharedMemorySize
// and check the device's opt-in limit first (227 KiB on Hopper).
//
// Dropout: weight (b, h, i, j) is kept when word j mod 4 of Philox block
// offset + ((b·H + h)·L + i)·⌈S/4⌉ + ⌊j/4⌋, shifted right by 8, is below keep_below: the CPU's rule
// (ops/attention.hpp), so both devices drop the same weights.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/ops/cuda/attention.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "weft: the CUDA attention kernels use bf16 tensor cores (nvcuda::wmma) and need sm_80 or newer"
#endif

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math_constants.h>
#include <mma.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "../../core/bf16.hpp"
#include "../../core/cuda/backend.cuh"
#include "../../core/cuda/check.cuh"
#include "../../core/error.hpp"
#include "../../core/half.hpp"
#include "../../core/philox.hpp"
#include "../../core/tensor.hpp"
#include "../../exec/cuda/stream.cuh"

namespace weft::cuda {

// One call, as the kernels read it (ops/attention.hpp validates the shapes and fills it).
template <class T>
struct AttentionProblem {
    Tensor<T, 4, Cuda> q, k, v;         // [B, H, L, E], [B, H, S, E], [B, H, S, Ev], any strides
    Tensor<T, 2, Cuda> mask;            // [L, S] additive, or undefined
    Tensor<T, 3, Cuda> mask_batched;    // [B*H | B | 1, L, S] additive, or undefined
    Tensor<bool, 2, Cuda> key_padding;  // [B, S], true = ignore the key, or undefined
    bool causal = false;
    float scale = 1;
    double dropout = 0;                 // probability of zeroing an attention weight
    std::uint64_t seed = 0, offset = 0; // Philox key and first counter of the dropout mask
};

namespace kernels {

inline constexpr int attention_tile = 64;     // queries per forward block, keys per backward block
inline constexpr int attention_warps = 4;     // 16 rows of the tile each
inline constexpr int attention_threads = 32 * attention_warps;
static_assert(attention_tile == 16 * attention_warps, "each warp owns 16 rows of a tile");

template <class T>
inline constexpr bool attention_tensor_cores = std::same_as<T, bf16> || std::same_as<T, half>;

// The CUDA type wmma takes for weft's 16-bit floats (same size and bits).
template <class T>
struct WmmaElement;
template <>
struct WmmaElement<bf16> {
    using type = __nv_bfloat16;
};
template <>
struct WmmaElement<half> {
    using type = __half;
};
static_assert(sizeof(bf16) == sizeof(__nv_bfloat16) && sizeof(half) == sizeof(__half));

// A strided rank-4 operand.
template <class T>
struct AttentionOperand {
    const T* data;
    index_t stride[4];
};

// What every attention kernel reads: operands, masks (pointers null where absent; strides in
// elements), extents (checked to fit int on the host) and the dropout rule.
template <class T>
struct AttentionArgs {
    AttentionOperand<T> q, k, v;
    const T* mask;
    index_t mask_rs, mask_cs;
    const T* mask3;                  // element (b, h, i, j) at b·mask3_b + h·mask3_h + i·mask3_rs + j·mask3_cs
    index_t mask3_b, mask3_h, mask3_rs, mask3_cs;
    const bool* pad;
    index_t pad_b, pad_cs;
    int B, H, L, S, E, Ev;
    float scale;
    bool causal;
    bool dropout;
    std::uint32_t keep_below;        // a 24-bit draw below this keeps the weight
    float keep_scale;                // 1 / (1 - p), or 0 when p = 1
    std::uint64_t seed, offset, row_blocks;
};

__device__ __forceinline__ constexpr std::size_t align128(std::size_t x) { return (x + 127) / 128 * 128; }

// exp for the softmax: the accurate expf for float (results within the CPU's tolerance), the
// hardware approximation for the 16-bit types, whose weights are rounded to 8 or 11 bits anyway.
template <class T>
__device__ __forceinline__ float attention_exp(float x) {
    if constexpr (std::same_as<T, float>) return ::expf(x);
    else return ::__expf(x);
}

// Score (i, j) after the masks, in the CPU's order: key padding (and keys past S), the two
// additive masks, then the causal mask. Rows past L give -inf without touching the masks.
// mask3 and pad are already offset to this (batch, head).
template <class T>
__device__ __forceinline__ float masked_score(const AttentionArgs<T>& a, float s, const T* mask3, const bool* pad,
                                              int i, int j) {
    if (i >= a.L || j >= a.S) return -CUDART_INF_F;
    if (pad && pad[index_t(j) * a.pad_cs]) s += -CUDART_INF_F;
    if (a.mask) s += float(a.mask[index_t(i) * a.mask_rs + index_t(j) * a.mask_cs]);
    if (mask3) s += float(mask3[index_t(i) * a.mask3_rs + index_t(j) * a.mask3_cs]);
    if (a.causal && j > i) s = -CUDART_INF_F;  // key j > query i is in the future
    return s;
}

// The dropout factors of weights (bh, i, j4·4 ... j4·4 + 3): one Philox block.
template <class T>
__device__ __forceinline__ void dropout_factors(const AttentionArgs<T>& a, int bh, int i, int j4, float (&z)[4]) {
    const std::uint64_t block = a.offset + (std::uint64_t(bh) * std::uint64_t(a.L) + std::uint64_t(i)) * a.row_blocks +
                                std::uint64_t(j4);
    const PhiloxBlock w = philox4x32_10(block, 0, a.seed);
#pragma unroll
    for (int e = 0; e < 4; ++e) z[e] = (w.w[e] >> 8) < a.keep_below ? a.keep_scale : 0.0f;
}

// dst[r][c] (leading dimension ld) = src[(r0 + r)·rs + c·cs] for r0 + r < rows and c < cols, zero
// elsewhere in [Rows, Cols): a tile of a strided [rows, cols] matrix, padded with zeros (the
// padding must be zero, not garbage: a NaN there would reach every product).
template <class T, int Rows, int Cols>
__device__ __forceinline__ void load_tile(T* dst, int ld, const T* src, index_t rs, index_t cs, int r0, int rows,
                                          int cols) {
    for (int idx = int(threadIdx.x); idx < Rows * Cols; idx += attention_threads) {
        const int r = idx / Cols, c = idx % Cols;
        T x{};
        if (r0 + r < rows && c < cols) x = src[index_t(r0 + r) * rs + index_t(c) * cs];
        dst[r * ld + c] = x;
    }
}

// ---- warp products -------------------------------------------------------------------------

// A warp's [16, N] float accumulator and the product C += A[16, K] · B[K, N] on shared-memory
// operands of element type T. A(r, k) is a[r·lda + k] (row-major) or a[k·lda + r] (ACol);
// B(k, n) is b[k·ldb + n] (row-major) or b[n·ldb + k] (BCol). The tensor-core version keeps
// wmma fragments (their element layout is unspecified: values go in and out through shared
// memory only); the FMA version gives lane l rows 4·(l/8) + 0..3 and columns l%8 + 8t.
template <class T, int N, bool TensorCores = attention_tensor_cores<T>>
struct WarpAcc;

template <class T, int N>
struct WarpAcc<T, N, true> {
    static_assert(N % 16 == 0);
    using M = typename WmmaElement<T>::type;
    static constexpr int tiles = N / 16;
    nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> f[tiles];

    __device__ __forceinline__ void zero() {
#pragma unroll
        for (int n = 0; n < tiles; ++n) nvcuda::wmma::fill_fragment(f[n], 0.0f);
    }

    template <int K, bool ACol, bool BCol>
    __device__ __forceinline__ void mma(const T* a, int lda, const T* b, int ldb) {
        namespace w = nvcuda::wmma;
        static_assert(K % 16 == 0);
        using LayoutA = std::conditional_t<ACol, w::col_major, w::row_major>;
        using LayoutB = std::conditional_t<BCol, w::col_major, w::row_major>;
        const M* am = reinterpret_cast<const M*>(a);
        const M* bm = reinterpret_cast<const M*>(b);
#pragma unroll
        for (int kk = 0; kk < K / 16; ++kk) {
            w::fragment<w::matrix_a, 16, 16, 16, M, LayoutA> fa;
            w::load_matrix_sync(fa, am + (ACol ? kk * 16 * lda : kk * 16), unsigned(lda));
#pragma unroll
            for (int n = 0; n < tiles; ++n) {
                w::fragment<w::matrix_b, 16, 16, 16, M, LayoutB> fb;
                w::load_matrix_sync(fb, bm + (BCol ? n * 16 * ldb + kk * 16 : kk * 16 * ldb + n * 16), unsigned(ldb));
                w::mma_sync(f[n], fa, fb, f[n]);
            }
        }
    }

    // Columns [C0, C0 + W) into c (row-major: column C0 + x at c[r·ldc + x]).
    template <int C0, int W>
    __device__ __forceinline__ void store(float* c, int ldc) const {
        static_assert(C0 % 16 == 0 && W % 16 == 0 && C0 + W <= N);
#pragma unroll
        for (int n = C0 / 16; n < (C0 + W) / 16; ++n)
            nvcuda::wmma::store_matrix_sync(c + (n * 16 - C0), f[n], unsigned(ldc), nvcuda::wmma::mem_row_major);
    }

    __device__ __forceinline__ void load(const float* c, int ldc) {
#pragma unroll
        for (int n = 0; n < tiles; ++n)
            nvcuda::wmma::load_matrix_sync(f[n], c + n * 16, unsigned(ldc), nvcuda::wmma::mem_row_major);
    }
};

template <class T, int N>
struct WarpAcc<T, N, false> {
    static_assert(N % 16 == 0);
    static constexpr int cols = N / 8;
    float acc[4][cols];

    __device__ __forceinline__ void zero() {
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int t = 0; t < cols; ++t) acc[i][t] = 0.0f;
    }

    template <int K, bool ACol, bool BCol>
    __device__ __forceinline__ void mma(const T* a, int lda, const T* b, int ldb) {
        const int lane = int(threadIdx.x) & 31, r0 = 4 * (lane >> 3), c0 = lane & 7;
#pragma unroll 4
        for (int k = 0; k < K; ++k) {
            float av[4], bv[cols];
#pragma unroll
            for (int i = 0; i < 4; ++i) av[i] = float(ACol ? a[k * lda + r0 + i] : a[(r0 + i) * lda + k]);
#pragma unroll
            for (int t = 0; t < cols; ++t) bv[t] = float(BCol ? b[(c0 + 8 * t) * ldb + k] : b[k * ldb + c0 + 8 * t]);
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int t = 0; t < cols; ++t) acc[i][t] = ::fmaf(av[i], bv[t], acc[i][t]);
        }
    }

    template <int C0, int W>
    __device__ __forceinline__ void store(float* c, int ldc) const {
        static_assert(C0 % 16 == 0 && W % 16 == 0 && C0 + W <= N);
        const int lane = int(threadIdx.x) & 31, r0 = 4 * (lane >> 3), c0 = lane & 7;
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int t = C0 / 8; t < (C0 + W) / 8; ++t) c[(r0 + i) * ldc + c0 + 8 * t - C0] = acc[i][t];
    }

    __device__ __forceinline__ void load(const float* c, int ldc) {
        const int lane = int(threadIdx.x) & 31, r0 = 4 * (lane >> 3), c0 = lane & 7;
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int t = 0; t < cols; ++t) acc[i][t] = c[(r0 + i) * ldc + c0 + 8 * t];
    }
};

// ---- forward -------------------------------------------------------------------------------

// Shared memory of the forward kernel (byte offsets, each 128-aligned). Leading dimensions add
// 16 bytes per row: banks spread, and every 16x16 wmma tile still starts 32-byte aligned.
template <class T, int D>
struct ForwardLayout {
    static constexpr int tile = attention_tile;
    static constexpr bool tc = attention_tensor_cores<T>;
    static constexpr int pad = 16 / int(sizeof(T));
    static constexpr int ldt = D + pad;              // Q, K, V tiles (T)            [64, D]
    static constexpr int lds = tile + 4;             // scores (float)               [64, 64]
    static constexpr int ldp = tc ? tile + pad : lds;  // weights P (T); in place of the scores for float
    static constexpr int ldo = D + 4;                // output accumulator (float)   [64, D]
    static constexpr std::size_t q_off = 0;
    static constexpr std::size_t k_off = align128(q_off + std::size_t(tile) * ldt * sizeof(T));
    static constexpr std::size_t v_off = align128(k_off + std::size_t(tile) * ldt * sizeof(T));
    static constexpr std::size_t s_off = align128(v_off + std::size_t(tile) * ldt * sizeof(T));
    static constexpr std::size_t p_off = tc ? align128(s_off + std::size_t(tile) * lds * sizeof(float)) : s_off;
    static constexpr std::size_t o_off =
        align128(p_off + (tc ? std::size_t(tile) * ldp * sizeof(T) : std::size_t(tile) * lds * sizeof(float)));
    static constexpr std::size_t bytes = o_off + std::size_t(tile) * ldo * sizeof(float);
};

// out [B·H, L, Ev] and lse [B·H, L] dense. Block: 64 queries of one (batch, head), the longest
// causal tiles first.
template <class T, int D>
__global__ void __launch_bounds__(attention_threads) attention_forward(const AttentionArgs<T> a, T* out, float* lse) {
    using Lay = ForwardLayout<T, D>;
    constexpr int tile = attention_tile, ldt = Lay::ldt, lds = Lay::lds, ldp = Lay::ldp, ldo = Lay::ldo;
    extern __shared__ __align__(128) unsigned char attention_smem[];
    T* qs = reinterpret_cast<T*>(attention_smem + Lay::q_off);
    T* ks = reinterpret_cast<T*>(attention_smem + Lay::k_off);
    T* vs = reinterpret_cast<T*>(attention_smem + Lay::v_off);
    float* ss = reinterpret_cast<float*>(attention_smem + Lay::s_off);
    T* ps = reinterpret_cast<T*>(attention_smem + Lay::p_off);
    float* os = reinterpret_cast<float*>(attention_smem + Lay::o_off);

    const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31;
    const int nqt = (a.L + tile - 1) / tile;
    const int bh = int(blockIdx.x) / nqt, qt = nqt - 1 - int(blockIdx.x) % nqt;
    const int b = bh / a.H, h = bh - b * a.H;
    const int i0 = qt * tile;
    const T* qp = a.q.data + b * a.q.stride[0] + h * a.q.stride[1];
    const T* kp = a.k.data + b * a.k.stride[0] + h * a.k.stride[1];
    const T* vp = a.v.data + b * a.v.stride[0] + h * a.v.stride[1];
    const T* m3 = a.mask3 ? a.mask3 + b * a.mask3_b + h * a.mask3_h : nullptr;
    const bool* pad = a.pad ? a.pad + b * a.pad_b : nullptr;

    load_tile<T, tile, D>(qs, ldt, qp, a.q.stride[2], a.q.stride[3], i0, a.L, a.E);
    for (int idx = int(threadIdx.x); idx < tile * ldo; idx += attention_threads) os[idx] = 0.0f;
    __syncthreads();

    // The softmax state: lanes 2r and 2r + 1 share query row r of the warp, keys side·32 ... + 31
    // of each tile; both hold the row's running maximum m and sum l.
    const int r = lane >> 1, side = lane & 1;
    const int i = i0 + warp * 16 + r;
    float m = -CUDART_INF_F, l = 0.0f;
    float* sw = ss + warp * 16 * lds;  // this warp's rows
    T* pw = ps + warp * 16 * ldp;
    float* ow = os + warp * 16 * ldo;

    const int end = a.causal && i0 + tile < a.S ? i0 + tile : a.S;  // keys past the tile's last query are masked
    for (int j0 = 0; j0 < end; j0 += tile) {
        __syncthreads();  // the previous tile's K and V are read
        load_tile<T, tile, D>(ks, ldt, kp, a.k.stride[2], a.k.stride[3], j0, a.S, a.E);
        load_tile<T, tile, D>(vs, ldt, vp, a.v.stride[2], a.v.stride[3], j0, a.S, a.Ev);
        __syncthreads();
        {  // S = Q · Kᵀ                                                  // [16, 64] per warp
            WarpAcc<T, tile> acc;
            acc.zero();
            acc.template mma<D, false, true>(qs + warp * 16 * ldt, ldt, ks, ldt);
            acc.template store<0, tile>(sw, lds);
        }
        __syncwarp();

        // Each lane reads its 32 scores as 8 float4 chunks, rotated by side so that the two
        // lanes of a row hit different banks.
        float x[32];
        float mx = -CUDART_INF_F;
        const float* srow = sw + r * lds + side * 32;
#pragma unroll
        for (int c4 = 0; c4 < 8; ++c4) {
            const int cc = (c4 + 4 * side) & 7;
            const float4 s4 = *reinterpret_cast<const float4*>(srow + cc * 4);
            const float sv[4] = {s4.x, s4.y, s4.z, s4.w};
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const float s = masked_score(a, sv[e] * a.scale, m3, pad, i, j0 + side * 32 + cc * 4 + e);
                x[c4 * 4 + e] = s;
                mx = ::fmaxf(mx, s);
            }
        }
        mx = ::fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        const float m_new = ::fmaxf(m, mx);
        float alpha = 1.0f, sum = 0.0f;
        if (m_new != -CUDART_INF_F) {
            alpha = attention_exp<T>(m - m_new);  // rescales what earlier tiles summed (0 on the first)
#pragma unroll
            for (int e = 0; e < 32; ++e) {
                x[e] = attention_exp<T>(x[e] - m_new);
                sum += x[e];
            }
            m = m_new;
        } else {  // every key so far masked: weights 0, not NaN
#pragma unroll
            for (int e = 0; e < 32; ++e) x[e] = 0.0f;
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        l = l * alpha + sum;
        if (a.dropout) {  // after the sums: dropout scales the weights, not the softmax
#pragma unroll
            for (int c4 = 0; c4 < 8; ++c4) {
                const int cc = (c4 + 4 * side) & 7;
                float z[4];
                dropout_factors(a, bh, i, (j0 + side * 32 + cc * 4) / 4, z);
#pragma unroll
                for (int e = 0; e < 4; ++e) x[c4 * 4 + e] *= z[e];
            }
        }
        T* prow = pw + r * ldp + side * 32;  // for float the same memory as srow: each lane rewrites what it read
#pragma unroll
        for (int c4 = 0; c4 < 8; ++c4) {
            const int cc = (c4 + 4 * side) & 7;
#pragma unroll
            for (int e = 0; e < 4; ++e) prow[cc * 4 + e] = T(x[c4 * 4 + e]);
        }
        if (alpha != 1.0f) {
            float* orow = ow + r * ldo + side * (D / 2);
#pragma unroll 8
            for (int c = 0; c < D / 2; ++c) orow[c] *= alpha;
        }
        __syncwarp();
        {  // O += P · V                                                   // [16, D] per warp
            WarpAcc<T, D> acc;
            acc.load(ow, ldo);
            acc.template mma<tile, false, false>(pw, ldp, vs, ldt);
            acc.template store<0, D>(ow, ldo);
        }
        __syncwarp();
    }

    const float inv = l > 0.0f ? 1.0f / l : 0.0f;  // no key seen: output 0
    if (side == 0 && i < a.L) lse[std::size_t(bh) * std::size_t(a.L) + std::size_t(i)] = l > 0.0f ? m + ::logf(l) : CUDART_INF_F;
    // Row by row with the whole warp, so the stores coalesce.
    for (int rr = 0; rr < 16; ++rr) {
        const float inv_r = __shfl_sync(0xffffffffu, inv, 2 * rr);
        const int ir = i0 + warp * 16 + rr;
        if (ir >= a.L) break;  // the same for every lane
        T* orow = out + (std::size_t(bh) * std::size_t(a.L) + std::size_t(ir)) * std::size_t(a.Ev);
        for (int c = lane; c < a.Ev; c += 32) orow[c] = T(ow[rr * ldo + c] * inv_r);
    }
}

// ---- backward ------------------------------------------------------------------------------

// d[row] = Σ_c dO[row, c] · O[row, c] for the B·H·L query rows: one warp per row.
template <class T>
__global__ void __launch_bounds__(256) attention_row_dot(const AttentionOperand<T> g, const AttentionOperand<T> o,
                                                        int H, int L, int Ev, index_t rows, float* d) {
    const int lane = int(threadIdx.x) & 31;
    const index_t step = index_t(gridDim.x) * 8;
    for (index_t row = index_t(blockIdx.x) * 8 + (threadIdx.x >> 5); row < rows; row += step) {
        const index_t bh = row / L, i = row % L, b = bh / H, h = bh % H;
        const T* gp = g.data + b * g.stride[0] + h * g.stride[1] + i * g.stride[2];
        const T* op = o.data + b * o.stride[0] + h * o.stride[1] + i * o.stride[2];
        float s = 0.0f;
        for (int c = lane; c < Ev; c += 32) s += float(gp[c * g.stride[3]]) * float(op[c * o.stride[3]]);
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
        if (lane == 0) d[row] = s;
    }
}

// dst[i] = T(src[i]): the float dQ buffer into the gradient of a 16-bit query.
template <class T>
__global__ void __launch_bounds__(256) attention_convert(T* dst, const float* src, index_t n) {
    const index_t step = index_t(gridDim.x) * blockDim.x;
    for (index_t i = index_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) dst[i] = T(src[i]);
}

// Shared memory of the backward kernel; as ForwardLayout.
template <class T, int D>
struct BackwardLayout {
    static constexpr int tile = attention_tile;
    static constexpr bool tc = attention_tensor_cores<T>;
    static constexpr int pad = 16 / int(sizeof(T));
    static constexpr int ldt = D + pad;                // K, V, Q, dO tiles (T)         [64, D]
    static constexpr int ldf = tile + 4;               // Sᵀ, dPᵀ, and column chunks (float) [64, 64]
    static constexpr int ldp = tc ? tile + pad : ldf;  // (P ∘ z)ᵀ and dSᵀ (T); in place of Sᵀ, dPᵀ for float
    static constexpr std::size_t tile_bytes = std::size_t(tile) * ldt * sizeof(T);
    static constexpr std::size_t k_off = 0;
    static constexpr std::size_t v_off = align128(k_off + tile_bytes);
    static constexpr std::size_t q_off = align128(v_off + tile_bytes);
    static constexpr std::size_t do_off = align128(q_off + tile_bytes);
    static constexpr std::size_t lse_off = align128(do_off + tile_bytes);
    static constexpr std::size_t d_off = lse_off + tile * sizeof(float);
    static constexpr std::size_t st_off = align128(d_off + tile * sizeof(float));
    static constexpr std::size_t dpt_off = align128(st_off + std::size_t(tile) * ldf * sizeof(float));
    static constexpr std::size_t f_end = align128(dpt_off + std::size_t(tile) * ldf * sizeof(float));
    static constexpr std::size_t pt_off = tc ? f_end : st_off;
    static constexpr std::size_t dst_off = tc ? align128(pt_off + std::size_t(tile) * ldp * sizeof(T)) : dpt_off;
    static constexpr std::size_t bytes = tc ? dst_off + std::size_t(tile) * ldp * sizeof(T) : f_end;
};

// Writes the warp's 16 rows of acc, columns [C0, C0 + W), times f, to dst rows j0w + rr < rows
// (dense, `cols` wide), through the warp's float scratch (16 rows, leading dimension ld).
template <class T, int C0, int W, class Acc>
__device__ __forceinline__ void write_rows(const Acc& acc, float* scratch, int ld, T* dst, int j0w, int rows,
                                           int cols, float f) {
    const int lane = int(threadIdx.x) & 31;
    acc.template store<C0, W>(scratch, ld);
    __syncwarp();
    for (int rr = 0; rr < 16 && j0w + rr < rows; ++rr) {
        T* drow = dst + std::size_t(j0w + rr) * std::size_t(cols);
        for (int c = lane; c < W && C0 + c < cols; c += 32) drow[C0 + c] = T(f * scratch[rr * ld + c]);
    }
    __syncwarp();
}

// Block: 64 keys of one (batch, head). dq_acc [B·H, L, E] float, accumulated with atomicAdd
// (null: dQ not needed); dk [B·H, S, E] and dv [B·H, S, Ev] dense (null: not needed).
template <class T, int D>
__global__ void __launch_bounds__(attention_threads)
    attention_backward(const AttentionArgs<T> a, const AttentionOperand<T> g, const float* lse, const float* drow,
                       float* dq_acc, T* dk, T* dv) {
    using Lay = BackwardLayout<T, D>;
    constexpr int tile = attention_tile, ldt = Lay::ldt, ldf = Lay::ldf, ldp = Lay::ldp;
    constexpr int chunk = D < 64 ? D : 64;  // dQ, dK, dV leave through the float scratch this many columns at a time
    extern __shared__ __align__(128) unsigned char attention_smem[];
    T* ks = reinterpret_cast<T*>(attention_smem + Lay::k_off);
    T* vs = reinterpret_cast<T*>(attention_smem + Lay::v_off);
    T* qs = reinterpret_cast<T*>(attention_smem + Lay::q_off);
    T* dos = reinterpret_cast<T*>(attention_smem + Lay::do_off);
    float* lse_s = reinterpret_cast<float*>(attention_smem + Lay::lse_off);
    float* d_s = reinterpret_cast<float*>(attention_smem + Lay::d_off);
    float* st = reinterpret_cast<float*>(attention_smem + Lay::st_off);
    float* dpt = reinterpret_cast<float*>(attention_smem + Lay::dpt_off);
    T* pt = reinterpret_cast<T*>(attention_smem + Lay::pt_off);
    T* dst = reinterpret_cast<T*>(attention_smem + Lay::dst_off);

    const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31;
    const int nkt = (a.S + tile - 1) / tile;
    const int bh = int(blockIdx.x) / nkt, kt = int(blockIdx.x) % nkt;
    const int b = bh / a.H, h = bh - b * a.H;
    const int j0 = kt * tile;
    const T* qp = a.q.data + b * a.q.stride[0] + h * a.q.stride[1];
    const T* kp = a.k.data + b * a.k.stride[0] + h * a.k.stride[1];
    const T* vp = a.v.data + b * a.v.stride[0] + h * a.v.stride[1];
    const T* gp = g.data + b * g.stride[0] + h * g.stride[1];
    const T* m3 = a.mask3 ? a.mask3 + b * a.mask3_b + h * a.mask3_h : nullptr;
    const bool* pad = a.pad ? a.pad + b * a.pad_b : nullptr;
    const std::size_t row0 = std::size_t(bh) * std::size_t(a.L);  // this head's first query row

    load_tile<T, tile, D>(ks, ldt, kp, a.k.stride[2], a.k.stride[3], j0, a.S, a.E);
    load_tile<T, tile, D>(vs, ldt, vp, a.v.stride[2], a.v.stride[3], j0, a.S, a.Ev);
    WarpAcc<T, D> dk_acc, dv_acc;  // the warp's 16 keys: [16, D] each
    dk_acc.zero();
    dv_acc.zero();

    float* stw = st + warp * 16 * ldf;  // this warp's key rows
    float* dptw = dpt + warp * 16 * ldf;
    T* ptw = pt + warp * 16 * ldp;
    T* dstw = dst + warp * 16 * ldp;
    // Element-wise step: lane handles keys 4·kg ... 4·kg + 3 of the warp (one Philox block) and
    // queries q8 + 8t of the tile.
    const int kg = lane & 3, q8 = lane >> 2;
    const int jb = j0 + warp * 16 + 4 * kg;  // the lane's first key

    const int first = a.causal ? j0 / tile * tile : 0;  // earlier queries see none of these keys
    for (int i0 = first; i0 < a.L; i0 += tile) {
        __syncthreads();  // the previous tile's Q, dO and dSᵀ are read (and, first time, K and V written)
        load_tile<T, tile, D>(qs, ldt, qp, a.q.stride[2], a.q.stride[3], i0, a.L, a.E);
        load_tile<T, tile, D>(dos, ldt, gp, g.stride[2], g.stride[3], i0, a.L, a.Ev);
        for (int t = int(threadIdx.x); t < tile; t += attention_threads) {
            const int i = i0 + t;
            lse_s[t] = i < a.L ? lse[row0 + std::size_t(i)] : CUDART_INF_F;  // +inf: weight 0
            d_s[t] = i < a.L ? drow[row0 + std::size_t(i)] : 0.0f;
        }
        __syncthreads();
        {  // Sᵀ = K · Qᵀ                                                 // [16 keys, 64 queries] per warp
            WarpAcc<T, tile> acc;
            acc.zero();
            acc.template mma<D, false, true>(ks + warp * 16 * ldt, ldt, qs, ldt);
            acc.template store<0, tile>(stw, ldf);
        }
        {  // dPᵀ = V · dOᵀ
            WarpAcc<T, tile> acc;
            acc.zero();
            acc.template mma<D, false, true>(vs + warp * 16 * ldt, ldt, dos, ldt);
            acc.template store<0, tile>(dptw, ldf);
        }
        __syncwarp();
        // P = exp(scale · S + masks - logsumexp): the forward's weights, recomputed;
        // dS = P ∘ (dP ∘ z - D). For float, P ∘ z and dS overwrite S and dP in place.
#pragma unroll 2
        for (int t = 0; t < tile / 8; ++t) {
            const int il = q8 + 8 * t, i = i0 + il;
            const float lse_i = lse_s[il], d_i = d_s[il];
            float z[4] = {1.0f, 1.0f, 1.0f, 1.0f};
            if (a.dropout) dropout_factors(a, bh, i, jb / 4, z);
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int kr = 4 * kg + e;  // key row of the warp
                const float s = masked_score(a, stw[kr * ldf + il] * a.scale, m3, pad, i, jb + e);
                const float p = attention_exp<T>(s - lse_i);
                const float dp = dptw[kr * ldf + il];
                ptw[kr * ldp + il] = T(p * z[e]);
                dstw[kr * ldp + il] = T(p * (dp * z[e] - d_i));
            }
        }
        __syncwarp();
        dv_acc.template mma<tile, false, false>(ptw, ldp, dos, ldt);  // dV += (P ∘ z)ᵀ · dO
        dk_acc.template mma<tile, false, false>(dstw, ldp, qs, ldt);  // dK += dSᵀ · Q (scaled at the end)
        if (dq_acc) {
            __syncthreads();  // every warp's dSᵀ rows are written
            // dQ += scale · dS · K for the warp's 16 queries: dS(i, j) = dSᵀ[j][i], column-major.
            const int iw = i0 + warp * 16;
            auto add_dq = [&](auto c0_tag) {
                constexpr int C0 = decltype(c0_tag)::value;
                WarpAcc<T, chunk> acc;
                acc.zero();
                acc.template mma<tile, true, false>(dst + warp * 16, ldp, ks + C0, ldt);
                acc.template store<0, chunk>(stw, ldf);  // S is consumed: the scratch is free
                __syncwarp();
                for (int rr = 0; rr < 16 && iw + rr < a.L; ++rr) {
                    float* qrow = dq_acc + (row0 + std::size_t(iw + rr)) * std::size_t(a.E);
                    for (int c = lane; c < chunk && C0 + c < a.E; c += 32)
                        atomicAdd(qrow + C0 + c, a.scale * stw[rr * ldf + c]);
                }
                __syncwarp();
            };
            add_dq(std::integral_constant<int, 0>{});
            if constexpr (D > 64) add_dq(std::integral_constant<int, 64>{});
        }
    }

    // dK = scale · dSᵀ·Q and dV, the warp's 16 keys, through its float scratch.
    __syncwarp();
    const std::size_t key0 = std::size_t(bh) * std::size_t(a.S);
    const int j0w = j0 + warp * 16;
    if (dk) {
        T* dkh = dk + key0 * std::size_t(a.E);
        write_rows<T, 0, chunk>(dk_acc, stw, ldf, dkh, j0w, a.S, a.E, a.scale);
        if constexpr (D > 64) write_rows<T, 64, chunk>(dk_acc, stw, ldf, dkh, j0w, a.S, a.E, a.scale);
    }
    if (dv) {
        T* dvh = dv + key0 * std::size_t(a.Ev);
        write_rows<T, 0, chunk>(dv_acc, stw, ldf, dvh, j0w, a.S, a.Ev, 1.0f);
        if constexpr (D > 64) write_rows<T, 64, chunk>(dv_acc, stw, ldf, dvh, j0w, a.S, a.Ev, 1.0f);
    }
}

}  // namespace kernels

namespace detail {

// The head-dimension bucket of a problem (32, 64 or 128), or 0 when max(E, Ev) exceeds 128.
inline int attention_bucket(index_t E, index_t Ev) {
    const index_t d = std::max(E, Ev);
    return d <= 32 ? 32 : d <= 64 ? 64 : d <= 128 ? 128 : 0;
}

template <class T>
kernels::AttentionOperand<T> attention_operand(const Tensor<T, 4, Cuda>& t) {
    return {t.data(), {t.stride(0), t.stride(1), t.stride(2), t.stride(3)}};
}

// Checks what the kernels assume and gathers their arguments.
template <class T>
kernels::AttentionArgs<T> attention_args(const char* op, const AttentionProblem<T>& p) {
    const index_t B = p.q.size(0), H = p.q.size(1), L = p.q.size(2), E = p.q.size(3), S = p.k.size(2),
                  Ev = p.v.size(3);
    WEFT_CHECK(attention_bucket(E, Ev) != 0, op, " on CUDA supports head dimensions up to 128: query of shape ",
               p.q.shape(), " and value of shape ", p.v.shape(), " have E = ", E, " and Ev = ", Ev);
    constexpr index_t max_int = std::numeric_limits<int>::max();
    WEFT_CHECK(B * H <= max_int && L <= max_int - kernels::attention_tile && S <= max_int - kernels::attention_tile, op,
               ": query of shape ", p.q.shape(), " and key of shape ", p.k.shape(),
               " exceed the CUDA kernels' 32-bit extents");
    kernels::AttentionArgs<T> a{};
    a.q = attention_operand(p.q);
    a.k = attention_operand(p.k);
    a.v = attention_operand(p.v);
    if (p.mask.defined()) {
        a.mask = p.mask.data();
        a.mask_rs = p.mask.stride(0);
        a.mask_cs = p.mask.stride(1);
    }
    if (p.mask_batched.defined()) {
        // [B·H, L, S]: one per (batch, head); [B, L, S]: one per batch; [1, L, S]: shared
        // (ops/cpu/attention.hpp decides the same way: with H = 1 the first two agree).
        const auto& m = p.mask_batched;
        const index_t n = m.size(0), s0 = m.stride(0);
        a.mask3 = m.data();
        if (n == B * H) {
            a.mask3_b = H * s0;
            a.mask3_h = s0;
        } else if (n == B && B > 1) {
            a.mask3_b = s0;
        }
        a.mask3_rs = m.stride(1);
        a.mask3_cs = m.stride(2);
    }
    if (p.key_padding.defined()) {
        a.pad = p.key_padding.data();
        a.pad_b = p.key_padding.stride(0);
        a.pad_cs = p.key_padding.stride(1);
    }
    a.B = int(B);
    a.H = int(H);
    a.L = int(L);
    a.S = int(S);
    a.E = int(E);
    a.Ev = int(Ev);
    a.scale = p.scale;
    a.causal = p.causal;
    if (p.dropout > 0) {
        // The CPU's integer form of uniform_float(w) < 1 - p (ops/cpu/attention.hpp, Plan).
        a.dropout = true;
        a.keep_below = std::uint32_t(std::ceil((1.0 - p.dropout) * 16777216.0));
        a.keep_scale = p.dropout < 1 ? float(1.0 / (1.0 - p.dropout)) : 0.0f;
        a.seed = p.seed;
        a.offset = p.offset;
        a.row_blocks = std::uint64_t((S + 3) / 4);
    }
    return a;
}

// Lets `kernel` take `bytes` of dynamic shared memory on the current device (once per device),
// after checking the device's opt-in limit.
template <class Kernel>
void allow_attention_smem(Kernel* kernel, std::size_t bytes, std::array<std::atomic<bool>, 64>& done) {
    const int device = current_device();
    if (device < 64 && done[std::size_t(device)].load(std::memory_order_relaxed)) return;
    int optin = 0;
    WEFT_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    WEFT_CHECK(bytes <= std::size_t(optin), "scaled_dot_product_attention: the CUDA kernel needs ", bytes,
               " bytes of shared memory per block; device ", device, " allows ", optin);
    WEFT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
    if (device < 64) done[std::size_t(device)].store(true, std::memory_order_relaxed);
}

template <class T, int D>
void launch_attention_forward(const kernels::AttentionArgs<T>& a, index_t blocks, T* out, float* lse) {
    constexpr std::size_t bytes = kernels::ForwardLayout<T, D>::bytes;
    static std::array<std::atomic<bool>, 64> ready{};
    allow_attention_smem(kernels::attention_forward<T, D>, bytes, ready);
    kernels::attention_forward<T, D>
        <<<unsigned(blocks), kernels::attention_threads, bytes, current_stream()>>>(a, out, lse);
    WEFT_CUDA_CHECK_LAUNCH();
}

template <class T, int D>
void launch_attention_backward(const kernels::AttentionArgs<T>& a, const kernels::AttentionOperand<T>& g,
                               index_t blocks, const float* lse, const float* drow, float* dq_acc, T* dk, T* dv) {
    constexpr std::size_t bytes = kernels::BackwardLayout<T, D>::bytes;
    static std::array<std::atomic<bool>, 64> ready{};
    allow_attention_smem(kernels::attention_backward<T, D>, bytes, ready);
    kernels::attention_backward<T, D>
        <<<unsigned(blocks), kernels::attention_threads, bytes, current_stream()>>>(a, g, lse, drow, dq_acc, dk, dv);
    WEFT_CUDA_CHECK_LAUNCH();
}

template <class T>
constexpr void check_attention_cuda_type() {
    static_assert(std::same_as<T, float> || std::same_as<T, bf16> || std::same_as<T, half>,
                  "weft: scaled_dot_product_attention on CUDA takes float, bf16 or half tensors (double attention "
                  "runs on the CPU: move the tensors there, or compute in float: weft::cast<float>(x))");
}

}  // namespace detail

// out [B, H, L, Ev] and lse [B, H, L] (dense, new) receive the attention and each query's log
// of the softmax denominator; +inf in lse marks a query with every key masked.
template <class T>
void attention_forward(const AttentionProblem<T>& p, const Tensor<T, 4, Cuda>& out,
                       const Tensor<float, 3, Cuda>& lse) {
    detail::check_attention_cuda_type<T>();
    const index_t BH = p.q.size(0) * p.q.size(1), L = p.q.size(2);
    if (BH == 0 || L == 0) return;
    const auto a = detail::attention_args("scaled_dot_product_attention", p);
    WEFT_CHECK(out.is_contiguous() && lse.is_contiguous(), "scaled_dot_product_attention: CUDA outputs must be dense");
    const index_t blocks = BH * ((L + kernels::attention_tile - 1) / kernels::attention_tile);
    WEFT_CHECK(blocks <= index_t(std::numeric_limits<int>::max()), "scaled_dot_product_attention: ", blocks,
               " query tiles are too many for one launch");
    switch (detail::attention_bucket(a.E, a.Ev)) {
        case 32: detail::launch_attention_forward<T, 32>(a, blocks, out.data(), lse.data()); break;
        case 64: detail::launch_attention_forward<T, 64>(a, blocks, out.data(), lse.data()); break;
        default: detail::launch_attention_forward<T, 128>(a, blocks, out.data(), lse.data()); break;
    }
}

// Gradients of sum(grad_out * attention) into dq, dk, dv (dense, new; any may be undefined when
// not needed). out and lse are what attention_forward wrote.
template <class T>
void attention_backward(const AttentionProblem<T>& p, const Tensor<T, 4, Cuda>& grad_out,
                        const Tensor<T, 4, Cuda>& out, const Tensor<float, 3, Cuda>& lse,
                        const Tensor<T, 4, Cuda>& dq, const Tensor<T, 4, Cuda>& dk, const Tensor<T, 4, Cuda>& dv) {
    detail::check_attention_cuda_type<T>();
    const bool need_q = dq.defined(), need_k = dk.defined(), need_v = dv.defined();
    const index_t BH = p.q.size(0) * p.q.size(1), L = p.q.size(2), S = p.k.size(2), E = p.q.size(3);
    if (BH == 0 || !(need_q || need_k || need_v)) return;
    const auto a = detail::attention_args("scaled_dot_product_attention_backward", p);
    WEFT_CHECK((!need_q || dq.is_contiguous()) && (!need_k || dk.is_contiguous()) && (!need_v || dv.is_contiguous()) &&
                   lse.is_contiguous(),
               "scaled_dot_product_attention_backward: CUDA gradients must be dense");
    const cudaStream_t stream = current_stream();

    // dQ accumulates in float: in dq itself for float, else in a buffer converted at the end.
    Tensor<float, 1, Cuda> dq_buffer;
    float* dq_acc = nullptr;
    if (need_q) {
        if constexpr (std::same_as<T, float>) {
            dq_acc = dq.data();
        } else {
            dq_buffer = Tensor<float, 1, Cuda>::empty({std::max<index_t>(1, BH * L * E)});
            dq_acc = dq_buffer.data();
        }
        if (BH * L * E > 0)
            WEFT_CUDA_CHECK(cudaMemsetAsync(dq_acc, 0, std::size_t(BH * L * E) * sizeof(float), stream));
    }
    if (S > 0) {
        // D = rowsum(dO ∘ O) per query.                              // [B·H·L]
        Tensor<float, 1, Cuda> drow = Tensor<float, 1, Cuda>::empty({std::max<index_t>(1, BH * L)});
        if (L > 0) {
            kernels::attention_row_dot<T><<<grid_blocks(BH * L, 8), 256, 0, stream>>>(
                detail::attention_operand(grad_out), detail::attention_operand(out), a.H, a.L, a.Ev, BH * L,
                drow.data());
            WEFT_CUDA_CHECK_LAUNCH();
        }
        const index_t blocks = BH * ((S + kernels::attention_tile - 1) / kernels::attention_tile);
        WEFT_CHECK(blocks <= index_t(std::numeric_limits<int>::max()), "scaled_dot_product_attention_backward: ",
                   blocks, " key tiles are too many for one launch");
        const auto g = detail::attention_operand(grad_out);
        T* dkp = need_k ? dk.data() : nullptr;
        T* dvp = need_v ? dv.data() : nullptr;
        switch (detail::attention_bucket(a.E, a.Ev)) {
            case 32:
                detail::launch_attention_backward<T, 32>(a, g, blocks, lse.data(), drow.data(), dq_acc, dkp, dvp);
                break;
            case 64:
                detail::launch_attention_backward<T, 64>(a, g, blocks, lse.data(), drow.data(), dq_acc, dkp, dvp);
                break;
            default:
                detail::launch_attention_backward<T, 128>(a, g, blocks, lse.data(), drow.data(), dq_acc, dkp, dvp);
                break;
        }
    }
    if constexpr (!std::same_as<T, float>) {
        if (need_q && BH * L * E > 0) {
            kernels::attention_convert<T><<<grid_blocks(BH * L * E, 256), 256, 0, stream>>>(dq.data(), dq_acc,
                                                                                            BH * L * E);
            WEFT_CUDA_CHECK_LAUNCH();
        }
    }
}

}  // namespace weft::cuda

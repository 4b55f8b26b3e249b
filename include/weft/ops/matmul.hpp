// weft/ops/matmul.hpp: matrix products and the linear layer, forward and backward.
//
//   auto c = matmul(a, b);                    // [M, K] x [K, N] -> [M, N]
//   auto y = bmm(x, z);                       // [B, M, K] x [B, K, N] -> [B, M, N]
//   auto t = matmul(x, w);                    // [B, M, K] x [K, N] -> [B, M, N] (w shared)
//   auto h = linear(x, weight, bias);         // [..., in] -> [..., out]: x·weightᵀ + bias
//   auto [ga, gb] = matmul_backward(g, a, b); // gradients of sum(g * matmul(a, b))
//   auto [gx, gw, gbias] = linear_backward(g, x, weight, true);
//
// matmul follows torch.matmul for ranks 2x2, 3x3 (a batch extent of 1 broadcasts), 3x2 and
// 2x3; bmm is the strict batched product (equal batches, as torch.bmm). linear takes PyTorch's
// layout: weight [out_features, in_features], optional bias [out_features] (an undefined
// tensor, `{}`, means none), input of any rank >= 1.
//
// Operands are views of any strides. A transposed view (a.t(), x.transpose(1, 2)) reaches the
// GEMM as a transpose flag and a sliced one (rows or columns of a larger matrix) as a leading
// dimension, without copying; any other layout (a step along the last axis, an expanded
// matrix) is copied to a dense one first. A matrix shared over the batch (a batch extent of 1,
// or an expand()ed batch axis) is read in place for every product. A [B, M, K] left operand
// whose batches follow each other in memory makes one [B*M, K] product with a shared right
// operand, as linear on [batch, tokens, features] needs.
//
// linear writes the broadcast bias into its output first and lets the GEMM add to it
// (beta = 1): BLAS clears C before a beta = 0 product anyway, so the bias costs no extra pass.
//
// The backward functions return the gradients of sum(grad_out * forward(...)) with respect to
// each input, shaped as that input (a broadcast batch summed back to 1). They are plain tensor
// functions, for the autograd nodes to call; `need_*` flags skip gradients nobody needs.
//
// The work goes through `Gemm<D>` (ops/gemm.hpp): on the CPU OpenBLAS or Eigen (ops/cpu/), for
// float and double; on CUDA cuBLAS (ops/cuda/gemm.cuh), for those and bf16 and half.
#pragma once

#include <utility>
#include <algorithm>
#include <type_traits>

#include "../core/tensor.hpp"
#include "../autograd/tape.hpp"
#include "../expr.hpp"
#include "cpu/gemm.hpp"
#include "gemm.hpp"
#if WEFT_WITH_CUDA
#include "cuda/gemm.cuh"
#endif

namespace weft {

// Gradients of a product with respect to its two operands.
template <Element T, int RankA, int RankB, Device D = Cpu>
struct MatmulGrads {
    Tensor<T, RankA, D> grad_a;
    Tensor<T, RankB, D> grad_b;
};

// Gradients of linear with respect to input, weight and bias (undefined without a bias).
template <Element T, int Rank, Device D = Cpu>
struct LinearGrads {
    Tensor<T, Rank, D> grad_x;
    Tensor<T, 2, D> grad_w;
    Tensor<T, 1, D> grad_b;
};

namespace detail {

// Can a [rows, cols] matrix with strides (rs, cs) be handed to a row-major GEMM without a copy?
// Either its rows lie `ld` elements apart (trans = false), or it is the transpose of such a
// matrix (trans = true). BLAS wants ld >= the stored row length (at least 1), so overlapping
// rows, expanded (stride-0) axes and steps along both axes do not qualify.
inline bool gemm_layout(index_t rows, index_t cols, index_t rs, index_t cs, index_t& ld, bool& trans) {
    if ((cols <= 1 || cs == 1) && (rows <= 1 || rs >= std::max<index_t>(cols, 1))) {
        ld = rows <= 1 ? std::max<index_t>(cols, 1) : rs;
        trans = false;
        return true;
    }
    if ((rows <= 1 || rs == 1) && (cols <= 1 || cs >= std::max<index_t>(rows, 1))) {
        ld = cols <= 1 ? std::max<index_t>(rows, 1) : cs;
        trans = true;
        return true;
    }
    return false;
}

// A [batch, rows, cols] operand as the GEMM reads it.
template <class T, Device D>
struct GemmOperand {
    Tensor<T, 3, D> owner;  // the operand, or the dense copy made of it; keeps the memory alive
    const T* data = nullptr;
    index_t ld = 1, batch_stride = 0;  // batch stride 0: one matrix shared by every product
    bool trans = false;
};

template <class T, Device D>
GemmOperand<T, D> gemm_operand(const Tensor<T, 3, D>& t) {
    GemmOperand<T, D> op;
    op.owner = t;
    if (!gemm_layout(t.size(1), t.size(2), t.stride(1), t.stride(2), op.ld, op.trans)) {
        // Copy what the GEMM cannot read; a matrix broadcast over the batch only once.
        op.owner =
            (t.size(0) > 1 && t.stride(0) == 0) ? t.select(0, 0).contiguous().unsqueeze(0) : t.contiguous();
        gemm_layout(op.owner.size(1), op.owner.size(2), op.owner.stride(1), op.owner.stride(2), op.ld,
                    op.trans);
    }
    op.data = op.owner.data();
    op.batch_stride = op.owner.size(0) > 1 ? op.owner.stride(0) : 0;
    return op;
}

// c[i] = alpha * a[i] · b[i] + beta * c[i] for a [B, M, N] view c, a [Ba, M, K] and b [Bb, K, N]
// with Ba and Bb equal to B or 1 (1: shared by every product). Shapes are the caller's to check.
template <class T, Device D>
void gemm_into(const Tensor<T, 3, D>& c, const Tensor<T, 3, D>& a, const Tensor<T, 3, D>& b, T alpha,
               T beta) {
    const index_t batch = c.size(0), m = c.size(1), n = c.size(2), k = a.size(2);
    if (c.numel() == 0) return;
    index_t ldc = 1;
    bool trans_c = false;
    bool direct = gemm_layout(m, n, c.stride(1), c.stride(2), ldc, trans_c) &&
                  !same_storage(c.storage(), a.storage()) && !same_storage(c.storage(), b.storage());
    if (direct && batch > 1) {  // the products' outputs must not overlap
        const index_t span = trans_c ? (n - 1) * ldc + m : (m - 1) * ldc + n;
        direct = c.stride(0) >= span;
    }
    if (!direct) {
        Tensor<T, 3, D> tmp = beta == T(0) ? Tensor<T, 3, D>::empty(c.shape()) : c.clone();
        gemm_into(tmp, a, b, alpha, beta);
        c.copy_from(tmp);
        return;
    }
    const GemmOperand<T, D> oa = gemm_operand(a), ob = gemm_operand(b);
    GemmProblem<T> p;
    p.batch = batch;
    p.k = k;
    p.alpha = alpha;
    p.beta = beta;
    p.c = c.data();
    p.ldc = ldc;
    p.stride_c = batch > 1 ? c.stride(0) : 0;
    if (!trans_c) {
        p.m = m;
        p.n = n;
        p.a = oa.data, p.lda = oa.ld, p.trans_a = oa.trans, p.stride_a = oa.batch_stride;
        p.b = ob.data, p.ldb = ob.ld, p.trans_b = ob.trans, p.stride_b = ob.batch_stride;
        // A shared right operand, and rows of A and C that run on from one batch to the next:
        // one [B*M, K] x [K, N] product instead of B small ones.
        if (batch > 1 && ob.batch_stride == 0 && !oa.trans && oa.batch_stride == m * oa.ld &&
            p.stride_c == m * ldc) {
            p.m = batch * m;
            p.batch = 1;
            p.stride_a = p.stride_c = 0;
        }
    } else {
        // C is stored transposed: its memory holds the rows of Cᵀ = op(B)ᵀ · op(A)ᵀ.
        p.m = n;
        p.n = m;
        p.a = ob.data, p.lda = ob.ld, p.trans_a = !ob.trans, p.stride_a = ob.batch_stride;
        p.b = oa.data, p.ldb = oa.ld, p.trans_b = !oa.trans, p.stride_b = oa.batch_stride;
    }
    Gemm<D>::run(p);
}

// sum over i of a[i] · b[i] into the single matrix c[0] (beta applies once): the gradient of an
// operand that was shared over the batch.
template <class T, Device D>
void gemm_sum_into(const Tensor<T, 3, D>& c, const Tensor<T, 3, D>& a, const Tensor<T, 3, D>& b, T beta) {
    const index_t batch = std::max(a.size(0), b.size(0));
    if (batch == 0) {
        if (beta == T(0)) c.copy_from(Tensor<T, 3, D>::zeros(c.shape()));
        return;
    }
    for (index_t i = 0; i < batch; ++i) {
        const index_t ia = a.size(0) == 1 ? 0 : i, ib = b.size(0) == 1 ? 0 : i;
        gemm_into(c, a.slice(0, ia, ia + 1), b.slice(0, ib, ib + 1), T(1), i == 0 ? beta : T(1));
    }
}

// The batch extent of a product of batches ba and bb (equal, or one of them 1).
inline index_t product_batch(index_t ba, index_t bb) { return ba == 1 ? bb : ba; }

// matmul for [Ba, M, K] x [Bb, K, N], shapes already checked.
template <class T, Device D>
Tensor<T, 3, D> matmul3(const Tensor<T, 3, D>& a, const Tensor<T, 3, D>& b) {
    auto c = Tensor<T, 3, D>::empty({product_batch(a.size(0), b.size(0)), a.size(1), b.size(2)});
    gemm_into(c, a, b, T(1), T(0));
    return c;
}

// Gradients of sum(g * matmul3(a, b)), shapes already checked.
template <class T, Device D>
MatmulGrads<T, 3, 3, D> matmul3_backward(const Tensor<T, 3, D>& g, const Tensor<T, 3, D>& a,
                                         const Tensor<T, 3, D>& b, bool need_a, bool need_b) {
    MatmulGrads<T, 3, 3, D> out;
    const index_t batch = g.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
    if (need_a) {  // dA = dC · Bᵀ
        out.grad_a = Tensor<T, 3, D>::empty(a.shape());
        if (a.size(0) == batch)
            gemm_into(out.grad_a, g, b.transpose(1, 2), T(1), T(0));
        else
            gemm_sum_into(out.grad_a, g, b.transpose(1, 2), T(0));
    }
    if (need_b) {  // dB = Aᵀ · dC
        out.grad_b = Tensor<T, 3, D>::empty(b.shape());
        if (b.size(0) == batch) {
            gemm_into(out.grad_b, a.transpose(1, 2), g, T(1), T(0));
        } else if (batch > 0) {
            // B was shared: sum over i of A[i]ᵀ · dC[i] = [B*M, K]ᵀ · [B*M, N], one product.
            const Tensor<T, 2, D> a2 = a.reshape(batch * m, k), g2 = g.reshape(batch * m, n);
            gemm_into(out.grad_b, a2.t().unsqueeze(0), g2.unsqueeze(0), T(1), T(0));
        } else {
            gemm_sum_into(out.grad_b, a.transpose(1, 2), g, T(0));
        }
    }
    return out;
}

template <int R, class ShapeA, class ShapeB>
void check_grad_shape(const char* op, const Shape<R>& expected, const Shape<R>& got, const ShapeA& sa,
                      const ShapeB& sb) {
    WEFT_CHECK(expected == got, op, ": grad_out of shape ", got, " does not match the product of shapes ", sa,
               " and ", sb, " (expected ", expected, ")");
}

// [d0, ..., d(R-1)] -> [d0 * ... * d(R-3), d(R-2), d(R-1)]: a view when the strides allow.
template <Element T, int R, Device D>
Tensor<T, 3, D> as_rows3(const Tensor<T, R, D>& x) {
    if constexpr (R == 1) {
        return x.unsqueeze(0).unsqueeze(0);
    } else if constexpr (R == 2) {
        return x.unsqueeze(0);
    } else if constexpr (R == 3) {
        return x;
    } else {
        index_t lead = 1;
        for (int d = 0; d < R - 2; ++d) lead *= x.size(d);
        return x.reshape(Shape<3>{lead, x.size(R - 2), x.size(R - 1)});
    }
}

}  // namespace detail

namespace detail {

// Records the node of a product c = a · b (matmul or bmm) when an operand requires grad.
template <class T, int RC, int RA, int RB, Device D>
void record_product(Tensor<T, RC, D>& c, const char* name, const Tensor<T, RA, D>& a, const Tensor<T, RB, D>& b);

}  // namespace detail

// ---- forward -------------------------------------------------------------------------------

// [M, K] x [K, N] -> [M, N]
template <Element T, Device D>
Tensor<T, 2, D> matmul(const Tensor<T, 2, D>& a, const Tensor<T, 2, D>& b) {
    WEFT_CHECK(a.size(1) == b.size(0), "matmul: shapes ", a.shape(), " and ", b.shape(),
               " cannot be multiplied (", a.size(1), " columns against ", b.size(0), " rows)");
    auto c = Tensor<T, 2, D>::empty({a.size(0), b.size(1)});
    detail::gemm_into(c.unsqueeze(0), a.detach().unsqueeze(0), b.detach().unsqueeze(0), T(1), T(0));
    detail::record_product(c, "matmul", a, b);
    return c;
}

// [Ba, M, K] x [Bb, K, N] -> [B, M, N], where Ba and Bb are equal or one of them is 1.
template <Element T, Device D>
Tensor<T, 3, D> matmul(const Tensor<T, 3, D>& a, const Tensor<T, 3, D>& b) {
    WEFT_CHECK((a.size(0) == b.size(0) || a.size(0) == 1 || b.size(0) == 1) && a.size(2) == b.size(1),
               "matmul: shapes ", a.shape(), " and ", b.shape(),
               " cannot be multiplied (batches must be equal or 1, and columns of the first equal rows of "
               "the second)");
    auto c = detail::matmul3(a.detach(), b.detach());
    detail::record_product(c, "matmul", a, b);
    return c;
}

// [B, M, K] x [K, N] -> [B, M, N]: one matrix applied to every batch (torch.matmul's broadcast).
template <Element T, Device D>
Tensor<T, 3, D> matmul(const Tensor<T, 3, D>& a, const Tensor<T, 2, D>& b) {
    WEFT_CHECK(a.size(2) == b.size(0), "matmul: shapes ", a.shape(), " and ", b.shape(),
               " cannot be multiplied (", a.size(2), " columns against ", b.size(0), " rows)");
    auto c = detail::matmul3(a.detach(), b.detach().unsqueeze(0));
    detail::record_product(c, "matmul", a, b);
    return c;
}

// [M, K] x [B, K, N] -> [B, M, N]
template <Element T, Device D>
Tensor<T, 3, D> matmul(const Tensor<T, 2, D>& a, const Tensor<T, 3, D>& b) {
    WEFT_CHECK(a.size(1) == b.size(1), "matmul: shapes ", a.shape(), " and ", b.shape(),
               " cannot be multiplied (", a.size(1), " columns against ", b.size(1), " rows)");
    auto c = detail::matmul3(a.detach().unsqueeze(0), b.detach());
    detail::record_product(c, "matmul", a, b);
    return c;
}

// Anything else: one readable error instead of a list of rejected overloads.
template <class A, class B>
    requires(AnyTensor<A> && AnyTensor<B>)
void matmul(const A&, const B&) {
    static_assert(always_false<A>,
                  "weft: matmul multiplies two tensors of the same element type and device, of ranks 2x2, "
                  "3x3, 3x2 or 2x3 (matrix-vector products: unsqueeze the vector)");
}

// [B, M, K] x [B, K, N] -> [B, M, N], batches equal (as torch.bmm; matmul broadcasts a batch of 1).
template <Element T, Device D>
Tensor<T, 3, D> bmm(const Tensor<T, 3, D>& a, const Tensor<T, 3, D>& b) {
    WEFT_CHECK(
        a.size(0) == b.size(0) && a.size(2) == b.size(1), "bmm: shapes ", a.shape(), " and ", b.shape(),
        " cannot be multiplied (batches must be equal, and columns of the first equal rows of the second)");
    auto c = detail::matmul3(a.detach(), b.detach());
    detail::record_product(c, "bmm", a, b);
    return c;
}

template <class A, class B>
    requires(AnyTensor<A> && AnyTensor<B>)
void bmm(const A&, const B&) {
    static_assert(always_false<A>,
                  "weft: bmm multiplies two rank-3 tensors [B, M, K] x [B, K, N] of the same element type "
                  "and device");
}

// out = alpha * a · b + beta * out, into an existing [M, N] view (any strides; a transposed
// view is written through as such). beta = 0 ignores out's old contents.
template <Element T, Device D>
void matmul_out(const Tensor<T, 2, D>& out, const Tensor<T, 2, D>& a, const Tensor<T, 2, D>& b,
                std::type_identity_t<T> alpha = T(1), std::type_identity_t<T> beta = T(0)) {
    WEFT_CHECK(a.size(1) == b.size(0) && out.size(0) == a.size(0) && out.size(1) == b.size(1),
               "matmul_out: shapes ", a.shape(), " and ", b.shape(),
               " cannot be multiplied into an output of shape ", out.shape());
    detail::gemm_into(out.unsqueeze(0), a.unsqueeze(0), b.unsqueeze(0), alpha, beta);
}

// y = x · weightᵀ + bias: [..., in] -> [..., out], weight [out, in], bias [out] or undefined.
template <Element T, int R, Device D>
Tensor<T, R, D> linear(const Tensor<T, R, D>& x, const Tensor<T, 2, D>& weight,
                       const Tensor<T, 1, D>& bias = {}) {
    static_assert(R >= 1, "weft: linear needs an input of rank 1 or more, [..., in_features]");
    const index_t in = x.size(R - 1), out = weight.size(0);
    WEFT_CHECK(weight.size(1) == in, "linear: input of shape ", x.shape(), " does not fit weight of shape ",
               weight.shape(), " (weight is [out_features, in_features]: ", weight.size(1),
               " input features against ", in, ")");
    WEFT_CHECK(!bias.defined() || bias.size(0) == out, "linear: bias of shape ", bias.shape(),
               " does not fit weight of shape ", weight.shape(), " (expected [", out, "])");
    Shape<R> ys = x.shape();
    ys[R - 1] = out;
    auto y = Tensor<T, R, D>::empty(ys);
    if (y.numel() == 0) return y;
    if (bias.defined()) assign_expression(y, bias.detach());  // the GEMM adds x·weightᵀ to it (beta = 1)
    detail::gemm_into(detail::as_rows3(y), detail::as_rows3(x.detach()), weight.detach().t().unsqueeze(0), T(1),
                      bias.defined() ? T(1) : T(0));
    if (needs_grad(x, weight, bias))
        record(
            y, "linear",
            [x, weight, bias](const Tensor<T, R, D>& g) {
                auto grads = linear_backward(g, x.detach(), weight.detach(), bias.requires_grad(), x.requires_grad(),
                                             weight.requires_grad());
                accumulate_grad(x, std::move(grads.grad_x));
                accumulate_grad(weight, std::move(grads.grad_w));
                if (bias.defined()) accumulate_grad(bias, std::move(grads.grad_b));
            },
            x, weight, bias);
    return y;
}

// ---- backward ------------------------------------------------------------------------------

template <Element T, Device D>
MatmulGrads<T, 2, 2, D> matmul_backward(const Tensor<T, 2, D>& grad_out, const Tensor<T, 2, D>& a,
                                        const Tensor<T, 2, D>& b, bool need_a = true, bool need_b = true) {
    WEFT_CHECK(a.size(1) == b.size(0), "matmul_backward: shapes ", a.shape(), " and ", b.shape(),
               " cannot be multiplied");
    detail::check_grad_shape("matmul_backward", Shape<2>{a.size(0), b.size(1)}, grad_out.shape(), a.shape(),
                             b.shape());
    auto g = detail::matmul3_backward(grad_out.unsqueeze(0), a.unsqueeze(0), b.unsqueeze(0), need_a, need_b);
    MatmulGrads<T, 2, 2, D> out;
    if (need_a) out.grad_a = g.grad_a.select(0, 0);
    if (need_b) out.grad_b = g.grad_b.select(0, 0);
    return out;
}

template <Element T, Device D>
MatmulGrads<T, 3, 3, D> matmul_backward(const Tensor<T, 3, D>& grad_out, const Tensor<T, 3, D>& a,
                                        const Tensor<T, 3, D>& b, bool need_a = true, bool need_b = true) {
    WEFT_CHECK((a.size(0) == b.size(0) || a.size(0) == 1 || b.size(0) == 1) && a.size(2) == b.size(1),
               "matmul_backward: shapes ", a.shape(), " and ", b.shape(), " cannot be multiplied");
    detail::check_grad_shape("matmul_backward",
                             Shape<3>{detail::product_batch(a.size(0), b.size(0)), a.size(1), b.size(2)},
                             grad_out.shape(), a.shape(), b.shape());
    return detail::matmul3_backward(grad_out, a, b, need_a, need_b);
}

template <Element T, Device D>
MatmulGrads<T, 3, 2, D> matmul_backward(const Tensor<T, 3, D>& grad_out, const Tensor<T, 3, D>& a,
                                        const Tensor<T, 2, D>& b, bool need_a = true, bool need_b = true) {
    WEFT_CHECK(a.size(2) == b.size(0), "matmul_backward: shapes ", a.shape(), " and ", b.shape(),
               " cannot be multiplied");
    detail::check_grad_shape("matmul_backward", Shape<3>{a.size(0), a.size(1), b.size(1)}, grad_out.shape(),
                             a.shape(), b.shape());
    auto g = detail::matmul3_backward(grad_out, a, b.unsqueeze(0), need_a, need_b);
    MatmulGrads<T, 3, 2, D> out;
    out.grad_a = g.grad_a;
    if (need_b) out.grad_b = g.grad_b.select(0, 0);
    return out;
}

template <Element T, Device D>
MatmulGrads<T, 2, 3, D> matmul_backward(const Tensor<T, 3, D>& grad_out, const Tensor<T, 2, D>& a,
                                        const Tensor<T, 3, D>& b, bool need_a = true, bool need_b = true) {
    WEFT_CHECK(a.size(1) == b.size(1), "matmul_backward: shapes ", a.shape(), " and ", b.shape(),
               " cannot be multiplied");
    detail::check_grad_shape("matmul_backward", Shape<3>{b.size(0), a.size(0), b.size(2)}, grad_out.shape(),
                             a.shape(), b.shape());
    auto g = detail::matmul3_backward(grad_out, a.unsqueeze(0), b, need_a, need_b);
    MatmulGrads<T, 2, 3, D> out;
    if (need_a) out.grad_a = g.grad_a.select(0, 0);
    out.grad_b = g.grad_b;
    return out;
}

template <Element T, Device D>
MatmulGrads<T, 3, 3, D> bmm_backward(const Tensor<T, 3, D>& grad_out, const Tensor<T, 3, D>& a,
                                     const Tensor<T, 3, D>& b, bool need_a = true, bool need_b = true) {
    WEFT_CHECK(a.size(0) == b.size(0) && a.size(2) == b.size(1), "bmm_backward: shapes ", a.shape(), " and ",
               b.shape(), " cannot be multiplied");
    return matmul_backward(grad_out, a, b, need_a, need_b);
}

// Gradients of sum(grad_out * linear(x, weight, bias)); grad_b only when has_bias.
template <Element T, int R, Device D>
LinearGrads<T, R, D> linear_backward(const Tensor<T, R, D>& grad_out, const Tensor<T, R, D>& x,
                                     const Tensor<T, 2, D>& weight, bool has_bias, bool need_x = true,
                                     bool need_w = true) {
    const index_t in = x.size(R - 1), out = weight.size(0);
    WEFT_CHECK(weight.size(1) == in, "linear_backward: input of shape ", x.shape(),
               " does not fit weight of shape ", weight.shape());
    Shape<R> ys = x.shape();
    ys[R - 1] = out;
    WEFT_CHECK(grad_out.shape() == ys, "linear_backward: grad_out of shape ", grad_out.shape(),
               " does not match the output of input ", x.shape(), " and weight ", weight.shape(),
               " (expected ", ys, ")");
    LinearGrads<T, R, D> grads;
    const auto g3 = detail::as_rows3(grad_out);
    if (need_x) {  // dx = dy · W
        grads.grad_x = Tensor<T, R, D>::empty(x.shape());
        detail::gemm_into(detail::as_rows3(grads.grad_x), g3, weight.unsqueeze(0), T(1), T(0));
    }
    const index_t rows = in > 0 ? x.numel() / in : g3.size(0) * g3.size(1);
    const Tensor<T, 2, D> g2 = grad_out.reshape(Shape<2>{rows, out});
    if (need_w) {  // dW = dyᵀ · x over all rows: [out, rows] x [rows, in]
        grads.grad_w = Tensor<T, 2, D>::empty({out, in});
        const Tensor<T, 2, D> x2 = x.reshape(Shape<2>{rows, in});
        detail::gemm_into(grads.grad_w.unsqueeze(0), g2.t().unsqueeze(0), x2.unsqueeze(0), T(1), T(0));
    }
    if (has_bias) grads.grad_b = sum(g2, {0});  // db = dy summed over every row
    return grads;
}

namespace detail {

template <class T, int RC, int RA, int RB, Device D>
void record_product(Tensor<T, RC, D>& c, const char* name, const Tensor<T, RA, D>& a, const Tensor<T, RB, D>& b) {
    if (!needs_grad(a, b)) return;
    record(
        c, name,
        [a, b](const Tensor<T, RC, D>& g) {
            auto grads = matmul_backward(g, a.detach(), b.detach(), a.requires_grad(), b.requires_grad());
            accumulate_grad(a, std::move(grads.grad_a));
            accumulate_grad(b, std::move(grads.grad_b));
        },
        a, b);
}

}  // namespace detail

}  // namespace weft

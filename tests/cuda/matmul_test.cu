// Matrix products on the GPU (Gemm<Cuda>, cuBLAS: ops/cuda/gemm.cuh) against the CPU's OpenBLAS or
// Eigen GEMM: matmul of every rank pairing, bmm, linear, the products' backward, transposed and
// sliced operands, a batch shared by broadcasting, bf16 and half against float on the rounded inputs.
//
// Tolerances: the two libraries sum the k products in different orders (and cuBLAS may split k),
// so fp32 results differ by a few ulp of the sum of |terms|. With inputs ~N(0, 1) that sum grows
// as sqrt(k), hence an absolute tolerance scaled by sqrt(k). The 16-bit products accumulate in
// float and round the result once, so they sit within one 16-bit ulp of the float reference.
#include "common.cuh"

#include <cmath>

using namespace weft;
using namespace weft_test;

namespace {

double fp32_atol(index_t k) { return 2e-6 * std::sqrt(double(k)) * 4; }

}  // namespace

TEST_CASE("cuda: matmul 2x2 matches the CPU, dense, transposed and sliced", "[cuda]") {
    const index_t m = 67, k = 129, n = 45;
    const auto a = randn_host(Shape<2>{m, k}, 11);
    const auto b = randn_host(Shape<2>{k, n}, 12);
    const auto ag = to_gpu(a), bg = to_gpu(b);
    require_close(matmul(ag, bg), matmul(a, b), 1e-5, fp32_atol(k));

    // Transposed views reach cuBLAS as transpose flags.
    const auto at = randn_host(Shape<2>{k, m}, 13);
    const auto bt = randn_host(Shape<2>{n, k}, 14);
    const auto atg = to_gpu(at), btg = to_gpu(bt);
    require_close(matmul(atg.t(), btg.t()), matmul(at.t(), bt.t()), 1e-5, fp32_atol(k));

    // A block of a larger matrix: leading dimension larger than the row.
    const auto big = randn_host(Shape<2>{m + 5, k + 9}, 15);
    const auto bigg = to_gpu(big);
    require_close(matmul(bigg.slice(0, 3, 3 + m).slice(1, 4, 4 + k), bg),
                  matmul(big.slice(0, 3, 3 + m).slice(1, 4, 4 + k), b), 1e-5, fp32_atol(k));

    // A step along the last axis cannot go to BLAS directly: copied first, on the device.
    require_close(matmul(bigg.slice(0, 0, m).slice(1, 0, 2 * k, 2).slice(1, 0, k), bg),
                  matmul(big.slice(0, 0, m).slice(1, 0, 2 * k, 2).slice(1, 0, k), b), 1e-5, fp32_atol(k));
}

TEST_CASE("cuda: batched products (bmm, broadcast batches, 3x2 and 2x3) match the CPU", "[cuda]") {
    const index_t batch = 5, m = 33, k = 70, n = 19;
    const auto a = randn_host(Shape<3>{batch, m, k}, 21);
    const auto b = randn_host(Shape<3>{batch, k, n}, 22);
    const auto w = randn_host(Shape<2>{k, n}, 23);
    const auto a1 = randn_host(Shape<3>{1, m, k}, 24);
    const auto ag = to_gpu(a), bg = to_gpu(b), a1g = to_gpu(a1);
    const auto wg = to_gpu(w);
    require_close(bmm(ag, bg), bmm(a, b), 1e-5, fp32_atol(k));
    require_close(matmul(ag, wg), matmul(a, w), 1e-5, fp32_atol(k));   // one [B*M, K] product
    require_close(matmul(a1g, bg), matmul(a1, b), 1e-5, fp32_atol(k));  // A shared (stride 0)
    const auto w2 = randn_host(Shape<2>{m, k}, 25);
    require_close(matmul(to_gpu(w2), bg), matmul(w2, b), 1e-5, fp32_atol(k));
    // Attention-style operands: q · kᵀ with kᵀ a transposed view of a [B, S, E] tensor.
    require_close(bmm(ag, to_gpu(randn_host(Shape<3>{batch, n, k}, 26)).transpose(1, 2)),
                  bmm(a, randn_host(Shape<3>{batch, n, k}, 26).transpose(1, 2)), 1e-5, fp32_atol(k));
}

TEST_CASE("cuda: linear forward and backward match the CPU", "[cuda]") {
    const index_t rows = 3, tokens = 41, in = 96, out = 130;
    const auto x = randn_host(Shape<3>{rows, tokens, in}, 31);
    const auto weight = randn_host(Shape<2>{out, in}, 32);
    const auto bias = randn_host(Shape<1>{out}, 33);
    const auto g = randn_host(Shape<3>{rows, tokens, out}, 34);
    const auto xg = to_gpu(x), gg = to_gpu(g);
    const auto wg = to_gpu(weight);
    const auto bg = to_gpu(bias);
    require_close(linear(xg, wg, bg), linear(x, weight, bias), 1e-5, fp32_atol(in));

    const auto want = linear_backward(g, x, weight, true);
    const auto got = linear_backward(gg, xg, wg, true);
    require_close(got.grad_x, want.grad_x, 1e-5, fp32_atol(out));
    require_close(got.grad_w, want.grad_w, 1e-5, fp32_atol(rows * tokens));
    require_close(got.grad_b, want.grad_b, 1e-5, fp32_atol(rows * tokens));
}

TEST_CASE("cuda: matmul gradients through autograd match the CPU, a shared operand included", "[cuda]") {
    const index_t batch = 4, m = 17, k = 52, n = 23;
    auto a = randn_host(Shape<3>{batch, m, k}, 41);
    auto w = randn_host(Shape<2>{k, n}, 42);
    const auto g = randn_host(Shape<3>{batch, m, n}, 43);
    auto ag = to_gpu(a);
    auto wg = to_gpu(w);
    a.requires_grad_();
    w.requires_grad_();
    ag.requires_grad_();
    wg.requires_grad_();
    sum(matmul(a, w) * g).backward();
    sum(matmul(ag, wg) * to_gpu(g)).backward();
    require_close(ag.grad(), a.grad(), 1e-5, fp32_atol(n));
    require_close(wg.grad(), w.grad(), 1e-5, fp32_atol(batch * m));
}

TEST_CASE("cuda: double products match the CPU to double rounding", "[cuda]") {
    const index_t m = 31, k = 200, n = 27;
    const Tensor<double, 2, Cpu> a = cast<double>(randn_host(Shape<2>{m, k}, 51));
    const Tensor<double, 2, Cpu> b = cast<double>(randn_host(Shape<2>{k, n}, 52));
    require_close(matmul(to_gpu(a), to_gpu(b)), matmul(a, b), 1e-12, 1e-12 * std::sqrt(double(k)));
}

TEST_CASE("cuda: bf16 and half products are the float product rounded once", "[cuda]") {
    const index_t batch = 3, m = 29, k = 160, n = 37;
    const Tensor<bf16, 3, Cpu> a = cast<bf16>(randn_host(Shape<3>{batch, m, k}, 61));
    const Tensor<bf16, 3, Cpu> b = cast<bf16>(randn_host(Shape<3>{batch, k, n}, 62));
    // The reference: exact products of the rounded inputs, summed in float, rounded to bf16 once.
    const Tensor<float, 3, Cpu> want = bmm(eval(cast<float>(a)), eval(cast<float>(b)));
    const Tensor<float, 3, Cpu> got = eval(cast<float>(bmm(to_gpu(a), to_gpu(b)))).template to<Cpu>();
    // One bf16 ulp is 2^-8 relative; allow for float summation order differences on top.
    require_close(got, want, 1.0 / 128, fp32_atol(k));

    const Tensor<half, 3, Cpu> ah = cast<half>(randn_host(Shape<3>{batch, m, k}, 63));
    const Tensor<half, 3, Cpu> bh = cast<half>(randn_host(Shape<3>{batch, k, n}, 64));
    const Tensor<float, 3, Cpu> want_h = bmm(eval(cast<float>(ah)), eval(cast<float>(bh)));
    const Tensor<float, 3, Cpu> got_h = eval(cast<float>(bmm(to_gpu(ah), to_gpu(bh)))).template to<Cpu>();
    require_close(got_h, want_h, 1.0 / 1024, fp32_atol(k));  // half: 2^-11 relative
}

TEST_CASE("cuda: TF32 products are opt-in and stay close to fp32", "[cuda]") {
    const index_t m = 64, k = 256, n = 64;
    const auto a = randn_host(Shape<2>{m, k}, 71);
    const auto b = randn_host(Shape<2>{k, n}, 72);
    const auto want = matmul(a, b);
    REQUIRE_FALSE(weft::cuda::allow_tf32());
    weft::cuda::set_allow_tf32(true);
    const auto got = matmul(to_gpu(a), to_gpu(b));
    weft::cuda::set_allow_tf32(false);
    // TF32 keeps 10 mantissa bits of each input: about 2^-11 relative error per product.
    require_close(got, want, 1e-2, 2e-3 * std::sqrt(double(k)));
}

// matmul, bmm, linear and their backward functions (weft/ops/matmul.hpp), and both CPU GEMM
// engines (weft/ops/cpu/): against a naive triple loop in double, on random shapes and on every
// operand layout the GEMM reads in place (transposed, sliced, shared over a batch) or copies
// (steps, expanded matrices). Gradients: central finite differences in double precision.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <weft/ops/cpu/gemm_eigen.hpp>
#include <weft/ops/matmul.hpp>

using namespace weft;

namespace {

struct ThreadsGuard {
    int saved = num_threads();
    ~ThreadsGuard() { set_num_threads(saved); }
};

template <class T, int R>
Tensor<T, R> random_tensor(const Shape<R>& shape, std::mt19937& rng) {
    std::uniform_real_distribution<double> dist(-1.0, 1.0);
    std::vector<T> v(std::size_t(shape.numel()));
    for (auto& x : v) x = T(dist(rng));
    return Tensor<T, R>::from_vector(v, shape);
}

// Element at a multi-index of a view, through its strides.
template <class T, int R, std::size_t N>
T& elem(const Tensor<T, R>& t, const std::array<index_t, N>& idx) {
    static_assert(int(N) == R);
    index_t off = 0;
    for (int d = 0; d < R; ++d) off += idx[d] * t.stride(d);
    return t.data()[off];
}

// Calls f(multi-index) for every element, in row-major order.
template <int R, class F>
void for_each_index(const Shape<R>& shape, F f) {
    if (shape.numel() == 0) return;
    std::array<index_t, R> idx{};
    for (index_t n = 0; n < shape.numel(); ++n) {
        f(idx);
        for (int d = R - 1; d >= 0; --d) {
            if (++idx[d] < shape[d]) break;
            idx[d] = 0;
        }
    }
}

// The naive product in double, and the sum of |a_ik * b_kj| that bounds its rounding error.
struct Reference {
    std::vector<double> value, magnitude;
    index_t m = 0, n = 0, k = 0;
};

template <class T>
Reference naive(const Tensor<T, 2>& a, const Tensor<T, 2>& b) {
    Reference r;
    r.m = a.size(0), r.n = b.size(1), r.k = a.size(1);
    r.value.assign(std::size_t(r.m * r.n), 0.0);
    r.magnitude.assign(std::size_t(r.m * r.n), 0.0);
    for (index_t i = 0; i < r.m; ++i)
        for (index_t j = 0; j < r.n; ++j)
            for (index_t p = 0; p < r.k; ++p) {
                const double x = double(a(i, p)) * double(b(p, j));
                r.value[std::size_t(i * r.n + j)] += x;
                r.magnitude[std::size_t(i * r.n + j)] += std::abs(x);
            }
    return r;
}

template <class T>
double epsilon() {
    return double(std::numeric_limits<T>::epsilon());
}

// |got - ref| within a few ulps per term of the dot products (any summation order).
template <class T>
void require_close(const Tensor<T, 2>& got, const Reference& r, double alpha = 1,
                   const std::vector<double>* c0 = nullptr, double beta = 0) {
    REQUIRE(got.size(0) == r.m);
    REQUIRE(got.size(1) == r.n);
    double worst = 0;
    for (index_t i = 0; i < r.m; ++i)
        for (index_t j = 0; j < r.n; ++j) {
            const std::size_t q = std::size_t(i * r.n + j);
            const double old = c0 ? (*c0)[q] : 0.0;
            const double want = alpha * r.value[q] + (beta != 0 ? beta * old : 0.0);
            const double tol = 4 * epsilon<T>() *
                                   (double(r.k + 2) * std::abs(alpha) * r.magnitude[q] +
                                    std::abs(beta * old) + std::abs(want)) +
                               1e-300;
            const double err = std::abs(double(got(i, j)) - want);
            if (err > tol) {
                INFO("element (" << i << ", " << j << "): got " << double(got(i, j)) << ", want " << want
                                 << ", tolerance " << tol);
                REQUIRE(err <= tol);
            }
            worst = std::max(worst, err / tol);
        }
    CHECK(worst <= 1.0);
}

template <class T>
void require_batched_close(const Tensor<T, 3>& got, const Tensor<T, 3>& a, const Tensor<T, 3>& b) {
    const index_t batch = got.size(0);
    REQUIRE(batch == std::max(a.size(0), b.size(0)));
    for (index_t i = 0; i < batch; ++i) {
        INFO("batch " << i);
        require_close(got.select(0, i),
                      naive(a.select(0, a.size(0) == 1 ? 0 : i), b.select(0, b.size(0) == 1 ? 0 : i)));
    }
}

bool shares(const auto& x, const auto& y) { return same_storage(x.storage(), y.storage()); }

}  // namespace

// ---- forward: values ---------------------------------------------------------------------------

TEMPLATE_TEST_CASE("matmul matches a naive product on random shapes", "[ops][matmul]", float, double) {
    std::mt19937 rng(11);
    std::uniform_int_distribution<index_t> extent(1, 70);
    for (int trial = 0; trial < 25; ++trial) {
        const index_t m = extent(rng), k = extent(rng), n = extent(rng);
        INFO("shape " << m << "x" << k << "x" << n);
        auto a = random_tensor<TestType, 2>({m, k}, rng);
        auto b = random_tensor<TestType, 2>({k, n}, rng);
        require_close(matmul(a, b), naive(a, b));
    }
    // Degenerate extents: empty results, and K = 0 (a sum of nothing is 0).
    auto a0 = Tensor<TestType, 2>::ones({3, 0});
    auto b0 = Tensor<TestType, 2>::ones({0, 4});
    auto z = matmul(a0, b0);
    REQUIRE(z.shape() == Shape<2>{3, 4});
    for_each_index(z.shape(), [&](const auto& i) { REQUIRE(elem(z, i) == TestType(0)); });
    REQUIRE(matmul(Tensor<TestType, 2>::ones({0, 5}), Tensor<TestType, 2>::ones({5, 2})).shape() ==
            Shape<2>{0, 2});
    REQUIRE(matmul(Tensor<TestType, 2>::ones({2, 5}), Tensor<TestType, 2>::ones({5, 0})).shape() ==
            Shape<2>{2, 0});
}

TEMPLATE_TEST_CASE("matmul of large products split over the threads", "[ops][matmul]", float, double) {
    // Big enough that both engines cut the work into several tasks; odd extents leave ragged
    // last blocks. Three threads on a two-core machine make the split uneven.
    ThreadsGuard guard;
    std::mt19937 rng(12);
    for (int threads : {1, 3}) {
        set_num_threads(threads);
        for (auto [m, k, n] : {std::array<index_t, 3>{301, 97, 203}, std::array<index_t, 3>{45, 130, 517},
                               std::array<index_t, 3>{517, 64, 33}}) {
            INFO(threads << " threads, shape " << m << "x" << k << "x" << n);
            auto a = random_tensor<TestType, 2>({m, k}, rng);
            auto b = random_tensor<TestType, 2>({k, n}, rng);
            require_close(matmul(a, b), naive(a, b));
        }
    }
}

TEMPLATE_TEST_CASE("matmul reads transposed and sliced operands in place", "[ops][matmul]", float, double) {
    std::mt19937 rng(13);
    auto big = random_tensor<TestType, 2>({40, 50}, rng);
    auto other = random_tensor<TestType, 2>({50, 40}, rng);

    // Transposed views: the GEMM gets a transpose flag, and the operand is not copied.
    auto at = big.t();    // [50, 40]
    auto bt = other.t();  // [40, 50]
    require_close(matmul(at, bt), naive(at, bt));
    require_close(matmul(big, other), naive(big, other));
    require_close(matmul(at, big), naive(at, big));
    auto ct = random_tensor<TestType, 2>({30, 50}, rng).t();  // [50, 30]
    require_close(matmul(big, ct), naive(big, ct));
    require_close(matmul(bt, at), naive(bt, at));
    CHECK(shares(detail::gemm_operand(at.unsqueeze(0)).owner, big));
    CHECK(detail::gemm_operand(at.unsqueeze(0)).trans);

    // A block of a larger matrix: rows 40 (or 50) elements apart, a leading dimension, no copy.
    auto block = big.slice(0, 3, 30).slice(1, 5, 25);       // [27, 20]
    auto block_b = other.slice(0, 10, 30).slice(1, 1, 38);  // [20, 37]
    require_close(matmul(block, block_b), naive(block, block_b));
    require_close(matmul(block_b.t(), block.t()), naive(block_b.t(), block.t()));
    auto op = detail::gemm_operand(block.unsqueeze(0));
    CHECK(shares(op.owner, big));
    CHECK(op.ld == 50);
    CHECK_FALSE(op.trans);

    // Layouts BLAS cannot read are copied first: a step along the rows' inner axis, an expanded
    // (stride 0) matrix, a step along both axes.
    auto stepped = big.slice(1, 0, 50, 2);  // [40, 25], inner stride 2
    auto b25 = random_tensor<TestType, 2>({25, 7}, rng);
    require_close(matmul(stepped, b25), naive(stepped, b25));
    CHECK_FALSE(shares(detail::gemm_operand(stepped.unsqueeze(0)).owner, big));
    auto row = random_tensor<TestType, 2>({1, 25}, rng);
    auto expanded = row.expand(6, 25);  // every row the same, row stride 0
    require_close(matmul(expanded, b25), naive(expanded, b25));
    auto both = big.slice(0, 0, 40, 3).slice(1, 0, 50, 2);
    require_close(matmul(both, b25), naive(both, b25));

    // Single rows and columns have no meaningful stride on their unit axis.
    auto col = big.slice(1, 7, 8);        // [40, 1]
    auto one_row = other.slice(0, 4, 5);  // [1, 40]
    require_close(matmul(col, one_row), naive(col, one_row));
    require_close(matmul(one_row, col), naive(one_row, col));
}

TEMPLATE_TEST_CASE("matmul_out writes into strided and transposed outputs with alpha and beta",
                   "[ops][matmul]", float, double) {
    std::mt19937 rng(14);
    auto a = random_tensor<TestType, 2>({13, 9}, rng);
    auto b = random_tensor<TestType, 2>({9, 11}, rng);
    const Reference r = naive(a, b);
    auto snapshot = [](const Tensor<TestType, 2>& t) {
        std::vector<double> v;
        for_each_index(t.shape(), [&](const auto& i) { v.push_back(double(elem(t, i))); });
        return v;
    };

    // Dense output, beta = 0 ignores even NaN in it.
    auto c = Tensor<TestType, 2>::full({13, 11}, std::numeric_limits<TestType>::quiet_NaN());
    matmul_out(c, a, b);
    require_close(c, r);

    // A block of a larger buffer, alpha and beta.
    auto buffer = random_tensor<TestType, 2>({20, 30}, rng);
    auto block = buffer.slice(0, 2, 15).slice(1, 4, 15);
    const auto before = snapshot(block);
    const auto outside = buffer(0, 0);
    matmul_out(block, a, b, TestType(0.5), TestType(-2));
    require_close(block, r, 0.5, &before, -2);
    CHECK(buffer(0, 0) == outside);

    // A transposed output view: the GEMM computes the transposed product into its memory.
    auto ct_storage = random_tensor<TestType, 2>({11, 13}, rng);
    auto ct = ct_storage.t();  // [13, 11], column-major
    const auto before_t = snapshot(ct);
    matmul_out(ct, a, b, TestType(1), TestType(1));
    require_close(ct, r, 1, &before_t, 1);

    // An output that is also an operand is computed into a temporary first.
    auto sq = random_tensor<TestType, 2>({8, 8}, rng);
    auto sq_copy = sq.clone();
    const Reference rs = naive(sq_copy, sq_copy);
    matmul_out(sq, sq, sq);
    require_close(sq, rs);
}

TEMPLATE_TEST_CASE("bmm and batched matmul match per-batch products", "[ops][matmul]", float, double) {
    std::mt19937 rng(15);
    auto a = random_tensor<TestType, 3>({4, 17, 9}, rng);
    auto b = random_tensor<TestType, 3>({4, 9, 23}, rng);
    require_batched_close(bmm(a, b), a, b);
    require_batched_close(matmul(a, b), a, b);

    // Per-batch transposes and a batch axis that is not outermost in memory.
    auto at = random_tensor<TestType, 3>({4, 9, 17}, rng).transpose(1, 2);      // [4, 17, 9]
    auto bperm = random_tensor<TestType, 3>({9, 4, 23}, rng).permute(1, 0, 2);  // [4, 9, 23]
    require_batched_close(bmm(at, bperm), at, bperm);

    // A batch of 1 broadcasts, as in torch.matmul, read once for every product.
    auto a1 = random_tensor<TestType, 3>({1, 17, 9}, rng);
    auto b1 = random_tensor<TestType, 3>({1, 9, 23}, rng);
    require_batched_close(matmul(a1, b), a1, b);
    require_batched_close(matmul(a, b1), a, b1);
    auto bexp = b1.expand(4, 9, 23);  // an expanded batch axis is read in place too
    require_batched_close(bmm(a, bexp), a, bexp);
    CHECK(shares(detail::gemm_operand(bexp).owner, b1));

    // Many small products (run one per task).
    auto sa = random_tensor<TestType, 3>({33, 5, 6}, rng);
    auto sb = random_tensor<TestType, 3>({33, 6, 4}, rng);
    require_batched_close(bmm(sa, sb), sa, sb);

    // Empty batches and matrices.
    REQUIRE(bmm(Tensor<TestType, 3>::ones({0, 2, 3}), Tensor<TestType, 3>::ones({0, 3, 4})).shape() ==
            Shape<3>{0, 2, 4});
    auto zk = bmm(Tensor<TestType, 3>::ones({2, 2, 0}), Tensor<TestType, 3>::ones({2, 0, 4}));
    for_each_index(zk.shape(), [&](const auto& i) { REQUIRE(elem(zk, i) == TestType(0)); });
}

TEMPLATE_TEST_CASE("matmul broadcasts a matrix over a batch", "[ops][matmul]", float, double) {
    std::mt19937 rng(16);
    auto x = random_tensor<TestType, 3>({3, 21, 16}, rng);
    auto w = random_tensor<TestType, 2>({16, 12}, rng);
    auto w3 = w.unsqueeze(0);
    // [B, M, K] x [K, N]: batches that follow each other in memory make one [B*M, K] product.
    require_batched_close(matmul(x, w), x, w3);
    require_batched_close(matmul(x, w.t().contiguous().t()), x, w3);
    // Sequence-first data seen batch-first: no [B*M, K] view exists, so one product per batch.
    auto seq = random_tensor<TestType, 3>({21, 3, 16}, rng).transpose(0, 1);  // [3, 21, 16]
    require_batched_close(matmul(seq, w), seq, w3);
    auto tr = random_tensor<TestType, 3>({3, 16, 21}, rng).transpose(1, 2);  // per-batch transposed
    require_batched_close(matmul(tr, w), tr, w3);
    // [M, K] x [B, K, N]
    auto left = random_tensor<TestType, 2>({5, 21}, rng);
    auto right = random_tensor<TestType, 3>({3, 21, 7}, rng);
    require_batched_close(matmul(left, right), left.unsqueeze(0), right);
}

TEMPLATE_TEST_CASE("linear matches x times weight transposed plus bias", "[ops][linear]", float, double) {
    std::mt19937 rng(17);
    const index_t in = 24, out = 10;
    auto w = random_tensor<TestType, 2>({out, in}, rng);
    auto bias = random_tensor<TestType, 1>({out}, rng);
    const auto wt = w.t();

    // Compares y[..., :] with x[..., :] · wᵀ (+ bias) row by row.
    auto check_rows = [&](const auto& y, const auto& x, bool with_bias) {
        constexpr int R = std::remove_cvref_t<decltype(x)>::rank;
        auto y3 = detail::as_rows3(y);
        auto x3 = detail::as_rows3(x);
        for (index_t l = 0; l < x3.size(0); ++l) {
            const Reference r = naive(x3.select(0, l), wt);
            std::vector<double> b0;
            for (index_t i = 0; i < r.m; ++i)
                for (index_t j = 0; j < r.n; ++j) b0.push_back(double(bias(j)));
            INFO("rank " << R << ", block " << l << (with_bias ? ", with bias" : ", without bias"));
            require_close(y3.select(0, l), r, 1, with_bias ? &b0 : nullptr, with_bias ? 1 : 0);
        }
    };
    for (bool with_bias : {false, true}) {
        const Tensor<TestType, 1> b = with_bias ? bias : Tensor<TestType, 1>{};
        auto x1 = random_tensor<TestType, 1>({in}, rng);
        auto y1 = linear(x1, w, b);
        REQUIRE(y1.shape() == Shape<1>{out});
        check_rows(y1, x1, with_bias);

        auto x2 = random_tensor<TestType, 2>({7, in}, rng);
        auto y2 = linear(x2, w, b);
        REQUIRE(y2.shape() == Shape<2>{7, out});
        check_rows(y2, x2, with_bias);

        auto x3 = random_tensor<TestType, 3>({3, 5, in}, rng);
        auto y3 = linear(x3, w, b);
        REQUIRE(y3.shape() == Shape<3>{3, 5, out});
        check_rows(y3, x3, with_bias);

        auto seq = random_tensor<TestType, 3>({5, 3, in}, rng).transpose(0, 1);  // [3, 5, in], not mergeable
        auto ys = linear(seq, w, b);
        REQUIRE(ys.shape() == Shape<3>{3, 5, out});
        check_rows(ys, seq, with_bias);

        auto x4 = random_tensor<TestType, 4>({2, 3, 4, in}, rng);
        auto y4 = linear(x4, w, b);
        REQUIRE(y4.shape() == Shape<4>{2, 3, 4, out});
        check_rows(y4, x4, with_bias);

        // Weight given transposed in memory (a view of a [in, out] buffer), empty batches.
        auto wt_buffer = w.t().contiguous();
        auto yw = linear(x2, wt_buffer.t(), b);
        check_rows(yw, x2, with_bias);
        REQUIRE(linear(Tensor<TestType, 2>::ones({0, in}), w, b).shape() == Shape<2>{0, out});
    }
}

// ---- the engines, below the tensor layer --------------------------------------------------------

namespace {

template <class Engine, class T>
void check_engine(std::mt19937& rng) {
    std::uniform_int_distribution<index_t> extent(1, 40), pad(0, 3), batches(1, 4);
    std::uniform_real_distribution<double> dist(-1, 1);
    for (int trial = 0; trial < 40; ++trial) {
        GemmProblem<T> p;
        p.batch = batches(rng);
        p.m = extent(rng), p.n = extent(rng), p.k = trial % 10 == 9 ? 0 : extent(rng);
        p.trans_a = trial & 1, p.trans_b = trial & 2;
        const bool share_a = trial % 5 == 1, share_b = trial % 7 == 2;
        const index_t a_rows = p.trans_a ? p.k : p.m, a_cols = p.trans_a ? p.m : p.k;
        const index_t b_rows = p.trans_b ? p.n : p.k, b_cols = p.trans_b ? p.k : p.n;
        p.lda = std::max<index_t>(a_cols, 1) + pad(rng);
        p.ldb = std::max<index_t>(b_cols, 1) + pad(rng);
        p.ldc = p.n + pad(rng);
        const index_t size_a = a_rows * p.lda, size_b = b_rows * p.ldb, size_c = p.m * p.ldc;
        p.stride_a = share_a ? 0 : size_a + pad(rng);
        p.stride_b = share_b ? 0 : size_b + pad(rng);
        p.stride_c = size_c + pad(rng);
        std::vector<T> a(std::size_t(size_a + p.batch * p.stride_a + 1)),
            b(std::size_t(size_b + p.batch * p.stride_b + 1)), c(std::size_t(p.batch * p.stride_c + 1));
        for (auto& x : a) x = T(dist(rng));
        for (auto& x : b) x = T(dist(rng));
        for (auto& x : c) x = T(dist(rng));
        p.alpha = trial % 3 == 0 ? T(1) : T(0.75);
        p.beta = trial % 4 == 0 ? T(0) : T(-0.5);
        if (p.beta == T(0))
            for (auto& x : c) x = std::numeric_limits<T>::quiet_NaN();  // must be ignored
        const std::vector<T> c0 = c;
        p.a = a.data(), p.b = b.data(), p.c = c.data();
        Engine::run(p);
        INFO(Engine::name << " trial " << trial << ": batch " << p.batch << ", " << p.m << "x" << p.k << "x"
                          << p.n << ", trans " << p.trans_a << p.trans_b << ", ld " << p.lda << " " << p.ldb
                          << " " << p.ldc);
        double worst = 0;
        for (index_t q = 0; q < p.batch; ++q) {
            const T* A = a.data() + q * p.stride_a;
            const T* B = b.data() + q * p.stride_b;
            for (index_t i = 0; i < p.m; ++i)
                for (index_t j = 0; j < p.n; ++j) {
                    double sum = 0, mag = 0;
                    for (index_t l = 0; l < p.k; ++l) {
                        const double x = double(p.trans_a ? A[l * p.lda + i] : A[i * p.lda + l]) *
                                         double(p.trans_b ? B[j * p.ldb + l] : B[l * p.ldb + j]);
                        sum += x;
                        mag += std::abs(x);
                    }
                    const std::size_t at = std::size_t(q * p.stride_c + i * p.ldc + j);
                    const double old = p.beta == T(0) ? 0.0 : double(c0[at]);
                    const double want = double(p.alpha) * sum + double(p.beta) * old;
                    const double tol =
                        4 * epsilon<T>() * (double(p.k + 2) * mag + std::abs(old) + std::abs(want)) + 1e-300;
                    worst = std::max(worst, std::abs(double(c[at]) - want) / tol);
                }
            // Padding between rows and between batches is left alone.
            if (p.beta != T(0))
                for (index_t i = 0; i < p.m; ++i)
                    for (index_t j = p.n; j < p.ldc; ++j) {
                        const std::size_t at = std::size_t(q * p.stride_c + i * p.ldc + j);
                        REQUIRE(c[at] == c0[at]);
                    }
        }
        REQUIRE(worst <= 1.0);
    }
}

}  // namespace

TEMPLATE_TEST_CASE("the Eigen GEMM engine handles every layout", "[ops][gemm]", float, double) {
    ThreadsGuard guard;
    std::mt19937 rng(18);
    for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        check_engine<cpu::EigenGemm, TestType>(rng);
    }
}

#if defined(WEFT_USE_OPENBLAS) && WEFT_USE_OPENBLAS
TEMPLATE_TEST_CASE("the OpenBLAS GEMM engine handles every layout", "[ops][gemm]", float, double) {
    ThreadsGuard guard;
    std::mt19937 rng(19);
    for (int threads : {1, 2}) {
        set_num_threads(threads);
        check_engine<cpu::OpenBlasGemm, TestType>(rng);
    }
}
#endif

TEST_CASE("the CPU GEMM engine is the one CMake chose", "[ops][gemm]") {
#if defined(WEFT_USE_OPENBLAS) && WEFT_USE_OPENBLAS
    CHECK(Gemm<Cpu>::engine_name == "OpenBLAS");
#else
    CHECK(Gemm<Cpu>::engine_name == "Eigen");
#endif
}

// ---- errors ------------------------------------------------------------------------------------

TEST_CASE("matmul, bmm and linear shape errors name both shapes", "[ops][matmul]") {
    using Catch::Contains;
    auto a = Tensor<float, 2>::ones({2, 3});
    auto b = Tensor<float, 2>::ones({4, 5});
    REQUIRE_THROWS_WITH(matmul(a, b), Contains("matmul: shapes [2, 3] and [4, 5] cannot be multiplied"));
    REQUIRE_THROWS_AS(matmul(a, b), Error);
    auto x = Tensor<float, 3>::ones({2, 3, 4});
    auto y = Tensor<float, 3>::ones({3, 4, 5});
    REQUIRE_THROWS_WITH(bmm(x, y), Contains("bmm: shapes [2, 3, 4] and [3, 4, 5]"));
    REQUIRE_THROWS_WITH(matmul(x, y), Contains("matmul: shapes [2, 3, 4] and [3, 4, 5]"));
    REQUIRE_THROWS_WITH(bmm(x, Tensor<float, 3>::ones({1, 4, 5})), Contains("batches must be equal"));
    REQUIRE_THROWS_WITH(matmul(x, Tensor<float, 2>::ones({3, 5})), Contains("[2, 3, 4] and [3, 5]"));
    REQUIRE_THROWS_WITH(matmul(Tensor<float, 2>::ones({3, 5}), x), Contains("[3, 5] and [2, 3, 4]"));
    REQUIRE_THROWS_WITH(matmul_out(Tensor<float, 2>::ones({2, 6}), a, Tensor<float, 2>::ones({3, 5})),
                        Contains("[2, 3] and [3, 5] cannot be multiplied into an output of shape [2, 6]"));

    auto w = Tensor<float, 2>::ones({6, 4});
    REQUIRE_THROWS_WITH(linear(Tensor<float, 2>::ones({7, 5}), w),
                        Contains("linear: input of shape [7, 5] does not fit weight of shape [6, 4]"));
    REQUIRE_THROWS_WITH(linear(x, w, Tensor<float, 1>::ones({5})),
                        Contains("linear: bias of shape [5] does not fit weight of shape [6, 4]"));

    REQUIRE_THROWS_WITH(
        matmul_backward(Tensor<float, 2>::ones({2, 4}), a, Tensor<float, 2>::ones({3, 5})),
        Contains("grad_out of shape [2, 4] does not match the product of shapes [2, 3] and [3, 5]"));
    REQUIRE_THROWS_WITH(linear_backward(Tensor<float, 3>::ones({2, 3, 5}), x, w, true),
                        Contains("grad_out of shape [2, 3, 5] does not match"));
}

// ---- gradients: central differences in double precision -----------------------------------------

namespace {

// sum(y * weights), the scalar whose gradients the backward functions return for grad_out = weights.
template <int R>
double weighted_sum(const Tensor<double, R>& y, const Tensor<double, R>& weights) {
    REQUIRE(y.shape() == weights.shape());
    double s = 0;
    for_each_index(y.shape(), [&](const auto& i) { s += elem(y, i) * elem(weights, i); });
    return s;
}

// Perturbs every element of x (through its view) and compares the central difference of loss()
// with the analytic gradient, element by element.
template <int R, class Loss>
void check_gradient(const char* what, const Tensor<double, R>& x, const Tensor<double, R>& analytic,
                    Loss loss) {
    INFO("gradient with respect to " << what << ", shape " << x.shape());
    REQUIRE(analytic.defined());
    REQUIRE(analytic.shape() == x.shape());
    const double h = 1e-6;
    double worst = 0;
    std::string where;
    for_each_index(x.shape(), [&](const auto& i) {
        double& v = elem(x, i);
        const double saved = v;
        v = saved + h;
        const double up = loss();
        v = saved - h;
        const double down = loss();
        v = saved;
        const double numeric = (up - down) / (2 * h);
        const double err = std::abs(numeric - elem(analytic, i)) / (1e-6 + 1e-6 * std::abs(numeric));
        if (err > worst) {
            worst = err;
            where = "numeric " + std::to_string(numeric) + ", analytic " + std::to_string(elem(analytic, i));
        }
    });
    INFO("worst element: " << where);
    REQUIRE(worst <= 1.0);
}

}  // namespace

TEST_CASE("gradcheck matmul of two matrices", "[ops][matmul][gradcheck]") {
    std::mt19937 rng(21);
    auto a = random_tensor<double, 2>({4, 5}, rng);
    auto b = random_tensor<double, 2>({5, 3}, rng);
    auto w = random_tensor<double, 2>({4, 3}, rng);
    auto loss = [&] { return weighted_sum(matmul(a, b), w); };
    auto [ga, gb] = matmul_backward(w, a, b);
    check_gradient("a", a, ga, loss);
    check_gradient("b", b, gb, loss);
}

TEST_CASE("gradcheck matmul of transposed and sliced views", "[ops][matmul][gradcheck]") {
    std::mt19937 rng(22);
    auto a_store = random_tensor<double, 2>({6, 4}, rng);
    auto b_store = random_tensor<double, 2>({7, 9}, rng);
    auto a = a_store.t();                            // [4, 6], transposed
    auto b = b_store.slice(0, 1, 7).slice(1, 2, 5);  // [6, 3], a block
    auto w = random_tensor<double, 2>({4, 3}, rng);
    auto loss = [&] { return weighted_sum(matmul(a, b), w); };
    auto g = matmul_backward(w, a, b);
    check_gradient("a (transposed view)", a, g.grad_a, loss);
    check_gradient("b (block view)", b, g.grad_b, loss);
}

TEST_CASE("gradcheck matmul skips gradients nobody needs", "[ops][matmul][gradcheck]") {
    std::mt19937 rng(23);
    auto a = random_tensor<double, 2>({3, 4}, rng);
    auto b = random_tensor<double, 2>({4, 2}, rng);
    auto w = random_tensor<double, 2>({3, 2}, rng);
    auto loss = [&] { return weighted_sum(matmul(a, b), w); };
    auto only_b = matmul_backward(w, a, b, false, true);
    CHECK_FALSE(only_b.grad_a.defined());
    check_gradient("b", b, only_b.grad_b, loss);
    auto only_a = matmul_backward(w, a, b, true, false);
    CHECK_FALSE(only_a.grad_b.defined());
    check_gradient("a", a, only_a.grad_a, loss);
}

TEST_CASE("gradcheck bmm", "[ops][matmul][gradcheck]") {
    std::mt19937 rng(24);
    auto a = random_tensor<double, 3>({3, 4, 5}, rng);
    auto b = random_tensor<double, 3>({3, 5, 2}, rng);
    auto w = random_tensor<double, 3>({3, 4, 2}, rng);
    auto loss = [&] { return weighted_sum(bmm(a, b), w); };
    auto [ga, gb] = bmm_backward(w, a, b);
    check_gradient("a", a, ga, loss);
    check_gradient("b", b, gb, loss);
}

TEST_CASE("gradcheck bmm of per-batch transposed operands", "[ops][matmul][gradcheck]") {
    std::mt19937 rng(25);
    auto a = random_tensor<double, 3>({2, 5, 4}, rng).transpose(1, 2);   // [2, 4, 5]
    auto b = random_tensor<double, 3>({5, 2, 3}, rng).permute(1, 0, 2);  // [2, 5, 3]
    auto w = random_tensor<double, 3>({2, 4, 3}, rng);
    auto loss = [&] { return weighted_sum(bmm(a, b), w); };
    auto [ga, gb] = bmm_backward(w, a, b);
    check_gradient("a", a, ga, loss);
    check_gradient("b", b, gb, loss);
}

TEST_CASE("gradcheck matmul with the left batch of 1 broadcast", "[ops][matmul][gradcheck]") {
    std::mt19937 rng(26);
    auto a = random_tensor<double, 3>({1, 3, 4}, rng);
    auto b = random_tensor<double, 3>({3, 4, 2}, rng);
    auto w = random_tensor<double, 3>({3, 3, 2}, rng);
    auto loss = [&] { return weighted_sum(matmul(a, b), w); };
    auto [ga, gb] = matmul_backward(w, a, b);
    check_gradient("a (batch 1)", a, ga, loss);
    check_gradient("b", b, gb, loss);
}

TEST_CASE("gradcheck matmul with the right batch of 1 broadcast", "[ops][matmul][gradcheck]") {
    std::mt19937 rng(27);
    auto a = random_tensor<double, 3>({3, 3, 4}, rng);
    auto b = random_tensor<double, 3>({1, 4, 2}, rng);
    auto w = random_tensor<double, 3>({3, 3, 2}, rng);
    auto loss = [&] { return weighted_sum(matmul(a, b), w); };
    auto [ga, gb] = matmul_backward(w, a, b);
    check_gradient("a", a, ga, loss);
    check_gradient("b (batch 1)", b, gb, loss);
}

TEST_CASE("gradcheck matmul of a batch by a matrix", "[ops][matmul][gradcheck]") {
    std::mt19937 rng(28);
    auto a = random_tensor<double, 3>({2, 3, 4}, rng);
    auto b = random_tensor<double, 2>({4, 5}, rng);
    auto w = random_tensor<double, 3>({2, 3, 5}, rng);
    auto loss = [&] { return weighted_sum(matmul(a, b), w); };
    auto [ga, gb] = matmul_backward(w, a, b);
    check_gradient("a", a, ga, loss);
    check_gradient("b (shared)", b, gb, loss);
}

TEST_CASE("gradcheck matmul of a sequence-first batch by a matrix", "[ops][matmul][gradcheck]") {
    std::mt19937 rng(29);
    auto a = random_tensor<double, 3>({3, 2, 4}, rng).transpose(0, 1);  // [2, 3, 4], batches interleaved
    auto b = random_tensor<double, 2>({5, 4}, rng).t();                 // [4, 5], transposed
    auto w = random_tensor<double, 3>({2, 3, 5}, rng);
    auto loss = [&] { return weighted_sum(matmul(a, b), w); };
    auto [ga, gb] = matmul_backward(w, a, b);
    check_gradient("a", a, ga, loss);
    check_gradient("b", b, gb, loss);
}

TEST_CASE("gradcheck matmul of a matrix by a batch", "[ops][matmul][gradcheck]") {
    std::mt19937 rng(30);
    auto a = random_tensor<double, 2>({3, 4}, rng);
    auto b = random_tensor<double, 3>({2, 4, 5}, rng);
    auto w = random_tensor<double, 3>({2, 3, 5}, rng);
    auto loss = [&] { return weighted_sum(matmul(a, b), w); };
    auto [ga, gb] = matmul_backward(w, a, b);
    check_gradient("a (shared)", a, ga, loss);
    check_gradient("b", b, gb, loss);
}

namespace {

template <int R>
void gradcheck_linear(const Tensor<double, R>& x, index_t out, bool with_bias, std::mt19937& rng) {
    const index_t in = x.size(R - 1);
    auto weight = random_tensor<double, 2>({out, in}, rng);
    auto bias = with_bias ? random_tensor<double, 1>({out}, rng) : Tensor<double, 1>{};
    Shape<R> ys = x.shape();
    ys[R - 1] = out;
    auto w = random_tensor<double, R>(ys, rng);
    auto loss = [&] { return weighted_sum(linear(x, weight, bias), w); };
    auto [gx, gw, gb] = linear_backward(w, x, weight, with_bias);
    check_gradient("x", x, gx, loss);
    check_gradient("weight", weight, gw, loss);
    if (with_bias) {
        check_gradient("bias", bias, gb, loss);
    } else {
        CHECK_FALSE(gb.defined());
    }
}

}  // namespace

TEST_CASE("gradcheck linear on a vector without bias", "[ops][linear][gradcheck]") {
    std::mt19937 rng(31);
    gradcheck_linear(random_tensor<double, 1>({5}, rng), 3, false, rng);
}

TEST_CASE("gradcheck linear on a vector with bias", "[ops][linear][gradcheck]") {
    std::mt19937 rng(32);
    gradcheck_linear(random_tensor<double, 1>({5}, rng), 3, true, rng);
}

TEST_CASE("gradcheck linear on a matrix without bias", "[ops][linear][gradcheck]") {
    std::mt19937 rng(33);
    gradcheck_linear(random_tensor<double, 2>({4, 5}, rng), 3, false, rng);
}

TEST_CASE("gradcheck linear on a matrix with bias", "[ops][linear][gradcheck]") {
    std::mt19937 rng(34);
    gradcheck_linear(random_tensor<double, 2>({4, 5}, rng), 3, true, rng);
}

TEST_CASE("gradcheck linear on a rank-3 input without bias", "[ops][linear][gradcheck]") {
    std::mt19937 rng(35);
    gradcheck_linear(random_tensor<double, 3>({2, 3, 4}, rng), 5, false, rng);
}

TEST_CASE("gradcheck linear on a rank-3 input with bias", "[ops][linear][gradcheck]") {
    std::mt19937 rng(36);
    gradcheck_linear(random_tensor<double, 3>({2, 3, 4}, rng), 5, true, rng);
}

TEST_CASE("gradcheck linear on a sequence-first rank-3 view with bias", "[ops][linear][gradcheck]") {
    std::mt19937 rng(37);
    gradcheck_linear(random_tensor<double, 3>({3, 2, 4}, rng).transpose(0, 1), 5, true, rng);
}

TEST_CASE("gradcheck linear on a rank-4 input with bias", "[ops][linear][gradcheck]") {
    std::mt19937 rng(38);
    gradcheck_linear(random_tensor<double, 4>({2, 2, 3, 4}, rng), 3, true, rng);
}

TEST_CASE("gradcheck linear skips gradients nobody needs", "[ops][linear][gradcheck]") {
    std::mt19937 rng(39);
    auto x = random_tensor<double, 2>({4, 5}, rng);
    auto weight = random_tensor<double, 2>({3, 5}, rng);
    auto w = random_tensor<double, 2>({4, 3}, rng);
    auto loss = [&] { return weighted_sum(linear(x, weight), w); };
    auto frozen = linear_backward(w, x, weight, false, true, false);  // a frozen layer: only dx
    CHECK_FALSE(frozen.grad_w.defined());
    check_gradient("x", x, frozen.grad_x, loss);
    auto first = linear_backward(w, x, weight, false, false, true);  // a first layer: no dx
    CHECK_FALSE(first.grad_x.defined());
    check_gradient("weight", weight, first.grad_w, loss);
}

// The CPU executor (weft/exec/cpu/executor.hpp): its linear and row loops, threading, and
// reductions on tensors big enough to be cut into many chunks.
//
// References are plain serial loops over raw data. The expressions avoid a*b+c shapes so that
// floating-point contraction cannot make the vectorised loop and the reference differ; results
// are then compared exactly.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <weft/weft.hpp>

using namespace weft;

namespace {

struct ThreadsGuard {
    int saved = num_threads();
    ~ThreadsGuard() { set_num_threads(saved); }
};

template <class T, int R>
Tensor<T, R> random_tensor(const Shape<R>& shape, std::mt19937& rng, float lo = -2.0f, float hi = 2.0f) {
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<T> v(std::size_t(shape.numel()));
    for (auto& x : v) x = T(dist(rng));
    return Tensor<T, R>::from_vector(v, shape);
}

// Element (i, j) of a matrix view, through its strides.
template <class T>
T at(const Tensor<T, 2>& t, index_t i, index_t j) {
    return t.data()[i * t.strides()[0] + j * t.strides()[1]];
}

// weft's float exp (expr/math.hpp), called one element at a time: the fused loops must give its bits.
float fused(float a, float b, float c, float d) { return weft::math::exp(a) - b / (c + 3.0f) + std::sqrt(std::abs(d)); }

}  // namespace

TEST_CASE("a 5M-element fused assignment equals a serial loop") {
    ThreadsGuard guard;
    std::mt19937 rng(1);
    const index_t n = 5'000'000;
    auto a = random_tensor<float>(Shape<1>{n}, rng);
    auto b = random_tensor<float>(Shape<1>{n}, rng);
    auto c = random_tensor<float>(Shape<1>{n}, rng);
    auto d = random_tensor<float>(Shape<1>{n}, rng);
    std::vector<float> ref(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) ref[std::size_t(i)] = fused(a(i), b(i), c(i), d(i));

    for (int threads : {1, 2, 3, 8}) {
        set_num_threads(threads);
        Tensor<float, 1> y = exp(a) - b / (c + 3.0f) + sqrt(abs(d));
        REQUIRE(y.shape() == Shape<1>{n});
        index_t mismatches = 0;
        for (index_t i = 0; i < n; ++i) mismatches += y.data()[i] != ref[std::size_t(i)];
        INFO("threads " << threads);
        REQUIRE(mismatches == 0);
    }
}

TEST_CASE("row loop and linear loop give the same elements") {
    ThreadsGuard guard;
    set_num_threads(3);
    std::mt19937 rng(2);
    // Sizes around the executor's grain, so chunk edges fall inside and between rows.
    for (index_t rows : {1, 3, 257, 1031}) {
        for (index_t cols : {1, 7, 64, 129}) {
            auto a = random_tensor<float>(Shape<2>{rows, cols}, rng);
            auto b = random_tensor<float>(Shape<2>{rows, cols}, rng);
            auto c = random_tensor<float>(Shape<2>{rows, cols}, rng);
            auto d = random_tensor<float>(Shape<2>{rows, cols}, rng);
            auto expr = exp(a) - b / (c + 3.0f) + sqrt(abs(d));

            // 1. Dense destination, dense operands: the linear loop.
            Tensor<float, 2> linear = expr;
            // 2. A transposed destination: the row loop with a strided store.
            auto buf = Tensor<float, 2>::zeros({cols, rows});
            auto strided = buf.t();
            strided = expr;
            // 3. A destination inside a wider buffer: rows with unit stride but a row pitch.
            auto wide = Tensor<float, 2>::full({rows, cols + 5}, -1.0f);
            auto pitched = wide.slice(1, 2, 2 + cols);
            pitched = expr;
            // 4. Transposed operands: the row loop reading strided inputs.
            auto at_ = a.t().contiguous().t();
            auto bt_ = b.t().contiguous().t();
            Tensor<float, 2> from_strided = exp(at_) - bt_ / (c + 3.0f) + sqrt(abs(d));

            index_t bad = 0;
            for (index_t i = 0; i < rows; ++i)
                for (index_t j = 0; j < cols; ++j) {
                    const float ref = fused(a(i, j), b(i, j), c(i, j), d(i, j));
                    bad += at(linear, i, j) != ref;
                    bad += at(strided, i, j) != ref;
                    bad += at(pitched, i, j) != ref;
                    bad += at(from_strided, i, j) != ref;
                }
            INFO("rows " << rows << " cols " << cols);
            REQUIRE(bad == 0);
            // The padding around the pitched view is untouched.
            for (index_t i = 0; i < rows; ++i) {
                REQUIRE(wide(i, 0) == -1.0f);
                REQUIRE(wide(i, 1) == -1.0f);
                for (index_t j = cols + 2; j < cols + 5; ++j) REQUIRE(wide(i, j) == -1.0f);
            }
        }
    }
}

TEST_CASE("broadcast operands take the row loop and match the explicit expansion") {
    ThreadsGuard guard;
    set_num_threads(4);
    std::mt19937 rng(3);
    const index_t rows = 3001, cols = 67;
    auto x = random_tensor<float>(Shape<2>{rows, cols}, rng);
    auto bias = random_tensor<float>(Shape<1>{cols}, rng);
    auto scale = random_tensor<float>(Shape<2>{rows, 1}, rng, 0.5f, 2.0f);

    Tensor<float, 2> y = (x - bias) / scale;                        // broadcast: row loop
    Tensor<float, 2> z = (x - bias.expand(rows, cols).contiguous()) /  // dense: linear loop
                         scale.expand(rows, cols).contiguous();
    index_t bad = 0;
    for (index_t i = 0; i < rows; ++i)
        for (index_t j = 0; j < cols; ++j) {
            const float ref = (x(i, j) - bias(j)) / scale(i, 0);
            bad += y(i, j) != ref;
            bad += z(i, j) != ref;
        }
    REQUIRE(bad == 0);

    // A rank-3 destination where only the middle axis broadcasts.
    auto u = random_tensor<float>(Shape<3>{40, 1, 33}, rng);
    auto v = random_tensor<float>(Shape<3>{40, 50, 33}, rng);
    Tensor<float, 3> w = v / (u + 3.0f);
    bad = 0;
    for (index_t i = 0; i < 40; ++i)
        for (index_t j = 0; j < 50; ++j)
            for (index_t k = 0; k < 33; ++k) bad += w(i, j, k) != v(i, j, k) / (u(i, 0, k) + 3.0f);
    REQUIRE(bad == 0);
}

TEST_CASE("large reductions equal serial double sums") {
    ThreadsGuard guard;
    std::mt19937 rng(4);
    const index_t rows = 1500, cols = 2100;
    auto x = random_tensor<float>(Shape<2>{rows, cols}, rng);
    std::vector<double> row_sum(std::size_t(rows), 0.0), col_sum(std::size_t(cols), 0.0);
    std::vector<float> col_max(std::size_t(cols), -INFINITY);
    double total = 0;
    for (index_t i = 0; i < rows; ++i)
        for (index_t j = 0; j < cols; ++j) {
            row_sum[std::size_t(i)] += x(i, j);
            col_sum[std::size_t(j)] += x(i, j);
            col_max[std::size_t(j)] = std::max(col_max[std::size_t(j)], x(i, j));
            total += x(i, j);
        }
    for (int threads : {1, 3}) {
        set_num_threads(threads);
        auto rs = sum(x, 1);       // last axis reduced: one output per task
        auto cs = sum(x, 0);       // last axis kept: rows of outputs per task
        auto cm = max(x, {0});
        auto ts = sum(x);
        auto rst = sum(x.t(), 0);  // the same row sums through a transposed view
        for (index_t i = 0; i < rows; ++i) {
            REQUIRE(rs(i) == float(row_sum[std::size_t(i)]));
            REQUIRE(rst(i) == float(row_sum[std::size_t(i)]));
        }
        for (index_t j = 0; j < cols; ++j) {
            REQUIRE(cs(j) == float(col_sum[std::size_t(j)]));
            REQUIRE(cm(j) == col_max[std::size_t(j)]);
        }
        // Accumulated in double: close to the serial double total (orders differ).
        REQUIRE(double(ts.item()) == Approx(total).epsilon(1e-6).margin(1e-3));
    }
}

TEST_CASE("rank-0 and single-element assignments") {
    auto s = Tensor<float, 0>::full({}, 2.0f);
    Tensor<float, 0> r = s * s + 1.0f;
    REQUIRE(r.item() == 5.0f);
    auto one = Tensor<double, 3>::full({1, 1, 1}, 3.0);
    Tensor<double, 3> q = sqrt(one);
    REQUIRE(q(0, 0, 0) == std::sqrt(3.0));
    // A rank-0 tensor broadcast into a large, strided destination.
    auto big = Tensor<float, 2>::zeros({300, 400});
    big.t() = s + 0.5f;
    for (index_t i = 0; i < 300; i += 37)
        for (index_t j = 0; j < 400; j += 41) REQUIRE(big(i, j) == 2.5f);
}

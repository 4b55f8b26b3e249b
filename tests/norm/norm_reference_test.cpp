// softmax, log_softmax, layer_norm, group_norm, batch_norm and normalize against PyTorch
// (tests/reference/norm.py): outputs, gradients of sum(out * r), and the running statistics
// batch_norm leaves after a training step. All in double, at 1e-12.
#include <string>

#include <weft/ops/batch_norm.hpp>
#include <weft/ops/group_norm.hpp>
#include <weft/ops/layer_norm.hpp>
#include <weft/ops/normalize.hpp>
#include <weft/ops/softmax.hpp>

#include "support/fixture.hpp"

using namespace weft;
using weft::test::check_close;

namespace {

constexpr double tol = 1e-12;

// The fixture's inputs in0, in1, ... of one case, marked as requiring grad.
template <int R>
Tensor<double, R> input(const SafetensorsFile& f, const std::string& name, int i) {
    return f.get<double, R>(name + ".in" + std::to_string(i)).requires_grad_();
}

// Checks y against "<name>.y", back-propagates "<name>.r" and checks each input's gradient.
template <int R, class... In>
void check_case(const SafetensorsFile& f, const std::string& name, const Tensor<double, R>& y, const In&... in) {
    check_close(y, f.get<double, R>(name + ".y"), tol, tol, name + " forward");
    sum(y * f.get<double, R>(name + ".r")).backward();
    int i = 0;
    auto check_grad = [&](const auto& x) {
        constexpr int XR = std::remove_cvref_t<decltype(x)>::rank;
        const std::string key = name + ".g" + std::to_string(i++);
        check_close(x.grad(), f.get<double, XR>(key), tol, tol, key);
    };
    (check_grad(in), ...);
}

}  // namespace

TEST_CASE("softmax and log_softmax match PyTorch") {
    auto f = weft::test::fixture("norm");
    {
        auto x = input<2>(f, "softmax_last", 0);
        check_case(f, "softmax_last", softmax(x, -1), x);
    }
    {
        auto x = input<3>(f, "softmax_mid", 0);
        check_case(f, "softmax_mid", softmax(x, 1), x);
    }
    {
        auto x = input<2>(f, "softmax_big", 0);  // logits in the hundreds: exp would overflow unshifted
        check_case(f, "softmax_big", softmax(x, 1), x);
    }
    {
        auto x = input<2>(f, "log_softmax_last", 0);
        check_case(f, "log_softmax_last", log_softmax(x, -1), x);
    }
    {
        auto x = input<3>(f, "log_softmax_first", 0);
        check_case(f, "log_softmax_first", log_softmax(x, 0), x);
    }
}

TEST_CASE("layer_norm matches PyTorch") {
    auto f = weft::test::fixture("norm");
    {
        auto x = input<3>(f, "layer_norm_affine", 0);
        auto w = input<1>(f, "layer_norm_affine", 1);
        auto b = input<1>(f, "layer_norm_affine", 2);
        check_case(f, "layer_norm_affine", layer_norm(x, w, b), x, w, b);
    }
    {
        auto x = input<2>(f, "layer_norm_plain", 0);
        check_case(f, "layer_norm_plain", layer_norm(x, {}, {}, 1e-3), x);
    }
}

TEST_CASE("group_norm matches PyTorch") {
    auto f = weft::test::fixture("norm");
    {
        auto x = input<4>(f, "group_norm_4d", 0);
        auto w = input<1>(f, "group_norm_4d", 1);
        auto b = input<1>(f, "group_norm_4d", 2);
        check_case(f, "group_norm_4d", group_norm(x, 3, w, b), x, w, b);
    }
    {
        auto x = input<3>(f, "group_norm_3d", 0);
        check_case(f, "group_norm_3d", group_norm(x, 2), x);
    }
}

TEST_CASE("batch_norm matches PyTorch in training and evaluation") {
    auto f = weft::test::fixture("norm");
    auto train = [&](const std::string& name, auto rank_tag) {
        constexpr int R = decltype(rank_tag)::value;
        auto x = input<R>(f, name, 0);
        auto w = input<1>(f, name, 1);
        auto b = input<1>(f, name, 2);
        auto rm = f.get<double, 1>(name + ".rm_before");
        auto rv = f.get<double, 1>(name + ".rv_before");
        check_case(f, name, batch_norm(x, rm, rv, w, b, true, 0.3), x, w, b);
        // The running statistics were updated in place, the variance unbiased.
        check_close(rm, f.get<double, 1>(name + ".rm_after"), tol, tol, name + " running_mean");
        check_close(rv, f.get<double, 1>(name + ".rv_after"), tol, tol, name + " running_var");
    };
    train("batch_norm_train", std::integral_constant<int, 4>{});
    train("batch_norm_train_2d", std::integral_constant<int, 2>{});

    auto x = input<3>(f, "batch_norm_eval", 0);
    auto w = input<1>(f, "batch_norm_eval", 1);
    auto b = input<1>(f, "batch_norm_eval", 2);
    auto rm = f.get<double, 1>("batch_norm_eval.rm");
    auto rv = f.get<double, 1>("batch_norm_eval.rv");
    const auto rm0 = rm.clone(), rv0 = rv.clone();
    check_case(f, "batch_norm_eval", batch_norm(x, rm, rv, w, b, false), x, w, b);
    check_close(rm, rm0, 0, 0, "evaluation leaves running_mean alone");
    check_close(rv, rv0, 0, 0, "evaluation leaves running_var alone");
}

TEST_CASE("normalize matches PyTorch") {
    auto f = weft::test::fixture("norm");
    {
        auto x = input<2>(f, "normalize_last", 0);
        check_case(f, "normalize_last", normalize(x), x);
    }
    {
        auto x = input<3>(f, "normalize_mid", 0);
        check_case(f, "normalize_mid", normalize(x, 1), x);
    }
    {
        auto x = input<2>(f, "normalize_tiny", 0);  // row 1's norm is below eps: divided by eps
        check_case(f, "normalize_tiny", normalize(x, -1, 1e-6), x);
    }
}

// weft/nn/init.hpp: in-place parameter initialisation, as torch.nn.init.
//
//   nn::init::kaiming_uniform_(w, {.a = std::sqrt(5.0)}, gen);   // Linear's default weight
//   nn::init::xavier_uniform_(in_proj_weight, 1.0, gen);
//   nn::init::trunc_normal_(pos_embed, 0.0, 0.02, -2.0, 2.0, gen);
//   nn::init::zeros_(bias);
//
// Every function writes into the tensor's existing elements (any strides) under NoGrad, so it
// may be called on a parameter that requires grad, and returns the tensor. Random values come
// from the Generator passed (default: the process-wide one), so a seeded generator gives the
// same parameters on every run and device. Fans follow PyTorch: for a weight [out, in, k...],
// fan_in = in * prod(k), fan_out = out * prod(k).
#pragma once

#include <cmath>
#include <numbers>
#include <utility>

#include "../autograd/grad_mode.hpp"
#include "../core/tensor.hpp"
#include "../exec/cpu/thread_pool.hpp"
#include "../expr.hpp"

namespace weft::nn::init {

enum class FanMode { fan_in, fan_out };

enum class Nonlinearity { linear, conv, sigmoid, tanh, relu, leaky_relu, selu };

// The recommended gain for a nonlinearity, as torch.nn.init.calculate_gain; `param` is
// leaky_relu's negative slope.
inline double calculate_gain(Nonlinearity nl, double param = 0.01) {
    switch (nl) {
        case Nonlinearity::linear:
        case Nonlinearity::conv:
        case Nonlinearity::sigmoid: return 1.0;
        case Nonlinearity::tanh: return 5.0 / 3.0;
        case Nonlinearity::relu: return std::sqrt(2.0);
        case Nonlinearity::leaky_relu: return std::sqrt(2.0 / (1.0 + param * param));
        case Nonlinearity::selu: return 3.0 / 4.0;
    }
    return 1.0;
}

struct Fans {
    index_t fan_in = 0;
    index_t fan_out = 0;
};

// fan_in = shape[1] * receptive field, fan_out = shape[0] * receptive field, where the
// receptive field is the product of shape[2:] (a convolution's kernel).
template <int R>
Fans calculate_fan_in_and_fan_out(const Shape<R>& shape) {
    static_assert(R >= 2,
                  "weft: fans are defined for tensors of rank 2 or more ([out, in, kernel...]); "
                  "initialise a bias or a vector with uniform_/normal_/constant_");
    index_t receptive = 1;
    for (int d = 2; d < R; ++d) receptive *= shape[d];
    return {shape[1] * receptive, shape[0] * receptive};
}
template <Element T, int R, Device D>
Fans calculate_fan_in_and_fan_out(const Tensor<T, R, D>& t) {
    return calculate_fan_in_and_fan_out(t.shape());
}

// ---- plain distributions ------------------------------------------------------------------

template <Element T, int R, Device D>
Tensor<T, R, D>& constant_(Tensor<T, R, D>& t, double value) {
    NoGrad no_grad;
    t = convert<compute_t<T>>(value);
    return t;
}
template <Element T, int R, Device D>
Tensor<T, R, D>& zeros_(Tensor<T, R, D>& t) {
    return constant_(t, 0.0);
}
template <Element T, int R, Device D>
Tensor<T, R, D>& ones_(Tensor<T, R, D>& t) {
    return constant_(t, 1.0);
}

// Uniform on [low, high).
template <Element T, int R, Device D>
Tensor<T, R, D>& uniform_(Tensor<T, R, D>& t, double low = 0.0, double high = 1.0,
                          Generator& gen = default_generator()) {
    static_assert(FloatingElement<T>, "weft: uniform_ fills floating-point tensors");
    WEFT_CHECK(low <= high, "uniform_: low ", low, " is above high ", high);
    if (t.numel() == 0) return t;
    NoGrad no_grad;
    const auto u = Tensor<T, R, D>::rand(t.shape(), gen);
    t = u * (high - low) + low;
    return t;
}

template <Element T, int R, Device D>
Tensor<T, R, D>& normal_(Tensor<T, R, D>& t, double mean = 0.0, double std = 1.0,
                         Generator& gen = default_generator()) {
    static_assert(FloatingElement<T>, "weft: normal_ fills floating-point tensors");
    WEFT_CHECK(std >= 0, "normal_: negative standard deviation ", std);
    if (t.numel() == 0) return t;
    NoGrad no_grad;
    const auto n = Tensor<T, R, D>::randn(t.shape(), gen);
    t = n * std + mean;
    return t;
}

namespace detail {

// erf⁻¹ on (-1, 1): Giles' single-precision approximation ("Approximating the erfinv function",
// GPU Computing Gems, 2010) polished by two Newton steps on erf, which makes it exact to about
// one ulp of a double.
inline double erfinv(double y) {
    if (y <= -1.0) return -INFINITY;
    if (y >= 1.0) return INFINITY;
    double w = -std::log((1.0 - y) * (1.0 + y)), x;
    if (w < 5.0) {
        w -= 2.5;
        double p = 2.81022636e-08;
        p = 3.43273939e-07 + p * w;
        p = -3.5233877e-06 + p * w;
        p = -4.39150654e-06 + p * w;
        p = 0.00021858087 + p * w;
        p = -0.00125372503 + p * w;
        p = -0.00417768164 + p * w;
        p = 0.246640727 + p * w;
        p = 1.50140941 + p * w;
        x = p * y;
    } else {
        w = std::sqrt(w) - 3.0;
        double p = -0.000200214257;
        p = 0.000100950558 + p * w;
        p = 0.00134934322 + p * w;
        p = -0.00367342844 + p * w;
        p = 0.00573950773 + p * w;
        p = -0.0076224613 + p * w;
        p = 0.00943887047 + p * w;
        p = 1.00167406 + p * w;
        p = 2.83297682 + p * w;
        x = p * y;
    }
    const double two_over_sqrt_pi = 2.0 / std::sqrt(std::numbers::pi);
    for (int i = 0; i < 2; ++i) {
        const double slope = two_over_sqrt_pi * std::exp(-x * x);
        if (slope == 0) break;
        x -= (std::erf(x) - y) / slope;
    }
    return x;
}

inline double normal_cdf(double x) { return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))); }

}  // namespace detail

// A normal distribution N(mean, std²) truncated to [a, b] (absolute bounds, as PyTorch and
// timm): uniform values mapped through the inverse normal CDF restricted to [a, b], so nothing
// is redrawn and every value lies within the bounds.
template <Element T, int R, Device D>
Tensor<T, R, D>& trunc_normal_(Tensor<T, R, D>& t, double mean = 0.0, double std = 1.0, double a = -2.0,
                               double b = 2.0, Generator& gen = default_generator()) {
    static_assert(FloatingElement<T>, "weft: trunc_normal_ fills floating-point tensors");
    WEFT_CHECK(std > 0 && a < b, "trunc_normal_: needs std > 0 and a < b, got std ", std, ", [", a, ", ", b, "]");
    if (t.numel() == 0) return t;
    NoGrad no_grad;
    const double lo = 2.0 * detail::normal_cdf((a - mean) / std) - 1.0;
    const double hi = 2.0 * detail::normal_cdf((b - mean) / std) - 1.0;
    // Drawn in double on the host: the inverse CDF needs the precision near the tails.
    auto u = Tensor<double, R, Cpu>::rand(t.shape(), gen);
    auto out = Tensor<T, R, Cpu>::empty(t.shape());
    const double* src = u.data();
    T* dst = out.data();
    parallel_for(0, u.numel(), 4096, [&](index_t begin, index_t end) {
        for (index_t i = begin; i < end; ++i) {
            const double y = lo + (hi - lo) * src[i];
            const double v = mean + std * std::sqrt(2.0) * detail::erfinv(y);
            dst[i] = convert<T>(std::clamp(v, a, b));
        }
    });
    t.copy_from(out.template to<D>());
    return t;
}

// ---- scaled by the fans ---------------------------------------------------------------------

struct KaimingOptions {
    double a = 0.0;  // the negative slope of the leaky_relu that follows (sqrt(5) for Linear's default)
    FanMode mode = FanMode::fan_in;
    Nonlinearity nonlinearity = Nonlinearity::leaky_relu;
};

namespace detail {
template <int R>
double kaiming_std(const Shape<R>& shape, const KaimingOptions& o) {
    const Fans f = calculate_fan_in_and_fan_out(shape);
    const index_t fan = o.mode == FanMode::fan_in ? f.fan_in : f.fan_out;
    WEFT_CHECK(fan > 0, "kaiming init: a tensor of shape ", shape, " has fan 0");
    return calculate_gain(o.nonlinearity, o.a) / std::sqrt(double(fan));
}
}  // namespace detail

// He et al. 2015: uniform on ±gain·sqrt(3 / fan).
template <Element T, int R, Device D>
Tensor<T, R, D>& kaiming_uniform_(Tensor<T, R, D>& t, const KaimingOptions& o = {},
                                  Generator& gen = default_generator()) {
    if (t.numel() == 0) return t;
    const double bound = std::sqrt(3.0) * detail::kaiming_std(t.shape(), o);
    return uniform_(t, -bound, bound, gen);
}

// He et al. 2015: normal with std gain / sqrt(fan).
template <Element T, int R, Device D>
Tensor<T, R, D>& kaiming_normal_(Tensor<T, R, D>& t, const KaimingOptions& o = {},
                                 Generator& gen = default_generator()) {
    if (t.numel() == 0) return t;
    return normal_(t, 0.0, detail::kaiming_std(t.shape(), o), gen);
}

// Glorot & Bengio 2010: uniform on ±gain·sqrt(6 / (fan_in + fan_out)).
template <Element T, int R, Device D>
Tensor<T, R, D>& xavier_uniform_(Tensor<T, R, D>& t, double gain = 1.0, Generator& gen = default_generator()) {
    if (t.numel() == 0) return t;
    const Fans f = calculate_fan_in_and_fan_out(t.shape());
    const double bound = gain * std::sqrt(6.0 / double(f.fan_in + f.fan_out));
    return uniform_(t, -bound, bound, gen);
}

// Glorot & Bengio 2010: normal with std gain·sqrt(2 / (fan_in + fan_out)).
template <Element T, int R, Device D>
Tensor<T, R, D>& xavier_normal_(Tensor<T, R, D>& t, double gain = 1.0, Generator& gen = default_generator()) {
    if (t.numel() == 0) return t;
    const Fans f = calculate_fan_in_and_fan_out(t.shape());
    return normal_(t, 0.0, gain * std::sqrt(2.0 / double(f.fan_in + f.fan_out)), gen);
}

}  // namespace weft::nn::init

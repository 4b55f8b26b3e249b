// weft/autograd/gradcheck.hpp: compares backward() with central finite differences.
//
//   auto x = Tensor<double, 2>::randn({3, 4});
//   auto w = Tensor<double, 2>::randn({5, 4});
//   auto report = gradcheck([](const auto& x, const auto& w) { return linear(x, w, {}); }, x, w);
//   if (!report) std::cerr << report.message;
//
// The function's output is reduced to sum(out * r) with fixed random weights r (so that every
// output element matters, each with its own weight). Each input element is then moved by
// ±eps and the change of that sum compared with the analytic gradient:
// |analytic - numeric| <= atol + rtol * |numeric|. Run it in double: in float the differences
// drown in rounding. The function must be deterministic (seeded dropout is).
#pragma once

#include <cmath>
#include <sstream>
#include <string>
#include <tuple>

#include "../expr/assign.hpp"
#include "../expr/reduce.hpp"
#include "tape.hpp"

namespace weft {

struct GradcheckOptions {
    double eps = 1e-6;
    double atol = 1e-5;
    double rtol = 1e-4;
    std::uint64_t seed = 1234;
    int max_reported = 5;
};

struct GradcheckReport {
    bool ok = true;
    index_t checked = 0;     // input elements compared
    double max_error = 0;    // the largest |analytic - numeric|
    std::string message;     // the first mismatches, one per line
    explicit operator bool() const { return ok; }
};

namespace autograd::detail {

template <class Out, class W>
double weighted_sum(const Out& out, const W& weights) {
    double s = 0;
    auto o = out.contiguous();
    for (index_t i = 0; i < o.numel(); ++i) s += double(o.data()[i]) * double(weights.data()[i]);
    return s;
}

}  // namespace autograd::detail

// f takes the inputs (double tensors on the CPU) and returns one double tensor. The inputs are
// copied; those passed in are not touched.
template <class F, class... In>
GradcheckReport gradcheck_with(const GradcheckOptions& opt, F&& f, const In&... inputs) {
    static_assert(sizeof...(In) > 0, "weft: gradcheck needs at least one input");
    static_assert((std::same_as<typename In::value_type, double> && ...),
                  "weft: gradcheck runs in double precision; pass Tensor<double, R> inputs");
    std::tuple<In...> xs{inputs.detach().clone()...};
    std::apply([](auto&... x) { (x.requires_grad_(), ...); }, xs);

    auto out = std::apply(f, xs);
    using OutT = decltype(out);
    Generator gen(opt.seed);
    const auto weights = OutT::randn(out.shape(), gen);
    GradcheckReport report;
    if (!out.requires_grad()) {
        report.ok = false;
        report.message = "the output does not require grad: the function recorded nothing";
        return report;
    }
    auto loss = sum(out * weights);
    loss.backward();

    std::ostringstream msg;
    int reported = 0;
    auto check_input = [&](auto& x, int which) {
        auto analytic = x.grad();
        if (analytic.defined()) analytic = analytic.contiguous();
        for (index_t j = 0; j < x.numel(); ++j) {
            double* p = x.data() + j;  // x is a dense clone
            const double saved = *p;
            double lp, lm;
            {
                NoGrad no_grad;
                *p = saved + opt.eps;
                lp = autograd::detail::weighted_sum(std::apply(f, xs), weights);
                *p = saved - opt.eps;
                lm = autograd::detail::weighted_sum(std::apply(f, xs), weights);
                *p = saved;
            }
            const double numeric = (lp - lm) / (2 * opt.eps);
            const double a = analytic.defined() ? analytic.data()[j] : 0.0;
            const double err = std::abs(a - numeric);
            report.max_error = std::max(report.max_error, err);
            ++report.checked;
            if (!(err <= opt.atol + opt.rtol * std::abs(numeric))) {
                report.ok = false;
                if (reported++ < opt.max_reported)
                    msg << "input " << which << " element " << j << ": analytic " << a << ", numeric " << numeric
                        << "\n";
            }
        }
    };
    int which = 0;
    std::apply([&](auto&... x) { (check_input(x, which++), ...); }, xs);
    report.message = msg.str();
    if (report.ok) report.message = "ok: " + std::to_string(report.checked) + " elements";
    return report;
}

template <class F, class... In>
GradcheckReport gradcheck(F&& f, const In&... inputs) {
    return gradcheck_with(GradcheckOptions{}, std::forward<F>(f), inputs...);
}

}  // namespace weft

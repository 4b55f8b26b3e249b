// Autograd views, the optimizers and mixed precision on the GPU, against the CPU on the same
// inputs: the backward of views (autograd/cuda/view_backward.cuh), SGD and AdamW steps
// (optim/cuda/*.cuh, AdamW through its multi-tensor launch), MasterWeights with GradScaler, and
// optimizer state files written from and read into CUDA optimizers.
//
// Tolerances. The view backward adds in the CPU's order and the optimizers do the CPU loop's
// operations one by one without fused multiply-adds, so float results are expected to agree to
// the bit; the tests allow 1e-6 relative (what the CUDA brief promises), which a wrong position,
// buffer or scalar exceeds by orders of magnitude. 16-bit results are compared within one ulp.
#include "common.cuh"

#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <unistd.h>
#include <vector>

using namespace weft;
using namespace weft_test;

namespace {

constexpr double kRtol = 1e-6;
constexpr double kAtol = 1e-12;
constexpr double kBf16Rtol = 8e-3;  // one bf16 ulp (2^-7 relative at worst)
constexpr double kHalfRtol = 1e-3;  // one half ulp (2^-10)

// x: the leaf (made from a device copy of `x_host` by make_leaf, which may return a strided
// tensor), loss = sum(view(x) * w). Compares x.grad() on both devices.
template <class T, int R, int V, class MakeLeaf, class View>
void check_view_grad(const char* what, const Tensor<T, R, Cpu>& x_host, const Tensor<T, V, Cpu>& w_host,
                     MakeLeaf make_leaf, View view, double rtol, double atol) {
    INFO("view: " << what);
    auto xc = make_leaf(x_host.clone());
    auto xg = make_leaf(to_gpu(x_host));
    xc.requires_grad_();
    xg.requires_grad_();
    const auto wg = to_gpu(w_host);
    sum(view(xc) * w_host).backward();
    sum(view(xg) * wg).backward();
    REQUIRE(xg.grad().defined());
    require_close(xg.grad(), xc.grad(), rtol, atol);
}

auto as_is = [](const auto& t) { return t; };

template <class T>
Tensor<T, 1, Cpu> random_host(index_t n, std::uint64_t seed) {
    return cast<T>(randn_host(Shape<1>{n}, seed));
}

// Parameters of the given sizes, equal on both devices, stepped by optimizers made by
// make_opt(named_parameters) for `steps` steps with the same gradients (parameter i gets none at
// step k when skip(i, k)); compares parameters and every state buffer after each step.
template <class T, class MakeOpt, class Skip>
void compare_steps(const std::vector<index_t>& sizes, int steps, MakeOpt make_opt, Skip skip, double rtol,
                   double atol) {
    const std::size_t n = sizes.size();
    std::vector<Tensor<T, 1, Cpu>> pc;
    std::vector<Tensor<T, 1, Cuda>> pg;
    pc.reserve(n);  // NamedTensor refers to the elements: no reallocation after this
    pg.reserve(n);
    std::vector<NamedTensor<T, Cpu>> nc;
    std::vector<NamedTensor<T, Cuda>> ng;
    for (std::size_t i = 0; i < n; ++i) {
        const auto host = random_host<T>(sizes[i], 100 + i);
        pc.push_back(host.clone());
        pg.push_back(to_gpu(host));
        pc.back().requires_grad_();
        pg.back().requires_grad_();
    }
    for (std::size_t i = 0; i < n; ++i) {
        nc.push_back({"p" + std::to_string(i), pc[i]});
        ng.push_back({"p" + std::to_string(i), pg[i]});
    }
    auto oc = make_opt(nc);
    auto og = make_opt(ng);
    for (int k = 0; k < steps; ++k) {
        for (std::size_t i = 0; i < n; ++i) {
            if (skip(i, k)) continue;
            const auto g = random_host<T>(sizes[i], 10000 * std::uint64_t(k + 1) + i);
            sum(pc[i] * g).backward();
            sum(pg[i] * to_gpu(g)).backward();
        }
        oc.step();
        og.step();
        oc.zero_grad();
        og.zero_grad();
        for (std::size_t i = 0; i < n; ++i) {
            INFO("step " << k << ", parameter " << i << " of " << sizes[i] << " elements");
            require_close(pg[i].detach(), pc[i].detach(), rtol, atol);
            REQUIRE(og.state(nc[i].name).step == oc.state(nc[i].name).step);
            for (const std::string& b : oc.buffer_names()) {
                INFO("buffer " << b);
                const auto want = oc.state(nc[i].name, b);
                const auto got = og.state(nc[i].name, b);
                REQUIRE(got.defined() == want.defined());
                if (want.defined()) require_close(got, want, rtol, atol);
            }
        }
    }
}

auto never_skip = [](std::size_t, int) { return false; };

struct TempFile {
    std::filesystem::path path;
    explicit TempFile(const char* stem) {
        path = std::filesystem::temp_directory_path() /
               (std::string(stem) + "_" + std::to_string(::getpid()) + ".safetensors");
    }
    ~TempFile() {
        std::error_code ec;
        std::filesystem::remove(path, ec);
    }
};

}  // namespace

TEST_CASE("cuda: backward of narrow, permute and transposed views of a dense base matches the CPU", "[cuda]") {
    const auto x = randn_host(Shape<3>{6, 9, 5}, 1);
    check_view_grad("narrow", x, randn_host(Shape<3>{6, 5, 5}, 2), as_is,
                    [](const auto& t) { return t.narrow(1, 2, 5); }, kRtol, kAtol);
    check_view_grad("permute", x, randn_host(Shape<3>{5, 6, 9}, 3), as_is,
                    [](const auto& t) { return t.permute(2, 0, 1); }, kRtol, kAtol);
    check_view_grad("transpose, narrow, narrow (linked past to the base)", x, randn_host(Shape<3>{3, 9, 4}, 4), as_is,
                    [](const auto& t) { return t.transpose(0, 2).narrow(0, 1, 3).narrow(2, 1, 4); }, kRtol, kAtol);
    check_view_grad("strided slice of a select", x, randn_host(Shape<1>{3}, 5), as_is,
                    [](const auto& t) { return t.select(2, 3).select(0, 4).slice(0, 1, 9, 3); }, kRtol, kAtol);
    check_view_grad("reshape (the same positions)", x, randn_host(Shape<2>{54, 5}, 6), as_is,
                    [](const auto& t) { return t.reshape(54, 5); }, kRtol, kAtol);
    // Odd sizes past a block: 300 * 97 positions.
    const auto big = randn_host(Shape<2>{301, 131}, 7);
    check_view_grad("large transposed narrow", big, randn_host(Shape<2>{97, 300}, 8), as_is,
                    [](const auto& t) { return t.narrow(0, 1, 300).narrow(1, 17, 97).t(); }, kRtol, kAtol);
}

TEST_CASE("cuda: backward of views of a strided base and of expanded views matches the CPU", "[cuda]") {
    const auto x = randn_host(Shape<3>{6, 9, 5}, 11);
    // The leaf itself is strided (a transposed tensor marked requires_grad_): the gradient goes
    // through the zero-filled span and the strided read of strided_view_backward.
    auto transposed = [](const auto& t) { return t.transpose(0, 2); };  // [5, 9, 6], not dense
    check_view_grad("narrow of a transposed leaf", x, randn_host(Shape<3>{5, 4, 6}, 12), transposed,
                    [](const auto& t) { return t.narrow(1, 3, 4); }, kRtol, kAtol);
    check_view_grad("permute of a transposed leaf", x, randn_host(Shape<3>{9, 6, 5}, 13), transposed,
                    [](const auto& t) { return t.permute(1, 2, 0); }, kRtol, kAtol);
    // Expanded views: several elements of the view share one position of the base; they add in
    // the view's order on both devices.
    check_view_grad("expand of a narrow (leading axis of stride 0)", x, randn_host(Shape<3>{4, 9, 5}, 14), as_is,
                    [](const auto& t) { return t.narrow(0, 2, 1).expand(4, -1, -1); }, kRtol, kAtol);
    check_view_grad("expand in the middle, then permute", x, randn_host(Shape<4>{5, 6, 3, 9}, 15), as_is,
                    [](const auto& t) { return t.unsqueeze(2).expand(-1, -1, 3, -1).permute(3, 0, 2, 1); }, kRtol,
                    kAtol);
    check_view_grad("expand of a strided leaf", x, randn_host(Shape<4>{2, 5, 9, 6}, 16), transposed,
                    [](const auto& t) { return t.unsqueeze(0).expand(2, -1, -1, -1); }, kRtol, kAtol);

    // A view's gradient adds into a base gradient that another op's backward already shares
    // (own_grad copies it first), through autograd on both devices.
    const auto xs = randn_host(Shape<2>{7, 11}, 17);
    const auto w = randn_host(Shape<2>{7, 4}, 18);
    auto xc = xs.clone().requires_grad_();
    auto xg = to_gpu(xs).requires_grad_();
    {
        const Tensor<float, 2, Cpu> y = xc * 2.0f;
        eval(sum(y) + sum(y.narrow(1, 3, 4) * w)).backward();
    }
    {
        const Tensor<float, 2, Cuda> y = xg * 2.0f;
        eval(sum(y) + sum(y.narrow(1, 3, 4) * to_gpu(w))).backward();
    }
    require_close(xg.grad(), xc.grad(), kRtol, kAtol);
}

TEST_CASE("cuda: backward of views in bf16 and double matches the CPU", "[cuda]") {
    const Tensor<bf16, 3, Cpu> x = cast<bf16>(randn_host(Shape<3>{6, 9, 5}, 21));
    check_view_grad("bf16 narrow", x, Tensor<bf16, 3, Cpu>(cast<bf16>(randn_host(Shape<3>{6, 5, 5}, 22))), as_is,
                    [](const auto& t) { return t.narrow(1, 2, 5); }, kBf16Rtol, 0);
    // bf16 sums of shared positions: rounded after every addition, in the same order.
    check_view_grad("bf16 expand", x, Tensor<bf16, 4, Cpu>(cast<bf16>(randn_host(Shape<4>{3, 6, 9, 5}, 23))), as_is,
                    [](const auto& t) { return t.unsqueeze(0).expand(3, -1, -1, -1); }, kBf16Rtol, 0);
    check_view_grad("bf16 strided leaf", x, Tensor<bf16, 3, Cpu>(cast<bf16>(randn_host(Shape<3>{5, 9, 2}, 24))),
                    [](const auto& t) { return t.transpose(0, 2); },
                    [](const auto& t) { return t.narrow(2, 1, 2); }, kBf16Rtol, 0);
    const Tensor<double, 2, Cpu> xd = cast<double>(randn_host(Shape<2>{13, 17}, 25));
    check_view_grad("double transpose narrow", xd, Tensor<double, 2, Cpu>(cast<double>(randn_host(Shape<2>{17, 5}, 26))),
                    as_is, [](const auto& t) { return t.t().narrow(1, 4, 5); }, 1e-12, 1e-15);
}

TEST_CASE("cuda: SGD matches the CPU over several steps (momentum, nesterov, decay, groups)", "[cuda]") {
    const std::vector<index_t> sizes{1, 31, 257, 1000, 4099};
    auto skip_some = [](std::size_t i, int k) { return (i + std::size_t(k)) % 4 == 3; };
    const std::vector<optim::ParamRule> rules{{"p1", 0.5, 0.0}, {"p3", 2.0, 3.0}};
    const optim::SGDOptions variants[] = {
        {.lr = 0.1},
        {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-2},
        {.lr = 0.05, .momentum = 0.9, .dampening = 0.3, .weight_decay = 1e-3},
        {.lr = 0.02, .momentum = 0.8, .weight_decay = 1e-2, .nesterov = true},
    };
    for (const auto& o : variants) {
        INFO("momentum " << o.momentum << ", dampening " << o.dampening << ", nesterov " << o.nesterov);
        auto make = [&]<class D>(const std::vector<NamedTensor<float, D>>& params) {
            return optim::SGD<float, D>(optim::make_param_groups(params, rules), o);
        };
        compare_steps<float>(sizes, 5, make, skip_some, kRtol, kAtol);
    }
    auto make_double = [&]<class D>(const std::vector<NamedTensor<double, D>>& params) {
        return optim::SGD<double, D>(params, {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-2, .nesterov = true});
    };
    compare_steps<double>(sizes, 4, make_double, never_skip, 1e-14, 1e-300);
    auto make_bf16 = [&]<class D>(const std::vector<NamedTensor<bf16, D>>& params) {
        return optim::SGD<bf16, D>(params, {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-2});
    };
    compare_steps<bf16>(sizes, 4, make_bf16, never_skip, kBf16Rtol, 0);
}

TEST_CASE("cuda: AdamW matches the CPU over several steps (groups, amsgrad, double, bf16)", "[cuda]") {
    const std::vector<index_t> sizes{1, 7, 8, 9, 255, 4099};
    auto skip_some = [](std::size_t i, int k) { return (i * 3 + std::size_t(k)) % 5 == 4; };
    const std::vector<optim::ParamRule> rules{{"p2", 0.1}, {"p4", 1.0, 0.0}};
    for (const bool amsgrad : {false, true}) {
        INFO("amsgrad " << amsgrad);
        auto make = [&]<class D>(const std::vector<NamedTensor<float, D>>& params) {
            return optim::AdamW<float, D>(optim::make_param_groups(params, rules),
                                          {.lr = 3e-3, .betas = {0.9, 0.99}, .weight_decay = 0.05, .amsgrad = amsgrad});
        };
        compare_steps<float>(sizes, 6, make, skip_some, kRtol, kAtol);
    }
    auto make_double = [&]<class D>(const std::vector<NamedTensor<double, D>>& params) {
        return optim::AdamW<double, D>(params, {.lr = 1e-2, .amsgrad = true});
    };
    compare_steps<double>(sizes, 4, make_double, never_skip, 1e-14, 1e-300);
    auto make_bf16 = [&]<class D>(const std::vector<NamedTensor<bf16, D>>& params) {
        return optim::AdamW<bf16, D>(params, {.lr = 1e-2, .weight_decay = 0.1});
    };
    compare_steps<bf16>(sizes, 4, make_bf16, never_skip, kBf16Rtol, 0);
    auto make_half = [&]<class D>(const std::vector<NamedTensor<half, D>>& params) {
        return optim::AdamW<half, D>(params, {.lr = 1e-2});
    };
    compare_steps<half>(sizes, 3, make_half, never_skip, kHalfRtol, 1e-7);
}

TEST_CASE("cuda: AdamW's multi-tensor step over hundreds of tensors of odd sizes matches the CPU", "[cuda]") {
    // 300 tensors (most one chunk or less, one of 0 elements, one spanning five chunks of 16384),
    // three parameter groups; the first step reaches only ten of them, so the second step's table
    // is larger than the first's (the pinned staging buffer grows).
    std::vector<index_t> sizes;
    for (int i = 0; i < 300; ++i) sizes.push_back(index_t((i * 7919) % 1201 + 1));
    sizes[17] = 0;
    sizes[42] = 70001;
    sizes[43] = 16384;
    sizes[44] = 16385;
    auto skip = [](std::size_t i, int k) { return (k == 0 && i >= 10) || (k > 1 && (i + std::size_t(k)) % 9 == 0); };
    const std::vector<optim::ParamRule> rules{{"p1", 0.5, 0.0}, {"p2", 2.0}};
    auto make = [&]<class D>(const std::vector<NamedTensor<float, D>>& params) {
        return optim::AdamW<float, D>(optim::make_param_groups(params, rules), {.lr = 1e-2, .weight_decay = 0.02});
    };
    compare_steps<float>(sizes, 5, make, skip, kRtol, kAtol);
}

TEST_CASE("cuda: MasterWeights and GradScaler match the CPU (bf16 and half models)", "[cuda]") {
    // The models' gradients are chosen directly (loss = Σ sum(w_i * c_i)), so both devices get
    // the same 16-bit gradients; everything after is MasterWeights, GradScaler and AdamW.
    const std::vector<index_t> sizes{5, 130, 4099};
    auto run = [&]<class T>(T, const optim::GradScalerOptions& so, const std::vector<int>& nan_steps, double rtol16) {
        std::vector<Tensor<T, 1, Cpu>> wc;
        std::vector<Tensor<T, 1, Cuda>> wg;
        wc.reserve(sizes.size());
        wg.reserve(sizes.size());
        std::vector<NamedTensor<T, Cpu>> nc;
        std::vector<NamedTensor<T, Cuda>> ng;
        for (std::size_t i = 0; i < sizes.size(); ++i) {
            const Tensor<T, 1, Cpu> h = cast<T>(randn_host(Shape<1>{sizes[i]}, 300 + i));
            wc.push_back(h.clone());
            wg.push_back(to_gpu(h));
            wc.back().requires_grad_();
            wg.back().requires_grad_();
        }
        for (std::size_t i = 0; i < sizes.size(); ++i) {
            nc.push_back({"layer" + std::to_string(i) + ".weight", wc[i]});
            ng.push_back({"layer" + std::to_string(i) + ".weight", wg[i]});
        }
        optim::MasterWeights<T, Cpu> mc(nc);
        optim::MasterWeights<T, Cuda> mg(ng);
        optim::AdamW<float, Cpu> oc(mc.parameters(), {.lr = 1e-2, .weight_decay = 0.01});
        optim::AdamW<float, Cuda> og(mg.parameters(), {.lr = 1e-2, .weight_decay = 0.01});
        optim::GradScaler<Cpu> sc(so);
        optim::GradScaler<Cuda> sg(so);
        for (int k = 0; k < 6; ++k) {
            INFO("iteration " << k);
            Tensor<T, 0, Cpu> lc = Tensor<T, 0, Cpu>::zeros({});
            Tensor<T, 0, Cuda> lg = Tensor<T, 0, Cuda>::zeros({});
            for (std::size_t i = 0; i < sizes.size(); ++i) {
                // |c| < 1/2: times the scales used below, no overflow in half
                Tensor<T, 1, Cpu> c = cast<T>(rand_host(Shape<1>{sizes[i]}, 700 + 10 * k + int(i), -0.5f, 0.5f));
                for (int s : nan_steps)
                    if (s == k && i == 1) c(77) = T(std::numeric_limits<float>::quiet_NaN());
                lc = Tensor<T, 0, Cpu>(lc + sum(wc[i] * c));  // a new recorded tensor, not a write into lc
                lg = Tensor<T, 0, Cuda>(lg + sum(wg[i] * to_gpu(c)));
            }
            sc.scale(lc).backward();
            sg.scale(lg).backward();
            const bool stepped_c = sc.step(mc, oc);
            const bool stepped_g = sg.step(mg, og);
            CHECK(stepped_g == stepped_c);
            CHECK(sg.found_inf() == sc.found_inf());
            sc.update();
            sg.update();
            CHECK(sg.current_scale() == sc.current_scale());
            CHECK(sg.growth_tracker() == sc.growth_tracker());
            oc.zero_grad();
            og.zero_grad();
            for (std::size_t i = 0; i < sizes.size(); ++i) {
                INFO("parameter " << i);
                require_close(mg.parameters()[i].tensor.template get<1>().detach(),
                              mc.parameters()[i].tensor.template get<1>().detach(), kRtol, kAtol);
                require_close(wg[i].detach(), wc[i].detach(), rtol16, 0);
            }
        }
        return sc.current_scale();
    };
    // bf16 without loss scaling (a disabled scaler steps every time).
    run(bf16{}, {.enabled = false}, {}, kBf16Rtol);
    // half with the default scale: 65536 overflows half, so the first step is skipped (32768);
    // two good steps; a NaN at iteration 3 skips another (16384); two good steps (growth every 3).
    const float last = run(half{}, {.growth_interval = 3}, {3}, kHalfRtol);
    CHECK(last == 16384.0f);
}

TEST_CASE("cuda: optimizer state saved from CUDA loads on the CPU and back, and the run continues", "[cuda]") {
    const std::vector<index_t> sizes{3, 129, 1000};
    std::vector<Tensor<float, 1, Cuda>> pg;
    std::vector<Tensor<float, 1, Cpu>> pc;
    pg.reserve(sizes.size());
    pc.reserve(sizes.size());
    std::vector<NamedTensor<float, Cuda>> ng;
    std::vector<NamedTensor<float, Cpu>> nc;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        pg.push_back(to_gpu(randn_host(Shape<1>{sizes[i]}, 500 + i)));
        pg.back().requires_grad_();
    }
    for (std::size_t i = 0; i < sizes.size(); ++i) ng.push_back({"p" + std::to_string(i), pg[i]});
    const optim::AdamWOptions o{.lr = 1e-2, .amsgrad = true};
    optim::AdamW<float, Cuda> og(ng, o);
    auto backward_all = [&](auto& params, int k) {
        for (std::size_t i = 0; i < sizes.size(); ++i) {
            const auto g = randn_host(Shape<1>{sizes[i]}, 900 + 10 * std::uint64_t(k) + i);
            using D = typename std::remove_cvref_t<decltype(params[i])>::device_type;
            sum(params[i] * g.template to<D>()).backward();
        }
    };
    for (int k = 0; k < 2; ++k) {
        backward_all(pg, k);
        og.step();
        og.zero_grad();
    }
    TempFile file("weft_cuda_optim_state");
    og.save_state(file.path);

    // Into a CPU optimizer: the same buffers and step counts.
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        pc.push_back(pg[i].detach().to<Cpu>());
        pc.back().requires_grad_();
    }
    for (std::size_t i = 0; i < sizes.size(); ++i) nc.push_back({"p" + std::to_string(i), pc[i]});
    optim::AdamW<float, Cpu> oc(nc, o);
    oc.load_state(file.path);
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        const std::string name = "p" + std::to_string(i);
        CHECK(oc.state(name).step == 2);
        for (const std::string& b : oc.buffer_names()) require_identical(og.state(name, b), oc.state(name, b));
    }

    // Into a fresh CUDA optimizer over copies of the parameters: the third step matches the
    // uninterrupted run's (and the CPU's).
    std::vector<Tensor<float, 1, Cuda>> pg2;
    pg2.reserve(sizes.size());
    std::vector<NamedTensor<float, Cuda>> ng2;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        pg2.push_back(pg[i].detach().clone());
        pg2.back().requires_grad_();
    }
    for (std::size_t i = 0; i < sizes.size(); ++i) ng2.push_back({"p" + std::to_string(i), pg2[i]});
    optim::AdamW<float, Cuda> og2(ng2, o);
    og2.load_state(file.path);
    backward_all(pg, 2);
    og.step();
    backward_all(pg2, 2);
    og2.step();
    backward_all(pc, 2);
    oc.step();
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        require_identical(pg2[i].detach(), pg[i].detach());
        require_close(pg[i].detach(), pc[i].detach(), kRtol, kAtol);
    }
}

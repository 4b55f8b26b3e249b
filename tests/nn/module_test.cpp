// nn::Module (names, order, modes, state dicts, checkpoints), nn::init statistics, Sequential
// and ModuleList. Layers against PyTorch: layers_reference_test.cpp; gradients: gradcheck_test.cpp.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

#include <weft/nn.hpp>

using namespace weft;

namespace {

std::vector<std::string> names_of(const std::vector<NamedTensor<double>>& v) {
    std::vector<std::string> out;
    for (const auto& n : v) out.push_back(n.name);
    return out;
}

// A module with its own parameter and buffer, a child, and a grandchild.
class Inner : public nn::Module<double> {
public:
    nn::Linear<double> proj{3, 2};
    Tensor<double, 1> gamma = Tensor<double, 1>::ones({2});
    Tensor<double, 1> stats = Tensor<double, 1>::zeros({2});
    Tensor<double, 1> cache = Tensor<double, 1>::zeros({5});
    Inner() {
        register_parameter("gamma", gamma);
        register_buffer("stats", stats);
        register_buffer("cache", cache, false);  // not persistent: no state_dict entry
        register_module("proj", proj);
    }
};

class Outer : public nn::Module<double> {
public:
    Tensor<double, 2> embed = Tensor<double, 2>::zeros({4, 3});
    Inner backbone;
    nn::Linear<double> head{2, 1, false};
    Outer() {
        register_module("backbone", backbone);
        register_parameter("embed", embed);  // own tensors come first whatever the call order
        register_module("head", head);
    }
};

struct TempFile {
    std::filesystem::path path;
    explicit TempFile(const std::string& stem)
        : path(std::filesystem::temp_directory_path() /
               (stem + "_" + std::to_string(::getpid()) + ".safetensors")) {}
    ~TempFile() { std::filesystem::remove(path); }
};

// The example of docs/nn.md, compiled.
template <Element T = float, Device D = Cpu>
class Block : public nn::Module<T, D> {
public:
    nn::LayerNorm<T, D> norm{16};
    nn::Linear<T, D> fc{16, 16};
    Tensor<T, 1, D> scale = Tensor<T, 1, D>::ones({16});
    Block() {
        this->register_module("norm", norm);
        this->register_module("fc", fc);
        this->register_parameter("scale", scale);  // marks it requires_grad_()
    }
    Tensor<T, 2, D> forward(const Tensor<T, 2, D>& x) const { return eval(x + fc(norm(x)) * scale); }
    Tensor<T, 2, D> operator()(const Tensor<T, 2, D>& x) const { return forward(x); }
};

double max_abs_diff(const TensorRef<double>& a, const TensorRef<double>& b) {
    auto x = a.flat(), y = b.flat();
    double m = 0;
    for (index_t i = 0; i < x.numel(); ++i) m = std::max(m, std::abs(x(i) - y(i)));
    return m;
}

}  // namespace

TEST_CASE("module names and order follow PyTorch") {
    Outer m;
    CHECK(names_of(m.named_parameters()) ==
          std::vector<std::string>{"embed", "backbone.gamma", "backbone.proj.weight", "backbone.proj.bias",
                                   "head.weight"});
    CHECK(names_of(m.named_buffers()) == std::vector<std::string>{"backbone.stats", "backbone.cache"});
    CHECK(m.state_dict().names() == std::vector<std::string>{"embed", "backbone.gamma", "backbone.stats",
                                                             "backbone.proj.weight", "backbone.proj.bias",
                                                             "head.weight"});
    CHECK(names_of(m.named_parameters(false)) == std::vector<std::string>{"embed"});
    auto children = m.named_children();
    REQUIRE(children.size() == 2);
    CHECK(children[0].first == "backbone");
    CHECK(children[1].first == "head");
    auto modules = m.named_modules();
    REQUIRE(modules.size() == 4);
    CHECK(modules[0].first.empty());
    CHECK(modules[2].first == "backbone.proj");
    for (auto& p : m.parameters()) CHECK(p.requires_grad());
    CHECK(!m.backbone.stats.requires_grad());

    // The references reach the members.
    auto params = m.named_parameters();
    CHECK(&params[2].tensor.get<2>() == &m.backbone.proj.weight);

    // Names must be new and dot-free.
    Tensor<double, 1> extra = Tensor<double, 1>::zeros({1});
    CHECK_THROWS_WITH(m.register_parameter("embed", extra), Catch::Contains("already registered"));
    CHECK_THROWS_WITH(m.register_buffer("a.b", extra), Catch::Contains("contains '.'"));
}

TEST_CASE("train and eval reach every descendant") {
    Outer m;
    CHECK(m.is_training());
    m.eval();
    for (auto& [name, mod] : m.named_modules()) CHECK(!mod->is_training());
    m.backbone.train();
    CHECK(!m.is_training());
    CHECK(m.backbone.proj.is_training());
    CHECK(!m.head.is_training());
    m.train();
    for (auto& [name, mod] : m.named_modules()) CHECK(mod->is_training());
}

TEST_CASE("parameters selected by name freeze a backbone") {
    Outer m;
    auto frozen = m.parameters_matching(nn::starts_with("backbone."));
    CHECK(names_of(frozen) ==
          std::vector<std::string>{"backbone.gamma", "backbone.proj.weight", "backbone.proj.bias"});
    for (auto& p : frozen) p.tensor.requires_grad_(false);
    CHECK(names_of(m.parameters_matching(nn::name_contains("weight"))) ==
          std::vector<std::string>{"backbone.proj.weight", "head.weight"});

    auto x = Tensor<double, 2>::randn({5, 3});
    auto y = m.head(m.backbone.proj(x));
    sum(y).backward();
    CHECK(m.head.weight.grad().defined());
    CHECK(!m.backbone.proj.weight.grad().defined());
    m.zero_grad();
    CHECK(!m.head.weight.grad().defined());
}

TEST_CASE("load_state_dict reports missing, unexpected and mis-shaped keys") {
    Outer src, dst;
    auto before = dst.state_dict().clone();
    auto sd = src.state_dict();
    CHECK(sd.get<2>("backbone.proj.weight").data() == src.backbone.proj.weight.data());  // views, not copies

    SECTION("a state dict that fits loads in place") {
        const double* storage = dst.backbone.proj.weight.data();
        auto report = dst.load_state_dict(sd);
        CHECK(report.ok());
        CHECK(dst.backbone.proj.weight.data() == storage);  // same storage: optimizers stay valid
        CHECK(max_abs_diff(dst.backbone.proj.weight, src.backbone.proj.weight) == 0);
        CHECK(dst.backbone.proj.weight.requires_grad());
    }
    SECTION("strict loading refuses and changes nothing") {
        auto bad = src.state_dict().clone();
        bad.erase("head.weight");
        bad.insert("backbone.extra", Tensor<double, 1>::zeros({7}));
        bad.insert("backbone.proj.weight", Tensor<double, 2>::zeros({3, 3}));
        try {
            dst.load_state_dict(bad);
            FAIL("strict load did not throw");
        } catch (const Error& e) {
            const std::string msg = e.what();
            CHECK_THAT(msg, Catch::Contains("'head.weight [1, 2]'"));
            CHECK_THAT(msg, Catch::Contains("'backbone.extra [7]'"));
            CHECK_THAT(msg, Catch::Contains("'backbone.proj.weight' module [2, 3] vs [3, 3]"));
        }
        for (const auto& e : before) {
            const auto now = dst.state_dict().at(e.name).values;
            for (index_t i = 0; i < now.numel(); ++i) CHECK(now(i) == e.values(i));
        }

        auto report = dst.load_state_dict(bad, false);
        CHECK(report.missing == std::vector<std::string>{"head.weight"});
        CHECK(report.unexpected == std::vector<std::string>{"backbone.extra"});
        REQUIRE(report.mismatched.size() == 1);
        CHECK(report.mismatched[0].name == "backbone.proj.weight");
        CHECK(report.mismatched[0].expected == std::vector<index_t>{2, 3});
        CHECK(report.mismatched[0].got == std::vector<index_t>{3, 3});
        // What fits was loaded; the rest kept its values.
        CHECK(max_abs_diff(dst.embed, src.embed) == 0);
        CHECK(max_abs_diff(dst.backbone.proj.bias, src.backbone.proj.bias) == 0);
        CHECK(dst.head.weight(0, 0) == before.get<2>("head.weight")(0, 0));
        CHECK(dst.backbone.proj.weight(1, 2) == before.get<2>("backbone.proj.weight")(1, 2));
    }
}

TEST_CASE("save_state and load_state round trip through a file") {
    TempFile tmp("weft_nn_roundtrip");
    Generator g1(1), g2(2);
    nn::Sequential<double, 2> a, b;
    a.emplace_back<nn::Linear<double>>(4, 6, true, g1);
    a.emplace_back<nn::GELU<double>>();
    a.emplace_back<nn::Linear<double>>(6, 2, true, g1);
    b.emplace_back<nn::Linear<double>>(4, 6, true, g2);
    b.emplace_back<nn::GELU<double>>();
    b.emplace_back<nn::Linear<double>>(6, 2, true, g2);
    CHECK(a.state_dict().names() == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
    CHECK(max_abs_diff(a.at<nn::Linear<double>>(0).weight, b.at<nn::Linear<double>>(0).weight) > 0);

    nn::save_state(a, tmp.path, {{"epoch", "3"}});
    CHECK(SafetensorsFile::open(tmp.path).metadata().at("epoch") == "3");
    CHECK(nn::load_state(b, tmp.path).ok());
    auto x = Tensor<double, 2>::randn({3, 4});
    auto ya = a(x), yb = b(x);
    for (index_t i = 0; i < ya.numel(); ++i) CHECK(ya.data()[i] == yb.data()[i]);

    // A file that does not fit: the error names the file and the keys; nothing changes.
    nn::Sequential<double, 2> c;
    c.emplace_back<nn::Linear<double>>(4, 5);
    auto before = c.state_dict().clone();
    try {
        nn::load_state(c, tmp.path);
        FAIL("strict load_state did not throw");
    } catch (const Error& e) {
        const std::string msg = e.what();
        CHECK_THAT(msg, Catch::Contains(tmp.path.string()));
        CHECK_THAT(msg, Catch::Contains("'0.weight' module [5, 4] vs [6, 4]"));
        CHECK_THAT(msg, Catch::Contains("'2.bias [2]'"));
    }
    CHECK(c.at<nn::Linear<double>>(0).bias(0) == before.get<1>("0.bias")(0));

    // A prefix selects a sub-model of a larger checkpoint; float64 converts into float.
    nn::Linear<float> last(6, 2);
    auto r = nn::load_state(last, tmp.path, true, "2.");
    CHECK(r.ok());
    CHECK(last.weight(1, 3) == float(a.at<nn::Linear<double>>(2).weight(1, 3)));
}

TEST_CASE("Sequential and ModuleList own and name their children") {
    nn::ModuleList<nn::Linear<double>> list;
    for (int i = 0; i < 3; ++i) list.emplace_back(2, 2);
    CHECK(list.size() == 3);
    CHECK(list.state_dict().names() ==
          std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"});
    int n = 0;
    for (auto& layer : list) n += int(layer.out_features());
    CHECK(n == 6);
    CHECK_THROWS_WITH(list[3], Catch::Contains("out of range"));

    nn::ModuleList<nn::Module<double>> any;
    any.push_back(std::make_unique<nn::ReLU<double>>());
    any.push_back(std::make_unique<nn::Linear<double>>(1, 1));
    CHECK(any.at<nn::Linear<double>>(1).in_features() == 1);
    CHECK_THROWS(any.at<nn::Linear<double>>(0));

    nn::Sequential<double, 3> seq;
    seq.emplace_back<nn::Linear<double>>(3, 3);
    seq.emplace_back<nn::ReLU<double>>();
    auto y = seq(Tensor<double, 3>::randn({2, 4, 3}));
    CHECK(y.shape() == Shape<3>{2, 4, 3});
    for (index_t i = 0; i < y.numel(); ++i) CHECK(y.data()[i] >= 0);
}

TEST_CASE("init functions have the documented statistics") {
    Generator gen(7);
    auto moments = [](const Tensor<float, 2>& t) {
        double s = 0, s2 = 0, lo = 1e30, hi = -1e30;
        for (index_t i = 0; i < t.numel(); ++i) {
            const double v = t.data()[i];
            s += v;
            s2 += v * v;
            lo = std::min(lo, v);
            hi = std::max(hi, v);
        }
        const double n = double(t.numel()), mean = s / n;
        return std::array<double, 4>{mean, std::sqrt(s2 / n - mean * mean), lo, hi};
    };
    auto w = Tensor<float, 2>::empty({200, 400});  // fan_in 400, fan_out 200
    const double n = double(w.numel());
    auto near = [&](double got, double want, double sd_of_estimate) {
        INFO("got " << got << ", want " << want);
        CHECK(std::abs(got - want) < 5 * sd_of_estimate);
    };

    nn::init::kaiming_uniform_(w, {.a = std::sqrt(5.0)}, gen);  // Linear's default: ±1/sqrt(fan_in)
    auto m = moments(w);
    const double bound = 1.0 / std::sqrt(400.0);
    CHECK(m[2] >= -bound);
    CHECK(m[3] <= bound);
    near(m[1], bound / std::sqrt(3.0), bound / std::sqrt(n));
    near(m[0], 0.0, bound / std::sqrt(n));

    nn::init::kaiming_normal_(w, {.mode = nn::init::FanMode::fan_out, .nonlinearity = nn::init::Nonlinearity::relu},
                              gen);
    m = moments(w);
    near(m[1], std::sqrt(2.0 / 200.0), std::sqrt(2.0 / 200.0) / std::sqrt(n));

    nn::init::xavier_uniform_(w, 2.0, gen);
    m = moments(w);
    const double xb = 2.0 * std::sqrt(6.0 / 600.0);
    CHECK(m[2] >= -xb);
    CHECK(m[3] <= xb);
    near(m[1], xb / std::sqrt(3.0), xb / std::sqrt(n));

    nn::init::xavier_normal_(w, 1.0, gen);
    near(moments(w)[1], std::sqrt(2.0 / 600.0), std::sqrt(2.0 / 600.0) / std::sqrt(n));

    // N(1, 2²) truncated to [-1, 2]: standardised bounds alpha = -1, beta = 0.5.
    nn::init::trunc_normal_(w, 1.0, 2.0, -1.0, 2.0, gen);
    m = moments(w);
    CHECK(m[2] >= -1.0);
    CHECK(m[3] <= 2.0);
    const double phi_a = std::exp(-0.5) / std::sqrt(2 * M_PI), phi_b = std::exp(-0.125) / std::sqrt(2 * M_PI);
    const double z = 0.5 * (std::erf(0.5 / std::sqrt(2.0)) - std::erf(-1.0 / std::sqrt(2.0)));
    const double tmean = 1.0 + 2.0 * (phi_a - phi_b) / z;
    const double tvar = 4.0 * (1 + (-1.0 * phi_a - 0.5 * phi_b) / z - std::pow((phi_a - phi_b) / z, 2));
    near(m[0], tmean, 2.0 / std::sqrt(n));
    near(m[1], std::sqrt(tvar), 2.0 / std::sqrt(n));
    CHECK(m[2] < -0.99);  // the whole range is used
    CHECK(m[3] > 1.99);

    nn::init::constant_(w, 0.25);
    m = moments(w);
    CHECK(m[2] == 0.25f);
    CHECK(m[3] == 0.25f);

    const auto fans = nn::init::calculate_fan_in_and_fan_out(Shape<4>{8, 3, 5, 5});
    CHECK(fans.fan_in == 75);
    CHECK(fans.fan_out == 200);
    CHECK(nn::init::calculate_gain(nn::init::Nonlinearity::leaky_relu, std::sqrt(5.0)) ==
          Approx(std::sqrt(1.0 / 3.0)));

    // Same generator state, same values.
    Generator a(3), b(3);
    auto p = Tensor<float, 2>::empty({4, 4}), q = Tensor<float, 2>::empty({4, 4});
    nn::init::trunc_normal_(p, 0.0, 0.02, -0.04, 0.04, a);
    nn::init::trunc_normal_(q, 0.0, 0.02, -0.04, 0.04, b);
    for (index_t i = 0; i < 16; ++i) CHECK(p.data()[i] == q.data()[i]);
}

TEST_CASE("docs nn example") {
    TempFile tmp("weft_nn_docs");
    Block<float> block;
    CHECK(block.state_dict().names() ==
          std::vector<std::string>{"scale", "norm.weight", "norm.bias", "fc.weight", "fc.bias"});
    for (auto& p : block.parameters_matching(nn::starts_with("norm."))) p.tensor.requires_grad_(false);
    nn::save_state(block, tmp.path, {{"step", "0"}});
    CHECK(nn::load_state(block, tmp.path).ok());
    auto x = Tensor<float, 2>::randn({3, 16});
    sum(block(x)).backward();
    CHECK(block.fc.weight.grad().defined());
    CHECK(block.scale.grad().defined());
    CHECK(!block.norm.weight.grad().defined());
}

TEST_CASE("small layers: names, shapes and modes") {
    Generator gen(5);
    nn::Embedding<float> emb(10, 4, gen);
    auto ids = Tensor<std::int64_t, 2>::from({{3, 1}, {9, 3}});
    auto e = emb(ids);
    CHECK(e.shape() == Shape<3>{2, 2, 4});
    for (index_t j = 0; j < 4; ++j) CHECK(e(1, 1, j) == emb.weight(3, j));
    CHECK_THROWS_WITH(emb(Tensor<std::int64_t, 1>::from({10})), Catch::Contains("out of range"));

    nn::Dropout<float> drop(0.5, gen);
    auto ones = Tensor<float, 2>::ones({100, 100});
    auto d = drop(ones);
    index_t zeros = 0;
    for (index_t i = 0; i < d.numel(); ++i) {
        const float v = d.data()[i];
        CHECK((v == 0.0f || v == 2.0f));
        zeros += v == 0.0f;
    }
    CHECK(std::abs(double(zeros) / 1e4 - 0.5) < 0.05);
    drop.eval();
    CHECK(drop(ones).data() == ones.data());  // the identity, not even a copy

    nn::DropPath<float> dp(0.5, 1, gen);  // [L, N, C]: samples on axis 1
    auto t = dp(Tensor<float, 3>::ones({3, 64, 2}));
    for (index_t n = 0; n < 64; ++n)
        for (index_t l = 1; l < 3; ++l) CHECK(t(l, n, 1) == t(0, n, 0));  // one decision per sample

    nn::GroupNorm<float> gn(2, 4);
    nn::LayerNorm<float> ln(5, 1e-6, false);
    CHECK(gn.state_dict().names() == std::vector<std::string>{"weight", "bias"});
    CHECK(ln.state_dict().empty());
    auto y = ln(eval(Tensor<float, 2>::randn({3, 5}, gen) * 4.0f + 1.0f));
    for (index_t r = 0; r < 3; ++r) {
        double m = 0;
        for (index_t c = 0; c < 5; ++c) m += y(r, c);
        CHECK(std::abs(m) < 1e-5);
    }
    CHECK(gn(Tensor<float, 4>::randn({2, 4, 3, 3}, gen)).shape() == Shape<4>{2, 4, 3, 3});
    CHECK_THROWS_WITH(gn(Tensor<float, 3>::randn({2, 3, 3}, gen)), Catch::Contains("channels"));

    nn::BatchNorm2d<float> bn(4, 1e-5, 0.1, false, false);
    CHECK(bn.state_dict().empty());
    bn.eval();  // no running statistics: batch statistics in both modes
    auto z = bn(eval(Tensor<float, 4>::randn({8, 4, 2, 2}, gen) + 3.0f));
    double mz = 0;
    for (index_t i = 0; i < z.numel(); ++i) mz += z.data()[i];
    CHECK(std::abs(mz / double(z.numel())) < 1e-5);

    nn::MultiheadAttention<float> mha(8, 2, {.bias = false});
    CHECK(mha.state_dict().names() == std::vector<std::string>{"in_proj_weight", "out_proj.weight"});
    CHECK_THROWS_WITH(mha(Tensor<float, 3>::zeros({4, 2, 6}), Tensor<float, 3>::zeros({4, 2, 8}),
                          Tensor<float, 3>::zeros({4, 2, 8})),
                      Catch::Contains("sequence-first"));
    nn::TransformerEncoderLayer<float> enc(8, 2, {.dim_feedforward = 4});
    enc.eval();
    for (auto& [name, m] : enc.named_modules()) CHECK(!m->is_training());
    CHECK(enc(Tensor<float, 3>::randn({5, 3, 8}, gen)).shape() == Shape<3>{5, 3, 8});
}

// The code shown in docs/*.md, compiled and checked here. Each region between
// "// [snippet:NAME]" and "// [/snippet]" appears verbatim in a ```cpp block of the docs that
// follows a "<!-- snippet:NAME -->" marker; the docs.snippets test fails when they drift apart.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>
#include <iostream>
#include <weft/interop/eigen.hpp>
#include <weft/weft.hpp>

using namespace weft;

TEST_CASE("docs: getting started", "[docs]") {
    // [snippet:getting-started]
    auto a = Tensor<float, 2>::from({{1, 2, 3}, {4, 5, 6}});  // [2, 3]
    auto b = Tensor<float, 1>::from({10, 20, 30});            // [3]
    Tensor<float, 2> c = relu(a * 2.0f + b - 25.0f);          // [2, 3], one fused loop
    Tensor<float, 1> row_sums = sum(c, {1});                  // [2]
    std::cout << row_sums << "\n";  // tensor([11.0000, 22.0000], dtype=float32, shape=[2])
    // [/snippet]
    CHECK(row_sums(0) == 11.0f);
    CHECK(row_sums(1) == 22.0f);
}

TEST_CASE("docs: autograd", "[docs]") {
    // [snippet:autograd]
    auto w = Tensor<float, 2>::randn({10, 4}).requires_grad_();   // a leaf
    auto b = Tensor<float, 1>::zeros({10}).requires_grad_();
    auto x = Tensor<float, 2>::randn({32, 4});                     // data: no gradient
    Tensor<float, 2> h = relu(linear(x, w, b));                    // one node for linear, one for relu
    auto loss = mean(h * h);                                       // a node for the reduction
    loss.backward();
    auto gw = w.grad();                                            // [10, 4]: d loss / d w
    // [/snippet]
    CHECK(gw.shape() == Shape<2>{10, 4});
    CHECK(b.grad().shape() == Shape<1>{10});
    CHECK(!x.requires_grad());
}

TEST_CASE("docs: views share memory", "[docs]") {
    // [snippet:views]
    auto x = Tensor<float, 1>::arange(24).reshape(2, 3, 4);  // [2, 3, 4], dense
    auto y = x.permute(2, 0, 1);                              // [4, 2, 3], a view
    auto row = x.select(0, 1).slice(1, 0, 4, 2);              // [3, 2]: x[1, :, ::2]
    row = -1.0f;                                              // writes into x
    auto flat = y.reshape(-1);                                // strides forbid a view: copies
    // [/snippet]
    CHECK(y.shape() == Shape<3>{4, 2, 3});
    CHECK(x(1, 2, 2) == -1.0f);
    CHECK(x(1, 2, 3) == 23.0f);
    CHECK(flat.numel() == 24);
    CHECK(!same_storage(flat.storage(), x.storage()));
}

TEST_CASE("docs: expressions are lazy and hold operands by value", "[docs]") {
    // [snippet:lazy]
    auto make = [] {
        auto t = Tensor<float, 1>::ones({4});
        return exp(t) * 2.0f;  // the expression keeps t's storage alive
    };
    auto e = make();              // nothing computed yet
    Tensor<float, 1> v = e;       // computed now, in one pass
    auto w = eval(sqrt(v) + 1.0f);  // eval() when the type is long to spell
    // [/snippet]
    CHECK(v(0) == Approx(2.0f * std::exp(1.0f)));
    CHECK(w(3) == Approx(std::sqrt(v(3)) + 1.0f));
}

TEST_CASE("docs: assignment and aliasing", "[docs]") {
    // [snippet:aliasing]
    auto m = Tensor<float, 2>::from({{1, 2}, {3, 4}});
    m = m * 10.0f;         // in place: each element reads only itself
    m = m.t() + 0.5f;      // reads m transposed while writing m: weft evaluates into a
                           // temporary first, so m really becomes its transpose plus 0.5
    auto top = m.select(0, 0);
    m.select(0, 1) = top;  // assigning to a temporary view copies elements into it
    Tensor<float, 2> alias = m;  // a named handle: alias and m share elements
    alias(0, 0) = 0.0f;          // visible through m
    // [/snippet]
    CHECK(m(0, 1) == 30.5f);
    CHECK(m(1, 0) == 10.5f);  // row 1 received a copy of row 0 before alias(0, 0) changed it
    CHECK(m(1, 1) == 30.5f);
    CHECK(m(0, 0) == 0.0f);
}

TEST_CASE("docs: reductions", "[docs]") {
    // [snippet:reductions]
    auto x = Tensor<float, 3>::randn({2, 3, 4});
    Tensor<float, 0> total = sum(x);                 // all axes -> rank 0
    Tensor<float, 1> per_col = mean(x, {0, 1});      // [4]
    Tensor<float, 3> centred = x - mean(x, {-1}, keepdim);  // [2, 3, 1] broadcasts back
    Tensor<std::int64_t, 2> best = argmax(x, 2);     // [2, 3]
    Tensor<float, 2> dot = sum(x * x, {2});          // product fused into the reduction
    // [/snippet]
    CHECK(per_col.shape() == Shape<1>{4});
    CHECK(best.shape() == Shape<2>{2, 3});
    CHECK(std::abs(sum(centred).item()) < 1e-4f);
    CHECK(dot(1, 2) >= 0.0f);
    CHECK(std::isfinite(total.item()));
}

TEST_CASE("docs: eigen interop", "[docs]") {
    // [snippet:eigen]
    auto w = Tensor<float, 2>::randn({3, 4});
    Eigen::VectorXf ones = Eigen::VectorXf::Ones(4);
    Eigen::VectorXf y = as_eigen(w) * ones;  // Eigen reads weft's memory, no copy
    Eigen::MatrixXd a = Eigen::MatrixXd::Identity(3, 3);
    auto t = from_eigen(a);                   // Tensor<double, 2> view, column-major strides
    // [/snippet]
    CHECK(y(2) == Approx(sum(w, {1})(2)).epsilon(1e-5));
    CHECK(t(1, 1) == 1.0);
}

// ---- the docs show exactly this code ----------------------------------------------------------

TEST_CASE("docs: data-parallel training", "[docs]") {
    // [snippet:data-parallel]
    dist::LocalCommunicator comm;  // under mpirun: dist::MpiCommunicator comm; nothing else changes
    const auto rank = std::uint64_t(comm.rank()), world = std::uint64_t(comm.size());

    manual_seed(0);  // every rank builds the same model (DataParallel also broadcasts rank 0's)
    nn::Sequential<float, 2> model;
    model.emplace_back<nn::Linear<float>>(8, 16);
    model.emplace_back<nn::GELU<float>>();
    model.emplace_back<nn::Dropout<float>>(0.1);
    model.emplace_back<nn::Linear<float>>(16, 4);
    dist::synchronize_batch_norm(model, comm);  // SyncBN for every BatchNorm2d (none in this model)
    dist::DataParallel<float> dp(comm, model);  // gradient buckets, filled during backward
    optim::AdamW<float> opt(model.named_parameters(), {.lr = 1e-3});

    Generator data(7);
    const index_t b = 8;  // samples per rank: the global batch is b * world
    for (int step = 0; step < 3; ++step) {
        const auto x = Tensor<float, 2>::randn({b, 8}, data);  // this rank's slice of the batch
        opt.zero_grad();
        {
            ReplicaScope slice(default_generator(), rank, world);  // the global batch's dropout masks
            const auto y = model(x);                                // [b, 4]
            mean(y * y).backward();  // buckets all-reduce as their gradients complete
        }
        dp.synchronize();  // every gradient is now the mean over the ranks
        opt.step();        // identical on every rank
    }
    // [/snippet]
    CHECK(dp.bucket_count() == 1);
    CHECK(model.parameters()[0].grad_flat().defined());
}

namespace {

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p);
    REQUIRE(in.good());
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Lines with their common leading indentation removed, trailing blanks dropped.
std::string dedent(const std::vector<std::string>& lines) {
    std::size_t indent = std::string::npos;
    for (const auto& l : lines)
        if (l.find_first_not_of(' ') != std::string::npos) indent = std::min(indent, l.find_first_not_of(' '));
    std::string out;
    for (const auto& l : lines) out += (l.size() > indent ? l.substr(indent) : std::string()) + "\n";
    return out;
}

std::vector<std::string> split_lines(const std::string& s) {
    std::vector<std::string> lines;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
}

}  // namespace

TEST_CASE("docs: every snippet in docs/ is the code compiled here", "[docs]") {
    const std::filesystem::path root = WEFT_SOURCE_DIR;
    std::map<std::string, std::string> snippets;
    {
        const auto lines = split_lines(read_file(root / "tests/docs/test_doc_snippets.cpp"));
        for (std::size_t i = 0; i < lines.size(); ++i) {
            const auto at = lines[i].find("// [snippet:");
            if (at == std::string::npos || lines[i].find("NAME") != std::string::npos) continue;
            const std::string name = lines[i].substr(at + 12, lines[i].find(']', at) - at - 12);
            std::vector<std::string> body;
            for (++i; i < lines.size() && lines[i].find("// [/snippet]") == std::string::npos; ++i)
                body.push_back(lines[i]);
            snippets[name] = dedent(body);
        }
    }
    REQUIRE(snippets.size() >= 5);
    int checked = 0;
    for (const auto& entry : std::filesystem::directory_iterator(root / "docs")) {
        if (entry.path().extension() != ".md") continue;
        const auto lines = split_lines(read_file(entry.path()));
        for (std::size_t i = 0; i < lines.size(); ++i) {
            const auto at = lines[i].find("<!-- snippet:");
            if (at == std::string::npos) continue;
            const std::string name = lines[i].substr(at + 13, lines[i].find(" -->") - at - 13);
            INFO(entry.path().filename().string() << ": snippet " << name);
            REQUIRE(snippets.count(name) == 1);
            REQUIRE(i + 1 < lines.size());
            REQUIRE(lines[i + 1] == "```cpp");
            std::vector<std::string> body;
            for (i += 2; i < lines.size() && lines[i] != "```"; ++i) body.push_back(lines[i]);
            CHECK(dedent(body) == snippets[name]);
            ++checked;
        }
    }
    CHECK(checked >= int(snippets.size()));  // every snippet is shown somewhere
}

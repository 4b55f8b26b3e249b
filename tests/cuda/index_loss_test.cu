// Indexing ops, the fused cross-entropy and dropout on the GPU (ops/cuda/embedding.cuh,
// gather.cuh, index_rows.cuh, cross_entropy.cuh, dropout.cuh, index_check.cuh) against the CPU
// on the same random inputs, forward and backward, plain functions and autograd.
//
// Tolerances:
//  - gather, index_select, embedding and scatter_add copy elements, and their backward adds the
//    same values in the same order as the CPU (one thread per line, or a stable sort of the
//    positions by row): bitwise equal, float and bf16 alike.
//  - dropout and drop_path draw the same Philox numbers and multiply as the CPU: masks and
//    outputs bitwise equal at the same seed, the generators' offsets equal afterwards.
//  - cross_entropy: the GPU's log-sum-exp is one online pass (running max, rescaled sums) with
//    CUDA's expf/logf, the CPU's two passes with glibc's: a few float ulp apart, so fp32 within
//    1e-5 relative (losses) and 1e-4 relative of the largest gradient element. The reduced loss
//    is summed in double over fixed tiles: the same bits on every run. bf16 logits accumulate in
//    float; the reference is the CPU op in float on the bf16-rounded inputs, within a few bf16 ulp.
#include "common.cuh"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

using namespace weft;
using namespace weft_test;

namespace {

using I64 = std::int64_t;

// |got - want| <= rtol·|want| + frac·max|want|: for gradients whose elements span magnitudes.
template <class T, int R, class D1, class D2>
void require_close_scaled(const Tensor<T, R, D1>& got, const Tensor<T, R, D2>& want, double rtol, double frac) {
    const auto w = host_dense(want);
    double peak = 0;
    for (index_t i = 0; i < w.numel(); ++i) peak = std::max(peak, std::fabs(as_double(w.data()[i])));
    require_close(got, want, rtol, frac * peak);
}

// A float host copy of any tensor (to compare a bf16 result with a float reference).
template <class T, int R, class D>
Tensor<float, R, Cpu> as_float(const Tensor<T, R, D>& t) {
    const auto h = host_dense(t);
    return Tensor<float, R, Cpu>(cast<float>(h));
}

template <int R>
Tensor<I64, R, Cpu> randint_host(I64 low, I64 high, const Shape<R>& s, std::uint64_t seed) {
    Generator g(seed);
    return Tensor<I64, R, Cpu>::randint(low, high, s, g);
}

// Class labels in [0, classes) with about `ignored` of the positions set to 255.
template <int R>
Tensor<I64, R, Cpu> labels_host(I64 classes, const Shape<R>& s, std::uint64_t seed, double ignored) {
    auto t = randint_host(0, classes, s, seed);
    const auto u = rand_host(s, seed + 1000);
    for (index_t i = 0; i < t.numel(); ++i)
        if (u.data()[i] < ignored) t.data()[i] = 255;
    return t;
}

// The message of the weft::Error that f throws, without its " [file:line]" suffix.
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const weft::Error& e) {
        const std::string m = e.what();
        const auto k = m.rfind(" [");
        return k == std::string::npos ? m : m.substr(0, k);
    }
    return "(no error)";
}

template <class T>
CrossEntropyOptions<T, Cuda> on_gpu(const CrossEntropyOptions<T, Cpu>& o) {
    CrossEntropyOptions<T, Cuda> g;
    g.ignore_index = o.ignore_index;
    g.reduction = o.reduction;
    g.label_smoothing = o.label_smoothing;
    if (o.weight.defined()) g.weight = to_gpu(o.weight);
    return g;
}

// Every cross-entropy entry point in fp32 (and double) on both devices.
template <class T, int R>
void check_cross_entropy(const Tensor<T, R, Cpu>& x, const Tensor<I64, R - 1, Cpu>& t,
                         const CrossEntropyOptions<T, Cpu>& oc, double rtol, double atol, double grad_rtol,
                         double grad_frac) {
    const auto og = on_gpu(oc);
    const auto xg = to_gpu(x);
    const auto tg = to_gpu(t);
    {
        INFO("cross_entropy (reduced)");
        require_close(cross_entropy(xg, tg, og), cross_entropy(x, t, oc), rtol, atol);
    }
    {
        INFO("cross_entropy_per_element");
        require_close(cross_entropy_per_element(xg, tg, og), cross_entropy_per_element(x, t, oc), rtol, atol);
    }
    {
        INFO("cross_entropy_backward");
        const auto g0 = Tensor<T, 0, Cpu>::full(Shape<0>{}, T(0.75));
        require_close_scaled(cross_entropy_backward(to_gpu(g0), xg, tg, og), cross_entropy_backward(g0, x, t, oc),
                             grad_rtol, grad_frac);
    }
    {
        INFO("cross_entropy_per_element_backward");
        const Tensor<T, R - 1, Cpu> gp = cast<T>(randn_host(t.shape(), 99));
        require_close_scaled(cross_entropy_per_element_backward(to_gpu(gp), xg, tg, og),
                             cross_entropy_per_element_backward(gp, x, t, oc), grad_rtol, grad_frac);
    }
}

}  // namespace

// ---- cross-entropy ------------------------------------------------------------------------------

TEST_CASE("cuda: cross_entropy on [N, C, H, W] logits matches the CPU (150 classes, 37x41, ignore_index, weights)",
          "[cuda]") {
    const Shape<4> s{2, 150, 37, 41};
    const auto x = randn_host(s, 1);
    const auto t = labels_host(150, Shape<3>{2, 37, 41}, 2, 0.15);
    const auto w = rand_host(Shape<1>{150}, 3, 0.5f, 2.0f);
    for (const Reduction r : {Reduction::mean, Reduction::mean_all, Reduction::sum}) {
        for (const bool weighted : {false, true}) {
            for (const double smoothing : {0.0, 0.1}) {
                CrossEntropyOptions<float> o;
                o.ignore_index = 255;
                o.reduction = r;
                o.label_smoothing = smoothing;
                if (weighted) o.weight = w;
                INFO("reduction " << int(r) << ", weighted " << weighted << ", smoothing " << smoothing);
                check_cross_entropy(x, t, o, 1e-5, 1e-5, 1e-4, 1e-5);
            }
        }
    }
    // Large logits: the online log-sum-exp must not overflow. lse is then ~100, whose float ulp
    // (8e-6) bounds how well p_t - 1 is known at a dominant target: hence 1e-4 of the largest
    // gradient element.
    const Tensor<float, 4, Cpu> big = x * 40.0f;
    CrossEntropyOptions<float> o;
    o.ignore_index = 255;
    check_cross_entropy(big, t, o, 1e-5, 1e-4, 1e-4, 1e-4);
}

TEST_CASE("cuda: cross_entropy on [N, C] rows and odd maps matches the CPU (float and double)", "[cuda]") {
    for (const index_t classes : {index_t(150), index_t(1000), index_t(7)}) {
        INFO(classes << " classes");
        const auto x = randn_host(Shape<2>{67, classes}, 10 + std::uint64_t(classes));
        const auto t = labels_host(classes, Shape<1>{67}, 11, 0.2);
        const auto w = rand_host(Shape<1>{classes}, 12, 0.5f, 2.0f);
        for (const Reduction r : {Reduction::mean, Reduction::mean_all, Reduction::sum}) {
            CrossEntropyOptions<float> o;
            o.ignore_index = 255;
            o.reduction = r;
            o.weight = w;
            o.label_smoothing = r == Reduction::sum ? 0.2 : 0.0;
            check_cross_entropy(x, t, o, 1e-5, 1e-5, 1e-4, 1e-5);
        }
        // double: the kernels compute in double, a few double ulp from the CPU.
        const Tensor<double, 2, Cpu> xd = cast<double>(x);
        CrossEntropyOptions<double> od;
        od.ignore_index = 255;
        od.weight = Tensor<double, 1, Cpu>(cast<double>(w));
        od.label_smoothing = 0.1;
        check_cross_entropy(xd, t, od, 1e-12, 1e-12, 1e-10, 1e-12);
    }
    // A rank-3 map [N, C, L] with few positions per sample (tiles cross samples), and the
    // default ignore_index (-100).
    const auto x3 = randn_host(Shape<3>{5, 33, 3}, 20);
    auto t3 = randint_host(0, 33, Shape<2>{5, 3}, 21);
    t3(1, 2) = -100;
    check_cross_entropy(x3, t3, CrossEntropyOptions<float>{}, 1e-5, 1e-5, 1e-4, 1e-5);

    // Everything ignored: mean is NaN (0 / 0), mean_all and sum are 0, the gradient is 0.
    const auto xi = randn_host(Shape<4>{2, 9, 5, 3}, 22);
    const auto ti = Tensor<I64, 3, Cpu>::full({2, 5, 3}, 255);
    for (const Reduction r : {Reduction::mean, Reduction::mean_all, Reduction::sum}) {
        CrossEntropyOptions<float> o;
        o.ignore_index = 255;
        o.reduction = r;
        const auto lg = cross_entropy(to_gpu(xi), to_gpu(ti), on_gpu(o)).item();
        if (r == Reduction::mean) CHECK(std::isnan(lg));
        else CHECK(lg == 0.0f);
    }
}

TEST_CASE("cuda: cross_entropy on strided logits, deterministic, and its errors match the CPU", "[cuda]") {
    // Logits stored [N, H, W, C] and viewed as [N, C, H, W]; labels transposed.
    const auto stored = randn_host(Shape<4>{2, 37, 41, 150}, 30);
    const auto x = stored.permute(0, 3, 1, 2);
    const auto tt = labels_host(150, Shape<3>{2, 41, 37}, 31, 0.1);
    const auto t = tt.transpose(1, 2);
    const auto xg = to_gpu(stored).permute(0, 3, 1, 2);
    const auto tg = to_gpu(tt).transpose(1, 2);
    CrossEntropyOptions<float> o;
    o.ignore_index = 255;
    o.reduction = Reduction::mean_all;
    const auto og = on_gpu(o);
    require_close(cross_entropy(xg, tg, og), cross_entropy(x, t, o), 1e-5, 1e-6);
    require_close(cross_entropy_per_element(xg, tg, og), cross_entropy_per_element(x, t, o), 1e-5, 1e-5);
    const auto g0 = Tensor<float, 0, Cpu>::full(Shape<0>{}, 2.0f);
    require_close_scaled(cross_entropy_backward(to_gpu(g0), xg, tg, og), cross_entropy_backward(g0, x, t, o), 1e-4,
                         1e-5);

    // Fixed tiles summed in a fixed order: the same bits every time.
    require_identical(cross_entropy(xg, tg, og), cross_entropy(xg, tg, og));

    // A target outside [0, C) that is not ignore_index: the CPU's message, naming the first one.
    auto bad = labels_host(150, Shape<3>{2, 37, 41}, 32, 0.1);
    bad(1, 3, 4) = 150;
    bad(1, 20, 4) = -1;
    const auto xd = stored.permute(0, 3, 1, 2).contiguous();
    const auto xdg = to_gpu(xd);
    const auto badg = to_gpu(bad);
    const std::string want = error_of([&] { (void)cross_entropy(xd, bad, o); });
    CHECK(want.find("target value 150") != std::string::npos);
    CHECK(error_of([&] { (void)cross_entropy(xdg, badg, og); }) == want);
    CHECK(error_of([&] { (void)cross_entropy_per_element(xdg, badg, og); }) ==
          error_of([&] { (void)cross_entropy_per_element(xd, bad, o); }));
    CHECK(error_of([&] { (void)cross_entropy_backward(to_gpu(g0), xdg, badg, og); }) ==
          error_of([&] { (void)cross_entropy_backward(g0, xd, bad, o); }));
}

TEST_CASE("cuda: cross_entropy in bf16 accumulates in float", "[cuda]") {
    const Shape<4> s{2, 150, 37, 41};
    const Tensor<bf16, 4, Cpu> xb = cast<bf16>(randn_host(s, 40));
    const Tensor<float, 4, Cpu> xr = cast<float>(xb);  // the bf16 values, in float
    const auto t = labels_host(150, Shape<3>{2, 37, 41}, 41, 0.15);
    const Tensor<bf16, 1, Cpu> wb = cast<bf16>(rand_host(Shape<1>{150}, 42, 0.5f, 2.0f));
    CrossEntropyOptions<float> of;
    of.ignore_index = 255;
    of.weight = Tensor<float, 1, Cpu>(cast<float>(wb));
    of.reduction = Reduction::mean;
    CrossEntropyOptions<bf16, Cuda> ob;
    ob.ignore_index = 255;
    ob.weight = to_gpu(wb);
    ob.reduction = Reduction::mean;
    const auto xg = to_gpu(xb);
    const auto tg = to_gpu(t);
    require_close(as_float(cross_entropy(xg, tg, ob)), cross_entropy(xr, t, of), 2e-2, 1e-3);
    require_close(as_float(cross_entropy_per_element(xg, tg, ob)), cross_entropy_per_element(xr, t, of), 2e-2, 2e-2);
    const auto g0 = Tensor<bf16, 0, Cpu>::full(Shape<0>{}, bf16(1.0f));
    const auto g0f = Tensor<float, 0, Cpu>::full(Shape<0>{}, 1.0f);
    require_close_scaled(as_float(cross_entropy_backward(to_gpu(g0), xg, tg, ob)), cross_entropy_backward(g0f, xr, t, of),
                         2e-2, 1e-2);

    // Through autograd, with label smoothing.
    ob.label_smoothing = of.label_smoothing = 0.1;
    auto xa = to_gpu(xb);
    xa.requires_grad_();
    auto loss = cross_entropy(xa, tg, ob);
    loss.backward();
    require_close_scaled(as_float(xa.grad()), cross_entropy_backward(g0f, xr, t, of), 2e-2, 1e-2);
}

TEST_CASE("cuda: cross_entropy through autograd matches the CPU's gradients", "[cuda]") {
    const auto x = randn_host(Shape<4>{2, 150, 37, 41}, 50);
    const auto t = labels_host(150, Shape<3>{2, 37, 41}, 51, 0.2);
    CrossEntropyOptions<float> o;
    o.ignore_index = 255;
    o.weight = rand_host(Shape<1>{150}, 52, 0.5f, 2.0f);
    o.reduction = Reduction::mean;
    const auto og = on_gpu(o);
    const auto tg = to_gpu(t);

    auto xc = x.clone();
    xc.requires_grad_();
    auto xg = to_gpu(x);
    xg.requires_grad_();
    auto lc = cross_entropy(xc, t, o);
    auto lg = cross_entropy(xg, tg, og);
    require_close(lg, lc, 1e-5, 1e-6);
    lc.backward();
    lg.backward();
    require_close_scaled(xg.grad(), xc.grad(), 1e-4, 1e-5);

    // Per-element losses with a seed, and [N, C] rows.
    auto rc = randn_host(Shape<2>{67, 1000}, 53);
    rc.requires_grad_();
    auto rg = to_gpu(randn_host(Shape<2>{67, 1000}, 53));
    rg.requires_grad_();
    const auto rt = labels_host(1000, Shape<1>{67}, 54, 0.1);
    const auto seed = randn_host(Shape<1>{67}, 55);
    CrossEntropyOptions<float> orow;
    orow.ignore_index = 255;
    auto pc = cross_entropy_per_element(rc, rt, orow);
    auto pg = cross_entropy_per_element(rg, to_gpu(rt), on_gpu(orow));
    require_close(pg, pc, 1e-5, 1e-5);
    pc.backward(seed);
    pg.backward(to_gpu(seed));
    require_close_scaled(rg.grad(), rc.grad(), 1e-4, 1e-5);
}

// ---- embedding -----------------------------------------------------------------------------------

TEST_CASE("cuda: embedding forward and backward are bitwise the CPU's, with repeated indices", "[cuda]") {
    const index_t vocab = 1000, dim = 77;
    const auto table = randn_host(Shape<2>{vocab, dim}, 60);
    // A text batch: a few distinct tokens, most positions the padding token 0.
    auto ids = randint_host(0, 50, Shape<2>{13, 29}, 61);
    for (index_t b = 0; b < 13; ++b)
        for (index_t l = 9 + b; l < 29; ++l) ids(b, l) = 0;
    ids(3, 0) = vocab - 1;
    const auto g = randn_host(Shape<3>{13, 29, dim}, 62);
    const auto idsg = to_gpu(ids);

    require_identical(embedding(idsg, to_gpu(table)), embedding(ids, table));
    require_identical(embedding_backward(to_gpu(g), idsg, vocab), embedding_backward(g, ids, vocab));
    // Strided indices (a transposed view) and a strided gradient.
    require_identical(embedding(to_gpu(ids).t(), to_gpu(table)), embedding(ids.t(), table));
    const auto gt = randn_host(Shape<3>{29, 13, dim}, 63);
    require_identical(embedding_backward(to_gpu(gt).transpose(0, 1), idsg, vocab),
                      embedding_backward(gt.transpose(0, 1), ids, vocab));

    // bf16: the rows copied, the gradient summed in float in the CPU's order.
    const Tensor<bf16, 2, Cpu> tb = cast<bf16>(table);
    const Tensor<bf16, 3, Cpu> gb = cast<bf16>(g);
    require_identical(embedding(idsg, to_gpu(tb)), embedding(ids, tb));
    require_identical(embedding_backward(to_gpu(gb), idsg, vocab), embedding_backward(gb, ids, vocab));

    // Through autograd.
    auto wc = table.clone();
    wc.requires_grad_();
    auto wg = to_gpu(table);
    wg.requires_grad_();
    auto yc = embedding(ids, wc);
    auto yg = embedding(idsg, wg);
    yc.backward(g);
    yg.backward(to_gpu(g));
    require_identical(wg.grad(), wc.grad());

    // An index outside the table: the CPU's message.
    auto bad = ids.clone();
    bad(7, 3) = vocab;
    bad(9, 1) = -2;
    const std::string want = error_of([&] { (void)embedding(bad, table); });
    CHECK(want.find("index 1000 (at flat position 206)") != std::string::npos);
    CHECK(error_of([&] { (void)embedding(to_gpu(bad), to_gpu(table)); }) == want);
    CHECK(error_of([&] { (void)embedding_backward(to_gpu(g), to_gpu(bad), vocab); }) ==
          error_of([&] { (void)embedding_backward(g, bad, vocab); }));
}

// ---- gather, index_select, scatter_add ----------------------------------------------------------

TEST_CASE("cuda: gather, index_select and scatter_add are bitwise the CPU's on strided inputs", "[cuda]") {
    // x [37, 41, 5] as a permuted view of [5, 41, 37] storage.
    const auto stored = randn_host(Shape<3>{5, 41, 37}, 70);
    const auto x = stored.permute(2, 1, 0);
    const auto xg = to_gpu(stored).permute(2, 1, 0);
    const Shape<3> xs{37, 41, 5};

    // gather along the middle axis, an index narrower than x there.
    const auto idx = randint_host(0, 41, Shape<3>{37, 23, 5}, 71);
    const auto idxg = to_gpu(idx);
    require_identical(gather(xg, 1, idxg), gather(x, 1, idx));
    const auto g = randn_host(Shape<3>{37, 23, 5}, 72);
    require_identical(gather_backward(to_gpu(g), xs, 1, idxg), gather_backward(g, xs, 1, idx));
    // A strided index and gradient, along the last axis (negative axis).
    const auto idx_t = randint_host(0, 5, Shape<3>{4, 41, 37}, 73);  // viewed as [37, 41, 4]
    const auto gi = idx_t.permute(2, 1, 0);
    const auto gig = to_gpu(idx_t).permute(2, 1, 0);
    require_identical(gather(xg, -1, gig), gather(x, -1, gi));
    const auto g2 = randn_host(Shape<3>{4, 41, 37}, 74);
    require_identical(gather_backward(to_gpu(g2).permute(2, 1, 0), xs, -1, gig),
                      gather_backward(g2.permute(2, 1, 0), xs, -1, gi));

    // index_select with repeated indices, on the first and last axes.
    const auto rows = randint_host(0, 37, Shape<1>{50}, 75);
    const auto rowsg = to_gpu(rows);
    require_identical(index_select(xg, 0, rowsg), index_select(x, 0, rows));
    const auto gr = randn_host(Shape<3>{50, 41, 5}, 76);
    require_identical(index_select_backward(to_gpu(gr), xs, 0, rowsg), index_select_backward(gr, xs, 0, rows));
    const auto last = randint_host(0, 5, Shape<1>{9}, 77);
    const auto lastg = to_gpu(last);
    require_identical(index_select(xg, 2, lastg), index_select(x, 2, last));
    const auto gl = randn_host(Shape<3>{37, 41, 9}, 78);
    require_identical(index_select_backward(to_gpu(gl), xs, 2, lastg), index_select_backward(gl, xs, 2, last));

    // scatter_add: src wider than index along the axis (its extra elements are unused).
    const auto sidx = randint_host(0, 41, Shape<3>{37, 23, 5}, 79);
    const auto sidxg = to_gpu(sidx);
    const auto src = randn_host(Shape<3>{37, 29, 5}, 80);
    const auto srcg = to_gpu(src);
    require_identical(scatter_add(xg, 1, sidxg, srcg), scatter_add(x, 1, sidx, src));
    const auto gs = randn_host(xs, 81);
    const auto bc = scatter_add_backward(gs, 1, sidx, src.shape());
    const auto bg = scatter_add_backward(to_gpu(gs), 1, sidxg, src.shape());
    require_identical(bg.grad_x, bc.grad_x);
    require_identical(bg.grad_src, bc.grad_src);

    // bf16: the same copies and the same additions, rounded to bf16 after each as on the CPU.
    const Tensor<bf16, 3, Cpu> xb = cast<bf16>(x);
    const Tensor<bf16, 3, Cpu> srcb = cast<bf16>(src);
    const auto xbg = to_gpu(xb);
    require_identical(gather(xbg, 1, idxg), gather(xb, 1, idx));
    require_identical(scatter_add(xbg, 1, sidxg, to_gpu(srcb)), scatter_add(xb, 1, sidx, srcb));
    const Tensor<bf16, 3, Cpu> grb = cast<bf16>(gr);
    require_identical(index_select_backward(to_gpu(grb), xs, 0, rowsg), index_select_backward(grb, xs, 0, rows));

    // Integer tensors, no autograd.
    const auto xi = randint_host(-50, 50, Shape<3>{37, 41, 5}, 82);
    require_identical(index_select(to_gpu(xi), 1, to_gpu(randint_host(0, 41, Shape<1>{17}, 83))),
                      index_select(xi, 1, randint_host(0, 41, Shape<1>{17}, 83)));
    require_identical(gather(to_gpu(xi), 1, idxg), gather(xi, 1, idx));
}

TEST_CASE("cuda: gather, index_select and scatter_add through autograd, and their errors", "[cuda]") {
    const auto x = randn_host(Shape<3>{37, 41, 5}, 90);
    const auto idx = randint_host(0, 41, Shape<3>{37, 23, 5}, 91);
    const auto rows = randint_host(0, 41, Shape<1>{60}, 92);
    const auto src = randn_host(Shape<3>{37, 23, 5}, 93);
    const auto r1 = randn_host(Shape<3>{37, 23, 5}, 94);
    const auto r2 = randn_host(Shape<3>{37, 60, 5}, 95);
    const auto r3 = randn_host(Shape<3>{37, 41, 5}, 96);

    auto xc = x.clone();
    xc.requires_grad_();
    auto sc = src.clone();
    sc.requires_grad_();
    auto xg = to_gpu(x);
    xg.requires_grad_();
    auto sg = to_gpu(src);
    sg.requires_grad_();
    gather(xc, 1, idx).backward(r1);
    gather(xg, 1, to_gpu(idx)).backward(to_gpu(r1));
    require_identical(xg.grad(), xc.grad());
    index_select(xc, 1, rows).backward(r2);
    index_select(xg, 1, to_gpu(rows)).backward(to_gpu(r2));
    require_identical(xg.grad(), xc.grad());  // both hold the sum of the two backward passes
    scatter_add(xc, 1, idx, sc).backward(r3);
    scatter_add(xg, 1, to_gpu(idx), sg).backward(to_gpu(r3));
    require_identical(xg.grad(), xc.grad());
    require_identical(sg.grad(), sc.grad());

    // Out-of-range indices: the CPU's messages.
    auto bad = idx.clone();
    bad(30, 2, 4) = 41;
    const auto xgd = to_gpu(x);
    CHECK(error_of([&] { (void)gather(xgd, 1, to_gpu(bad)); }) == error_of([&] { (void)gather(x, 1, bad); }));
    CHECK(error_of([&] { (void)gather(x, 1, bad); }).find("gather: index 41") != std::string::npos);
    CHECK(error_of([&] { (void)scatter_add(xgd, 1, to_gpu(bad), to_gpu(src)); }) ==
          error_of([&] { (void)scatter_add(x, 1, bad, src); }));
    auto bad_rows = rows.clone();
    bad_rows(59) = -1;
    CHECK(error_of([&] { (void)index_select(xgd, 1, to_gpu(bad_rows)); }) ==
          error_of([&] { (void)index_select(x, 1, bad_rows); }));
    CHECK(error_of([&] { (void)index_select(x, 1, bad_rows); }).find("index -1") != std::string::npos);
}

// ---- dropout and drop_path -----------------------------------------------------------------------

TEST_CASE("cuda: dropout masks and outputs are bitwise the CPU's at the same seed", "[cuda]") {
    const auto x = randn_host(Shape<3>{37, 41, 7}, 100);  // 10619 elements: not a multiple of 4
    const auto xg = to_gpu(x);
    for (const double p : {0.1, 0.5, 0.9}) {
        INFO("p " << p);
        Generator gc(1234), gg(1234);
        gc.offset = gg.offset = 3;  // a stream position that starts inside nothing special
        const auto fc = dropout_forward(x, p, gc);
        const auto fg = dropout_forward(xg, p, gg);
        require_identical(fg.mask, fc.mask);
        require_identical(fg.y, fc.y);
        CHECK(gg.offset == gc.offset);
        const auto g = randn_host(x.shape(), 101);
        require_identical(dropout_backward(to_gpu(g), fg.mask, p), dropout_backward(g, fc.mask, p));
        // A second draw continues the stream: a different mask, still the CPU's.
        require_identical(dropout_forward(xg, p, gg).mask, dropout_forward(x, p, gc).mask);
    }
    // A strided input: the mask follows the view's row-major order on both devices.
    {
        Generator gc(5), gg(5);
        require_identical(dropout_forward(xg.transpose(0, 2), 0.3, gg).y, dropout_forward(x.transpose(0, 2), 0.3, gc).y);
    }
    // A replica's slice along axis 1 of [L, N, C]: runs of the global stream that start and end
    // inside Philox blocks (C = 33).
    {
        const auto xs = randn_host(Shape<3>{5, 4, 33}, 102);
        Generator gc(77), gg(77);
        ReplicaScope rc(gc, 1, 3);
        ReplicaScope rg(gg, 1, 3);
        const auto fc = dropout_forward(xs, 0.25, gc, 1);
        const auto fg = dropout_forward(to_gpu(xs), 0.25, gg, 1);
        require_identical(fg.mask, fc.mask);
        require_identical(fg.y, fc.y);
        CHECK(gg.offset == gc.offset);
    }
    // bf16, and p = 1 (all dropped, no numbers drawn).
    {
        const Tensor<bf16, 3, Cpu> xb = cast<bf16>(x);
        Generator gc(9), gg(9);
        const auto fc = dropout_forward(xb, 0.2, gc);
        const auto fg = dropout_forward(to_gpu(xb), 0.2, gg);
        require_identical(fg.mask, fc.mask);
        require_identical(fg.y, fc.y);
        const auto ac = dropout_forward(xb, 1.0, gc);
        const auto ag = dropout_forward(to_gpu(xb), 1.0, gg);
        require_identical(ag.mask, ac.mask);
        require_identical(ag.y, ac.y);
        CHECK(gg.offset == gc.offset);
    }
}

TEST_CASE("cuda: drop_path decisions and outputs are bitwise the CPU's", "[cuda]") {
    const auto x = randn_host(Shape<3>{6, 9, 35}, 110);  // [L, N, C]
    const auto xg = to_gpu(x);
    const auto g = randn_host(x.shape(), 111);
    for (const int axis : {0, 1}) {
        INFO("sample axis " << axis);
        Generator gc(42), gg(42);
        const auto fc = drop_path_forward(x, 0.4, gc, axis);
        const auto fg = drop_path_forward(xg, 0.4, gg, axis);
        require_identical(fg.keep, fc.keep);
        require_identical(fg.y, fc.y);
        CHECK(gg.offset == gc.offset);
        require_identical(drop_path_backward(to_gpu(g), fg.keep, 0.4, axis), drop_path_backward(g, fc.keep, 0.4, axis));
    }
    // Under a replica slice: per-sample decisions of the global batch, and decisions per token
    // position shared by the batch (batch_axis 0, sample_axis 1: every replica draws all of them).
    {
        Generator gc(43), gg(43);
        ReplicaScope rc(gc, 2, 4);
        ReplicaScope rg(gg, 2, 4);
        require_identical(drop_path_forward(xg, 0.3, gg, 1).keep, drop_path_forward(x, 0.3, gc, 1).keep);
        const auto fc = drop_path_forward(x, 0.3, gc, 1, 0);
        const auto fg = drop_path_forward(xg, 0.3, gg, 1, 0);
        require_identical(fg.keep, fc.keep);
        require_identical(fg.y, fc.y);
        CHECK(gg.offset == gc.offset);
    }
    // p = 1: every sample dropped.
    {
        Generator gc(44), gg(44);
        require_identical(drop_path_forward(xg, 1.0, gg).y, drop_path_forward(x, 1.0, gc).y);
    }
}

TEST_CASE("cuda: dropout and drop_path through autograd give the CPU's gradients", "[cuda]") {
    const auto x = randn_host(Shape<3>{37, 41, 7}, 120);
    const auto r = randn_host(x.shape(), 121);
    auto xc = x.clone();
    xc.requires_grad_();
    auto xg = to_gpu(x);
    xg.requires_grad_();
    Generator gc(2024), gg(2024);
    auto yc = dropout(xc, 0.3, true, gc);
    auto yg = dropout(xg, 0.3, true, gg);
    require_identical(yg, yc);
    yc.backward(r);
    yg.backward(to_gpu(r));
    require_identical(xg.grad(), xc.grad());

    auto zc = drop_path(xc, 0.5, true, gc, 1);
    auto zg = drop_path(xg, 0.5, true, gg, 1);
    require_identical(zg, zc);
    zc.backward(r);
    zg.backward(to_gpu(r));
    require_identical(xg.grad(), xc.grad());
    // Evaluation: the identity, nothing drawn.
    CHECK(dropout(xg, 0.3, false, gg).data() == xg.data());
    CHECK(gg.offset == gc.offset);
}

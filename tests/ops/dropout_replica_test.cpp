// Random masks under a replica slice of the generator (core/philox.hpp: Generator::replica,
// ReplicaScope): W replicas, each drawing on its slice of the batch with its own copy of the
// generator, must together draw exactly what one process draws on the whole batch, and every
// replica's generator must end where the single process's does. Checked for dropout (rank 1 to
// 4, sample axis 0 and 1), drop_path, dropout2d and the attention-weight dropout of
// scaled_dot_product_attention (outputs and gradients), with slices whose element runs start
// and end inside Philox blocks (b·inner not a multiple of 4).
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include <weft/models/segmentation/dropout2d.hpp>
#include <weft/ops/attention.hpp>
#include <weft/ops/dropout.hpp>
#include <weft/ops/join.hpp>

using namespace weft;

namespace {

template <class T, int R>
std::vector<T> flat(const Tensor<T, R>& t) {
    const auto c = t.contiguous();
    return std::vector<T>(c.data(), c.data() + c.numel());
}

// A generator part-way into its stream, so slices are not checked from offset 0 only.
Generator started(std::uint64_t seed, std::uint64_t offset) {
    Generator g(seed);
    g.advance(offset);
    return g;
}

template <int R>
Shape<R> with_extent(Shape<R> s, int axis, index_t n) {
    s[axis] = n;
    return s;
}

// dropout_forward and dropout on the whole tensor against W replicas' slices along `axis`.
template <int R>
void check_dropout(Shape<R> local, int axis, index_t W, double p) {
    const index_t b = local[axis];
    const Shape<R> global = with_extent(local, axis, b * W);
    const auto x = Tensor<double, R>::randn(global);
    const Generator start = started(1000 + std::uint64_t(W * 10 + axis), 7);

    Generator whole = start;
    const auto f = dropout_forward(x, p, whole, axis);
    Generator whole_rec = start;
    const auto y_rec = dropout(x, p, true, whole_rec, axis);

    std::vector<Tensor<double, R>> ys, ys_rec;
    for (index_t r = 0; r < W; ++r) {
        INFO("shape " << global << ", sample axis " << axis << ", replica " << r << " of " << W);
        const auto xr = x.narrow(axis, r * b, b).contiguous();
        Generator g = start, g_rec = start;
        DropoutForward<double, R> fr;
        Tensor<double, R> yr;
        {
            ReplicaScope slice(g, std::uint64_t(r), std::uint64_t(W));
            ReplicaScope slice_rec(g_rec, std::uint64_t(r), std::uint64_t(W));
            fr = dropout_forward(xr, p, g, axis);
            yr = dropout(xr, p, true, g_rec, axis);
        }
        CHECK(flat(fr.mask) == flat(f.mask.narrow(axis, r * b, b)));
        CHECK(g.offset == whole.offset);
        CHECK(g_rec.offset == whole.offset);
        CHECK(g.replica == 0);  // the scope put the whole batch back
        CHECK(g.replicas == 1);
        ys.push_back(fr.y);
        ys_rec.push_back(yr);
    }
    INFO("shape " << global << ", sample axis " << axis << ", " << W << " replicas");
    CHECK(flat(cat(ys, axis)) == flat(f.y));
    CHECK(flat(cat(ys_rec, axis)) == flat(y_rec));
    // Not vacuous: a mask of 20 or more elements has both decisions (for these seeds).
    const auto m = flat(f.mask);
    index_t kept = 0;
    for (bool k : m) kept += k ? 1 : 0;
    if (m.size() >= 20) {
        CHECK(kept > 0);
        CHECK(kept < index_t(m.size()));
    }
}

}  // namespace

TEST_CASE("ReplicaScope sets a generator's slice, checks it, and restores the one before") {
    Generator g(3);
    CHECK(g.replica == 0);
    CHECK(g.replicas == 1);
    {
        ReplicaScope outer(g, 1, 4);
        CHECK(g.replica == 1);
        CHECK(g.replicas == 4);
        {
            ReplicaScope inner(g, 0, 2);
            CHECK(g.replica == 0);
            CHECK(g.replicas == 2);
        }
        CHECK(g.replica == 1);
        CHECK(g.replicas == 4);
        CHECK_THROWS_WITH(ReplicaScope(g, 4, 4), Catch::Contains("replica 4 of 4"));
        CHECK_THROWS_WITH(ReplicaScope(g, 0, 0), Catch::Contains("out of range"));
        CHECK(g.replicas == 4);  // a refused scope changes nothing
    }
    CHECK(g.replica == 0);
    CHECK(g.replicas == 1);
}

TEST_CASE("rand and randn ignore the replica slice; manual_seed keeps it") {
    Generator plain(11), sliced(11);
    const auto a = Tensor<float, 2>::rand({5, 7}, plain);
    const auto c = Tensor<float, 2>::randn({5, 7}, plain);
    Tensor<float, 2> b, d;
    {
        ReplicaScope slice(sliced, 2, 3);
        b = Tensor<float, 2>::rand({5, 7}, sliced);
        d = Tensor<float, 2>::randn({5, 7}, sliced);
    }
    CHECK(flat(a) == flat(b));
    CHECK(flat(c) == flat(d));
    CHECK(plain.offset == sliced.offset);

    const Generator saved = default_generator();
    {
        ReplicaScope slice(default_generator(), 1, 2);
        manual_seed(5);
        CHECK(default_generator().seed == 5);
        CHECK(default_generator().offset == 0);
        CHECK(default_generator().replica == 1);
        CHECK(default_generator().replicas == 2);
    }
    default_generator() = saved;
}

TEST_CASE("one replica draws the masks and offsets of the plain generator") {
    const auto x = Tensor<float, 3>::randn({5, 3, 7});
    Generator plain = started(4, 3), one = started(4, 3);
    const auto f = dropout_forward(x, 0.3, plain);
    DropoutForward<float, 3> g;
    {
        ReplicaScope slice(one, 0, 1);
        g = dropout_forward(x, 0.3, one, 1);  // the axis changes nothing with one replica
    }
    CHECK(flat(f.mask) == flat(g.mask));
    CHECK(plain.offset == one.offset);
    // And the mask is the stream's uniform floats below 1 - p, as before slices existed.
    Generator twin = started(4, 3);
    const auto u = flat(Tensor<float, 3>::rand(x.shape(), twin));
    const auto m = flat(f.mask);
    bool same = true;
    for (std::size_t i = 0; i < m.size(); ++i) same = same && m[i] == (double(u[i]) < 0.7);
    CHECK(same);
    CHECK(twin.offset == plain.offset);
}

TEST_CASE("dropout on replica slices concatenates to the whole batch's dropout") {
    const double p = 0.4;
    for (index_t W : {1, 2, 3, 4}) {
        for (index_t b : {1, 3, 5}) {  // b·inner often not a multiple of 4: runs straddle blocks
            check_dropout<1>(Shape<1>{b}, 0, W, p);
            check_dropout<2>(Shape<2>{b, 5}, 0, W, p);
            check_dropout<2>(Shape<2>{3, b}, 1, W, p);
            check_dropout<3>(Shape<3>{b, 3, 5}, 0, W, p);
            check_dropout<3>(Shape<3>{7, b, 3}, 1, W, p);
            check_dropout<4>(Shape<4>{b, 2, 3, 5}, 0, W, p);
            check_dropout<4>(Shape<4>{2, b, 3, 3}, 1, W, p);
        }
    }
}

TEST_CASE("a replica's dropout differs from a plain draw on its slice, and its gradient is its slice's") {
    // Without the slice, replica 1 would draw the first numbers of the stream: not the global mask.
    const index_t W = 3, b = 4;
    const auto x = Tensor<double, 3>::rand({6, W * b, 5});
    Generator whole(8);
    const auto f = dropout_forward(x, 0.5, whole, 1);
    const auto x1 = x.narrow(1, b, b).contiguous();
    Generator unsliced(8);
    const auto plain = dropout_forward(x1, 0.5, unsliced, 1);
    CHECK(flat(plain.mask) != flat(f.mask.narrow(1, b, b)));
    CHECK(unsliced.offset != whole.offset);

    // The backward of the recorded op applies the replica's own mask.
    auto xg = eval(x1 + 1.0).requires_grad_();
    Generator g(8);
    Tensor<double, 3> y;
    {
        ReplicaScope slice(g, 1, std::uint64_t(W));
        y = dropout(xg, 0.5, true, g, 1);
    }
    y.backward(Tensor<double, 3>::ones(y.shape()));
    const auto mask = flat(f.mask.narrow(1, b, b));
    const auto gx = flat(xg.grad());
    bool same = true;
    for (std::size_t i = 0; i < mask.size(); ++i) same = same && gx[i] == (mask[i] ? 2.0 : 0.0);
    CHECK(same);

    CHECK_THROWS_WITH(dropout(x, 0.5, true, g, 3), Catch::Contains("sample_axis 3"));
}

TEST_CASE("drop_path on replica slices takes the whole batch's per-sample decisions") {
    const double p = 0.5;
    for (index_t W : {1, 2, 3, 4}) {
        for (index_t b : {1, 3, 6}) {
            for (int axis : {0, 1}) {
                const Shape<3> global = axis == 0 ? Shape<3>{W * b, 3, 4} : Shape<3>{5, W * b, 3};
                INFO("shape " << global << ", sample axis " << axis << ", " << W << " replicas");
                const auto x = Tensor<double, 3>::randn(global);
                const Generator start = started(31 + std::uint64_t(W), 2);
                Generator whole = start;
                const auto f = drop_path_forward(x, p, whole, axis);
                Generator whole_rec = start;
                const auto y_rec = drop_path(x, p, true, whole_rec, axis);
                std::vector<Tensor<double, 3>> ys, ys_rec;
                std::vector<bool> keeps;
                for (index_t r = 0; r < W; ++r) {
                    const auto xr = x.narrow(axis, r * b, b).contiguous();
                    Generator g = start, g_rec = start;
                    ReplicaScope slice(g, std::uint64_t(r), std::uint64_t(W));
                    ReplicaScope slice_rec(g_rec, std::uint64_t(r), std::uint64_t(W));
                    const auto fr = drop_path_forward(xr, p, g, axis);
                    ys.push_back(fr.y);
                    ys_rec.push_back(drop_path(xr, p, true, g_rec, axis));
                    for (bool k : flat(fr.keep)) keeps.push_back(k);
                    CHECK(g.offset == whole.offset);
                    CHECK(g_rec.offset == whole.offset);
                }
                CHECK(keeps == flat(f.keep));
                CHECK(flat(cat(ys, axis)) == flat(f.y));
                CHECK(flat(cat(ys_rec, axis)) == flat(y_rec));
            }
        }
    }
    // Decisions per token position shared by the batch (DenseCLIP's ViT: x [N, L, C], sample
    // axis 1, batch axis 0): every replica draws the whole batch's L decisions.
    for (index_t W : {2, 3}) {
        INFO(W << " replicas, decisions per token position");
        const index_t b = 2, L = 7;
        const auto x = Tensor<double, 3>::randn({W * b, L, 3});
        const Generator start = started(90, 1);
        Generator whole = start;
        const auto f = drop_path_forward(x, p, whole, 1, 0);
        std::vector<Tensor<double, 3>> ys;
        for (index_t r = 0; r < W; ++r) {
            Generator g = start;
            ReplicaScope slice(g, std::uint64_t(r), std::uint64_t(W));
            const auto fr = drop_path_forward(x.narrow(0, r * b, b).contiguous(), p, g, 1, 0);
            CHECK(flat(fr.keep) == flat(f.keep));
            CHECK(g.offset == whole.offset);
            ys.push_back(fr.y);
        }
        CHECK(flat(cat(ys, 0)) == flat(f.y));
    }
    Generator unused(1);
    CHECK_THROWS_WITH(drop_path(Tensor<double, 2>::ones({2, 3}), p, true, unused, 1, 2),
                      Catch::Contains("batch_axis 2"));

    // Not vacuous: over many samples both decisions occur.
    Generator g(40);
    const auto keep = flat(drop_path_forward(Tensor<double, 2>::ones({64, 2}), p, g).keep);
    index_t kept = 0;
    for (bool k : keep) kept += k ? 1 : 0;
    CHECK(kept > 0);
    CHECK(kept < 64);
}

TEST_CASE("dropout2d on replica slices drops the whole batch's channel maps") {
    const index_t C = 3, H = 2, Wd = 3;  // b·C not a multiple of 4
    for (index_t W : {1, 2, 3, 4}) {
        for (index_t b : {1, 3}) {
            INFO(W << " replicas of " << b << " samples");
            const auto x = Tensor<double, 4>::randn({W * b, C, H, Wd});
            const Generator start = started(50 + std::uint64_t(W), 5);
            Generator whole = start;
            const auto y = seg::dropout2d(x, 0.5, true, whole);
            std::vector<Tensor<double, 4>> ys;
            for (index_t r = 0; r < W; ++r) {
                Generator g = start;
                ReplicaScope slice(g, std::uint64_t(r), std::uint64_t(W));
                ys.push_back(seg::dropout2d(x.narrow(0, r * b, b).contiguous(), 0.5, true, g));
                CHECK(g.offset == whole.offset);
            }
            CHECK(flat(cat(ys, 0)) == flat(y));
        }
    }
}

TEST_CASE("attention dropout on replica slices gives the rows and gradients of the whole batch") {
    const index_t H = 2, L = 3, S = 5, E = 4, Ev = 3;  // S: rows of ceil(5/4) = 2 blocks
    for (index_t W : {1, 2, 3, 4}) {
        const index_t b = W == 4 ? 3 : 2;
        INFO(W << " replicas of " << b << " samples");
        const auto q = Tensor<double, 4>::randn({W * b, H, L, E});
        const auto k = Tensor<double, 4>::randn({W * b, H, S, E});
        const auto v = Tensor<double, 4>::randn({W * b, H, S, Ev});
        const auto G = Tensor<double, 4>::randn({W * b, H, L, Ev});  // weights of the loss sum(G * out)
        const Generator start = started(60 + std::uint64_t(W), 9);

        Generator whole = start;
        AttentionOptions<double> o;
        o.dropout = 0.3;
        o.gen = &whole;
        auto qa = q.detach().requires_grad_(), ka = k.detach().requires_grad_(), va = v.detach().requires_grad_();
        const auto out = scaled_dot_product_attention(qa, ka, va, o);
        eval(sum(out * G)).backward();

        for (index_t r = 0; r < W; ++r) {
            Generator g = start;
            AttentionOptions<double> orr;
            orr.dropout = 0.3;
            orr.gen = &g;
            auto slice_of = [&](const Tensor<double, 4>& t) { return t.narrow(0, r * b, b).contiguous(); };
            auto qr = slice_of(q).requires_grad_(), kr = slice_of(k).requires_grad_(),
                 vr = slice_of(v).requires_grad_();
            Tensor<double, 4> o_r;
            {
                ReplicaScope slice(g, std::uint64_t(r), std::uint64_t(W));
                o_r = scaled_dot_product_attention(qr, kr, vr, orr);
            }
            CHECK(g.offset == whole.offset);
            CHECK(flat(o_r) == flat(slice_of(out)));
            // The backward replays the replica's part of the mask.
            eval(sum(o_r * slice_of(G))).backward();
            CHECK(flat(qr.grad()) == flat(slice_of(qa.grad())));
            CHECK(flat(kr.grad()) == flat(slice_of(ka.grad())));
            CHECK(flat(vr.grad()) == flat(slice_of(va.grad())));
        }
    }
}

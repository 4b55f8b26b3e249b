// weft/dist/all_gather.hpp: the ranks' tensors joined along axis 0, differentiable.
//
//   auto img = dist::all_gather(model.encode_image(images), comm);   // [n, E] -> [world·n, E]
//   auto txt = dist::all_gather(model.encode_text(tokens), comm);
//   auto l = loss::clip_contrastive(img, txt, model.logit_scale);     // the global batch's loss
//   l.backward();                                                     // on every rank (a collective)
//   dp.synchronize();                                                 // DataParallel: mean over ranks
//
// Forward: rank r's `local` lands in rows [r·n, r·n + n) of the result (rank order). Backward
// (torch.distributed.nn.all_gather's semantics): the gradient of the gathered tensor is summed
// over the ranks and `local` receives its own rows of that sum. Why that makes data-parallel
// contrastive training equal one process on the global batch: every rank computes the same
// global loss L; the rows of rank r depend only on rank r's shard, so its shard gets the sum over
// the `world` identical losses of dL/d(its rows) = world · (its share of dL/dθ); DataParallel's
// mean over ranks divides by world and sums the shares, which is dL/dθ of one process. A
// parameter used after the gather (logit_scale) gets the full dL/dθ on every rank; the mean
// leaves it unchanged.
//
// Every rank must pass a tensor of the same shape (checked with one small all_gather of the
// shapes, so a mismatch is the same clear error on every rank instead of a hang), and every rank
// must run the backward through the gathered tensor: its all-reduce is a collective. `comm` must
// outlive that backward. On a world of one it is the identity and passes the gradient through.
#pragma once

#include <cstdint>
#include <sstream>
#include <vector>

#include "../autograd/tape.hpp"
#include "../core/tensor.hpp"
#include "communicator.hpp"

namespace weft::dist {

namespace detail {

// Every rank's shape, gathered: the same answer (and so the same error) on every rank.
template <Element T, int R, Device D>
void check_same_shape_on_every_rank(const Tensor<T, R, D>& local, Communicator& comm) {
    std::vector<std::int64_t> mine(R);
    for (int d = 0; d < R; ++d) mine[std::size_t(d)] = local.size(d);
    const auto send = Tensor<std::int64_t, 1, D>::from_vector(mine, Shape<1>{index_t(R)});
    auto recv = Tensor<std::int64_t, 1, D>::empty(Shape<1>{index_t(R) * comm.size()});
    comm.all_gather(send, recv);
    const auto all = recv.template to<Cpu>();
    bool same = true;
    for (int r = 0; r < comm.size(); ++r)
        for (int d = 0; d < R; ++d) same = same && all.data()[r * R + d] == mine[std::size_t(d)];
    if (same) return;
    std::ostringstream shapes;
    for (int r = 0; r < comm.size(); ++r) {
        shapes << (r ? ", " : "") << "rank " << r << " [";
        for (int d = 0; d < R; ++d) shapes << (d ? ", " : "") << all.data()[r * R + d];
        shapes << "]";
    }
    WEFT_FAIL("dist::all_gather: every rank must pass a tensor of the same shape (equal batch slices); got ",
              shapes.str());
}

}  // namespace detail

// local [n, ...] on every rank -> [world·n, ...], rank r's rows at [r·n, r·n + n).
template <Element T, int R, Device D>
Tensor<T, R, D> all_gather(const Tensor<T, R, D>& local, Communicator& comm) {
    static_assert(R >= 1, "weft: dist::all_gather joins along axis 0; pass a tensor of rank 1 or more");
    WEFT_CHECK(local.defined(), "dist::all_gather: the local tensor is undefined");
    detail::check_same_shape_on_every_rank(local, comm);
    const index_t n = local.size(0);
    Shape<R> shape = local.shape();
    shape[0] = n * comm.size();
    auto out = Tensor<T, R, D>::empty(shape);  // [world·n, ...]
    comm.all_gather(local.detach().contiguous(), out);
    if (needs_grad(local))
        record(
            out, "all_gather",
            [local, comm = &comm, n](const Tensor<T, R, D>& g) {
                // g may share its buffer with another node's gradient: reduce a copy.
                auto total = g.detach().clone();  // [world·n, ...], summed over the ranks below
                comm->all_reduce(total, ReduceOp::sum);
                const index_t begin = n * comm->rank();
                accumulate_grad(local, total.slice(0, begin, begin + n));  // [n, ...]
            },
            local);
    return out;
}

}  // namespace weft::dist

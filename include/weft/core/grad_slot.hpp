// weft/core/grad_slot.hpp: the one thing core knows about autograd.
//
// A tensor that takes part in differentiation carries a `GradSlot`: its place on the autograd
// tape (autograd/tape.hpp defines the only implementation). Core never looks inside; it asks two
// questions and makes one request:
//   requires_grad()     does gradient flow into this tensor?
//   recording()         ...and is grad mode on, so that new results must be recorded?
//   view(from, to)      the slot of a view (or copy) `to` made from this tensor's layout `from`
//
// Views are core's business (slice, permute, reshape, expand...), so their gradients are too:
// every view and copy calls view() and the tape records how elements moved. Layouts carry
// their rank at run time, which lets one virtual function serve every rank.
#pragma once

#include <memory>

#include "config.hpp"

namespace weft {

// Shape, strides and offset of a strided view, with the rank as a run-time value.
struct StridedLayout {
    int rank = 0;
    index_t shape[8] = {};
    index_t strides[8] = {};
    index_t offset = 0;

    index_t numel() const {
        index_t n = 1;
        for (int d = 0; d < rank; ++d) n *= shape[d];
        return n;
    }
};

class GradSlot : public std::enable_shared_from_this<GradSlot> {
public:
    virtual ~GradSlot() = default;
    virtual bool requires_grad() const = 0;
    virtual bool recording() const = 0;
    // The slot of the tensor whose element i sits where `to` places it, when this slot's tensor
    // sits where `from` places it (both in one address space: the same storage, or for a copy
    // two identical dense layouts). Null when nothing is recorded (grad mode off).
    virtual std::shared_ptr<GradSlot> view(const StridedLayout& from, const StridedLayout& to) = 0;
};

}  // namespace weft

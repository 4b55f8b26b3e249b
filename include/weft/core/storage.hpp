// weft/core/storage.hpp: a reference-counted block of device memory.
//
// Tensors are views into a Storage; copying a Tensor copies the reference, not the bytes. A
// Storage may also borrow memory it does not own (an Eigen matrix, an mmap'ed checkpoint): then
// an optional `owner` keeps the lender alive, and otherwise the caller does.
#pragma once

#include <cstddef>
#include <memory>

#include "backend.hpp"
#include "device.hpp"

namespace weft {

template <Device D>
class Storage {
public:
    Storage() = default;

    static Storage allocate(std::size_t bytes) {
        Storage s;
        void* p = Backend<D>::allocate(bytes);
        s.ptr_ = std::shared_ptr<void>(p, [bytes](void* q) { Backend<D>::deallocate(q, bytes); });
        s.bytes_ = bytes;
        return s;
    }

    static Storage borrow(void* data, std::size_t bytes, std::shared_ptr<void> owner = {}) {
        Storage s;
        s.ptr_ = owner ? std::shared_ptr<void>(std::move(owner), data)  // aliasing: keeps owner alive
                       : std::shared_ptr<void>(data, [](void*) {});
        s.bytes_ = bytes;
        return s;
    }

    void* data() const { return ptr_.get(); }
    std::size_t bytes() const { return bytes_; }
    bool defined() const { return ptr_.use_count() > 0; }  // zero-byte storage is still defined
    long use_count() const { return ptr_.use_count(); }

    friend bool same_storage(const Storage& a, const Storage& b) {
        return a.ptr_ && a.ptr_.get() == b.ptr_.get();
    }

private:
    std::shared_ptr<void> ptr_;
    std::size_t bytes_ = 0;
};

}  // namespace weft

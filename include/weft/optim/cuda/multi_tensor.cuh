// weft/optim/cuda/multi_tensor.cuh: one kernel launch over many tensors (the optimizers' step).
//
//   std::vector<Entry> tensors = ...;                         // one per parameter: pointers, sizes, scalars
//   cuda::MultiTensorTable<Entry> table(tensors, numels);      // uploads the table: one copy
//   kernel<<<table.blocks(), ...>>>(table.tensors(), table.chunks(), ...);
//
// A model has hundreds of parameters, many of them small (biases, norms); one launch each costs
// more in launch overhead than the update itself. Instead every tensor is cut into chunks of
// `chunk_elems` elements, and a table lists each tensor's entry (what its kernel needs) and, for
// each chunk, which tensor and which chunk it is. Block b of the launch updates chunk b. The table
// goes to the device in one cudaMemcpyAsync, and one launch covers the step (several only past
// 2^31 - 1 chunks, CUDA's grid limit).
//
// Why pinned memory for the table. From pageable memory, the driver first stages the bytes in a
// pinned buffer of its own and "may synchronize with the stream" to do so (CUDA's API
// synchronization notes): the host could wait for the whole backward pass queued before the
// step, which is the stall a training step must not have. From pinned memory the copy is truly
// asynchronous, but the host must not rewrite the buffer until the copy has read it. So each host
// thread keeps, per device, two pinned buffers used in turn, each with an event recorded after its
// copy; a buffer is rewritten only after its event, i.e. after the copy of two steps ago has run,
// which in practice has long happened (the host waits only when it runs two whole steps ahead of
// the GPU). The buffers grow (cudaHostAlloc, rounded up to 64 KiB) when a table is larger than
// before, which happens in the first step; they are never freed, like cuBLAS handles
// (ops/cuda/gemm.cuh): the driver reclaims them with the process.
//
// The device copy of the table comes from Backend<Cuda>::allocate (the caching allocator) and
// is given back as soon as the launches are issued: a block freed on a stream is reused only
// by work on that stream, which runs after these launches.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/optim/cuda/multi_tensor.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "../../core/config.hpp"
#include "../../core/cuda/backend.cuh"
#include "../../core/cuda/check.cuh"
#include "../../core/error.hpp"
#include "../../exec/cuda/stream.cuh"

namespace weft::cuda {

// Elements per chunk (one block of 256 threads: 64 elements each). Small enough that a model of
// a few million parameters still fills an H200's 132 SMs, large enough that the per-block cost
// of reading its task and entry is negligible.
inline constexpr index_t multi_tensor_chunk_elems = index_t(1) << 14;

// Block b's work: chunk `chunk` (elements [chunk * chunk_elems, ...)) of tensor `tensor`.
struct ChunkTask {
    std::uint32_t tensor;
    std::uint32_t chunk;
};

namespace detail {

// Two pinned host buffers used in turn, each guarded by the event recorded after its last copy.
class TableStaging {
public:
    struct Buffer {
        void* host = nullptr;
        std::size_t capacity = 0;
        cudaEvent_t copied = nullptr;
        bool pending = false;  // `copied` was recorded and may not have been reached yet
    };

    // A buffer of at least `bytes` that no queued copy still reads.
    Buffer& acquire(std::size_t bytes) {
        Buffer& b = buffers_[next_];
        next_ = 1 - next_;
        if (b.pending) {
            WEFT_CUDA_CHECK(cudaEventSynchronize(b.copied));
            b.pending = false;
        }
        if (!b.copied) WEFT_CUDA_CHECK(cudaEventCreateWithFlags(&b.copied, cudaEventDisableTiming));
        if (b.capacity < bytes) {
            constexpr std::size_t round = std::size_t(64) << 10;
            const std::size_t want = std::max(bytes, 2 * b.capacity);
            const std::size_t cap = (want + round - 1) / round * round;
            if (b.host) WEFT_CUDA_CHECK(cudaFreeHost(b.host));  // its last copy has run (above)
            b.host = nullptr;
            b.capacity = 0;
            WEFT_CUDA_CHECK(cudaHostAlloc(&b.host, cap, cudaHostAllocPortable));
            b.capacity = cap;
        }
        return b;
    }

    // After the copy out of `b` was issued to `stream`.
    static void mark_copied(Buffer& b, cudaStream_t stream) {
        WEFT_CUDA_CHECK(cudaEventRecord(b.copied, stream));
        b.pending = true;
    }

private:
    Buffer buffers_[2];
    int next_ = 0;
};

// This host thread's staging for the current device (events belong to a device). Never
// destroyed: see the top.
inline TableStaging& table_staging() {
    thread_local auto* per_device = new std::unordered_map<int, TableStaging>();
    return (*per_device)[current_device()];
}

}  // namespace detail

// The table of one multi-tensor launch, on the device: `Entry` per tensor (trivially copyable,
// e.g. pointers, element count, per-tensor scalars) and one ChunkTask per chunk. Tensors of 0
// elements get an entry but no chunk. Freed (stream-ordered) by the destructor: issue the
// launches that read it before it goes.
template <class Entry>
class MultiTensorTable {
    static_assert(std::is_trivially_copyable_v<Entry>, "weft: internal: multi-tensor entries are copied as bytes");

public:
    // numels[k]: the elements of tensor k (what its chunks cover).
    MultiTensorTable(const std::vector<Entry>& entries, const std::vector<index_t>& numels,
                     index_t chunk_elems = multi_tensor_chunk_elems) {
        WEFT_CHECK(entries.size() == numels.size(), "multi-tensor table: ", entries.size(), " entries for ",
                   numels.size(), " sizes");
        WEFT_CHECK(entries.size() <= std::numeric_limits<std::uint32_t>::max(), "multi-tensor table: ",
                   entries.size(), " tensors");
        std::vector<ChunkTask> tasks;
        for (std::size_t k = 0; k < numels.size(); ++k) {
            const index_t chunks = (numels[k] + chunk_elems - 1) / chunk_elems;
            WEFT_CHECK(chunks <= index_t(std::numeric_limits<std::uint32_t>::max()), "multi-tensor table: a tensor of ",
                       numels[k], " elements has too many chunks");
            for (index_t c = 0; c < chunks; ++c) tasks.push_back({std::uint32_t(k), std::uint32_t(c)});
        }
        blocks_ = index_t(tasks.size());
        if (blocks_ == 0) return;

        const std::size_t entry_bytes = entries.size() * sizeof(Entry);
        tasks_at_ = (entry_bytes + 15) / 16 * 16;
        bytes_ = tasks_at_ + tasks.size() * sizeof(ChunkTask);
        detail::TableStaging::Buffer& host = detail::table_staging().acquire(bytes_);
        std::memcpy(host.host, entries.data(), entry_bytes);
        std::memcpy(static_cast<char*>(host.host) + tasks_at_, tasks.data(), tasks.size() * sizeof(ChunkTask));
        device_ = Backend<Cuda>::allocate(bytes_);
        const cudaStream_t stream = current_stream();
        const cudaError_t err = cudaMemcpyAsync(device_, host.host, bytes_, cudaMemcpyHostToDevice, stream);
        if (err != cudaSuccess) {
            Backend<Cuda>::deallocate(device_, bytes_);
            WEFT_CUDA_CHECK(err);
        }
        detail::TableStaging::mark_copied(host, stream);
    }

    MultiTensorTable(const MultiTensorTable&) = delete;
    MultiTensorTable& operator=(const MultiTensorTable&) = delete;
    ~MultiTensorTable() {
        if (device_) Backend<Cuda>::deallocate(device_, bytes_);
    }

    // The number of chunks: blocks of the launch(es).
    index_t blocks() const { return blocks_; }
    const Entry* tensors() const { return static_cast<const Entry*>(device_); }
    const ChunkTask* chunks() const {
        return reinterpret_cast<const ChunkTask*>(static_cast<const char*>(device_) + tasks_at_);
    }

    // Calls launch(grid, first_task) for each launch the chunks need (one below 2^31 chunks).
    template <class F>
    void for_each_launch(F&& launch) const {
        constexpr index_t max_grid = std::numeric_limits<std::int32_t>::max();
        for (index_t first = 0; first < blocks_; first += max_grid)
            launch(unsigned(std::min(max_grid, blocks_ - first)), chunks() + first);
    }

private:
    void* device_ = nullptr;
    std::size_t bytes_ = 0;
    std::size_t tasks_at_ = 0;
    index_t blocks_ = 0;
};

}  // namespace weft::cuda

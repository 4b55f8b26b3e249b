// weft/exec/cuda/stream.cuh: the stream weft's CUDA work goes to, and the device it runs on.
//
//   weft::cuda::synchronize();                  // wait for weft's queued work on this thread's stream
//   {
//       weft::cuda::StreamGuard g(my_stream);   // this thread's weft work now goes to my_stream
//       y = a * b + c;
//   }                                           // back to the previous stream
//
// Every kernel and copy weft issues goes to `current_stream()`, a per-host-thread setting whose
// default is the *legacy* default stream (`cudaStreamLegacy`, whatever `--default-stream` nvcc was
// given): it is shared by all host threads and synchronizes with every blocking stream, so weft
// work is ordered with the default-stream work of other libraries and of other host threads. Work
// on one stream runs in issue order; this is what lets the caching allocator hand a freed block
// to the next tensor on the same stream at once (see core/cuda/caching_allocator.cuh).
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <atomic>

#include "../../core/cuda/check.cuh"

namespace weft::cuda {

namespace detail {

inline cudaStream_t& current_stream_slot() {
    thread_local cudaStream_t stream = cudaStreamLegacy;
    return stream;
}

}  // namespace detail

// The stream this host thread's weft work is issued to.
inline cudaStream_t current_stream() { return detail::current_stream_slot(); }

// Makes `stream` this thread's current stream (cudaStreamLegacy restores the default). The caller
// keeps the stream alive while weft uses it, and synchronizes it before destroying it.
inline void set_current_stream(cudaStream_t stream) { detail::current_stream_slot() = stream; }

// Sets the current stream for a scope, restoring the previous one at its end.
class StreamGuard {
public:
    explicit StreamGuard(cudaStream_t stream) : previous_(current_stream()) { set_current_stream(stream); }
    ~StreamGuard() { set_current_stream(previous_); }
    StreamGuard(const StreamGuard&) = delete;
    StreamGuard& operator=(const StreamGuard&) = delete;

private:
    cudaStream_t previous_;
};

// Waits until everything issued to the current stream has finished (and reports its errors).
inline void synchronize() { WEFT_CUDA_CHECK(cudaStreamSynchronize(current_stream())); }

// Waits for all work on the current device, on every stream.
inline void device_synchronize() { WEFT_CUDA_CHECK(cudaDeviceSynchronize()); }

inline int device_count() {
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {  // no driver or no device: report zero, as torch.cuda.device_count()
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

inline bool is_available() { return device_count() > 0; }

inline int current_device() {
    int d = 0;
    WEFT_CUDA_CHECK(cudaGetDevice(&d));
    return d;
}

inline void set_device(int device) { WEFT_CUDA_CHECK(cudaSetDevice(device)); }

// The number of streaming multiprocessors of the current device, cached (launch sizing).
inline int multiprocessor_count() {
    constexpr int max_devices = 64;
    static std::array<std::atomic<int>, max_devices> cache{};  // 0: not asked yet
    const int d = current_device();
    if (d >= max_devices) {
        int n = 0;
        WEFT_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, d));
        return n;
    }
    int n = cache[d].load(std::memory_order_relaxed);
    if (n == 0) {
        WEFT_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, d));
        cache[d].store(n, std::memory_order_relaxed);
    }
    return n;
}

}  // namespace weft::cuda

// weft/core/cuda/check.cuh: turning CUDA error codes into weft::Error.
//
//   WEFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDefault, stream));
//   kernel<<<grid, block, 0, stream>>>(...);
//   WEFT_CUDA_CHECK_LAUNCH();
//
// A failing call throws weft::Error naming the error, its description, the call's text and the
// source position. Before throwing, the runtime's "last error" is read and reset, so a recoverable
// failure (an out-of-memory cudaMalloc, an invalid argument) does not resurface later as the
// error of an unrelated kernel launch. Sticky errors (an illegal address inside a kernel) leave
// the CUDA context unusable; every later call then fails too, and says so.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/core/cuda/check.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <cuda_runtime.h>

#include <sstream>

#include "../error.hpp"

namespace weft::cuda::detail {

[[noreturn]] inline void cuda_fail(cudaError_t err, const char* call, const char* file, int line) {
    (void)cudaGetLastError();  // reset the non-sticky error state: it has been reported here
    std::ostringstream os;
    os << "weft: CUDA error " << cudaGetErrorName(err) << " (" << cudaGetErrorString(err) << ") in `" << call
       << "` [" << file << ":" << line << "]";
    throw Error(os.str());
}

}  // namespace weft::cuda::detail

#define WEFT_CUDA_CHECK(call)                                                           \
    do {                                                                                \
        const cudaError_t weft_cuda_err_ = (call);                                      \
        if (weft_cuda_err_ != cudaSuccess) [[unlikely]]                                 \
            ::weft::cuda::detail::cuda_fail(weft_cuda_err_, #call, __FILE__, __LINE__); \
    } while (0)

// After every kernel launch: reports a bad launch configuration (too many threads, too much
// shared memory, parameters too large) and any earlier asynchronous error.
#define WEFT_CUDA_CHECK_LAUNCH() WEFT_CUDA_CHECK(cudaGetLastError())

// weft/ops/cuda/embedding.cuh: embedding on the GPU, forward (rows of the table gathered) and
// backward (gradient rows added back into a dense [V, E] table gradient).
//
//   cuda::embedding_forward(out.data(), weight.data(), rows, dim, ids.data(), ids.numel());
//   cuda::embedding_backward(grad_w.data(), g.data(), rows, dim, ids.data(), ids.numel());
//
// Both are the [1, V, E] case of the row kernels in ops/cuda/index_rows.cuh. The backward is
// deterministic (a stable sort groups the positions by row, each row is summed in position
// order, as on the CPU), so the table's gradient has the same bits on every run and, in float,
// the CPU's bits. Any element type; bf16 and half sum in float.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/ops/cuda/embedding.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <cstdint>

#include "index_rows.cuh"

namespace weft::cuda {

// out [n, dim] = rows idx[j] of the dense table [rows, dim].
template <class T>
void embedding_forward(T* out, const T* table, index_t rows, index_t dim, const std::int64_t* idx, index_t n) {
    index_rows_forward(out, table, 1, rows, dim, idx, n);
}

// grad_table [rows, dim] = sum over j with idx[j] == r of grad_out[j, :], zero for unused rows.
template <class T>
void embedding_backward(T* grad_table, const T* grad_out, index_t rows, index_t dim, const std::int64_t* idx,
                        index_t n) {
    index_rows_backward(grad_table, grad_out, 1, rows, dim, idx, n);
}

}  // namespace weft::cuda

// EXPECT-ERROR: matmul, bmm and linear on Cuda tensors need a translation unit compiled by nvcc
// The CUDA GEMM (cuBLAS) lives in nvcc's translation units: in a host build, a product of Cuda
// tensors fails to compile, saying how to build it.
#include <weft/ops/matmul.hpp>

int main() {
    weft::Tensor<float, 2, weft::Cuda> a, b;
    auto c = weft::matmul(a, b);
    (void)c;
}

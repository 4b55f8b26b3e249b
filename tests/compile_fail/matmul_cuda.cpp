// EXPECT-ERROR: matmul, bmm and linear on Cuda tensors are not implemented yet
// The CUDA GEMM (cuBLAS) does not exist yet: a product of Cuda tensors fails to compile, loudly.
#include <weft/ops/matmul.hpp>

int main() {
    weft::Tensor<float, 2, weft::Cuda> a, b;
    auto c = weft::matmul(a, b);
    (void)c;
}

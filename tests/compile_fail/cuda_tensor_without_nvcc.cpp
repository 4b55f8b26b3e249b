// EXPECT-ERROR: need CUDA.*nvcc
// Creating a CUDA tensor in a translation unit not compiled by nvcc fails loudly at compile time.
#include <weft/weft.hpp>

int main() {
    auto a = weft::Tensor<float, 1, weft::Cuda>::zeros({3});
    (void)a;
}

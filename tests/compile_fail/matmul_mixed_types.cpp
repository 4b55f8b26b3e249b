// EXPECT-ERROR: matmul multiplies two tensors of the same element type and device
// float times double (or a rank matmul does not take) names the rule instead of listing overloads.
#include <weft/ops/matmul.hpp>

int main() {
    auto a = weft::Tensor<float, 2>::zeros({2, 3});
    auto b = weft::Tensor<double, 2>::zeros({3, 4});
    weft::matmul(a, b);
}

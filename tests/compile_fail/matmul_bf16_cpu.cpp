// EXPECT-ERROR: bf16 and half are not supported on the CPU yet
// matmul on bf16 (or half) CPU tensors fails at compile time and says what to do instead.
#include <weft/ops/matmul.hpp>

int main() {
    auto a = weft::Tensor<weft::bf16, 2>::zeros({2, 3});
    auto b = weft::Tensor<weft::bf16, 2>::zeros({3, 4});
    auto c = weft::matmul(a, b);
    (void)c;
}

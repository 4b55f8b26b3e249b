// EXPECT-ERROR: operands live on different devices
// Adding a CPU tensor to a CUDA tensor must not compile, and the message says how to fix it.
#include <weft/weft.hpp>

int main() {
    weft::Tensor<float, 1, weft::Cpu> a;
    weft::Tensor<float, 1, weft::Cuda> b;
    auto c = a + b;
    (void)c;
}

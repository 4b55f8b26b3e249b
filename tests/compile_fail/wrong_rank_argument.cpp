// EXPECT-ERROR: higher rank than the tensor
// A function that takes a matrix does not accept a rank-3 tensor (the conversion names the problem).
#include <weft/weft.hpp>

float trace(const weft::Tensor<float, 2>& m) { return m(0, 0) + m(1, 1); }

int main() {
    auto a = weft::Tensor<float, 3>::zeros({2, 2, 2});
    return int(trace(a));
}

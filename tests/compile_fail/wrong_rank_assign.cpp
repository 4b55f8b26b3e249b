// EXPECT-ERROR: higher rank than the tensor
// A rank-3 expression cannot be stored in a matrix.
#include <weft/weft.hpp>

int main() {
    auto a = weft::Tensor<float, 3>::zeros({2, 3, 4});
    auto m = weft::Tensor<float, 2>::zeros({3, 4});
    m = a + 1.0f;
}

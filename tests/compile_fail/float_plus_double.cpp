// EXPECT-ERROR: different element types.*cast<T>
// float + double tensors must not mix silently.
#include <weft/weft.hpp>

int main() {
    auto a = weft::Tensor<float, 1>::zeros({3});
    auto b = weft::Tensor<double, 1>::zeros({3});
    auto c = a + b;
    (void)c;
}

// EXPECT-ERROR: floating-point number cannot combine with an integer tensor
// An integer tensor does not silently become floating.
#include <weft/weft.hpp>

int main() {
    auto a = weft::Tensor<int, 1>::zeros({3});
    auto b = a * 0.5;
    (void)b;
}

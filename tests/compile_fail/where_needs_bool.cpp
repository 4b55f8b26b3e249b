// EXPECT-ERROR: needs a bool condition
// where() takes a bool condition, not a float mask.
#include <weft/weft.hpp>

int main() {
    auto a = weft::Tensor<float, 1>::zeros({3});
    weft::Tensor<float, 1> b = weft::where(a, a, 0.0f);
    (void)b;
}

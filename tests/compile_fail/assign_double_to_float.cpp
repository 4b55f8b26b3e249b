// EXPECT-ERROR: element type differs from the tensor's
// Storing a double expression in a float tensor needs an explicit cast.
#include <weft/weft.hpp>

int main() {
    auto a = weft::Tensor<double, 1>::zeros({3});
    weft::Tensor<float, 1> b = a * 2.0;
    (void)b;
}

// EXPECT-ERROR: t\(\) transposes a matrix \(rank 2\)
// A rank is required: t() exists for matrices only.
#include <weft/weft.hpp>

int main() {
    auto a = weft::Tensor<float, 3>::zeros({2, 3, 4});
    auto b = a.t();
    (void)b;
}

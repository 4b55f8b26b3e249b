#include <weft/weft.hpp>
#include <iostream>
int main() {
    auto a = weft::Tensor<float, 1>::arange(4);          // [0, 1, 2, 3]
    weft::Tensor<float, 1> b = a * 2.0f + 1.0f;          // one fused loop
    std::cout << b << "\n";
    return b(3) == 7.0f ? 0 : 1;
}

// tensor_basics: a first tour of weft.
//
// Tensors carry their element type, rank and device in the type; views share memory; element-
// wise math is lazy and runs as one fused loop when it is stored; reductions take any set of
// axes. The last part fits a linear model by gradient descent with hand-written gradients, so
// every line of the fit is one fused pass over the data.
#include <cstdio>
#include <iostream>
#include <weft/weft.hpp>

using namespace weft;

int main() {
    // ---- tensors and views --------------------------------------------------------------------
    auto a = Tensor<float, 2>::from({{1, 2, 3}, {4, 5, 6}});  // [2, 3]
    std::cout << "a =\n" << a << "\n\n";
    std::cout << "a.t() (a view, no copy) =\n" << a.t() << "\n\n";
    auto column = a.select(1, 2);  // [2]: the last column, still a view into a
    column = 0.0f;                 // writes through to a
    std::cout << "after zeroing the last column through a view:\n" << a << "\n\n";

    // ---- fused expressions and broadcasting ---------------------------------------------------
    auto bias = Tensor<float, 1>::from({10, 20, 30});  // [3] broadcasts over the rows of a
    Tensor<float, 2> y = relu(a * 2.0f + bias - 25.0f);  // one loop, no temporaries
    std::cout << "relu(a * 2 + bias - 25) =\n" << y << "\n\n";

    // A numerically stable softmax over the last axis: one reduction pass, then one fused pass.
    auto logits = Tensor<float, 2>::randn({2, 5});
    Tensor<float, 2> e = exp(logits - max(logits, {-1}, keepdim));  // [2, 5]
    Tensor<float, 2> p = e / sum(e, {-1}, keepdim);
    std::cout << "softmax rows sum to " << sum(p, {1}) << "\n";
    std::cout << "argmax per row: " << argmax(p, 1) << "\n\n";

    // ---- a tiny fit: y = X w + b by gradient descent --------------------------------------------
    Generator gen(7);
    const index_t n = 4096, features = 8;
    auto x = Tensor<float, 2>::randn({n, features}, gen);                   // [N, F]
    auto w_true = Tensor<float, 1>::randn({features}, gen);                  // [F]
    Tensor<float, 1> target = sum(x * w_true, {1}) + 0.5f;                   // [N], fused product + sum
    target = target + 0.01f * Tensor<float, 1>::randn({n}, gen);             // a little noise

    auto w = Tensor<float, 1>::zeros({features});
    auto b = Tensor<float, 0>::zeros({});
    const float lr = 0.1f;
    for (int step = 0; step <= 100; ++step) {
        Tensor<float, 1> residual = sum(x * w, {1}) + b - target;            // [N]
        Tensor<float, 1> grad_w = mean(x * residual.unsqueeze(1), {0});      // [F]
        Tensor<float, 0> grad_b = mean(residual);
        w = w - lr * grad_w;  // writes into w's elements
        b = b - lr * grad_b;
        if (step % 20 == 0)
            std::printf("step %3d  mse %.6f\n", step, double(mean(square(residual)).item()));
    }
    const float err = max(abs(w - w_true)).item();
    std::printf("max |w - w_true| = %.4f, b = %.4f (true 0.5)\n", double(err), double(b.item()));
    return err < 0.01f ? 0 : 1;
}

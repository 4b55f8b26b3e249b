"""Reference values for the spatial ops: conv2d and conv_transpose2d (ops/conv2d.hpp,
ops/conv_transpose2d.hpp), max/avg/adaptive-avg pooling (ops/pool.hpp) and interpolate
(ops/interpolate.hpp). For each case <name>: its inputs, the output <name>.y, the weights
<name>.r of sum(y * r), and the gradient <name>.g<input> of that sum for each input.
tests/conv/spatial_reference_test.cpp repeats each case's options."""
import torch
import torch.nn.functional as F

from fixture import grads, save, seeded

seeded(0)
out = {}


def case(name, fn, seed, **inputs):
    for t in inputs.values():
        t.requires_grad_()
    y = fn(**inputs)
    r, gs = grads(y, list(inputs.values()), seed=seed)
    out[f"{name}.y"] = y
    out[f"{name}.r"] = r
    for (key, t), g in zip(inputs.items(), gs):
        out[f"{name}.{key}"] = t
        out[f"{name}.g{key}"] = g


rn = torch.randn

# conv2d
case("conv_strided", lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(2, 1)), 1,
     x=rn(2, 3, 7, 6), w=rn(4, 3, 3, 3), b=rn(4))
case("conv_groups", lambda x, w, b: F.conv2d(x, w, b, padding=(1, 0), groups=2), 2,
     x=rn(2, 4, 5, 5), w=rn(6, 2, 3, 2), b=rn(6))
case("conv_depthwise_nobias", lambda x, w: F.conv2d(x, w, None, stride=2, padding=1, groups=3), 3,
     x=rn(2, 3, 6, 5), w=rn(3, 1, 3, 3))
case("conv_pointwise", lambda x, w, b: F.conv2d(x, w, b), 4,
     x=rn(2, 4, 3, 5), w=rn(5, 4, 1, 1), b=rn(5))
case("conv_pointwise_groups", lambda x, w: F.conv2d(x, w, None, groups=2), 5,
     x=rn(2, 4, 3, 3), w=rn(6, 2, 1, 1))
case("conv_1x1_strided", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1), 6,
     x=rn(1, 2, 5, 4), w=rn(3, 2, 1, 1), b=rn(3))

# conv_transpose2d
case("convt_strided", lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=(1, 0), output_padding=1), 7,
     x=rn(2, 4, 3, 4), w=rn(4, 3, 3, 3), b=rn(3))
case("convt_groups", lambda x, w, b: F.conv_transpose2d(x, w, b, stride=(2, 1), padding=1, output_padding=(1, 1),
                                                        groups=2, dilation=(1, 2)), 8,
     x=rn(2, 4, 3, 3), w=rn(4, 2, 3, 2), b=rn(4))
case("convt_pointwise_nobias", lambda x, w: F.conv_transpose2d(x, w), 9,
     x=rn(1, 3, 2, 3), w=rn(3, 2, 1, 1))

# pooling
case("maxpool_padded", lambda x: F.max_pool2d(x, 3, stride=2, padding=1), 10, x=rn(2, 2, 7, 6))
case("maxpool_ceil_dilated", lambda x: F.max_pool2d(x, (3, 2), stride=(2, 2), padding=(1, 1), dilation=(1, 2),
                                                    ceil_mode=True), 11, x=rn(1, 2, 6, 7))
# small integers: many ties, so the gradient shows which maximum PyTorch picks
case("maxpool_ties", lambda x: F.max_pool2d(x, 3, stride=1, padding=1), 12,
     x=torch.randint(0, 3, (1, 2, 5, 5)).double())
case("avgpool_include_pad_ceil", lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True), 13,
     x=rn(2, 2, 6, 7))
case("avgpool_exclude_pad_ceil", lambda x: F.avg_pool2d(x, (3, 2), stride=(2, 2), padding=(1, 1), ceil_mode=True,
                                                        count_include_pad=False), 14, x=rn(1, 2, 6, 7))
case("adaptive_down", lambda x: F.adaptive_avg_pool2d(x, (3, 4)), 15, x=rn(2, 2, 7, 5))
case("adaptive_up", lambda x: F.adaptive_avg_pool2d(x, (5, 2)), 16, x=rn(1, 2, 3, 5))

# interpolate
case("nearest_size", lambda x: F.interpolate(x, size=(7, 9), mode="nearest"), 17, x=rn(1, 2, 3, 4))
case("nearest_down", lambda x: F.interpolate(x, size=(2, 3), mode="nearest"), 18, x=rn(1, 2, 5, 7))
case("nearest_scale", lambda x: F.interpolate(x, scale_factor=(1.7, 2.0), mode="nearest"), 19, x=rn(1, 2, 5, 4))
case("nearest_scale_same_size", lambda x: F.interpolate(x, scale_factor=(1.2, 2.1), mode="nearest"), 20,
     x=rn(1, 1, 3, 5))
case("bilinear_size", lambda x: F.interpolate(x, size=(5, 7), mode="bilinear", align_corners=False), 21,
     x=rn(1, 2, 3, 4))
case("bilinear_down", lambda x: F.interpolate(x, size=(2, 3), mode="bilinear", align_corners=False), 22,
     x=rn(1, 2, 5, 7))
case("bilinear_corners", lambda x: F.interpolate(x, size=(5, 7), mode="bilinear", align_corners=True), 23,
     x=rn(1, 2, 3, 4))
case("bilinear_corners_down", lambda x: F.interpolate(x, size=(1, 3), mode="bilinear", align_corners=True), 24,
     x=rn(1, 2, 5, 7))
case("bilinear_scale", lambda x: F.interpolate(x, scale_factor=(1.5, 0.75), mode="bilinear",
                                               align_corners=False), 25, x=rn(1, 2, 3, 8))
case("bilinear_scale_same_size", lambda x: F.interpolate(x, scale_factor=(1.2, 1.7), mode="bilinear",
                                                         align_corners=False), 26, x=rn(1, 1, 3, 5))
case("bilinear_scale_corners", lambda x: F.interpolate(x, scale_factor=(1.5, 2.0), mode="bilinear",
                                                       align_corners=True), 27, x=rn(1, 1, 3, 4))

save("conv", out)

// weft/data.hpp: image decoding/encoding (through stb: needs <stb/stb_image.h> on the include
// path), PIL-exact resampling, and the ADE20K segmentation pipeline (OpenCV-exact transforms,
// batching with background prefetch).
#pragma once

#include "data/image.hpp"
#include "data/resize_pil.hpp"
#include "data/sample_random.hpp"
#include "data/ade20k.hpp"
#include "data/resize_cv.hpp"
#include "data/color_cv.hpp"
#include "data/photometric.hpp"
#include "data/seg_transforms.hpp"
#include "data/loader.hpp"

// weft/data.hpp: image decoding/encoding (through stb: needs <stb/stb_image.h> on the include
// path) and PIL-exact resampling.
#pragma once

#include "data/image.hpp"
#include "data/resize_pil.hpp"

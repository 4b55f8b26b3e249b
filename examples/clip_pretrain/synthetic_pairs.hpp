// examples/clip_pretrain/synthetic_pairs.hpp: a built-in image-text data set for CLIP
// pre-training on a CPU: one coloured shape on a plain background per image, with a caption.
//
//   auto s = clip_pretrain::make_synthetic_pairs("data/pairs", {.train = 18000, .heldout = 600});
//   // data/pairs/train/00000.png ...            32 x 32 RGB PNGs
//   // data/pairs/train.tsv                      "train/00000.png<TAB>a red circle on a blue background"
//   // data/pairs/heldout/green_star/00000.png   images of the held-out combinations only
//   // data/pairs/classes.txt                    the 48 "colour shape" classes (zero-shot candidates)
//   // data/pairs/heldout_classes.txt            the 8 held-out ones
//
// The point of the set is compositional generalisation: 8 colours x 6 class shapes make 48
// classes, and 8 (colour, shape) pairs never appear in training (one per colour, every class
// shape at least once), while each colour and each shape appears in training with other
// partners. A CLIP that learnt "red" and "square" separately names a red square it never saw;
// one that memorised the training pairs does not. Zero-shot accuracy on heldout/ against all 48
// candidates measures it.
//
// Training also draws 6 more shapes (pentagon, hexagon, oval, semicircle, crescent, arrow) in
// every colour; they are not classes. What they buy: each colour is seen on 11 shapes instead of
// 5, and a colour word then binds to a shape the model never saw in that colour. With the 6 class
// shapes alone the tiny CLIP named about half of the held-out images; 6 more shapes helped more
// than 8 more colours, and 12 more shapes no more than 6 (docs/clip-pretraining.md has the runs).
//
// Scenes: the shape's circumscribed circle spans 60-90% of the image side, at a random position
// that keeps it inside and a random rotation (not for circles and rings, where it shows
// nothing); the background is one of the other 7 colours. Each pixel is the exact shape or
// background colour, or, on the edge, their mix by coverage of 4 x 4 sub-samples, so shapes are
// clean at 32 px and a fully covered pixel carries the named colour exactly.
//
// Captions vary their wording (five templates, one drawn per image) so that the short prompts
// a zero-shot evaluation uses ("a red circle", "red circle") are in the training distribution,
// not only the long "a red circle on a blue background".
//
// Deterministic: image i of a split depends only on (seed, split, i) through SampleRandom, so
// the same options give byte-identical files on any number of threads. Training images cycle
// through the 88 training pairs (image i has pair i mod 88, colour-major, shapes in
// synthetic_shape_names() order), so any 88 consecutive images hold each once; held-out image i
// has held-out class i mod 8.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <string>
#include <vector>

#include <weft/core/error.hpp>
#include <weft/core/tensor.hpp>
#include <weft/data/image.hpp>
#include <weft/data/sample_random.hpp>
#include <weft/exec/cpu/thread_pool.hpp>

namespace clip_pretrain {

using weft::index_t;

struct SyntheticPairsOptions {
    index_t train = 18000;   // training images (train/ and train.tsv): about 200 per training pair
    index_t heldout = 600;   // images of held-out combinations (heldout/<class>/)
    int size = 32;           // image side in pixels
    std::uint64_t seed = 0;
};

// What make_synthetic_pairs wrote.
struct SyntheticPairsSummary {
    std::filesystem::path root;
    index_t train = 0, heldout = 0;
    int size = 0;
    std::vector<std::string> classes;          // every class text, classes.txt's order
    std::vector<std::string> heldout_classes;  // the classes absent from training, in the same order
    std::vector<std::string> train_pairs;      // "colour shape" of each training pair (the other
                                               // classes and the training-only shapes), in image order
};

struct SyntheticColour {
    const char* name;
    std::uint8_t r, g, b;
};

// Saturated, far apart in RGB, and each one's name unambiguous to a text encoder.
inline const std::array<SyntheticColour, 8>& synthetic_colours() {
    static const std::array<SyntheticColour, 8> colours{{{"red", 230, 30, 30},
                                                         {"green", 40, 170, 50},
                                                         {"blue", 40, 80, 230},
                                                         {"yellow", 240, 220, 30},
                                                         {"purple", 140, 50, 190},
                                                         {"orange", 245, 140, 30},
                                                         {"white", 245, 245, 245},
                                                         {"black", 20, 20, 20}}};
    return colours;
}

// The first 6 are the class shapes; the others are drawn in training only.
enum class SyntheticShape {
    circle, square, triangle, star, cross, ring,
    pentagon, hexagon, oval, semicircle, crescent, arrow
};

inline const std::array<const char*, 12>& synthetic_shape_names() {
    static const std::array<const char*, 12> names{"circle",  "square",  "triangle", "star",       "cross",    "ring",
                                                   "pentagon", "hexagon", "oval",     "semicircle", "crescent", "arrow"};
    return names;
}

// Every shape drawn, and how many of them (the first) make the classes with the colours.
inline constexpr int synthetic_colour_count = 8, synthetic_shape_count = 12, synthetic_class_shape_count = 6;

// The held-out shape of each colour (indices into synthetic_shape_names()), fixed so that every
// run and every seed tests the same combinations: red square, green star, blue circle, yellow
// cross, purple triangle, orange ring, white star, black triangle.
inline constexpr std::array<int, synthetic_colour_count> synthetic_heldout_shape{1, 3, 0, 4, 2, 5, 3, 2};

inline bool synthetic_is_heldout(int colour, int shape) {
    return synthetic_heldout_shape[std::size_t(colour)] == shape;  // always a class shape
}

// "red circle": the class text of (colour, shape).
inline std::string synthetic_class_text(int colour, int shape) {
    return std::string(synthetic_colours()[std::size_t(colour)].name) + " " +
           synthetic_shape_names()[std::size_t(shape)];
}

// "a" or "an" before a word ("orange", "oval", "arrow" take "an").
inline const char* indefinite_article(const std::string& word) {
    return !word.empty() && std::string("aeiou").find(word[0]) != std::string::npos ? "an" : "a";
}

// One rendered scene and what it shows.
struct SyntheticScene {
    weft::Tensor<std::uint8_t, 3> image;  // [size, size, 3]
    int colour = 0, shape = 0, background = 0;
    std::string caption;
};

namespace detail::synthetic {

struct Point {
    double x, y;
};

// Even-odd rule: a horizontal ray from p crosses the outline an odd number of times.
template <std::size_t N>
bool inside_polygon(const std::array<Point, N>& poly, double x, double y) {
    bool in = false;
    for (std::size_t i = 0, j = N - 1; i < N; j = i++) {
        const Point a = poly[i], b = poly[j];
        if ((a.y > y) != (b.y > y) && x < (b.x - a.x) * (y - a.y) / (b.y - a.y) + a.x) in = !in;
    }
    return in;
}

// Outlines in the shape's own frame, circumradius 1, a vertex pointing up (image y grows
// downwards).
template <std::size_t N>
using Outline = std::array<Point, N>;

// A regular N-gon: the triangle, the pentagon, the hexagon.
template <std::size_t N>
const Outline<N>& regular_polygon() {
    static const Outline<N> p = [] {
        Outline<N> q{};
        for (std::size_t k = 0; k < N; ++k) {
            const double a = -std::numbers::pi / 2 + double(k) * 2 * std::numbers::pi / double(N);
            q[k] = {std::cos(a), std::sin(a)};
        }
        return q;
    }();
    return p;
}

// A five-pointed star whose inner radius (0.45) is a little fatter than the pentagram's 0.38,
// so its arms stay several pixels wide at the smallest size.
inline const Outline<10>& star() {
    static const Outline<10> s = [] {
        Outline<10> p{};
        for (int k = 0; k < 10; ++k) {
            const double a = -std::numbers::pi / 2 + k * std::numbers::pi / 5;
            const double r = k % 2 == 0 ? 1.0 : 0.45;
            p[std::size_t(k)] = {r * std::cos(a), r * std::sin(a)};
        }
        return p;
    }();
    return s;
}

// Whether (u, v), in the shape's frame (circumradius 1), is inside the shape. Every shape fits
// the unit circle, so any rotation stays inside the image.
inline bool inside(SyntheticShape shape, double u, double v) {
    const double r2 = u * u + v * v;
    switch (shape) {
        case SyntheticShape::circle: return r2 <= 1.0;
        case SyntheticShape::ring: return r2 <= 1.0 && r2 >= 0.55 * 0.55;
        case SyntheticShape::square: return std::abs(u) <= std::numbers::sqrt2 / 2 && std::abs(v) <= std::numbers::sqrt2 / 2;
        case SyntheticShape::triangle: return inside_polygon(regular_polygon<3>(), u, v);
        case SyntheticShape::star: return inside_polygon(star(), u, v);
        case SyntheticShape::cross: {
            // Arms of half-width 0.3 and half-length 0.95: their corners (0.95, 0.3) lie inside
            // the unit circle.
            const double au = std::abs(u), av = std::abs(v);
            return (au <= 0.3 && av <= 0.95) || (av <= 0.3 && au <= 0.95);
        }
        // The training-only shapes, every corner within the unit circle too.
        case SyntheticShape::pentagon: return inside_polygon(regular_polygon<5>(), u, v);
        case SyntheticShape::hexagon: return inside_polygon(regular_polygon<6>(), u, v);
        case SyntheticShape::oval: return u * u + v * v / (0.55 * 0.55) <= 1.0;
        case SyntheticShape::semicircle: return r2 <= 1.0 && v >= 0.0;
        case SyntheticShape::crescent: return r2 <= 1.0 && (u - 0.45) * (u - 0.45) + v * v > 0.8 * 0.8;
        case SyntheticShape::arrow: {
            static const Outline<7> a{
                {{-0.9, -0.22}, {0.15, -0.22}, {0.15, -0.6}, {0.95, 0}, {0.15, 0.6}, {0.15, 0.22}, {-0.9, 0.22}}};
            return inside_polygon(a, u, v);
        }
    }
    return false;
}

// Caption templates; {c} colour, {s} shape, {b} background colour. Drawn uniformly.
inline std::string caption(int templ, const std::string& c, const std::string& s, const std::string& b) {
    switch (templ) {
        case 0: return std::string(indefinite_article(c)) + " " + c + " " + s + " on " + indefinite_article(b) + " " + b + " background";
        case 1: return std::string(indefinite_article(c)) + " " + c + " " + s;
        case 2: return c + " " + s + " on " + b;
        case 3: return std::string("a picture of ") + indefinite_article(c) + " " + c + " " + s;
        default: return c + " " + s;
    }
}
inline constexpr int caption_templates = 5;

inline constexpr int subsamples = 4;  // per pixel side: 16 coverage levels

inline std::string numbered(index_t i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%05lld", static_cast<long long>(i));
    return buf;
}

inline void write_text_atomically(const std::filesystem::path& path, const std::string& text) {
    std::filesystem::path tmp = path;
    tmp += ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        WEFT_CHECK(f.good(), "make_synthetic_pairs: cannot create \"", tmp.string(), "\"");
        f << text;
        f.flush();
        WEFT_CHECK(f.good(), "make_synthetic_pairs: writing \"", tmp.string(), "\" failed");
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    WEFT_CHECK(!ec, "make_synthetic_pairs: renaming \"", tmp.string(), "\" to \"", path.string(),
               "\" failed: ", ec.message());
}

}  // namespace detail::synthetic

// Draws a scene of `shape` in `colour` (indices into synthetic_shape_names() and
// synthetic_colours()); background, caption wording, size, position and rotation come from rng.
inline SyntheticScene render_synthetic_scene(int colour, int shape, int size, weft::data::SampleRandom& rng) {
    namespace d = detail::synthetic;
    WEFT_CHECK(colour >= 0 && colour < synthetic_colour_count && shape >= 0 && shape < synthetic_shape_count,
               "render_synthetic_scene: colour ", colour, " or shape ", shape, " out of range");
    WEFT_CHECK(size >= 8 && size <= 4096, "render_synthetic_scene: image size ", size, " px must be in [8, 4096]");
    SyntheticScene s;
    s.colour = colour;
    s.shape = shape;
    // Any other colour, uniformly.
    s.background = int(rng.randint(0, synthetic_colour_count - 1));
    if (s.background >= colour) ++s.background;
    const auto& colours = synthetic_colours();
    const std::string c = colours[std::size_t(colour)].name, b = colours[std::size_t(s.background)].name;
    s.caption = d::caption(int(rng.randint(0, d::caption_templates)), c, synthetic_shape_names()[std::size_t(shape)], b);

    // Circumradius in pixels. Not below 60%: at 32 px a star and a cross of radius 7 px (45%)
    // differ by a few pixels, and those two made nearly all of the tiny CLIP's errors.
    const double radius = rng.uniform(0.6, 0.9) * size / 2;
    const double cx = rng.uniform(radius, size - radius), cy = rng.uniform(radius, size - radius);
    const double angle = rng.uniform(0.0, 2 * std::numbers::pi);
    const double cos_a = std::cos(angle) / radius, sin_a = std::sin(angle) / radius;

    const SyntheticColour fg = colours[std::size_t(colour)], bg = colours[std::size_t(s.background)];
    constexpr int n = d::subsamples, full = n * n;
    s.image = weft::Tensor<std::uint8_t, 3>::empty(weft::Shape<3>{index_t(size), index_t(size), index_t(3)});  // [H, W, 3]
    std::uint8_t* px = s.image.data();
    for (int y = 0; y < size; ++y)
        for (int x = 0; x < size; ++x, px += 3) {
            int covered = 0;
            for (int sy = 0; sy < n; ++sy)
                for (int sx = 0; sx < n; ++sx) {
                    const double dx = x + (sx + 0.5) / n - cx, dy = y + (sy + 0.5) / n - cy;
                    // Rotate by -angle into the shape's frame, scaled to circumradius 1.
                    const double u = dx * cos_a + dy * sin_a, v = -dx * sin_a + dy * cos_a;
                    covered += d::inside(SyntheticShape(shape), u, v);
                }
            // Integer blend, rounded: covered == full gives the shape colour exactly.
            auto mix = [&](std::uint8_t f, std::uint8_t g) {
                return std::uint8_t((int(f) * covered + int(g) * (full - covered) + full / 2) / full);
            };
            px[0] = mix(fg.r, bg.r);
            px[1] = mix(fg.g, bg.g);
            px[2] = mix(fg.b, bg.b);
        }
    return s;
}

// Every class text in classes.txt's order: colour-major ("red circle", "red square", ...), the
// class shapes only.
inline std::vector<std::string> synthetic_classes() {
    std::vector<std::string> out;
    for (int c = 0; c < synthetic_colour_count; ++c)
        for (int s = 0; s < synthetic_class_shape_count; ++s) out.push_back(synthetic_class_text(c, s));
    return out;
}

// The scene of image `index` of the training split (heldout == false) or of the held-out split.
inline SyntheticScene synthetic_pair_scene(std::uint64_t seed, bool heldout, index_t index, int size) {
    std::vector<std::pair<int, int>> pairs;  // (colour, shape) of the split, colour-major
    for (int c = 0; c < synthetic_colour_count; ++c)
        for (int s = 0; s < synthetic_shape_count; ++s)
            if (synthetic_is_heldout(c, s) == heldout) pairs.emplace_back(c, s);
    const auto [colour, shape] = pairs[std::size_t(index % index_t(pairs.size()))];
    weft::data::SampleRandom rng(seed, heldout ? 1 : 0, std::uint64_t(index));
    return render_synthetic_scene(colour, shape, size, rng);
}

// Writes the data set under `out` (see the top of this file). `out` must not exist or be an
// empty folder: stale images from an earlier, larger run would otherwise join heldout/.
inline SyntheticPairsSummary make_synthetic_pairs(const std::filesystem::path& out,
                                                  const SyntheticPairsOptions& opt = {}) {
    namespace fs = std::filesystem;
    namespace d = detail::synthetic;
    WEFT_CHECK(opt.train >= 0 && opt.heldout >= 0, "make_synthetic_pairs: negative image count (", opt.train,
               " training, ", opt.heldout, " held-out)");
    WEFT_CHECK(opt.size >= 8 && opt.size <= 4096, "make_synthetic_pairs: image size ", opt.size,
               " px must be in [8, 4096]");
    std::error_code ec;
    if (fs::exists(out, ec)) {
        WEFT_CHECK(fs::is_directory(out, ec), "make_synthetic_pairs: \"", out.string(), "\" exists and is not a folder");
        WEFT_CHECK(fs::is_empty(out, ec), "make_synthetic_pairs: the folder \"", out.string(),
                   "\" is not empty; remove it or choose another one (old images would mix with the new)");
    }

    SyntheticPairsSummary sum;
    sum.root = out;
    sum.train = opt.train;
    sum.heldout = opt.heldout;
    sum.size = opt.size;
    sum.classes = synthetic_classes();
    for (int c = 0; c < synthetic_colour_count; ++c)
        for (int s = 0; s < synthetic_shape_count; ++s)
            (synthetic_is_heldout(c, s) ? sum.heldout_classes : sum.train_pairs).push_back(synthetic_class_text(c, s));

    auto make_dir = [&](const fs::path& dir) {
        fs::create_directories(dir, ec);
        WEFT_CHECK(!ec, "make_synthetic_pairs: cannot create the folder \"", dir.string(), "\": ", ec.message());
    };
    make_dir(out / "train");
    auto folder_of = [](const std::string& cls) {
        std::string f = cls;
        for (char& ch : f)
            if (ch == ' ') ch = '_';
        return f;
    };
    for (const auto& cls : sum.heldout_classes) make_dir(out / "heldout" / folder_of(cls));

    // Training images; captions kept by index so train.tsv's order does not depend on threads.
    std::vector<std::string> captions(std::size_t(opt.train));
    weft::parallel_for(0, opt.train, 1, [&](index_t b, index_t e) {
        for (index_t i = b; i < e; ++i) {
            SyntheticScene s = synthetic_pair_scene(opt.seed, false, i, opt.size);
            weft::data::write_png(out / "train" / (d::numbered(i) + ".png"), s.image);
            captions[std::size_t(i)] = std::move(s.caption);
        }
    });
    const index_t k = index_t(sum.heldout_classes.size());
    weft::parallel_for(0, opt.heldout, 1, [&](index_t b, index_t e) {
        for (index_t i = b; i < e; ++i) {
            const SyntheticScene s = synthetic_pair_scene(opt.seed, true, i, opt.size);
            const fs::path dir = out / "heldout" / folder_of(sum.heldout_classes[std::size_t(i % k)]);
            weft::data::write_png(dir / (d::numbered(i / k) + ".png"), s.image);
        }
    });

    std::string tsv;
    for (index_t i = 0; i < opt.train; ++i)
        tsv += "train/" + d::numbered(i) + ".png\t" + captions[std::size_t(i)] + "\n";
    d::write_text_atomically(out / "train.tsv", tsv);
    std::string all, held;
    for (const auto& c : sum.classes) all += c + "\n";
    for (const auto& c : sum.heldout_classes) held += c + "\n";
    d::write_text_atomically(out / "classes.txt", all);
    d::write_text_atomically(out / "heldout_classes.txt", held);
    return sum;
}

}  // namespace clip_pretrain

// examples/denseclip/synthetic.hpp: a small data set in ADE20K's layout and encoding, drawn
// procedurally, for training and evaluating DenseCLIP end to end on a CPU in minutes.
//
//   auto set = denseclip::make_synthetic("data/synthetic", 200, 50, 128, /*seed=*/0);
//   // data/synthetic/images/training/ADE_train_00000001.jpg ... (RGB, quality 95)
//   // data/synthetic/annotations/training/ADE_train_00000001.png ... (grey, 0 = other, k+1 = class k)
//   // and the same under validation/ with ADE_val_ names
//
// Each scene is indoor (ceiling, walls, floor in perspective; windows, a door, a bed, a table,
// people) or outdoor (sky above a horizon; grass, a road in perspective, water; buildings with
// windows, trees, cars, people), with a few blobs of "other" (0, ignored by the metric). The 15
// classes carry ADE20K's real ids (synthetic_classes()). Colour, texture and shape are all
// informative: each class has its own colour distribution (jittered per object) and its own
// texture (bricks, tiles, ripples, grass streaks, stripes, wood grain...), and objects have their
// shapes (ellipse canopies on trunks, cars with roofs and wheels, people with heads and legs).
// Smaller objects near the horizon give a little perspective.
//
// Deterministic: an image depends only on (seed, split, index, size), through weft's Philox
// generator, so image 7 is the same whether 10 or 1000 images are made, on any number of
// threads. Image i of a split is made to contain class i mod 15 (drawn on top if the scene left
// it out), so a split of at least 15 images contains every class.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <weft/core/error.hpp>
#include <weft/core/philox.hpp>
#include <weft/core/tensor.hpp>
#include <weft/data/image.hpp>
#include <weft/exec/cpu/thread_pool.hpp>

namespace denseclip {

// ---- classes ------------------------------------------------------------------------------------

// A class drawn by the generator: its 0-based index in ADE20K's 150 (mmseg's CLASSES order,
// /work/shared/data/ade20k/classes.txt) and its name there. The PNG value is index + 1.
struct SyntheticClass {
    int index;
    const char* name;
};

namespace synthetic_ids {
inline constexpr int wall = 0, building = 1, sky = 2, floor = 3, tree = 4, ceiling = 5, road = 6, bed = 7,
                     windowpane = 8, grass = 9, person = 12, door = 14, table = 15, car = 20, water = 21;
}  // namespace synthetic_ids

inline const std::array<SyntheticClass, 15>& synthetic_classes() {
    namespace id = synthetic_ids;
    static const std::array<SyntheticClass, 15> classes{{{id::wall, "wall"},
                                                         {id::building, "building"},
                                                         {id::sky, "sky"},
                                                         {id::floor, "floor"},
                                                         {id::tree, "tree"},
                                                         {id::ceiling, "ceiling"},
                                                         {id::road, "road"},
                                                         {id::bed, "bed "},
                                                         {id::windowpane, "windowpane"},
                                                         {id::grass, "grass"},
                                                         {id::person, "person"},
                                                         {id::door, "door"},
                                                         {id::table, "table"},
                                                         {id::car, "car"},
                                                         {id::water, "water"}}};
    return classes;
}

enum class Split { training, validation };

inline const char* split_name(Split s) { return s == Split::training ? "training" : "validation"; }

// "ADE_train_00000001" / "ADE_val_00000001" for index 0 (ADE20K numbers from 1).
inline std::string synthetic_stem(Split s, std::int64_t index) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "ADE_%s_%08lld", s == Split::training ? "train" : "val",
                  static_cast<long long>(index + 1));
    return buf;
}

// One drawn scene: [H, W, 3] RGB and [H, W] annotation in ADE's encoding (0 other, k+1 class k).
struct SyntheticScene {
    weft::Tensor<std::uint8_t, 3> image;
    weft::Tensor<std::uint8_t, 2> annotation;
};

namespace detail::synthetic {

// Sequential uniform numbers from a Philox stream (one block per call, as weft's Generator counts).
class Rng {
public:
    explicit Rng(std::uint64_t key) : key_(key) {}
    double uniform() {
        const auto b = weft::philox4x32_10(gen_.advance(1), 0, key_);
        return weft::random::uniform_double(b.w[0], b.w[1]);
    }
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
    int integer(int lo, int hi_inclusive) {
        return std::min(hi_inclusive, lo + int(uniform() * double(hi_inclusive - lo + 1)));
    }
    bool chance(double p) { return uniform() < p; }

private:
    weft::Generator gen_{0};
    std::uint64_t key_;
};

// A stateless hash of integers to [0, 1): per-pixel noise and value-noise lattices.
inline double hash01(std::uint64_t key, std::int64_t a, std::int64_t b, std::uint64_t salt) {
    const auto block = weft::philox4x32_10(std::uint64_t(a) ^ (std::uint64_t(b) << 32), salt, key);
    return weft::random::uniform_float(block.w[0]);
}

// Smooth noise in [0, 1): random values on a lattice of spacing `cell` pixels, interpolated.
inline double value_noise(std::uint64_t key, double x, double y, double cell, std::uint64_t salt) {
    const double fx = x / cell, fy = y / cell;
    const auto x0 = std::int64_t(std::floor(fx)), y0 = std::int64_t(std::floor(fy));
    double tx = fx - double(x0), ty = fy - double(y0);
    tx = tx * tx * (3 - 2 * tx);
    ty = ty * ty * (3 - 2 * ty);
    const double a = hash01(key, x0, y0, salt), b = hash01(key, x0 + 1, y0, salt);
    const double c = hash01(key, x0, y0 + 1, salt), d = hash01(key, x0 + 1, y0 + 1, salt);
    return (a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty;
}

struct Rgb {
    double r, g, b;
};

// How an object's pixels are coloured. Each class has its own (the part overrides are few:
// a trunk is wood, a head is skin), so texture tells classes apart as much as colour does.
enum class Texture {
    sky,
    plaster,
    brick,
    tiles,
    ceiling,
    asphalt,
    grass,
    foliage,
    ripples,
    pane,
    stripes,
    cloth,
    paint,
    grain,
    blob
};

struct Object {
    std::uint8_t label;  // ADE encoding: class index + 1, 0 for other
    Texture texture;
    Rgb base;
    double period;  // texture scale in pixels
    double phase;
    double x0, y0, x1, y1;  // the object's box, for gradients within it
};

struct Point {
    double x, y;
};

// The canvas: per pixel the object drawn last (painter's order).
class Canvas {
public:
    Canvas(int h, int w) : h_(h), w_(w), owner_(std::size_t(h) * std::size_t(w), -1) {}
    int height() const { return h_; }
    int width() const { return w_; }

    int add(const Object& o) {
        objects_.push_back(o);
        return int(objects_.size()) - 1;
    }
    const std::vector<Object>& objects() const { return objects_; }
    int owner(int y, int x) const { return owner_[std::size_t(y) * std::size_t(w_) + std::size_t(x)]; }

    template <class Inside>
    void fill(int id, double bx0, double by0, double bx1, double by1, Inside inside) {
        const int ya = std::max(0, int(std::floor(by0))), yb = std::min(h_ - 1, int(std::ceil(by1)));
        const int xa = std::max(0, int(std::floor(bx0))), xb = std::min(w_ - 1, int(std::ceil(bx1)));
        for (int y = ya; y <= yb; ++y)
            for (int x = xa; x <= xb; ++x)
                if (inside(double(x) + 0.5, double(y) + 0.5))
                    owner_[std::size_t(y) * std::size_t(w_) + std::size_t(x)] = id;
    }
    void rect(int id, double x0, double y0, double x1, double y1) {
        fill(id, x0, y0, x1, y1, [&](double x, double y) { return x >= x0 && x < x1 && y >= y0 && y < y1; });
    }
    void ellipse(int id, double cx, double cy, double rx, double ry) {
        fill(id, cx - rx, cy - ry, cx + rx, cy + ry, [&](double x, double y) {
            const double u = (x - cx) / rx, v = (y - cy) / ry;
            return u * u + v * v <= 1.0;
        });
    }
    // Even-odd rule: a pixel centre is inside when a ray to its right crosses the outline an odd
    // number of times.
    void polygon(int id, const std::vector<Point>& p) {
        double bx0 = p[0].x, bx1 = p[0].x, by0 = p[0].y, by1 = p[0].y;
        for (const auto& q : p) {
            bx0 = std::min(bx0, q.x), bx1 = std::max(bx1, q.x);
            by0 = std::min(by0, q.y), by1 = std::max(by1, q.y);
        }
        fill(id, bx0, by0, bx1, by1, [&](double x, double y) {
            bool in = false;
            for (std::size_t i = 0, j = p.size() - 1; i < p.size(); j = i++) {
                if ((p[i].y > y) != (p[j].y > y) && x < (p[j].x - p[i].x) * (y - p[i].y) / (p[j].y - p[i].y) + p[i].x)
                    in = !in;
            }
            return in;
        });
    }

private:
    int h_, w_;
    std::vector<int> owner_;
    std::vector<Object> objects_;
};

inline double clamp255(double v) { return std::min(255.0, std::max(0.0, v)); }

inline Rgb jitter(Rng& rng, Rgb c, double amount) {
    return {clamp255(c.r + rng.uniform(-amount, amount)), clamp255(c.g + rng.uniform(-amount, amount)),
            clamp255(c.b + rng.uniform(-amount, amount))};
}

inline Rgb scale(Rgb c, double s) { return {c.r * s, c.g * s, c.b * s}; }

// Each class's colour distribution: a mean and a per-object spread.
inline Rgb class_colour(Rng& rng, int cls) {
    namespace id = synthetic_ids;
    switch (cls) {
        case id::wall: return jitter(rng, {200, 188, 165}, 22);
        case id::building: return rng.chance(0.5) ? jitter(rng, {150, 95, 75}, 18) : jitter(rng, {135, 135, 140}, 18);
        case id::sky: return jitter(rng, {105, 155, 225}, 15);
        case id::floor: return jitter(rng, {160, 120, 80}, 25);
        case id::tree: return jitter(rng, {45, 95, 40}, 12);
        case id::ceiling: return jitter(rng, {236, 234, 226}, 8);
        case id::road: return jitter(rng, {85, 85, 90}, 10);
        case id::bed: {
            static constexpr Rgb sheets[] = {{200, 70, 90}, {80, 90, 190}, {230, 210, 120}, {150, 80, 170}};
            return jitter(rng, sheets[rng.integer(0, 3)], 20);
        }
        case id::windowpane: return jitter(rng, {175, 205, 225}, 12);
        case id::grass: return jitter(rng, {80, 150, 50}, 15);
        case id::person: {
            static constexpr Rgb shirts[] = {
                {210, 40, 40}, {40, 120, 200}, {240, 240, 240}, {30, 30, 30}, {230, 180, 30}};
            return jitter(rng, shirts[rng.integer(0, 4)], 15);
        }
        case id::door: return jitter(rng, {115, 75, 45}, 15);
        case id::table: return jitter(rng, {160, 110, 65}, 15);
        case id::car: {
            static constexpr Rgb paints[] = {
                {190, 20, 25}, {20, 60, 170}, {235, 200, 20}, {225, 225, 230}, {25, 25, 30}};
            return jitter(rng, paints[rng.integer(0, 4)], 12);
        }
        case id::water: return jitter(rng, {35, 95, 140}, 12);
        default: return {rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255)};
    }
}

inline Texture class_texture(int cls) {
    namespace id = synthetic_ids;
    switch (cls) {
        case id::wall: return Texture::plaster;
        case id::building: return Texture::brick;
        case id::sky: return Texture::sky;
        case id::floor: return Texture::tiles;
        case id::tree: return Texture::foliage;
        case id::ceiling: return Texture::ceiling;
        case id::road: return Texture::asphalt;
        case id::bed: return Texture::stripes;
        case id::windowpane: return Texture::pane;
        case id::grass: return Texture::grass;
        case id::person: return Texture::cloth;
        case id::door: return Texture::grain;
        case id::table: return Texture::grain;
        case id::car: return Texture::paint;
        case id::water: return Texture::ripples;
        default: return Texture::blob;
    }
}

// The pixel (x, y) of object o, before the camera's noise.
inline Rgb shade(const Object& o, std::uint64_t key, int xi, int yi) {
    const double x = xi, y = yi;
    const double fine = hash01(key, xi, yi, 1) - 0.5;  // per-pixel noise in [-0.5, 0.5)
    const double ty = (y - o.y0) / std::max(1.0, o.y1 - o.y0), tx = (x - o.x0) / std::max(1.0, o.x1 - o.x0);
    const Rgb b = o.base;
    switch (o.texture) {
        case Texture::sky: {  // lighter toward the horizon, soft clouds
            const double t = std::clamp(ty, 0.0, 1.0);
            Rgb c{b.r + (225 - b.r) * t * 0.7, b.g + (235 - b.g) * t * 0.7, b.b + (250 - b.b) * t * 0.4};
            const double cloud = std::max(0.0, value_noise(key, x + o.phase, y * 2.5, o.period, 2) - 0.62) * 2.6;
            return {c.r + (250 - c.r) * cloud, c.g + (250 - c.g) * cloud, c.b + (252 - c.b) * cloud};
        }
        case Texture::plaster: {
            const double v = (value_noise(key, x, y, 5, 3) - 0.5) * 18 + fine * 10;
            return {b.r + v, b.g + v, b.b + v};
        }
        case Texture::brick: {  // courses of bricks with light mortar, every other course offset
            const double h = o.period, w = 2.2 * o.period;
            const double row = std::floor((y + o.phase) / h);
            const double bx = x + (std::fmod(row, 2.0) == 0 ? 0 : w / 2);
            const bool mortar = std::fmod(y + o.phase, h) < 1.5 || std::fmod(bx, w) < 1.5;
            if (mortar) return {205 + fine * 10, 200 + fine * 10, 190 + fine * 10};
            const double v =
                (hash01(key, std::int64_t(std::floor(bx / w)), std::int64_t(row), 4) - 0.5) * 30 + fine * 8;
            return {b.r + v, b.g + v, b.b + v};
        }
        case Texture::tiles: {  // checkerboard tiles with thin grout
            const double s = o.period;
            const bool odd = (std::int64_t(std::floor((x + o.phase) / s)) + std::int64_t(std::floor(y / s))) % 2 != 0;
            const bool grout = std::fmod(x + o.phase, s) < 1 || std::fmod(y, s) < 1;
            const double k = grout ? 0.55 : odd ? 0.78 : 1.0;
            return {b.r * k + fine * 6, b.g * k + fine * 6, b.b * k + fine * 6};
        }
        case Texture::ceiling: {
            const double v = -18 * ty + fine * 4;
            return {b.r + v, b.g + v, b.b + v};
        }
        case Texture::asphalt: {  // speckle, and a dashed centre line
            const double v = fine * 40;
            const double centre = (o.x0 + o.x1) / 2, half_width = 0.5 + 2.5 * ty;
            if (std::abs(x - centre) < half_width && std::fmod(y + o.phase, o.period) < o.period * 0.5)
                return {225 + fine * 10, 220 + fine * 10, 200 + fine * 10};
            return {b.r + v, b.g + v, b.b + v};
        }
        case Texture::grass: {  // short vertical blades
            const double blade = hash01(key, xi, std::int64_t(std::floor((y + 7 * hash01(key, xi, 0, 6)) / 5)), 5);
            const double v = (blade - 0.5) * 60 + fine * 10;
            return {b.r + v * 0.6, b.g + v, b.b + v * 0.4};
        }
        case Texture::foliage: {  // clumps of leaves: coarse and medium noise
            const double v =
                (value_noise(key, x, y, o.period, 7) - 0.5) * 70 + (value_noise(key, x, y, 2, 8) - 0.5) * 30;
            return {b.r + v * 0.5, b.g + v, b.b + v * 0.4};
        }
        case Texture::ripples: {  // horizontal waves with specular glints
            const double s = std::sin(y * 6.2831853 / o.period * 3 + 2.5 * std::sin(x * 0.09 + o.phase));
            const double glint = s > 0.93 ? 70 : 0;
            const double v = 22 * s + glint + fine * 6;
            return {b.r + v * 0.7, b.g + v * 0.9, b.b + v};
        }
        case Texture::pane: {  // glass with a diagonal reflection inside a dark frame and a cross bar
            const double fw = std::max(1.5, (o.x1 - o.x0) * 0.08);
            const bool frame = x - o.x0 < fw || o.x1 - x < fw || y - o.y0 < fw || o.y1 - y < fw ||
                               std::abs(x - (o.x0 + o.x1) / 2) < fw / 2 || std::abs(y - (o.y0 + o.y1) / 2) < fw / 2;
            if (frame) return {245 + fine * 8, 245 + fine * 8, 240 + fine * 8};
            const double refl = std::fmod(tx + ty + o.phase, 0.7) < 0.12 ? 35 : 0;
            return {b.r + refl - 25 * ty, b.g + refl - 25 * ty, b.b + refl - 15 * ty};
        }
        case Texture::stripes: {  // diagonal stripes on the sheet
            const bool band = std::fmod(x + y + o.phase + 1000, o.period) < o.period * 0.45;
            const double k = band ? 1.0 : 0.72;
            return {b.r * k + fine * 8, b.g * k + fine * 8, b.b * k + fine * 8};
        }
        case Texture::cloth: {  // soft folds, darker at the bottom
            const double v = 25 * std::sin(x * 0.6 + o.phase) * 0.4 - 30 * ty + fine * 8;
            return {b.r + v, b.g + v, b.b + v};
        }
        case Texture::paint: {  // glossy body: a bright highlight band near the top
            const double hl = std::exp(-std::pow((ty - 0.25) / 0.08, 2)) * 80;
            const double v = hl - 30 * ty + fine * 4;
            return {b.r + v, b.g + v, b.b + v};
        }
        case Texture::grain: {  // wood: wavy grain lines along the long side
            const bool vertical = (o.y1 - o.y0) > (o.x1 - o.x0);
            const double u = vertical ? x : y, w = vertical ? y : x;
            const double v = 16 * std::sin(u * 6.2831853 / o.period + 1.5 * std::sin(w * 0.05 + o.phase)) + fine * 6;
            return {b.r + v, b.g + v * 0.8, b.b + v * 0.6};
        }
        case Texture::blob:
        default: {  // "other": random colour and coarse random blotches
            const double v = (value_noise(key, x, y, 4, 9) - 0.5) * 80;
            return {b.r + v, b.g - v, b.b + v * 0.5};
        }
    }
}

struct SceneBuilder {
    Rng rng;
    Canvas canvas;
    std::uint64_t key;

    int object(int cls, double x0, double y0, double x1, double y1, double period = 10) {
        Object o{std::uint8_t(cls + 1),
                 class_texture(cls),
                 class_colour(rng, cls),
                 period * rng.uniform(0.8, 1.25),
                 rng.uniform(0, 100),
                 x0,
                 y0,
                 x1,
                 y1};
        return canvas.add(o);
    }
    int part(int cls, Texture t, Rgb base, double x0, double y0, double x1, double y1, double period = 10) {
        return canvas.add({std::uint8_t(cls + 1), t, base, period, rng.uniform(0, 100), x0, y0, x1, y1});
    }

    int H() const { return canvas.height(); }
    int W() const { return canvas.width(); }

    // ---- objects, each its own shape; (x, base_y) is where the object stands, s its height -------

    void tree(double x, double base_y, double s) {
        namespace id = synthetic_ids;
        const double trunk_w = s * 0.12;
        const int trunk = part(id::tree, Texture::grain, jitter(rng, {95, 65, 40}, 12), x - trunk_w / 2,
                               base_y - s * 0.45, x + trunk_w / 2, base_y, 4);
        canvas.rect(trunk, x - trunk_w / 2, base_y - s * 0.45, x + trunk_w / 2, base_y);
        const double rx = s * rng.uniform(0.25, 0.4), ry = s * rng.uniform(0.3, 0.4);
        const double cy = base_y - s * 0.45 - ry * 0.7;
        const int crown = object(id::tree, x - rx, cy - ry, x + rx, cy + ry, std::max(3.0, s * 0.12));
        canvas.ellipse(crown, x, cy, rx, ry);
        if (rng.chance(0.5)) canvas.ellipse(crown, x + rx * 0.5, cy + ry * 0.3, rx * 0.6, ry * 0.6);
    }

    void person(double x, double base_y, double s) {
        namespace id = synthetic_ids;
        const double w = s * 0.28;
        const int legs = part(id::person, Texture::cloth, jitter(rng, {45, 55, 100}, 15), x - w / 2, base_y - s * 0.45,
                              x + w / 2, base_y);
        canvas.rect(legs, x - w / 2, base_y - s * 0.45, x - w * 0.06, base_y);
        canvas.rect(legs, x + w * 0.06, base_y - s * 0.45, x + w / 2, base_y);
        const int torso = object(id::person, x - w * 0.6, base_y - s * 0.82, x + w * 0.6, base_y - s * 0.45);
        canvas.polygon(torso, {{x - w * 0.6, base_y - s * 0.8},
                               {x + w * 0.6, base_y - s * 0.8},
                               {x + w * 0.5, base_y - s * 0.44},
                               {x - w * 0.5, base_y - s * 0.44}});
        const double r = s * 0.09;
        const int head = part(id::person, Texture::cloth, jitter(rng, {215, 175, 140}, 25), x - r,
                              base_y - s * 0.82 - 2 * r, x + r, base_y - s * 0.82);
        canvas.ellipse(head, x, base_y - s * 0.82 - r * 0.95, r * 0.85, r);
    }

    void car(double x, double base_y, double s) {
        namespace id = synthetic_ids;
        const double len = s * rng.uniform(1.8, 2.4), body_h = s * 0.45;
        const int body = object(id::car, x - len / 2, base_y - body_h - s * 0.1, x + len / 2, base_y - s * 0.1);
        canvas.rect(body, x - len / 2, base_y - body_h - s * 0.1, x + len / 2, base_y - s * 0.1);
        const double roof_y = base_y - body_h - s * 0.1 - s * 0.35;
        canvas.polygon(body, {{x - len * 0.32, base_y - body_h - s * 0.1},
                              {x - len * 0.2, roof_y},
                              {x + len * 0.18, roof_y},
                              {x + len * 0.34, base_y - body_h - s * 0.1}});
        const int glass = part(id::car, Texture::paint, jitter(rng, {60, 75, 95}, 8), x - len * 0.2, roof_y,
                               x + len * 0.18, base_y - body_h - s * 0.1);
        canvas.polygon(glass, {{x - len * 0.26, base_y - body_h - s * 0.12},
                               {x - len * 0.17, roof_y + s * 0.06},
                               {x + len * 0.15, roof_y + s * 0.06},
                               {x + len * 0.27, base_y - body_h - s * 0.12}});
        const int wheels = part(id::car, Texture::plaster, jitter(rng, {25, 25, 25}, 5), x - len / 2, base_y - s * 0.3,
                                x + len / 2, base_y);
        canvas.ellipse(wheels, x - len * 0.3, base_y - s * 0.15, s * 0.16, s * 0.15);
        canvas.ellipse(wheels, x + len * 0.3, base_y - s * 0.15, s * 0.16, s * 0.15);
    }

    void building(double x0, double x1, double top, double base_y) {
        namespace id = synthetic_ids;
        const int b = object(id::building, x0, top, x1, base_y, std::max(3.0, (base_y - top) * 0.04));
        if (rng.chance(0.3)) {  // a gabled roof: a polygon on top of the box
            canvas.polygon(
                b, {{x0, top + (base_y - top) * 0.15}, {(x0 + x1) / 2, top}, {x1, top + (base_y - top) * 0.15}});
            top += (base_y - top) * 0.15;
        }
        canvas.rect(b, x0, top, x1, base_y);
        const int cols = std::max(1, int((x1 - x0) / std::max(6.0, (base_y - top) * 0.18)));
        const int rows = std::max(1, int((base_y - top) / std::max(8.0, (x1 - x0) * 0.3)));
        const double cw = (x1 - x0) / cols, rh = (base_y - top) / rows;
        if (cw < 5 || rh < 6) return;
        for (int r = 0; r < rows; ++r)
            for (int c = 0; c < cols; ++c)
                if (rng.chance(0.8))
                    window(x0 + c * cw + cw * 0.22, top + r * rh + rh * 0.2, x0 + (c + 1) * cw - cw * 0.22,
                           top + (r + 1) * rh - rh * 0.25);
    }

    void window(double x0, double y0, double x1, double y1) {
        const int w = object(synthetic_ids::windowpane, x0, y0, x1, y1);
        canvas.rect(w, x0, y0, x1, y1);
    }

    void door(double x0, double y0, double x1, double y1) {
        const int d = object(synthetic_ids::door, x0, y0, x1, y1, std::max(3.0, (x1 - x0) * 0.2));
        canvas.rect(d, x0, y0, x1, y1);
        canvas.ellipse(d, (x0 + x1) / 2, y0, (x1 - x0) / 2, (x1 - x0) * 0.25);  // an arched top
    }

    void bed(double x, double base_y, double s) {
        namespace id = synthetic_ids;
        const double len = s * rng.uniform(1.6, 2.2), h = s * 0.35, depth = s * 0.3;
        const int sheet =
            object(id::bed, x - len / 2, base_y - h - depth, x + len / 2, base_y, std::max(4.0, s * 0.15));
        canvas.rect(sheet, x - len / 2, base_y - h, x + len / 2, base_y);  // the front face
        canvas.polygon(sheet, {{x - len / 2, base_y - h},                  // the top, in perspective
                               {x - len / 2 + depth * 0.6, base_y - h - depth},
                               {x + len / 2 - depth * 0.6, base_y - h - depth},
                               {x + len / 2, base_y - h}});
        const int pillow = part(id::bed, Texture::plaster, jitter(rng, {240, 240, 235}, 8), x - len / 2,
                                base_y - h - depth, x - len / 4, base_y - h);
        canvas.ellipse(pillow, x - len / 2 + len * 0.15, base_y - h - depth * 0.45, len * 0.11, depth * 0.35);
        const int board = part(id::bed, Texture::grain, jitter(rng, {100, 65, 40}, 12), x - len / 2 - s * 0.06,
                               base_y - h - depth - s * 0.25, x - len / 2, base_y, 4);
        canvas.rect(board, x - len / 2 - s * 0.06, base_y - h - depth - s * 0.25, x - len / 2 + s * 0.02, base_y);
    }

    void table(double x, double base_y, double s) {
        const double len = s * rng.uniform(1.0, 1.6), top_y = base_y - s * 0.55, th = s * 0.08;
        const int t =
            object(synthetic_ids::table, x - len / 2, top_y - th, x + len / 2, base_y, std::max(3.0, s * 0.1));
        canvas.polygon(t, {{x - len / 2, top_y},
                           {x - len / 2 + s * 0.1, top_y - th},
                           {x + len / 2 - s * 0.1, top_y - th},
                           {x + len / 2, top_y}});
        canvas.rect(t, x - len / 2, top_y, x + len / 2, top_y + th * 0.6);
        canvas.rect(t, x - len / 2 + s * 0.04, top_y, x - len / 2 + s * 0.11, base_y);
        canvas.rect(t, x + len / 2 - s * 0.11, top_y, x + len / 2 - s * 0.04, base_y);
    }

    void other_blob() {  // ADE's 0: not one of the 150 classes
        const double cx = rng.uniform(0, W()), cy = rng.uniform(0, H()), r = rng.uniform(0.03, 0.08) * H();
        const int o = canvas.add({0, Texture::blob, class_colour(rng, -1), 4, 0, cx - r, cy - r, cx + r, cy + r});
        if (rng.chance(0.5))
            canvas.ellipse(o, cx, cy, r, r * rng.uniform(0.5, 1.0));
        else
            canvas.polygon(o, {{cx - r, cy + r}, {cx, cy - r}, {cx + r, cy + r * 0.4}});
    }

    // ---- scenes ----------------------------------------------------------------------------------

    double random_ground(double horizon) { return rng.uniform(std::max(horizon + 4, H() * 0.55), H() * 0.98); }

    // Draws an instance of `cls` somewhere plausible, standing at ground_y (random if negative);
    // also used to force the featured class into a scene.
    void place(int cls, double horizon, bool indoor, double ground_y = -1) {
        namespace id = synthetic_ids;
        const double h = H(), w = W();
        if (ground_y < 0) ground_y = random_ground(horizon);
        const double depth = (ground_y - horizon) / std::max(1.0, h - horizon);  // 0 at the horizon, 1 at the bottom
        const double s = h * (0.15 + 0.45 * depth);
        const double x = rng.uniform(w * 0.12, w * 0.88);
        switch (cls) {
            case id::tree: tree(x, ground_y, s * 1.4); break;
            case id::person: person(x, ground_y, s); break;
            case id::car: car(x, ground_y, s * 0.6); break;
            case id::bed: bed(x, ground_y, s * 0.8); break;
            case id::table: table(x, ground_y, s * 0.7); break;
            case id::building: {
                const double bw = w * rng.uniform(0.15, 0.3);
                building(x - bw / 2, x + bw / 2, horizon - h * rng.uniform(0.15, 0.35), horizon + 2);
                break;
            }
            case id::windowpane: {  // on the wall, or a shop window at a building's foot
                const double ww = w * rng.uniform(0.1, 0.18), wh = h * rng.uniform(0.12, 0.22);
                const double y0 = indoor ? h * rng.uniform(0.2, 0.35) : std::max(0.0, horizon - wh - 2);
                window(x - ww / 2, y0, x + ww / 2, y0 + wh);
                break;
            }
            case id::door: {
                const double dw = w * rng.uniform(0.08, 0.13);
                door(x - dw / 2, horizon - h * 0.3, x + dw / 2, horizon);
                break;
            }
            case id::water: {
                const int o = object(id::water, 0, horizon, w, h, std::max(4.0, h * 0.06));
                canvas.ellipse(o, x, ground_y, w * rng.uniform(0.15, 0.3), (h - horizon) * rng.uniform(0.12, 0.25));
                break;
            }
            case id::road: {
                const int o = object(id::road, 0, horizon, w, h, h * 0.08);
                canvas.polygon(
                    o, {{x - w * 0.02, horizon}, {x + w * 0.02, horizon}, {x + w * 0.25, h}, {x - w * 0.25, h}});
                break;
            }
            default: {  // wall, floor, ceiling, sky, grass: a patch in their usual place
                const double py = cls == id::ceiling || cls == id::sky ? h * 0.1 : cls == id::wall ? h * 0.4 : h * 0.8;
                const int o = object(cls, 0, 0, w, h);
                canvas.rect(o, x - w * 0.1, py - h * 0.08, x + w * 0.1, py + h * 0.08);
            }
        }
    }

    double outdoor() {
        namespace id = synthetic_ids;
        const double h = H(), w = W();
        const double horizon = h * rng.uniform(0.35, 0.55);
        const int sky = object(id::sky, 0, 0, w, horizon, h * 0.25);
        canvas.rect(sky, 0, 0, w, h);  // all of it: the grass covers the lower part
        const int grass = object(id::grass, 0, horizon, w, h);
        // a gently rolling horizon: the grass polygon's top edge is a few random heights
        std::vector<Point> ground{{0, h}};
        for (int k = 0; k <= 6; ++k) ground.push_back({w * k / 6.0, horizon + rng.uniform(-0.03, 0.01) * h});
        ground.push_back({w, h});
        canvas.polygon(grass, ground);
        if (rng.chance(0.6)) place(id::water, horizon, false);
        if (rng.chance(0.65)) place(id::road, horizon, false);
        const int buildings = rng.integer(0, 3);
        for (int i = 0; i < buildings; ++i) place(id::building, horizon, false);
        // objects drawn far to near, so nearer ones cover farther ones
        std::vector<std::pair<double, int>> items;  // (ground y, class)
        for (int i = rng.integer(0, 3); i > 0; --i) items.emplace_back(random_ground(horizon), id::tree);
        for (int i = rng.integer(0, 2); i > 0; --i) items.emplace_back(random_ground(horizon), id::car);
        for (int i = rng.integer(0, 2); i > 0; --i) items.emplace_back(random_ground(horizon), id::person);
        std::sort(items.begin(), items.end());
        for (const auto& [y, cls] : items) place(cls, horizon, false, y);
        return horizon;
    }

    double indoor() {
        namespace id = synthetic_ids;
        const double h = H(), w = W();
        // the back wall, and ceiling, floor and side walls as trapezoids toward it
        const double bx0 = w * rng.uniform(0.15, 0.3), bx1 = w * rng.uniform(0.7, 0.85);
        const double by0 = h * rng.uniform(0.15, 0.28), by1 = h * rng.uniform(0.55, 0.7);
        const int back = object(id::wall, bx0, by0, bx1, by1);
        canvas.rect(back, 0, 0, w, h);  // all of it first: the trapezoids below leave no pixel undrawn
        const int ceiling = object(id::ceiling, 0, 0, w, by0);
        canvas.polygon(ceiling, {{0, 0}, {w, 0}, {bx1, by0}, {bx0, by0}});
        const int floor = object(id::floor, 0, by1, w, h, h * 0.08);
        canvas.polygon(floor, {{bx0, by1}, {bx1, by1}, {w, h}, {0, h}});
        const Rgb side = scale(canvas.objects()[std::size_t(back)].base, 0.85);  // the side walls are in shade
        const int left = part(id::wall, Texture::plaster, side, 0, 0, bx0, h);
        canvas.polygon(left, {{0, 0}, {bx0, by0}, {bx0, by1}, {0, h}});
        const int right = part(id::wall, Texture::plaster, side, bx1, 0, w, h);
        canvas.polygon(right, {{w, 0}, {w, h}, {bx1, by1}, {bx1, by0}});
        for (int i = rng.integer(0, 2); i > 0; --i) {
            const double ww = (bx1 - bx0) * rng.uniform(0.15, 0.3), wh = (by1 - by0) * rng.uniform(0.3, 0.5);
            const double x0 = rng.uniform(bx0 + 2, bx1 - ww - 2), y0 = by0 + (by1 - by0) * rng.uniform(0.1, 0.3);
            window(x0, y0, x0 + ww, y0 + wh);
        }
        if (rng.chance(0.5)) {
            const double dw = (bx1 - bx0) * 0.14, x0 = rng.uniform(bx0 + 2, bx1 - dw - 2);
            door(x0, by0 + (by1 - by0) * 0.3, x0 + dw, by1);
        }
        std::vector<std::pair<double, int>> items;  // (ground y, class), drawn far to near
        if (rng.chance(0.6)) items.emplace_back(random_ground(by1), id::bed);
        if (rng.chance(0.5)) items.emplace_back(random_ground(by1), id::table);
        for (int i = rng.integer(0, 2); i > 0; --i) items.emplace_back(random_ground(by1), id::person);
        std::sort(items.begin(), items.end());
        for (const auto& [y, cls] : items) place(cls, by1, true, y);
        return by1;
    }
};

inline bool indoor_class(int cls) {
    namespace id = synthetic_ids;
    return cls == id::wall || cls == id::floor || cls == id::ceiling || cls == id::bed || cls == id::door ||
           cls == id::table || cls == id::windowpane;
}
inline bool outdoor_class(int cls) {
    namespace id = synthetic_ids;
    return cls == id::sky || cls == id::grass || cls == id::road || cls == id::water || cls == id::tree ||
           cls == id::car || cls == id::building;
}

// A 64-bit mix of the seed, split and index (splitmix64's finaliser), the key of one image.
inline std::uint64_t image_key(std::uint64_t seed, Split split, std::int64_t index) {
    std::uint64_t z = seed * 0x9E3779B97F4A7C15ull + (split == Split::training ? 0x1234567ull : 0x89ABCDEFull) +
                      std::uint64_t(index) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

}  // namespace detail::synthetic

// Scene `index` of `split`: height `size`, width between size and 4/3 size (ADE's images are
// mostly landscape), both at least 32.
inline SyntheticScene render_synthetic(std::uint64_t seed, Split split, std::int64_t index, int size) {
    using namespace detail::synthetic;
    WEFT_CHECK(size >= 32 && size <= 4096, "make_synthetic: size ", size, " is outside [32, 4096]");
    WEFT_CHECK(index >= 0, "make_synthetic: negative image index ", index);
    const std::uint64_t key = image_key(seed, split, index);
    Rng rng(key);
    const int h = size, w = int(std::lround(size * rng.uniform(1.0, 4.0 / 3.0)));
    SceneBuilder scene{Rng(key ^ 0x5CE4Eull), Canvas(h, w), key};

    const auto& classes = synthetic_classes();
    const int featured = classes[std::size_t(index % std::int64_t(classes.size()))].index;
    const bool indoor = indoor_class(featured) ? true : outdoor_class(featured) ? false : rng.chance(0.5);
    const double horizon = indoor ? scene.indoor() : scene.outdoor();
    for (int i = rng.integer(0, 2); i > 0; --i) scene.other_blob();

    // Guarantee the featured class (it may have been left out or covered): draw one on top.
    bool present = false;
    for (int y = 0; y < h && !present; ++y)
        for (int x = 0; x < w && !present; ++x) {
            const int o = scene.canvas.owner(y, x);
            present = o >= 0 && scene.canvas.objects()[std::size_t(o)].label == featured + 1;
        }
    if (!present) scene.place(featured, horizon, indoor);

    SyntheticScene out{weft::Tensor<std::uint8_t, 3>::empty({h, w, 3}), weft::Tensor<std::uint8_t, 2>::empty({h, w})};
    std::uint8_t* img = out.image.data();
    std::uint8_t* ann = out.annotation.data();
    const double exposure = rng.uniform(0.85, 1.15);  // a per-image camera: brightness and noise
    const double noise = rng.uniform(2, 6);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            const int o = scene.canvas.owner(y, x);
            WEFT_CHECK(o >= 0, "make_synthetic: pixel (", y, ", ", x, ") was not drawn (a layout bug)");
            const Object& obj = scene.canvas.objects()[std::size_t(o)];
            const Rgb c = shade(obj, key + std::uint64_t(o) * 7919, x, y);
            const std::size_t p = std::size_t(y) * std::size_t(w) + std::size_t(x);
            const double n = (hash01(key, x, y, 11) - 0.5) * 2 * noise;
            img[3 * p + 0] = std::uint8_t(std::lround(clamp255(c.r * exposure + n)));
            img[3 * p + 1] = std::uint8_t(std::lround(clamp255(c.g * exposure + n)));
            img[3 * p + 2] = std::uint8_t(std::lround(clamp255(c.b * exposure + n)));
            ann[p] = obj.label;
        }
    return out;
}

// What make_synthetic wrote.
struct SyntheticSet {
    std::filesystem::path root;  // holds images/ and annotations/
    std::int64_t n_train = 0, n_val = 0;
    std::array<std::int64_t, 151> train_pixels{}, val_pixels{};  // pixels per PNG value (0 = other)
};

// Writes n_train + n_val scenes under out_dir in the ADEChallengeData2016 layout:
// images/{training,validation}/ADE_{train,val}_NNNNNNNN.jpg (RGB, JPEG quality 95) and
// annotations/{training,validation}/ADE_..._NNNNNNNN.png (grey, ADE's encoding). Files are written
// atomically (a temporary file renamed); existing files of the same names are replaced.
inline SyntheticSet make_synthetic(const std::filesystem::path& out_dir, std::int64_t n_train, std::int64_t n_val,
                                   int size, std::uint64_t seed) {
    WEFT_CHECK(n_train >= 0 && n_val >= 0, "make_synthetic: negative image count (", n_train, " training, ", n_val,
               " validation)");
    SyntheticSet set;
    set.root = out_dir;
    set.n_train = n_train;
    set.n_val = n_val;
    for (Split split : {Split::training, Split::validation}) {
        const std::int64_t n = split == Split::training ? n_train : n_val;
        const auto images = out_dir / "images" / split_name(split);
        const auto annotations = out_dir / "annotations" / split_name(split);
        std::error_code ec;
        for (const auto& dir : {images, annotations}) {
            std::filesystem::create_directories(dir, ec);
            WEFT_CHECK(!ec, "make_synthetic: cannot create the folder \"", dir.string(), "\": ", ec.message());
        }
        std::vector<std::array<std::int64_t, 151>> counts(static_cast<std::size_t>(n));
        weft::parallel_for(0, n, 1, [&](weft::index_t b, weft::index_t e) {
            for (weft::index_t i = b; i < e; ++i) {
                const SyntheticScene s = render_synthetic(seed, split, i, size);
                const std::string stem = synthetic_stem(split, i);
                weft::data::write_jpeg(images / (stem + ".jpg"), s.image, 95);
                weft::data::write_png(annotations / (stem + ".png"), s.annotation);
                auto& c = counts[std::size_t(i)];
                c.fill(0);
                const std::uint8_t* a = s.annotation.data();
                for (weft::index_t k = 0; k < s.annotation.numel(); ++k) ++c[a[k]];
            }
        });
        auto& total = split == Split::training ? set.train_pixels : set.val_pixels;
        for (const auto& c : counts)
            for (std::size_t v = 0; v < c.size(); ++v) total[v] += c[v];
    }
    return set;
}

}  // namespace denseclip

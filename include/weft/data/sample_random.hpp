// weft/data/sample_random.hpp: the random stream of one training sample.
//
//   SampleRandom rng(seed, epoch, index);      // same (seed, epoch, index) -> same numbers
//   double r = rng.uniform();                  // [0, 1), 53 bits
//   int k = rng.randint(-18, 18);              // [-18, 18): numpy's randint(low, high) range
//
// The data pipeline draws its random choices (scale ratio, crop offset, flip, photometric
// parameters) from a stream that depends only on (seed, epoch, sample index), never on which
// worker thread runs the sample or in what order: a run is reproducible with any thread count.
// The stream is weft's Philox generator (core/philox.hpp) keyed by a seed mixed from the three
// numbers; each draw consumes one Philox block (4 words) through Generator::advance.
#pragma once

#include <cstdint>

#include "../core/error.hpp"
#include "../core/philox.hpp"

namespace weft::data {

class SampleRandom {
public:
    // A stream for sample `index` of `epoch` under the run's `seed`.
    SampleRandom(std::uint64_t seed, std::uint64_t epoch, std::uint64_t index)
        : gen_(mix(mix(mix(seed) ^ epoch) ^ (index * 0x9E3779B97F4A7C15ull))) {}
    explicit SampleRandom(Generator g) : gen_(g) {}

    // Uniform double in [0, 1) with 53 random bits (numpy's random_sample has 53 too).
    double uniform() {
        const PhiloxBlock b = next();
        return random::uniform_double(b.w[0], b.w[1]);
    }
    // Uniform double in [low, high).
    double uniform(double low, double high) { return low + (high - low) * uniform(); }
    // Uniform integer in [low, high) (high exclusive, as numpy's randint); unbiased (64-bit
    // draw reduced by rejection of the short top range).
    std::int64_t randint(std::int64_t low, std::int64_t high) {
        WEFT_CHECK(high > low, "SampleRandom::randint: empty range [", low, ", ", high, ")");
        const std::uint64_t range = std::uint64_t(high - low);
        const std::uint64_t limit = ~std::uint64_t(0) - (~std::uint64_t(0) % range);
        for (;;) {
            const PhiloxBlock b = next();
            const std::uint64_t x = std::uint64_t(b.w[0]) << 32 | b.w[1];
            if (x < limit) return low + std::int64_t(x % range);
        }
    }
    // true with probability p.
    bool bernoulli(double p) { return uniform() < p; }

    const Generator& generator() const { return gen_; }

    // splitmix64's finaliser: nearby (seed, epoch, index) give unrelated Philox keys.
    static constexpr std::uint64_t mix(std::uint64_t z) {
        z += 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }

private:
    PhiloxBlock next() { return philox4x32_10(gen_.advance(1), 0, gen_.seed); }
    Generator gen_;
};

}  // namespace weft::data

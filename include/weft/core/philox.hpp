// weft/core/philox.hpp: the counter-based generator behind every random tensor.
//
//   Generator gen{42};
//   auto w = Tensor<float, 2>::rand({3, 4}, gen);         // advances gen by 3 blocks
//   {
//       ReplicaScope slice(gen, rank, world_size);        // this process holds 1/world_size of the batch
//       auto y = dropout(x_local, 0.1, true, gen);        // the mask the whole batch would draw here
//   }                                                     // gen is a whole-batch generator again
//
// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) maps a
// 128-bit counter and a 64-bit key to four random 32-bit words with no state between calls.
// Element i of a random tensor is a pure function of (seed, offset, i), so the CPU loop and the
// CUDA kernel produce the same numbers, in any order, on any number of threads.
#pragma once

#include <cmath>
#include <cstdint>

#include "config.hpp"
#include "error.hpp"

namespace weft {

struct PhiloxBlock {
    std::uint32_t w[4];
};

WEFT_HD inline PhiloxBlock philox4x32_10(std::uint64_t counter, std::uint64_t subsequence,
                                         std::uint64_t key) {
    std::uint32_t c0 = std::uint32_t(counter), c1 = std::uint32_t(counter >> 32);
    std::uint32_t c2 = std::uint32_t(subsequence), c3 = std::uint32_t(subsequence >> 32);
    std::uint32_t k0 = std::uint32_t(key), k1 = std::uint32_t(key >> 32);
    for (int round = 0; round < 10; ++round) {
        const std::uint64_t p0 = std::uint64_t(0xD2511F53u) * c0;
        const std::uint64_t p1 = std::uint64_t(0xCD9E8D57u) * c2;
        const std::uint32_t n0 = std::uint32_t(p1 >> 32) ^ c1 ^ k0;
        const std::uint32_t n2 = std::uint32_t(p0 >> 32) ^ c3 ^ k1;
        c1 = std::uint32_t(p1);
        c3 = std::uint32_t(p0);
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return {{c0, c1, c2, c3}};
}

// A seed and a position in its stream. Each random tensor consumes a range of counters and
// advances `offset` past it, so consecutive calls never reuse numbers.
struct Generator {
    std::uint64_t seed = 0;
    std::uint64_t offset = 0;
    // Data-parallel training: this process holds slice `replica` of `replicas` equal slices of
    // the global batch along the sample axis. Per-sample draws (dropout masks, drop-path
    // decisions, attention-weight dropout) take the numbers the single-process run on the whole
    // batch would give these samples, and advance the generator exactly as that global draw
    // does, so every replica's generator stays in step with the single-process one and N
    // processes with batch b train exactly as one process with batch N·b. Draws that are not
    // per sample (rand, randn, randint: initialisation, augmentation) ignore the slice: every
    // replica draws the whole tensor, as the single process does. Set it with ReplicaScope.
    // A per-sample draw on a tensor that is not this replica's slice of the batch (one every
    // replica holds whole, such as text features of the class names) must not see the slice:
    // give it a generator without one.
    std::uint64_t replica = 0, replicas = 1;

    constexpr Generator() = default;
    constexpr explicit Generator(std::uint64_t s) : seed(s) {}

    // Reserves `blocks` Philox blocks and returns the first.
    std::uint64_t advance(std::uint64_t blocks) {
        const std::uint64_t first = offset;
        offset += blocks;
        return first;
    }
};

// Puts a generator on one replica's slice of the batch (see Generator::replica) for the
// scope's lifetime and restores the slice it had before; dist/ opens one around each training
// step of a replica.
class ReplicaScope {
public:
    ReplicaScope(Generator& gen, std::uint64_t replica, std::uint64_t replicas)
        : gen_(gen), saved_replica_(gen.replica), saved_replicas_(gen.replicas) {
        WEFT_CHECK(replicas >= 1 && replica < replicas, "ReplicaScope: replica ", replica, " of ", replicas,
                   " replicas is out of range (need 0 <= replica < replicas)");
        gen.replica = replica;
        gen.replicas = replicas;
    }
    ~ReplicaScope() {
        gen_.replica = saved_replica_;
        gen_.replicas = saved_replicas_;
    }
    ReplicaScope(const ReplicaScope&) = delete;
    ReplicaScope& operator=(const ReplicaScope&) = delete;

private:
    Generator& gen_;
    std::uint64_t saved_replica_, saved_replicas_;
};

// The process-wide generator used when none is passed; `manual_seed` resets it.
inline Generator& default_generator() {
    static Generator g{0};
    return g;
}

// Keeps the replica slice: which part of the batch this process holds does not change with the seed.
inline void manual_seed(std::uint64_t seed) {
    Generator& g = default_generator();
    g.seed = seed;
    g.offset = 0;
}

namespace random {

WEFT_HD inline float uniform_float(std::uint32_t x) { return float(x >> 8) * 0x1.0p-24f; }  // [0, 1)

WEFT_HD inline double uniform_double(std::uint32_t hi, std::uint32_t lo) {  // [0, 1), 53 bits
    const std::uint64_t x = (std::uint64_t(hi) << 32 | lo) >> 11;
    return double(x) * 0x1.0p-53;
}

// Element-wise distributions as functors of the linear index i, usable on host and device.
// `blocks(n)` is how many Philox blocks n elements consume.
template <class T>
struct Uniform {
    std::uint64_t key, base;
    T low, high;
    static constexpr std::uint64_t per_block = std::is_same_v<T, double> ? 2 : 4;
    static std::uint64_t blocks(std::uint64_t n) { return (n + per_block - 1) / per_block; }
    WEFT_HD T operator()(index_t i) const {
        const PhiloxBlock b = philox4x32_10(base + std::uint64_t(i) / per_block, 0, key);
        const int lane = int(std::uint64_t(i) % per_block);
        if constexpr (std::is_same_v<T, double>) {
            return low + (high - low) * uniform_double(b.w[2 * lane], b.w[2 * lane + 1]);
        } else {
            return low + (high - low) * uniform_float(b.w[lane]);
        }
    }
};

// Box-Muller: a pair of uniforms gives two normals, one to each of two neighbouring elements.
template <class T>
struct Normal {
    std::uint64_t key, base;
    T mean, stddev;
    static constexpr std::uint64_t per_block = std::is_same_v<T, double> ? 1 : 2;
    static std::uint64_t blocks(std::uint64_t n) { return (n + per_block - 1) / per_block; }
    WEFT_HD T operator()(index_t i) const {
        const PhiloxBlock b = philox4x32_10(base + std::uint64_t(i) / per_block, 0, key);
        if constexpr (std::is_same_v<T, double>) {
            const double u1 = 1.0 - uniform_double(b.w[0], b.w[1]);  // (0, 1]: log stays finite
            const double u2 = uniform_double(b.w[2], b.w[3]);
            return mean + stddev * (sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
        } else {
            const float u1 = 1.0f - uniform_float(b.w[0]);
            const float u2 = uniform_float(b.w[1]);
            const float r = sqrtf(-2.0f * logf(u1));
            const float theta = 6.2831853071795865f * u2;
            return mean + stddev * (i % 2 == 0 ? r * cosf(theta) : r * sinf(theta));
        }
    }
};

// Uniform integers in [low, high): 32-bit multiply-shift for small ranges, 64-bit modulo else.
template <class T>
struct RandInt {
    std::uint64_t key, base;
    std::int64_t low, high;
    static constexpr std::uint64_t per_block = 2;
    static std::uint64_t blocks(std::uint64_t n) { return (n + per_block - 1) / per_block; }
    WEFT_HD T operator()(index_t i) const {
        const PhiloxBlock b = philox4x32_10(base + std::uint64_t(i) / per_block, 0, key);
        const int lane = int(std::uint64_t(i) % per_block);
        const std::uint64_t range = std::uint64_t(high - low);
        std::uint64_t r;
        if (range <= 0xffffffffull) r = (std::uint64_t(b.w[2 * lane]) * range) >> 32;
        else r = (std::uint64_t(b.w[2 * lane]) << 32 | b.w[2 * lane + 1]) % range;
        return T(low + std::int64_t(r));
    }
};

}  // namespace random
}  // namespace weft

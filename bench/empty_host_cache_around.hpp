// bench/empty_host_cache_around.hpp: weft's side of a case's peak_rss_mb (peak_memory.hpp).
//
//   const weft_bench::EmptyHostCacheAround cache_emptied;   // first thing in the case
//   const weft_bench::PeakRss peak;
//
// Empties weft's cache of large blocks (weft::empty_host_cache) when made and again when
// destroyed: made first in a case, it is destroyed last, after the model and its tensors have
// gone back to the cache. So earlier cases' cached blocks are not counted in this case's peak,
// and this case's not in the next one's (libtorch's side, which runs next, cannot empty weft's
// cache itself).
#pragma once

#include <weft/core/host_cache.hpp>

namespace weft_bench {

struct EmptyHostCacheAround {
    EmptyHostCacheAround() { weft::empty_host_cache(); }
    ~EmptyHostCacheAround() { weft::empty_host_cache(); }
    EmptyHostCacheAround(const EmptyHostCacheAround&) = delete;
    EmptyHostCacheAround& operator=(const EmptyHostCacheAround&) = delete;
};

}  // namespace weft_bench

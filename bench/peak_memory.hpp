// bench/peak_memory.hpp: the process's peak resident memory over one benchmark case, for the
// peak_rss_mb counter of the training-step benchmarks (weft's and libtorch's sides alike: no
// weft or torch includes).
//
//   weft_bench::PeakRss peak;               // before the case builds its model
//   ... build model and optimizer, warm-up step, timed loop ...
//   if (const auto mb = peak.mib()) state.counters["peak_rss_mb"] = *mb;
//
// Linux keeps the high-water mark of a process's resident set (VmHWM in /proc/self/status), and
// writing "5" to /proc/self/clear_refs resets it to the current resident set (Linux >= 4.0). So
// the mark read after the timed loop is the largest the process was during this case alone:
// model, gradients, optimizer state and the step's activations, on top of what was resident
// when the case began (the binary, its libraries, libtorch's and weft's thread pools), which is
// the same for both sides of a pair in one run. Before the reset, malloc_trim hands back to the
// kernel what glibc kept of earlier cases' freed memory, so that it does not count here; weft's
// side first empties weft's own cache of large blocks (weft::empty_host_cache) for the same
// reason. Where clear_refs cannot be written (an older kernel, a restricted /proc), the mark
// would be the whole run's, not the case's: mib() then gives nothing and the counter is left
// out rather than reported wrong.
#pragma once

#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace weft_bench {

class PeakRss {
public:
    PeakRss() : armed_(reset()) {}

    // The peak resident set since construction, in MiB; nothing if it could not be reset.
    std::optional<double> mib() const {
        if (!armed_) return std::nullopt;
        std::ifstream status("/proc/self/status");
        for (std::string line; std::getline(status, line);) {
            if (line.rfind("VmHWM:", 0) != 0) continue;
            std::istringstream fields(line.substr(6));
            double kib = 0;
            if (fields >> kib) return kib / 1024;  // the kernel writes "VmHWM:   123456 kB"
        }
        return std::nullopt;
    }

private:
    static bool reset() {
#if defined(__GLIBC__)
        ::malloc_trim(0);
#endif
        std::ofstream clear("/proc/self/clear_refs");
        if (!clear) return false;
        clear << "5";
        clear.flush();
        return bool(clear);
    }

    bool armed_;
};

}  // namespace weft_bench

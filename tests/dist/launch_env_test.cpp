// dist::launch_env: the rank and world size each launcher announces.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include <weft/dist/launch_env.hpp>

using namespace weft;

namespace {

// Sets environment variables for one test case and restores them after.
class EnvScope {
public:
    EnvScope(std::initializer_list<std::pair<const char*, const char*>> vars) {
        for (const char* name : all) {
            const char* v = std::getenv(name);
            saved_.push_back({name, v ? std::optional<std::string>(v) : std::nullopt});
            unsetenv(name);
        }
        for (auto [k, v] : vars) setenv(k, v, 1);
    }
    ~EnvScope() {
        for (auto& [k, v] : saved_) {
            if (v) setenv(k, v->c_str(), 1);
            else unsetenv(k);
        }
    }

private:
    static constexpr const char* all[] = {"WEFT_RANK",        "WEFT_WORLD_SIZE",      "WEFT_LOCAL_RANK",
                                          "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                                          "PMI_RANK",         "PMI_SIZE",             "MPI_LOCALRANKID",
                                          "SLURM_PROCID",     "SLURM_NTASKS",         "SLURM_LOCALID"};
    std::vector<std::pair<const char*, std::optional<std::string>>> saved_;
};

}  // namespace

TEST_CASE("launch_env reads each launcher's variables", "[dist]") {
    {
        EnvScope env({});
        const auto e = dist::launch_env();
        CHECK(e.rank == 0);
        CHECK(e.size == 1);
        CHECK(e.launcher == "none");
    }
    {
        EnvScope env({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "8"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}});
        const auto e = dist::launch_env();
        CHECK(e.rank == 3);
        CHECK(e.size == 8);
        CHECK(e.local_rank == 1);
        CHECK(e.launcher == "openmpi");
    }
    {
        EnvScope env({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "1"}});
        const auto e = dist::launch_env();
        CHECK(e.rank == 5);
        CHECK(e.size == 16);
        CHECK(e.local_rank == 1);
        CHECK(e.launcher == "slurm");
    }
    {
        // weft's own variables win over the launcher's; the local rank defaults to the rank.
        EnvScope env({{"WEFT_RANK", "1"}, {"WEFT_WORLD_SIZE", "2"}, {"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "16"}});
        const auto e = dist::launch_env();
        CHECK(e.rank == 1);
        CHECK(e.size == 2);
        CHECK(e.local_rank == 1);
        CHECK(e.launcher == "weft");
    }
    {
        EnvScope env({{"PMI_RANK", "0"}, {"PMI_SIZE", "4"}});
        CHECK(dist::launch_env().launcher == "pmi");
    }
}

TEST_CASE("launch_env rejects malformed variables, naming them", "[dist]") {
    {
        EnvScope env({{"WEFT_RANK", "two"}, {"WEFT_WORLD_SIZE", "4"}});
        CHECK_THROWS_WITH(dist::launch_env(), Catch::Contains("WEFT_RANK='two'"));
    }
    {
        EnvScope env({{"WEFT_RANK", "4"}, {"WEFT_WORLD_SIZE", "4"}});
        CHECK_THROWS_WITH(dist::launch_env(), Catch::Contains("WEFT_RANK=4 is not a rank of WEFT_WORLD_SIZE=4"));
    }
}

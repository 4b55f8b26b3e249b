// weft/io/official_checkpoints.hpp: the SHA-256 of OpenAI's released CLIP checkpoints, and a check
// that a file carrying one of their names is the released file.
//
//   verify_official_checkpoint("ViT-B-16.pt");   // hashes the file; throws if it differs
//
// OpenAI publishes each file at openaipublic.azureedge.net/clip/models/<sha256>/<name>, and its
// loader refuses a download whose hash differs from the path component. weft does the same for a
// file whose name (not directory) is one of those below: a truncated download or a file
// overwritten with something else fails here with a message saying so, rather than later with a
// confusing shape or pickle error. Files with other names are not checked.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "../core/error.hpp"
#include "sha256.hpp"

namespace weft {

struct OfficialCheckpoint {
    std::string_view file_name;
    std::string_view sha256;
};

// The checkpoints DenseCLIP uses (docs/torch-archive.md says where the hashes come from).
inline constexpr OfficialCheckpoint official_clip_checkpoints[] = {
    {"RN50.pt", "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762"},
    {"RN101.pt", "8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599"},
    {"ViT-B-16.pt", "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f"},
};

// The expected SHA-256 when `path`'s file name is an official release name, else nothing.
inline std::optional<std::string_view> official_sha256(const std::filesystem::path& path) {
    const std::string name = path.filename().string();
    for (const auto& c : official_clip_checkpoints)
        if (c.file_name == name) return c.sha256;
    return std::nullopt;
}

// Throws weft::Error when `path` has an official name but not the official content. Returns
// true when the file was checked (and matched), false when its name is not an official one.
inline bool verify_official_checkpoint(const std::filesystem::path& path) {
    const auto want = official_sha256(path);
    if (!want) return false;
    const std::string got = sha256_file(path);
    WEFT_CHECK(got == *want, "checkpoint '", path.string(), "': its SHA-256 is ", got, ", but the released ",
               path.filename().string(), " has ", *want,
               " (an incomplete or corrupted download, or a different file under the official name; "
               "download it again, or rename it to skip this check)");
    return true;
}

}  // namespace weft

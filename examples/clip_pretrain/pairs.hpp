// examples/clip_pretrain/pairs.hpp: the listings CLIP pre-training reads: image-caption pairs
// for training, and a labelled folder (one subfolder per class) for zero-shot evaluation.
//
//   auto pairs = clip_pretrain::read_pairs("data/pairs/train.tsv");   // or .jsonl, or a folder
//   // pairs[0].image == "data/pairs/train/00000.png", pairs[0].caption == "a red circle"
//   auto classes = clip_pretrain::read_class_list("data/pairs/classes.txt");
//   auto eval = clip_pretrain::read_labelled_folder("data/pairs/heldout", classes);
//   // eval.class_names == classes; eval.images[k] == {".../heldout/red_square/00000.png", 1}
//
// read_pairs takes three forms of `source`:
//   * a .tsv file, one pair a line: `image_path<TAB>caption` (the caption is everything after
//     the first tab);
//   * a .jsonl file, one JSON object a line with string keys "image" and "caption" (other keys
//     are ignored);
//   * a folder of images (.png, .jpg, .jpeg, .bmp, searched recursively), each with a caption
//     file of the same stem next to it (`cat.jpg` + `cat.txt`); the caption is the file's text
//     with surrounding white space removed and line breaks turned into spaces.
// In list files, blank lines are skipped, a trailing '\r' is dropped, and relative image paths
// resolve against the list file's folder (not the working directory), so a data set can be
// moved as a whole. Every image must exist and every caption be non-empty; errors name the
// file and line. The pairs come in file order (folders: sorted by path).
//
// read_labelled_folder: `dir/<class folder>/<images>`; a class's text is its folder name with
// '_' read as ' ' ("red_circle" -> "red circle"). Without candidates the classes are the
// folders, sorted by name; with candidates (e.g. read_class_list of classes.txt), the class
// index is the text's position in the candidates, so a folder that holds only some classes
// still scores against all of them, and a folder not among the candidates is an error. Images
// are sorted by path, classes in order: the listing is the same on every machine.
#pragma once

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <weft/core/error.hpp>

namespace clip_pretrain {

struct Pair {
    std::filesystem::path image;
    std::string caption;
};

struct LabelledFolder {
    std::vector<std::string> class_names;
    std::vector<std::pair<std::filesystem::path, int>> images;  // (image file, index into class_names)
};

namespace detail::pairs {

inline bool is_image_file(const std::filesystem::path& p) {
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
    return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

inline std::string trimmed(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r\n\f\v");
    if (b == std::string::npos) return {};
    const auto e = s.find_last_not_of(" \t\r\n\f\v");
    return s.substr(b, e - b + 1);
}

inline std::string where(const std::filesystem::path& file, std::size_t line) {
    return "\"" + file.string() + "\" line " + std::to_string(line);
}

// The lines of a text file, each with its 1-based number; a trailing '\r' dropped.
inline std::vector<std::pair<std::size_t, std::string>> lines_of(const std::filesystem::path& file, const char* op) {
    std::ifstream in(file, std::ios::binary);
    WEFT_CHECK(in.good(), op, ": cannot open \"", file.string(), "\"");
    std::vector<std::pair<std::size_t, std::string>> out;
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);) {
        ++n;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        out.emplace_back(n, std::move(line));
    }
    WEFT_CHECK(!in.bad(), op, ": reading \"", file.string(), "\" failed");
    return out;
}

inline Pair checked_pair(const std::filesystem::path& list, std::size_t line, const std::string& image,
                         const std::string& caption) {
    WEFT_CHECK(!image.empty(), "read_pairs: ", where(list, line), ": empty image path");
    WEFT_CHECK(!trimmed(caption).empty(), "read_pairs: ", where(list, line), ": empty caption for \"", image, "\"");
    std::filesystem::path p(image);
    if (p.is_relative()) p = list.parent_path() / p;
    std::error_code ec;
    WEFT_CHECK(std::filesystem::is_regular_file(p, ec), "read_pairs: ", where(list, line), ": image \"", p.string(),
               "\" ", std::filesystem::exists(p, ec) ? "is not a file" : "does not exist");
    return {p, caption};
}

inline std::vector<Pair> read_tsv(const std::filesystem::path& file) {
    std::vector<Pair> out;
    for (const auto& [n, line] : lines_of(file, "read_pairs")) {
        if (trimmed(line).empty()) continue;
        const auto tab = line.find('\t');
        WEFT_CHECK(tab != std::string::npos, "read_pairs: ", where(file, n),
                   ": no tab between the image path and the caption (expected `image<TAB>caption`)");
        out.push_back(checked_pair(file, n, line.substr(0, tab), line.substr(tab + 1)));
    }
    return out;
}

inline std::vector<Pair> read_jsonl(const std::filesystem::path& file) {
    std::vector<Pair> out;
    for (const auto& [n, line] : lines_of(file, "read_pairs")) {
        if (trimmed(line).empty()) continue;
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::parse_error& e) {
            WEFT_FAIL("read_pairs: ", where(file, n), ": bad JSON: ", e.what());
        }
        WEFT_CHECK(j.is_object(), "read_pairs: ", where(file, n), ": expected a JSON object with \"image\" and ",
                   "\"caption\", got ", j.type_name());
        for (const char* key : {"image", "caption"}) {
            WEFT_CHECK(j.contains(key), "read_pairs: ", where(file, n), ": no \"", key, "\" key");
            WEFT_CHECK(j[key].is_string(), "read_pairs: ", where(file, n), ": \"", key, "\" must be a string, got ",
                       j[key].type_name());
        }
        out.push_back(checked_pair(file, n, j["image"].get<std::string>(), j["caption"].get<std::string>()));
    }
    return out;
}

inline std::string read_caption_file(const std::filesystem::path& txt) {
    std::ifstream in(txt, std::ios::binary);
    WEFT_CHECK(in.good(), "read_pairs: cannot open the caption file \"", txt.string(), "\"");
    std::ostringstream ss;
    ss << in.rdbuf();
    std::string text = trimmed(ss.str());
    // One caption per image: line breaks inside it become spaces ("\r\n" one space).
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;
        out += (text[i] == '\n' || text[i] == '\r') ? ' ' : text[i];
    }
    return out;
}

inline std::vector<Pair> read_folder(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    std::vector<fs::path> images;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(dir, fs::directory_options::follow_directory_symlink, ec), end;
         !ec && it != end; it.increment(ec))
        if (is_image_file(it->path()) && it->is_regular_file(ec)) images.push_back(it->path());
    WEFT_CHECK(!ec, "read_pairs: cannot list the folder \"", dir.string(), "\": ", ec.message());
    WEFT_CHECK(!images.empty(), "read_pairs: the folder \"", dir.string(),
               "\" holds no images (.png, .jpg, .jpeg, .bmp, each with a same-stem .txt caption)");
    std::sort(images.begin(), images.end());
    std::vector<Pair> out;
    for (const auto& img : images) {
        fs::path txt = img;
        txt.replace_extension(".txt");
        WEFT_CHECK(fs::is_regular_file(txt, ec), "read_pairs: image \"", img.string(), "\" has no caption file \"",
                   txt.string(), "\"");
        std::string caption = read_caption_file(txt);
        WEFT_CHECK(!caption.empty(), "read_pairs: the caption file \"", txt.string(), "\" is empty");
        out.push_back({img, std::move(caption)});
    }
    return out;
}

}  // namespace detail::pairs

// Image-caption pairs from a .tsv, a .jsonl or a folder of images with .txt captions.
inline std::vector<Pair> read_pairs(const std::filesystem::path& source) {
    namespace fs = std::filesystem;
    std::error_code ec;
    WEFT_CHECK(fs::exists(source, ec), "read_pairs: \"", source.string(), "\" does not exist");
    if (fs::is_directory(source, ec)) return detail::pairs::read_folder(source);
    const std::string ext = source.extension().string();
    std::vector<Pair> out;
    if (ext == ".tsv")
        out = detail::pairs::read_tsv(source);
    else if (ext == ".jsonl")
        out = detail::pairs::read_jsonl(source);
    else
        WEFT_FAIL("read_pairs: \"", source.string(),
                  "\" is neither a .tsv (image<TAB>caption), a .jsonl ({\"image\": ..., \"caption\": ...}) ",
                  "nor a folder of images with .txt captions");
    WEFT_CHECK(!out.empty(), "read_pairs: \"", source.string(), "\" lists no pairs");
    return out;
}

// Class texts, one per line (classes.txt): surrounding white space removed, blank lines skipped;
// a repeated text is an error (its index would be ambiguous).
inline std::vector<std::string> read_class_list(const std::filesystem::path& file) {
    std::vector<std::string> out;
    std::map<std::string, std::size_t> seen;
    for (const auto& [n, line] : detail::pairs::lines_of(file, "read_class_list")) {
        std::string c = detail::pairs::trimmed(line);
        if (c.empty()) continue;
        const auto [it, fresh] = seen.emplace(c, n);
        WEFT_CHECK(fresh, "read_class_list: ", detail::pairs::where(file, n), ": \"", c, "\" repeats line ",
                   it->second);
        out.push_back(std::move(c));
    }
    WEFT_CHECK(!out.empty(), "read_class_list: \"", file.string(), "\" lists no classes");
    return out;
}

// The images of `dir`/<class folder>/, labelled by folder; see the top of this file.
// `candidates` empty: the classes are the folders. Otherwise the class index is the position of
// the folder's text among `candidates`.
inline LabelledFolder read_labelled_folder(const std::filesystem::path& dir,
                                           const std::vector<std::string>& candidates = {}) {
    namespace fs = std::filesystem;
    std::error_code ec;
    WEFT_CHECK(fs::is_directory(dir, ec), "read_labelled_folder: \"", dir.string(), "\" is not a folder");
    std::vector<fs::path> folders;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        if (it->is_directory(ec)) folders.push_back(it->path());
    WEFT_CHECK(!ec, "read_labelled_folder: cannot list the folder \"", dir.string(), "\": ", ec.message());
    WEFT_CHECK(!folders.empty(), "read_labelled_folder: \"", dir.string(), "\" has no class subfolders");
    std::sort(folders.begin(), folders.end());

    LabelledFolder out;
    out.class_names = candidates;
    std::map<std::string, int> index;
    for (std::size_t i = 0; i < candidates.size(); ++i) {
        const auto [it, fresh] = index.emplace(candidates[i], int(i));
        WEFT_CHECK(fresh, "read_labelled_folder: the candidate class \"", candidates[i], "\" is listed twice");
    }
    std::map<std::string, fs::path> folder_of;  // class text -> folder, to catch "a_b" next to "a b"
    for (const auto& folder : folders) {
        std::string text = folder.filename().string();
        std::replace(text.begin(), text.end(), '_', ' ');
        const auto [prev, fresh] = folder_of.emplace(text, folder);
        WEFT_CHECK(fresh, "read_labelled_folder: the folders \"", prev->second.string(), "\" and \"", folder.string(),
                   "\" both name the class \"", text, "\"");
        int label;
        if (candidates.empty()) {
            label = int(out.class_names.size());
            out.class_names.push_back(text);
        } else {
            const auto it = index.find(text);
            WEFT_CHECK(it != index.end(), "read_labelled_folder: the folder \"", folder.string(), "\" (class \"", text,
                       "\") is not among the ", candidates.size(), " candidate classes");
            label = it->second;
        }
        std::vector<fs::path> images;
        for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec))
            if (detail::pairs::is_image_file(it->path()) && it->is_regular_file(ec)) images.push_back(it->path());
        WEFT_CHECK(!ec, "read_labelled_folder: cannot list the folder \"", folder.string(), "\": ", ec.message());
        WEFT_CHECK(!images.empty(), "read_labelled_folder: the class folder \"", folder.string(),
                   "\" holds no images (.png, .jpg, .jpeg, .bmp)");
        std::sort(images.begin(), images.end());
        for (auto& img : images) out.images.emplace_back(std::move(img), label);
    }
    return out;
}

}  // namespace clip_pretrain

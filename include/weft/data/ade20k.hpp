// weft/data/ade20k.hpp: the ADE20K scene-parsing benchmark (ADEChallengeData2016) as mmseg reads it.
//
//   data::Ade20k train("/data/ade/ADEChallengeData2016", "training");   // 20,210 pairs
//   data::SegSample s = train.get(0);   // image [H, W, 3] uint8 RGB, label [H, W] uint8 (0..149, 255)
//   const auto& names = data::ade20k_class_names();                      // 150 names, "wall" first
//
// Layout: <root>/images/<split>/**/*.jpg and <root>/annotations/<split>/**/*.png, the annotation
// of an image having the same relative path with ".png". As mmseg's CustomDataset, the file list
// is every ".jpg" under the image folder (recursively), sorted by relative path; a missing
// annotation is an error at construction (naming the image), not a silent skip.
//
// Labels: the PNG stores 0 = "other" (not one of the 150 classes) and 1..150 = classes.
// reduce_zero_label (ADE20KDataset's default) maps 0 -> 255 (ignored by the loss and metrics) and
// k -> k - 1, so classes are 0..149 in the order of ade20k_class_names(). get() checks that the
// annotation has the image's size and holds no value above 150, and names the file if not.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "image.hpp"

namespace weft::data {

// One decoded pair. The image is RGB (weft's decode); mmseg holds BGR until Normalize, and every
// weft transform is written for RGB so that the numbers are the same (docs/data.md).
struct SegSample {
    Tensor<std::uint8_t, 3> image;  // [H, W, 3] RGB
    Tensor<std::uint8_t, 2> label;  // [H, W] class indices, 255 = ignore
    std::string name;               // the image file, for error messages
};

// mmseg's LoadAnnotations(reduce_zero_label=True): 0 -> 255, k -> k - 1 (255 would stay 255;
// an ADE20K annotation never holds it). Returns a new tensor.
inline Tensor<std::uint8_t, 2> reduce_zero_label(const Tensor<std::uint8_t, 2>& label) {
    WEFT_CHECK(label.defined(), "reduce_zero_label: the label tensor is undefined");
    const auto in = label.contiguous();
    auto out = Tensor<std::uint8_t, 2>::empty(label.shape());
    const std::uint8_t* s = in.data();
    std::uint8_t* d = out.data();
    for (index_t i = 0, n = in.numel(); i < n; ++i) d[i] = s[i] == 0 ? 255 : s[i] == 255 ? 255 : std::uint8_t(s[i] - 1);
    return out;
}

// The 150 class names in mmseg's ADE20KDataset.CLASSES order (index 0 = "wall" = stored label 1),
// including the trailing space of "bed " (the CLIP tokenizer strips it).
inline const std::vector<std::string>& ade20k_class_names() {
    static const std::vector<std::string> names = {
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed ", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence",
    "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column",
    "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator",
    "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway",
    "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning",
    "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel", "pole", "land",
    "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship", "fountain",
    "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool", "barrel", "basket",
    "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name",
    "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
    };
    return names;
}

// Class names from a file of one name per line (such as classes.txt next to the dataset); the
// line's text is kept exactly, trailing spaces included. Throws naming the file if it cannot be
// read or holds no names.
inline std::vector<std::string> read_class_names(const std::filesystem::path& path) {
    std::ifstream in(path);
    WEFT_CHECK(in.good(), "read_class_names: cannot open '", path.string(), "'");
    std::vector<std::string> names;
    for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        names.push_back(line);
    }
    while (!names.empty() && names.back().empty()) names.pop_back();  // a final blank line
    WEFT_CHECK(!names.empty(), "read_class_names: '", path.string(), "' holds no class names");
    return names;
}

class Ade20k {
public:
    static constexpr int num_classes = 150;

    // <root>/images/<split> and <root>/annotations/<split>; split is usually "training" or
    // "validation".
    Ade20k(const std::filesystem::path& root, std::string_view split, bool reduce_zero_label = true)
        : Ade20k(Folders{}, root / "images" / split, root / "annotations" / split, reduce_zero_label, ".jpg", ".png") {}

    // Any pair of folders with the same relative layout (the sample set, a subset).
    static Ade20k from_folders(std::filesystem::path image_dir, std::filesystem::path annotation_dir,
                               bool reduce_zero_label = true, std::string_view image_suffix = ".jpg",
                               std::string_view annotation_suffix = ".png") {
        return Ade20k(Folders{}, std::move(image_dir), std::move(annotation_dir), reduce_zero_label, image_suffix,
                      annotation_suffix);
    }

private:
    struct Folders {};
    Ade20k(Folders, std::filesystem::path image_dir, std::filesystem::path annotation_dir, bool reduce_zero_label,
           std::string_view image_suffix, std::string_view annotation_suffix)
        : image_dir_(std::move(image_dir)), annotation_dir_(std::move(annotation_dir)), reduce_(reduce_zero_label) {
        namespace fs = std::filesystem;
        std::error_code ec;
        WEFT_CHECK(fs::is_directory(image_dir_, ec), "Ade20k: the image folder '", image_dir_.string(),
                   "' does not exist (expected <root>/images/<split> of ADEChallengeData2016)");
        WEFT_CHECK(fs::is_directory(annotation_dir_, ec), "Ade20k: the annotation folder '",
                   annotation_dir_.string(), "' does not exist (expected <root>/annotations/<split>)");
        for (auto it = fs::recursive_directory_iterator(image_dir_); it != fs::recursive_directory_iterator(); ++it) {
            if (!it->is_regular_file()) continue;
            const std::string fname = it->path().filename().string();
            if (fname.size() < image_suffix.size() ||
                fname.compare(fname.size() - image_suffix.size(), image_suffix.size(), image_suffix) != 0)
                continue;
            relative_.push_back(fs::relative(it->path(), image_dir_).string());
        }
        std::sort(relative_.begin(), relative_.end());  // mmseg sorts by file name (byte order)
        WEFT_CHECK(!relative_.empty(), "Ade20k: no '", image_suffix, "' images under '", image_dir_.string(), "'");
        annotations_.reserve(relative_.size());
        for (const auto& rel : relative_) {
            fs::path a = annotation_dir_ / rel;
            std::string s = a.string();
            s.replace(s.size() - image_suffix.size(), image_suffix.size(), annotation_suffix);
            WEFT_CHECK(fs::is_regular_file(s, ec), "Ade20k: the image '", (image_dir_ / rel).string(),
                       "' has no annotation: '", s, "' is missing");
            annotations_.push_back(std::move(s));
        }
    }

public:
    index_t size() const { return index_t(relative_.size()); }
    std::filesystem::path image_path(index_t i) const { return image_dir_ / relative_.at(std::size_t(check(i))); }
    const std::string& annotation_path(index_t i) const { return annotations_.at(std::size_t(check(i))); }
    bool reduces_zero_label() const { return reduce_; }

    // Decodes pair i and checks it: same height and width, labels 0..150. With
    // reduce_zero_label the label comes back reduced (0..149, 255).
    SegSample get(index_t i) const {
        SegSample s;
        const auto img_path = image_path(i);
        s.name = img_path.string();
        s.image = read_image(img_path);
        const std::string& ann = annotations_[std::size_t(i)];
        auto label = read_label_png(ann);
        WEFT_CHECK(label.size(0) == s.image.size(0) && label.size(1) == s.image.size(1), "Ade20k: the annotation '",
                   ann, "' is ", label.size(1), "x", label.size(0), " (WxH) but its image '", s.name, "' is ",
                   s.image.size(1), "x", s.image.size(0));
        const std::uint8_t* p = label.data();
        for (index_t k = 0, n = label.numel(); k < n; ++k)
            if (p[k] > num_classes)
                WEFT_FAIL("Ade20k: the annotation '", ann, "' holds the value ", int(p[k]), " at row ",
                          k / label.size(1), ", column ", k % label.size(1), "; ADE20K labels are 0 (other) to ",
                          num_classes);
        s.label = reduce_ ? reduce_zero_label(label) : label;
        return s;
    }

private:
    index_t check(index_t i) const {
        WEFT_CHECK(i >= 0 && i < size(), "Ade20k: sample ", i, " out of range (", size(), " samples under '",
                   image_dir_.string(), "')");
        return i;
    }

    std::filesystem::path image_dir_, annotation_dir_;
    bool reduce_ = true;
    std::vector<std::string> relative_;     // image paths relative to image_dir_, sorted
    std::vector<std::string> annotations_;  // full annotation paths, same order
};

}  // namespace weft::data

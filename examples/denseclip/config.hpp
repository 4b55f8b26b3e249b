// examples/denseclip/config.hpp: a DenseCLIP run described by one JSON file
// (examples/denseclip/configs/{rn50,rn101,vit-b16,tiny}.json).
//
//   auto cfg = denseclip::read_config("examples/denseclip/configs/tiny.json");
//   denseclip::DenseClip<float> model(cfg);
//
// The released configs (spec §5.1) are transcribed key by key; `tiny` keeps the architecture at
// small widths. Every key is required except where a default is written below, and every value
// is checked for its type: a config that does not parse names the file and the key, e.g.
//   "configs/x.json: backbone.width: expected an integer, got "64""
// Unknown keys are errors too (a misspelt key would otherwise be silently ignored).
#pragma once

#include <array>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include <weft/core/error.hpp>
#include <weft/models/clip/modified_resnet.hpp>
#include <weft/models/clip/text_context_encoder.hpp>
#include <weft/models/clip/vision_transformer.hpp>
#include <weft/models/segmentation/fpn_head.hpp>
#include <weft/prompt/context_decoder.hpp>

namespace denseclip {

using weft::index_t;

struct ViTBackboneConfig {
    weft::clip::VisionTransformerConfig vit;
    std::vector<index_t> out_indices{3, 5, 7, 11};
};
using ResNetBackboneConfig = weft::clip::ModifiedResNetConfig;

struct DataConfig {
    std::array<index_t, 2> img_scale{2048, 512};  // (long, short) as mmseg's (w, h) tuple
    std::array<double, 2> ratio_range{0.5, 2.0};
    std::array<index_t, 2> crop_size{512, 512};   // (h, w)
    double cat_max_ratio = 0.75;
    double flip_prob = 0.5;
    std::array<double, 3> mean{}, std{};          // RGB, 0..255
    bool reduce_zero_label = true;
};

struct TrainConfig {
    std::int64_t iters = 80000;
    index_t batch_size = 32;
    double lr = 1e-4, weight_decay = 1e-4;
    std::array<double, 2> betas{0.9, 0.999};
    double eps = 1e-8;
    double backbone_lr_mult = 0.1, text_encoder_lr_mult = 0.0, norm_decay_mult = 0.0;
    double poly_power = 0.9, min_lr = 1e-6;
    std::int64_t warmup_iters = 1500;
    double warmup_ratio = 1e-6;
    std::int64_t eval_interval = 8000, checkpoint_interval = 8000, log_interval = 50;
    int workers = 4;
};

struct TestConfig {
    std::string mode = "slide";                   // "whole" | "slide"
    std::array<index_t, 2> crop_size{512, 512};   // slide window (h, w)
    std::array<index_t, 2> stride{341, 341};
    std::vector<double> aug_ratios{0.5, 0.75, 1.0, 1.25, 1.5, 1.75};
    bool aug_flip = true;
};

struct DenseClipConfig {
    std::string name;
    std::optional<std::string> clip_weights;      // e.g. "RN50.pt"; null: train from scratch
    std::variant<ViTBackboneConfig, ResNetBackboneConfig> backbone;
    weft::clip::TextContextEncoderConfig text;    // context_length 13 = token_length + n_ctx
    index_t token_length = 5, n_ctx = 8;
    weft::prompt::ContextDecoderConfig context_decoder;
    // "post" (DenseCLIP's released code: t + γ·decoder(t, visual context)) or "pre" (the paper's
    // alternative: learned queries read the visual context and become each image's context
    // tokens; the context_decoder section then sizes that decoder). Optional key, default "post".
    std::string prompting = "post";
    double gamma_init = 1e-4;
    index_t score_concat_index = 3;
    double tau = 0.07;
    std::vector<index_t> neck_in_channels;
    index_t neck_out_channels = 256;
    weft::seg::FPNHeadOptions head;
    double decode_weight = 1.0, identity_weight = 0.4;
    std::int64_t ignore_index = 255;
    DataConfig data;
    TrainConfig train;
    TestConfig test;

    bool is_vit() const { return std::holds_alternative<ViTBackboneConfig>(backbone); }
    index_t num_classes() const { return head.num_classes; }
    index_t embed_dim() const {
        return is_vit() ? std::get<ViTBackboneConfig>(backbone).vit.output_dim : std::get<ResNetBackboneConfig>(backbone).output_dim;
    }
};

namespace detail {

// Reads one JSON object, remembering which keys were used so that the rest can be reported.
class Reader {
public:
    Reader(const nlohmann::json& j, std::string where, std::string path)
        : j_(j), where_(std::move(where)), path_(std::move(path)) {
        if (!j_.is_object()) fail("", "expected an object");
    }

    [[noreturn]] void fail(const std::string& key, const std::string& what) const {
        WEFT_FAIL(where_, ": ", path_ + key, ": ", what);
    }
    bool has(const std::string& key) const { return j_.contains(key); }

    const nlohmann::json& at(const std::string& key) {
        if (!j_.contains(key)) fail(key, "missing");
        used_.insert(key);
        return j_.at(key);
    }
    Reader object(const std::string& key) { return Reader(at(key), where_, path_ + key + "."); }

    std::int64_t integer(const std::string& key) {
        const auto& v = at(key);
        if (!v.is_number_integer()) fail(key, "expected an integer, got " + v.dump());
        return v.get<std::int64_t>();
    }
    std::int64_t integer(const std::string& key, std::int64_t fallback) { return has(key) ? integer(key) : fallback; }
    index_t positive(const std::string& key) {
        const auto v = integer(key);
        if (v <= 0) fail(key, "must be positive, got " + std::to_string(v));
        return v;
    }
    double number(const std::string& key) {
        const auto& v = at(key);
        if (!v.is_number()) fail(key, "expected a number, got " + v.dump());
        return v.get<double>();
    }
    double number(const std::string& key, double fallback) { return has(key) ? number(key) : fallback; }
    bool boolean(const std::string& key) {
        const auto& v = at(key);
        if (!v.is_boolean()) fail(key, "expected true or false, got " + v.dump());
        return v.get<bool>();
    }
    std::string string(const std::string& key) {
        const auto& v = at(key);
        if (!v.is_string()) fail(key, "expected a string, got " + v.dump());
        return v.get<std::string>();
    }
    template <class V>
    std::vector<V> list(const std::string& key, std::size_t n = 0) {
        const auto& v = at(key);
        if (!v.is_array() || (n && v.size() != n))
            fail(key, "expected a list" + (n ? " of " + std::to_string(n) : std::string()) + ", got " + v.dump());
        std::vector<V> out;
        for (const auto& e : v) {
            if (std::is_integral_v<V> ? !e.is_number_integer() : !e.is_number())
                fail(key, std::string("expected ") + (std::is_integral_v<V> ? "integers" : "numbers") + ", got " +
                              v.dump());
            out.push_back(e.get<V>());
        }
        return out;
    }
    template <class V, std::size_t N>
    std::array<V, N> array(const std::string& key) {
        const auto v = list<V>(key, N);
        std::array<V, N> a{};
        std::copy(v.begin(), v.end(), a.begin());
        return a;
    }

    // Every key of the object must have been read.
    void done() const {
        for (const auto& [k, v] : j_.items())
            if (!used_.count(k)) fail(k, "unknown key");
    }

private:
    const nlohmann::json& j_;
    std::string where_, path_;
    std::set<std::string> used_;
};

}  // namespace detail

// `where` names the source in messages (the file name).
inline DenseClipConfig parse_config(const nlohmann::json& j, const std::string& where) {
    detail::Reader r(j, where, "");
    DenseClipConfig c;
    c.name = r.string("name");
    if (const auto& w = r.at("clip_weights"); !w.is_null()) c.clip_weights = r.string("clip_weights");
    if (r.has("note")) r.string("note");

    {
        auto b = r.object("backbone");
        const auto type = b.string("type");
        if (type == "vit") {
            ViTBackboneConfig v;
            v.vit.patch_size = b.positive("patch_size");
            v.vit.width = b.positive("width");
            v.vit.layers = b.positive("layers");
            v.vit.heads = b.positive("heads");
            v.vit.input_resolution = b.positive("input_resolution");
            v.vit.output_dim = b.positive("output_dim");
            v.vit.drop_path_rate = b.number("drop_path_rate", 0.0);
            v.vit.drop_path_axis = 1;  // DenseCLIP's sequence-first DropPath: one draw per token position
            v.out_indices = b.list<index_t>("out_indices", 4);
            for (std::size_t k = 0; k < v.out_indices.size(); ++k) {
                const index_t i = v.out_indices[k];
                if (i < 0 || i >= v.vit.layers) b.fail("out_indices", "index " + std::to_string(i) + " outside the " +
                                                                          std::to_string(v.vit.layers) + " blocks");
                // DenseCLIP taps each block whose index is listed: a repeated index is one map, not two.
                if (k > 0 && i <= v.out_indices[k - 1]) b.fail("out_indices", "must be strictly increasing");
            }
            c.backbone = v;
        } else if (type == "resnet") {
            ResNetBackboneConfig rn;
            rn.layers = b.array<index_t, 4>("layers");
            rn.width = b.positive("width");
            rn.heads = b.positive("heads");
            rn.input_resolution = b.positive("input_resolution");
            rn.output_dim = b.positive("output_dim");
            c.backbone = rn;
        } else {
            b.fail("type", "expected \"vit\" or \"resnet\", got \"" + type + "\"");
        }
        b.done();
    }
    {
        auto t = r.object("text_encoder");
        c.text.context_length = t.positive("context_length");
        c.token_length = t.positive("token_length");
        c.n_ctx = t.positive("n_ctx");
        c.text.width = t.positive("width");
        c.text.heads = t.positive("heads");
        c.text.layers = t.positive("layers");
        c.text.vocab_size = t.positive("vocab_size");
        c.text.embed_dim = t.positive("embed_dim");
        if (c.token_length + c.n_ctx != c.text.context_length)
            t.fail("context_length", "must be token_length + n_ctx (" + std::to_string(c.token_length + c.n_ctx) + ")");
        t.done();
    }
    {
        auto d = r.object("context_decoder");
        c.context_decoder.transformer_width = d.positive("width");
        c.context_decoder.transformer_heads = d.positive("heads");
        c.context_decoder.transformer_layers = d.integer("layers");
        c.context_decoder.dropout = d.number("dropout");
        c.context_decoder.visual_dim = d.positive("visual_dim");
        d.done();
    }
    if (r.has("prompting")) {
        c.prompting = r.string("prompting");
        if (c.prompting != "post" && c.prompting != "pre")
            r.fail("prompting", "expected \"post\" or \"pre\", got \"" + c.prompting + "\"");
    }
    c.gamma_init = r.number("gamma_init");
    c.score_concat_index = r.integer("score_concat_index");
    c.tau = r.number("tau");
    {
        auto n = r.object("neck");
        c.neck_in_channels = n.list<index_t>("in_channels", 4);
        c.neck_out_channels = n.positive("out_channels");
        n.done();
    }
    {
        auto h = r.object("decode_head");
        c.head.channels = h.positive("channels");
        c.head.num_classes = h.positive("num_classes");
        c.head.dropout_ratio = h.number("dropout");
        c.head.feature_strides = h.list<index_t>("feature_strides", 4);
        c.head.in_channels.assign(4, c.neck_out_channels);
        h.done();
    }
    {
        auto l = r.object("loss");
        c.decode_weight = l.number("decode_weight");
        c.identity_weight = l.number("identity_weight");
        c.ignore_index = l.integer("ignore_index");
        l.done();
    }
    {
        auto d = r.object("data");
        c.data.img_scale = d.array<index_t, 2>("img_scale");
        c.data.ratio_range = d.array<double, 2>("ratio_range");
        c.data.crop_size = d.array<index_t, 2>("crop_size");
        c.data.cat_max_ratio = d.number("cat_max_ratio");
        c.data.flip_prob = d.number("flip_prob");
        c.data.mean = d.array<double, 3>("mean");
        c.data.std = d.array<double, 3>("std");
        c.data.reduce_zero_label = d.boolean("reduce_zero_label");
        d.done();
    }
    {
        auto t = r.object("train");
        auto& tr = c.train;
        tr.iters = t.positive("iters");
        tr.batch_size = t.positive("batch_size");
        tr.lr = t.number("lr");
        tr.weight_decay = t.number("weight_decay");
        tr.betas = t.array<double, 2>("betas");
        tr.eps = t.number("eps");
        tr.backbone_lr_mult = t.number("backbone_lr_mult");
        tr.text_encoder_lr_mult = t.number("text_encoder_lr_mult");
        tr.norm_decay_mult = t.number("norm_decay_mult");
        tr.poly_power = t.number("poly_power");
        tr.min_lr = t.number("min_lr");
        tr.warmup_iters = t.integer("warmup_iters");
        tr.warmup_ratio = t.number("warmup_ratio");
        tr.eval_interval = t.integer("eval_interval");
        tr.checkpoint_interval = t.integer("checkpoint_interval");
        tr.log_interval = t.positive("log_interval");
        tr.workers = int(t.integer("workers"));
        t.done();
    }
    {
        auto t = r.object("test");
        c.test.mode = t.string("mode");
        if (c.test.mode != "whole" && c.test.mode != "slide")
            t.fail("mode", "expected \"whole\" or \"slide\", got \"" + c.test.mode + "\"");
        c.test.crop_size = t.array<index_t, 2>("crop_size");
        c.test.stride = t.array<index_t, 2>("stride");
        c.test.aug_ratios = t.list<double>("aug_ratios");
        c.test.aug_flip = t.boolean("aug_flip");
        t.done();
    }
    r.done();

    // Cross-checks that would otherwise surface as a shape error deep in the forward pass.
    const index_t C = c.embed_dim();
    if (c.text.embed_dim != C)
        r.fail("text_encoder.embed_dim", "must equal the backbone's output_dim " + std::to_string(C));
    if (c.context_decoder.visual_dim != C)
        r.fail("context_decoder.visual_dim", "must equal the backbone's output_dim " + std::to_string(C));
    if (c.score_concat_index < 0 || c.score_concat_index > 3) r.fail("score_concat_index", "must be 0..3");
    // The neck's inputs are the backbone's four levels with the K score-map channels added to one.
    std::vector<index_t> levels;
    if (c.is_vit()) {
        levels.assign(4, std::get<ViTBackboneConfig>(c.backbone).vit.width);
    } else {
        const auto& rn = std::get<ResNetBackboneConfig>(c.backbone);
        for (index_t i = 0; i < 4; ++i) levels.push_back(rn.width * 4 << i);
    }
    levels[std::size_t(c.score_concat_index)] += c.num_classes();
    if (levels != c.neck_in_channels)
        r.fail("neck.in_channels", "must be the backbone's channels with the " + std::to_string(c.num_classes()) +
                                       " score-map channels added at level " + std::to_string(c.score_concat_index) +
                                       ": [" + std::to_string(levels[0]) + ", " + std::to_string(levels[1]) + ", " +
                                       std::to_string(levels[2]) + ", " + std::to_string(levels[3]) + "]");
    return c;
}

inline DenseClipConfig read_config(const std::filesystem::path& path) {
    std::ifstream in(path);
    WEFT_CHECK(in.good(), "denseclip: cannot open the config file '", path.string(), "'");
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        WEFT_FAIL(path.string(), ": not valid JSON: ", e.what());
    }
    return parse_config(j, path.string());
}

}  // namespace denseclip

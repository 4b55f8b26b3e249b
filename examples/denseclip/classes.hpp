// examples/denseclip/classes.hpp: the class names DenseCLIP prompts with, tokenized.
//
//   auto texts = denseclip::class_tokens(vocab_path, cfg);   // [150, 5] for ADE20K
//
// DenseCLIP tokenizes each ADE20K class name (mmseg's names, e.g. "windowpane", "bed ") with
// context length 5 (spec Appendix A): [SOT, ids..., EOT, 0...]. A name too long for that is an
// error, as in DenseCLIP's tokenize.
#pragma once

#include <filesystem>

#include <weft/data/ade20k.hpp>
#include <weft/models/clip/tokenizer.hpp>

#include "config.hpp"

namespace denseclip {

inline weft::Tensor<std::int64_t, 2> class_tokens(const std::filesystem::path& vocab, const DenseClipConfig& c) {
    const auto& names = weft::data::ade20k_class_names();
    WEFT_CHECK(weft::index_t(names.size()) == c.num_classes(), "denseclip: the config '", c.name, "' has ",
               c.num_classes(), " classes, but ADE20K has ", names.size());
    WEFT_CHECK(std::filesystem::exists(vocab), "denseclip: CLIP's BPE vocabulary '", vocab.string(),
               "' does not exist (pass --vocab or set WEFT_CLIP_VOCAB)");
    const weft::clip::Tokenizer tok(vocab.string());
    return tok.tokenize(names, c.token_length);
}

}  // namespace denseclip

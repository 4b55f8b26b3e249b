// examples/clip/train_command.hpp: `clip train`, contrastive training of CLIP on image-text pairs
// (examples/clip_pretrain). Its own translation unit: the training loop is the heaviest code
// the program compiles.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace clip_cli {

// Declares the subcommand and its options on `app`; `vocab` is the program's vocabulary option.
CLI::App* add_train_command(CLI::App& app, const std::string& vocab);
// Runs it (after parsing), alone or as one rank under an MPI launcher. Throws on bad input.
void run_train_command();

}  // namespace clip_cli

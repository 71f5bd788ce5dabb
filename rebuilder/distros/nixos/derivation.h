#pragma once

// Nix store derivations (.drv, ATerm):
//   Derive([outputs],[inputDrvs],[inputSrcs],"system","builder",[args],[env])
// outputs ("name","path","hashAlgo","hash"), inputDrvs ("drv",["output",...]),
// env ("name","value"). Strings escape \" \\ \n \r \t. The text is untrusted
// (it comes from a binary cache): every length is capped before it is
// stored, store paths must be /nix/store/<32 nix32 characters>-<name>, and
// only the canonical form Nix writes is accepted (no whitespace, no
// trailing bytes, sorted unique outputs, input derivations and sources).

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/result.h"

namespace kmr::nixos {

struct DerivationOutput {
  std::string path;       // "" for floating content-addressed outputs
  std::string hash_algo;  // fixed-output derivations only
  std::string hash;
};

struct Derivation {
  std::map<std::string, DerivationOutput> outputs;                // by output name
  std::map<std::string, std::vector<std::string>> input_drvs;     // .drv path -> output names
  std::vector<std::string> input_srcs;
  std::string system;
  std::string builder;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;

  // The output paths, sorted.
  std::vector<std::string> output_paths() const;
};

struct DerivationLimits {
  std::size_t max_bytes = 16 << 20;      // the whole .drv
  std::size_t max_items = 100'000;       // entries of any one list
  std::size_t max_string = 8 << 20;      // one string, unescaped
};

// Parses `text`; errors are malformed("<name>: ... at byte N").
Result<Derivation> parse_derivation(std::string_view text, const std::string& name,
                                    const DerivationLimits& limits = {});

// /nix/store/<32 characters of nix32>-<name>, the name [A-Za-z0-9+._?=-],
// not starting with '.', at most 211 characters.
bool is_store_path(std::string_view path);
// "<hash part>" of a store path or of its base name ("" when not one).
std::string store_path_hash(std::string_view path);

}  // namespace kmr::nixos

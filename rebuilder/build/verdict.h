#pragma once

// The two independent answers per artifact set (architecture.md, "Verdict
// model"): module_root and the files tier.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "rebuilder/build/artifact.h"
#include "rebuilder/kmod/merkle.h"

namespace kmr::build {

enum class ModuleRoot { kMatch, kMismatch, kAbsent, kInvalid };
enum class FilesTier { kIdentical, kContentIdentical, kIdenticalModuloSignatures, kDifferent };

std::string_view module_root_name(ModuleRoot v);   // match | mismatch | absent | invalid
std::string_view files_tier_name(FilesTier t);     // identical | content-identical | ...

struct InvalidModule {
  std::string module;   // member path (or modules.order entry when missing)
  std::string reason;
};

struct ModuleRootReport {
  ModuleRoot verdict = ModuleRoot::kAbsent;
  std::optional<kmod::MerkleRoot> shipped;   // from the shipped image
  std::optional<kmod::MerkleRoot> rebuilt;   // computed over the rebuilt modules
  std::uint64_t verified = 0;                // shipped proofs that verified
  std::vector<InvalidModule> invalid;
  std::string note;                          // e.g. "no kernel image in the shipped packages"
};

// Check A (every shipped proof verifies against the shipped root, positions
// 0..n-1 once each, n = modules.order count, no unauthenticated module) and
// check B (the root over the rebuilt modules, in modules.order order, equals
// the shipped root bit for bit). `rebuilt` may be empty (verify only).
ModuleRootReport module_root_verdict(const std::vector<const Artifact*>& shipped,
                                     const std::vector<const Artifact*>& rebuilt);

// The root over a set's modules in modules.order order (leaves over the
// modules without their trailers). nullopt when no modules.order exists or a
// listed module is missing or unreadable.
std::optional<kmod::MerkleRoot> modules_root(const std::vector<const Artifact*>& set, std::string* why = nullptr);

struct FilesReport {
  FilesTier tier = FilesTier::kIdentical;
  std::vector<std::string> differing;   // member paths (prefixed "<file>:" when several packages)
};

// Tier of one shipped package against its rebuild.
FilesReport files_verdict(const Artifact& shipped, const Artifact& rebuilt);
// Pairs packages by position; the worst tier wins and differing members are
// prefixed with the shipped file's base name when there is more than one.
FilesReport files_verdict(const std::vector<const Artifact*>& shipped, const std::vector<const Artifact*>& rebuilt);

std::string root_hex(const std::optional<kmod::MerkleRoot>& root);  // "" when absent

}  // namespace kmr::build

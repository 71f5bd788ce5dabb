#pragma once

// The independent answers per artifact set (architecture.md, "Verdict
// model"): module_root, module_content_root and the files tier, and the one
// rule that turns them into "reproducible" (is_reproducible).

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "rebuilder/rebuild/artifact.h"
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

// A kernel image member equal to its rebuild once the parts a build-time key
// changes are masked (kmod::compare_masks): the shipped image's ranges.
struct MaskedMember {
  std::string member;
  std::vector<kmod::MaskedRange> ranges;
};
// Why a differing kernel image member is not equal once masked.
struct MaskNote {
  std::string member;
  std::string note;
};

struct FilesReport {
  FilesTier tier = FilesTier::kIdentical;
  std::vector<std::string> differing;   // member paths (prefixed "<file>:" when several packages)
  std::vector<MaskedMember> masked;     // image members identical modulo signatures by masking
  std::vector<MaskNote> mask_notes;     // image members that masking does not make equal
};

// Tier of one shipped package against its rebuild. A kernel image member that
// differs is equal modulo signatures only when kmod::compare_masks accepts its
// masks (the build-time certificate, build-id, Authenticode parts and bzImage
// CRC32 masked; same ranges; the rest, and a bzImage's wrapper, identical).
FilesReport files_verdict(const Artifact& shipped, const Artifact& rebuilt);
// Pairs packages by position; the worst tier wins and differing members are
// prefixed with the shipped file's base name when there is more than one.
FilesReport files_verdict(const std::vector<const Artifact*>& shipped, const std::vector<const Artifact*>& rebuilt);

std::string root_hex(const std::optional<kmod::MerkleRoot>& root);  // "" when absent

// The root CONFIG_MODULE_HASHES would embed for a build (modules in
// modules.order order, decompressed, trailers removed), compared between the
// shipped and the rebuilt modules. kAbsent only when neither side has modules.
enum class ContentRoot { kMatch, kMismatch, kAbsent };
std::string_view content_root_name(ContentRoot v);  // match | mismatch | absent

struct ContentRootReport {
  ContentRoot verdict = ContentRoot::kAbsent;
  std::optional<kmod::MerkleRoot> shipped;
  std::optional<kmod::MerkleRoot> rebuilt;
  std::string note;  // why not match
};

// Compares the content roots; when the shipped image embeds a module-hashes
// root (`embedded`), the shipped content root must also equal it.
ContentRootReport content_root_verdict(const std::vector<const Artifact*>& shipped,
                                       const std::vector<const Artifact*>& rebuilt,
                                       const std::optional<kmod::MerkleRoot>& embedded);

// The shipped modules' PKCS#7 signatures checked against the certificates
// built into the shipped image (kmr inspect's check).
struct SignatureCheck {
  bool checked = false;        // false when the files tier did not need it
  std::uint64_t signed_count = 0;
  std::uint64_t verified = 0;
  bool ok = false;
  std::vector<InvalidModule> failed;  // first 20
  std::string note;
};
SignatureCheck check_shipped_signatures(const std::vector<const Artifact*>& shipped);

// identical-modulo-signatures holds only when every shipped module signature
// verifies against the shipped kernel's certificate: checks them when the
// tier needs it and downgrades the tier to different when they do not.
SignatureCheck require_verified_signatures(FilesReport& files, const std::vector<const Artifact*>& shipped);

// Adds the rebuild result's fields module_content_root ("match"|"mismatch"|
// "absent", null without a verdict), shipped_content_root, rebuilt_content_root
// (hex or null), content_root_levels, content_root_note and signatures
// ({checked, signed, verified, ok, failed:[{module,reason}], note}).
void add_content_root_json(nlohmann::json& j, bool verdict, const ContentRootReport& content_root,
                           const SignatureCheck& signatures);

// Adds "masked": [{"member","ranges":[{"what","offset","length","in","detail"}]}]
// (image members identical modulo signatures once masked) and "mask_notes":
// [{"member","note"}] (image members that differ beyond the masked ranges).
void add_masked_json(nlohmann::json& j, const FilesReport& files);

// THE reproducibility rule, defined once (rebuild's exit code, the server's
// "reproducible", attestations' PASSED): files identical, content-identical
// or (verified) identical-modulo-signatures; module_root match or absent;
// module_content_root match (or absent: no modules on either side).
bool is_reproducible(FilesTier files, ModuleRoot module_root, ContentRoot content_root);
// The same rule over the names as stored and published. A missing
// module_root or module_content_root (a verdict made before they existed)
// counts as absent; unknown names are not reproducible.
bool is_reproducible(std::string_view files, std::optional<std::string_view> module_root,
                     std::optional<std::string_view> module_content_root);

}  // namespace kmr::build

#pragma once

// The verdict vocabulary and the one reproducibility rule, shared by the
// engine (kmr rebuild's exit code), the daemon (store, dashboards, the
// rebuilderd-compatible API), the attestations (PASSED/FAILED) and the web
// UI (served as a generated JavaScript module). A new verdict is one edit
// here. No dependencies: every layer may use it.

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace kmr::verdict {

// files: the best tier reached, or why there is none.
inline constexpr std::string_view kFilesTiers[] = {
    "identical", "content-identical", "identical-modulo-signatures", "different",
    "build-failed", "environment-unavailable", "error"};
// The tiers that count as reproduced.
inline constexpr std::string_view kGoodFilesTiers[] = {"identical", "content-identical",
                                                       "identical-modulo-signatures"};
// module_root: the root embedded by CONFIG_MODULE_HASHES against the rebuilt one.
inline constexpr std::string_view kModuleRoots[] = {"match", "mismatch", "absent", "invalid"};
inline constexpr std::string_view kGoodModuleRoots[] = {"match", "absent"};
// module_content_root: the root over the modules without signatures or proofs.
inline constexpr std::string_view kContentRoots[] = {"match", "mismatch", "absent"};
inline constexpr std::string_view kGoodContentRoots[] = {"match", "absent"};

bool is_files_tier(std::string_view v);
bool is_module_root(std::string_view v);
bool is_content_root(std::string_view v);

// Reproducible: files identical | content-identical | (verified)
// identical-modulo-signatures, module_root match | absent, and
// module_content_root match | absent. A missing module_root or
// module_content_root (a verdict made before they existed) counts as absent;
// unknown names are not reproducible.
bool is_reproducible(std::string_view files, std::optional<std::string_view> module_root,
                     std::optional<std::string_view> module_content_root);

// The vocabulary and the rule as an ES module for the web UI
// (`export const FILES_TIERS = [...]; export function isReproducible(...)`).
std::string javascript_module();

}  // namespace kmr::verdict

#pragma once

#include <chrono>
#include <string>

#include "rebuilder/base/result.h"
#include "rebuilder/compare/difference.h"

namespace kmr::compare {

// diffoscope's JSON structure (`diffoscope-json-version` 1 at the root,
// source1/source2/comments/has_internal_linenos/unified_diff/details) plus
// our fields: kind, status, sha256, size per node and a root summary.
std::string render_json(const Difference& root, std::chrono::milliseconds elapsed);
// diffoscope-like box-drawing text.
std::string render_text(const Difference& root);
// One self-contained page (no external assets); nodes collapsed by default.
std::string render_html(const Difference& root, std::chrono::milliseconds elapsed);
// Writes DIR/index.html (creating DIR).
Result<void> write_html(const std::string& dir, const Difference& root, std::chrono::milliseconds elapsed);

}  // namespace kmr::compare

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kmr::compare {

// How a node relates the two sides.
enum class Status { kChanged, kAdded, kRemoved };

std::string_view status_name(Status s);

// One node of a comparison report, diffoscope's Difference plus our fields.
// A plain tree: comparators fill it, presenters render it.
struct Difference {
  std::string source1;
  std::string source2;
  // What the node is: a format ("elf", "tar", "kernel-module"...) or a view
  // ("elf-symbols", "section", "file-list", "hexdump"...).
  std::string kind;
  Status status = Status::kChanged;
  std::string sha256_1;  // hex, empty for views and absent sides
  std::string sha256_2;
  std::optional<std::uint64_t> size1;
  std::optional<std::uint64_t> size2;
  std::optional<std::string> unified_diff;  // hunks only (no ---/+++ lines)
  bool has_internal_linenos = false;        // hex dumps carry their own offsets
  std::vector<std::string> comments;
  std::vector<Difference> details;

  // True when the node says something (a diff, a comment or children).
  bool empty() const { return !unified_diff && comments.empty() && details.empty(); }
};

// Counts over a whole report.
struct Summary {
  std::uint64_t nodes = 0;
  std::uint64_t changed = 0;   // leaves (no children) with status changed
  std::uint64_t added = 0;
  std::uint64_t removed = 0;
  std::uint64_t truncations = 0;  // nodes carrying a truncation marker
};

Summary summarize(const Difference& root);

// Marker texts: presenters and tests look for these exact strings.
inline constexpr const char* kTimeoutComment = "Timeout exceeded; details may be incomplete.";
inline constexpr const char* kReportSizeComment = "Report size limit reached; diff omitted.";

}  // namespace kmr::compare

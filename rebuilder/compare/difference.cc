#include "rebuilder/compare/difference.h"

#include <string_view>

namespace kmr::compare {

std::string_view status_name(Status s) {
  switch (s) {
    case Status::kChanged: return "changed";
    case Status::kAdded: return "added";
    case Status::kRemoved: return "removed";
  }
  return "changed";
}

namespace {
bool is_truncation(const Difference& d) {
  for (const auto& c : d.comments) {
    if (c.find("truncated") != std::string::npos || c.find("limit") != std::string::npos ||
        c == kTimeoutComment) {
      return true;
    }
  }
  return d.unified_diff && d.unified_diff->find(" lines removed ]") != std::string::npos;
}

void walk(const Difference& d, Summary& s) {
  ++s.nodes;
  if (is_truncation(d)) ++s.truncations;
  if (d.status == Status::kAdded) {
    ++s.added;
  } else if (d.status == Status::kRemoved) {
    ++s.removed;
  } else if (d.details.empty()) {
    ++s.changed;
  }
  for (const auto& c : d.details) walk(c, s);
}
}  // namespace

Summary summarize(const Difference& root) {
  Summary s;
  walk(root, s);
  return s;
}

}  // namespace kmr::compare

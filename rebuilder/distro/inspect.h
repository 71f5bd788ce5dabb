#pragma once

// The report behind `kmr inspect`: JSON (a documented contract) and text.

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rebuilder/distro/package.h"

namespace kmr::distro {

struct InspectReport {
  nlohmann::json json;
  std::string text;
  bool ok = false;  // everything present verifies
  KernelLayout layout;
};

// Reads every package into one kernel layout and builds the report.
Result<InspectReport> inspect_packages(const std::vector<std::string>& paths, const InspectOptions& options);

}  // namespace kmr::distro

#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kmr::attest::testing {

// A JSON Schema (draft 2020-12) validator for the subset our schemas use:
// type (string or array), const, enum, required, properties, items,
// minItems, minLength, minimum, pattern (std::regex ECMAScript), oneOf and
// local "$ref": "#/$defs/<name>". Returns the violations as
// "<json pointer>: <reason>"; empty = valid. Unknown keywords are errors so
// the schema cannot silently use more than the validator checks.
std::vector<std::string> validate(const nlohmann::json& schema, const nlohmann::json& doc);

}  // namespace kmr::attest::testing

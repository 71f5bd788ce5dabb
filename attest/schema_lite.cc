#include "attest/schema_lite.h"

#include <regex>
#include <set>

namespace kmr::attest::testing {
namespace {

using nlohmann::json;

bool type_matches(const std::string& t, const json& v) {
  if (t == "object") return v.is_object();
  if (t == "array") return v.is_array();
  if (t == "string") return v.is_string();
  if (t == "integer") return v.is_number_integer();
  if (t == "number") return v.is_number();
  if (t == "boolean") return v.is_boolean();
  if (t == "null") return v.is_null();
  return false;
}

void check(const json& root, const json& s, const json& v, const std::string& ptr,
           std::vector<std::string>& errs, int depth) {
  static const std::set<std::string> kKnown = {
      "$schema", "$id", "title", "description", "type", "const", "enum", "required",
      "properties", "items", "minItems", "minLength", "minimum", "pattern", "oneOf",
      "$ref", "$defs"};
  if (depth > 32) {
    errs.push_back(ptr + ": schema too deep");
    return;
  }
  for (auto it = s.begin(); it != s.end(); ++it) {
    if (!kKnown.count(it.key())) errs.push_back(ptr + ": unsupported schema keyword " + it.key());
  }
  if (s.contains("$ref")) {
    std::string ref = s["$ref"].get<std::string>();
    const std::string prefix = "#/$defs/";
    if (ref.rfind(prefix, 0) != 0 || !root["$defs"].contains(ref.substr(prefix.size()))) {
      errs.push_back(ptr + ": unresolvable $ref " + ref);
      return;
    }
    check(root, root["$defs"][ref.substr(prefix.size())], v, ptr, errs, depth + 1);
  }
  if (s.contains("type")) {
    bool any = false;
    if (s["type"].is_array()) {
      for (const auto& t : s["type"]) any = any || type_matches(t.get<std::string>(), v);
    } else {
      any = type_matches(s["type"].get<std::string>(), v);
    }
    if (!any) {
      errs.push_back(ptr + ": wrong type, expected " + s["type"].dump());
      return;
    }
  }
  if (s.contains("const") && s["const"] != v) errs.push_back(ptr + ": must equal " + s["const"].dump());
  if (s.contains("enum")) {
    bool found = false;
    for (const auto& e : s["enum"]) found = found || e == v;
    if (!found) errs.push_back(ptr + ": " + v.dump() + " not in enum");
  }
  if (v.is_string()) {
    const auto& str = v.get_ref<const std::string&>();
    if (s.contains("minLength") && str.size() < s["minLength"].get<std::size_t>()) errs.push_back(ptr + ": too short");
    if (s.contains("pattern") && !std::regex_search(str, std::regex(s["pattern"].get<std::string>()))) {
      errs.push_back(ptr + ": does not match pattern " + s["pattern"].get<std::string>());
    }
  }
  if (v.is_number() && s.contains("minimum") && v.get<double>() < s["minimum"].get<double>()) {
    errs.push_back(ptr + ": below minimum");
  }
  if (v.is_object()) {
    if (s.contains("required")) {
      for (const auto& r : s["required"]) {
        if (!v.contains(r.get<std::string>())) errs.push_back(ptr + ": missing required " + r.get<std::string>());
      }
    }
    if (s.contains("properties")) {
      for (auto it = s["properties"].begin(); it != s["properties"].end(); ++it) {
        if (v.contains(it.key())) check(root, it.value(), v[it.key()], ptr + "/" + it.key(), errs, depth + 1);
      }
    }
  }
  if (v.is_array()) {
    if (s.contains("minItems") && v.size() < s["minItems"].get<std::size_t>()) errs.push_back(ptr + ": too few items");
    if (s.contains("items")) {
      for (std::size_t i = 0; i < v.size(); ++i) check(root, s["items"], v[i], ptr + "/" + std::to_string(i), errs, depth + 1);
    }
  }
  if (s.contains("oneOf")) {
    int matches = 0;
    for (const auto& alt : s["oneOf"]) {
      std::vector<std::string> sub;
      check(root, alt, v, ptr, sub, depth + 1);
      if (sub.empty()) ++matches;
    }
    if (matches != 1) errs.push_back(ptr + ": matches " + std::to_string(matches) + " oneOf alternatives, expected 1");
  }
}

}  // namespace

std::vector<std::string> validate(const json& schema, const json& doc) {
  std::vector<std::string> errs;
  check(schema, schema, doc, "", errs, 0);
  return errs;
}

}  // namespace kmr::attest::testing

#include "rebuilder/compare/presenters.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "rebuilder/base/file.h"
#include "rebuilder/base/version.h"
#include "rebuilder/compare/line_diff.h"

namespace kmr::compare {

namespace {

using ojson = nlohmann::ordered_json;

ojson to_json(const Difference& d, bool root) {
  ojson j;
  if (root) j["diffoscope-json-version"] = 1;
  j["source1"] = d.source1;
  j["source2"] = d.source2;
  if (!d.comments.empty()) j["comments"] = d.comments;
  if (d.has_internal_linenos) j["has_internal_linenos"] = true;
  j["unified_diff"] = d.unified_diff ? ojson(*d.unified_diff) : ojson(nullptr);
  j["kind"] = d.kind;
  j["status"] = std::string(status_name(d.status));
  if (!d.sha256_1.empty() || !d.sha256_2.empty()) {
    j["sha256"] = {{"source1", d.sha256_1.empty() ? ojson(nullptr) : ojson(d.sha256_1)},
                   {"source2", d.sha256_2.empty() ? ojson(nullptr) : ojson(d.sha256_2)}};
  }
  if (d.size1 || d.size2) {
    j["size"] = {{"source1", d.size1 ? ojson(*d.size1) : ojson(nullptr)},
                 {"source2", d.size2 ? ojson(*d.size2) : ojson(nullptr)}};
  }
  if (!d.details.empty()) {
    ojson arr = ojson::array();
    for (const auto& c : d.details) arr.push_back(to_json(c, false));
    j["details"] = std::move(arr);
  }
  return j;
}

std::string label(const Difference& d) {
  std::string s;
  if (d.status == Status::kAdded) return "[added] " + d.source2;
  if (d.status == Status::kRemoved) return "[removed] " + d.source1;
  s = d.source1;
  if (d.source2 != d.source1) s += " vs. " + d.source2;
  return s;
}

void text_node(const Difference& d, const std::string& prefix, std::string& out) {
  for (const auto& c : d.comments) out += prefix + "│┄ " + c + "\n";
  if (d.unified_diff) {
    for (auto line : split_lines(*d.unified_diff)) {
      out += prefix + "│ ";
      out += line;
      out += '\n';
    }
  }
  for (const auto& c : d.details) {
    out += prefix + "├── " + label(c) + "\n";
    text_node(c, prefix + "│   ", out);
  }
}

std::string esc(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

void html_node(const Difference& d, std::string& out, bool open) {
  out += open ? "<details open>" : "<details>";
  out += "<summary><span class=\"st ";
  out += status_name(d.status);
  out += "\">";
  out += status_name(d.status);
  out += "</span> <span class=\"k\">" + esc(d.kind) + "</span> " + esc(label(d)) + "</summary>\n";
  for (const auto& c : d.comments) out += "<div class=\"c\">" + esc(c) + "</div>\n";
  if (!d.sha256_1.empty() || !d.sha256_2.empty()) {
    out += "<div class=\"h\">sha256 " + esc(d.sha256_1.empty() ? "-" : d.sha256_1) + " &rarr; " +
           esc(d.sha256_2.empty() ? "-" : d.sha256_2) + "</div>\n";
  }
  if (d.unified_diff) {
    out += "<pre>";
    for (auto line : split_lines(*d.unified_diff)) {
      const char* cls = line.empty() ? nullptr : line[0] == '+' ? "a" : line[0] == '-' ? "d" : line[0] == '@' ? "u" : nullptr;
      if (cls != nullptr) {
        out += "<i class=\"";
        out += cls;
        out += "\">" + esc(line) + "</i>\n";
      } else {
        out += esc(line) + "\n";
      }
    }
    out += "</pre>\n";
  }
  for (const auto& c : d.details) html_node(c, out, false);
  out += "</details>\n";
}

}  // namespace

std::string render_json(const Difference& root, std::chrono::milliseconds elapsed) {
  ojson j = to_json(root, true);
  Summary s = summarize(root);
  j["summary"] = {{"nodes", s.nodes}, {"changed", s.changed}, {"added", s.added}, {"removed", s.removed},
                  {"truncations", s.truncations}, {"elapsed_ms", elapsed.count()},
                  {"tool", std::string("kmr ") + kVersion}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string render_text(const Difference& root) {
  std::string out = "--- " + root.source1 + "\n+++ " + root.source2 + "\n";
  text_node(root, "", out);
  return out;
}

std::string render_html(const Difference& root, std::chrono::milliseconds elapsed) {
  Summary s = summarize(root);
  std::string out =
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>kmr diff: " + esc(root.source1) + " vs " +
      esc(root.source2) +
      "</title>\n<style>body{font:14px sans-serif;margin:1em}details{margin-left:1.2em;border-left:1px solid #ccc;"
      "padding-left:.4em}summary{cursor:pointer;font-family:monospace}pre{background:#f7f7f7;overflow-x:auto;"
      "margin:.3em 0;font-size:12px}i{font-style:normal;display:inline}i.a{background:#dfd}i.d{background:#fdd}"
      "i.u{color:#66c}.c{color:#864;font-style:italic}.h{color:#888;font:11px monospace}.k{color:#369}"
      ".st{font-size:11px;padding:0 3px;border-radius:3px}.changed{background:#fe9}.added{background:#bfb}"
      ".removed{background:#fbb}</style></head><body>\n";
  out += "<h1>kmr diff</h1><p>" + esc(root.source1) + " &rarr; " + esc(root.source2) + "</p>\n";
  out += "<p>" + std::to_string(s.nodes) + " nodes, " + std::to_string(s.changed) + " changed, " +
         std::to_string(s.added) + " added, " + std::to_string(s.removed) + " removed, " +
         std::to_string(s.truncations) + " truncated; " + std::to_string(elapsed.count()) + " ms. "
         "Nodes are collapsed: click to expand.</p>\n";
  html_node(root, out, true);
  out += "</body></html>\n";
  return out;
}

Result<void> write_html(const std::string& dir, const Difference& root, std::chrono::milliseconds elapsed) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return io_error(dir + ": cannot create directory: " + ec.message());
  std::string page = render_html(root, elapsed);
  return write_file_atomic(dir + "/index.html", as_bytes(page));
}

}  // namespace kmr::compare

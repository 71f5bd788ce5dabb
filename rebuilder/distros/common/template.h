#pragma once

// URL templates with {placeholder}s, as repositories configure them to say
// where a package's build description and sources live (a packaging git
// repository, an archive of old packages, a .buildinfo pool, a source RPM
// repository, a nixpkgs tarball). Values are checked before they are put in
// a URL: each must be one URL path segment, so no value can add a path
// component, a query or another host.

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/result.h"

namespace kmr::distros {

using TemplateVars = std::map<std::string, std::string>;

// One key of a repository's "sources" object.
struct TemplateSpec {
  std::string key;
  std::string default_value;           // "" = off unless configured
  std::set<std::string> placeholders;  // empty for a plain value
  bool is_url_template = true;         // false: a plain value (a channel name, a revision)
  std::string what;                    // for --help and errors
};

// The placeholder names of a template, in order of appearance (repeats kept).
// Names are [a-z0-9_], 1 to 32 characters; "{{" and "}}" are not escapes.
// Unbalanced or nested braces are errors.
Result<std::vector<std::string>> template_placeholders(std::string_view tmpl);

// A URL template: at most 2048 bytes, scheme https://, http:// or file://,
// a host (none for file://), and only placeholders from `allowed`, none in
// the scheme or host. `key` names it in errors.
Result<void> check_url_template(std::string_view key, std::string_view tmpl, const std::set<std::string>& allowed);

// True when `value` may stand for a placeholder: 1 to 255 bytes of RFC 3986
// path-segment characters (unreserved, sub-delims, ':' and '@'), not "." or
// "..". No '/', '%', '?', '#', whitespace or bytes >= 0x80.
bool is_segment_value(std::string_view value);

// Replaces every {name} with vars[name]. An unknown name or a value that is
// not a path segment is an error naming both.
Result<std::string> expand_template(std::string_view tmpl, const TemplateVars& vars);

}  // namespace kmr::distros

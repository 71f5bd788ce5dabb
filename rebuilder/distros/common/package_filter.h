#pragma once

// The package filters of a repository's configuration ("packages": ["linux",
// "linux-image-*"]): shell-style globs, '*' any run of characters, '?' one
// character, no classes and no escapes.

#include <string_view>

namespace kmr::distros {

bool glob_match(std::string_view pattern, std::string_view name);

}  // namespace kmr::distros

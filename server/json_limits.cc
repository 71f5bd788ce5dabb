#include "server/json_limits.h"

#include "rebuilder/base/json_nesting.h"

namespace kmr::server {

bool json_depth_ok(std::string_view text, int max_depth) { return json_nesting_ok(text, max_depth); }

}  // namespace kmr::server

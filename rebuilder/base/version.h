#pragma once

namespace kmr {

inline constexpr const char* kVersion = "0.1.0";

}  // namespace kmr

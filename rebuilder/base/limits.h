#pragma once

#include <chrono>
#include <cstdint>

namespace kmr {

// One set of limits passed down through every parser of untrusted input.
struct Limits {
  std::uint32_t max_depth = 64;             // nesting in one format (NAR directories)
  std::uint32_t max_container_depth = 50;   // archive inside archive
  std::uint32_t max_name_len = 255;
  std::uint32_t max_symlink_len = 4095;
  std::uint64_t max_members = 1'000'000;
  std::uint64_t max_member_bytes = 4ull << 30;        // one decompressed member
  std::uint64_t max_total_bytes = 64ull << 30;        // one whole archive, decompressed
  std::uint64_t max_compression_ratio = 1000;         // decompressed : compressed
  std::uint64_t max_line_len = 1 << 20;               // text formats
  std::uint64_t max_report_bytes = 64ull << 20;
  std::chrono::seconds max_wall_time{3600};
};

}  // namespace kmr

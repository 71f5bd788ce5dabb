#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/bytes.h"

namespace kmr::compare {

struct DiffOptions {
  std::size_t context = 7;               // like diffoscope's `diff -U7`
  std::size_t max_output_lines = 4096;   // per node; beyond: "[ N lines removed ]"
  std::size_t max_input_lines = 1 << 22; // per side; beyond: no diff, a comment
  std::size_t max_edit_distance = 3000;  // Myers D; beyond: coarse replace block
};

struct LineDiff {
  bool identical = true;
  std::string text;                // unified hunks ("@@ -a,b +c,d @@\n..."), empty when identical
  std::size_t lines_removed = 0;   // cut by max_output_lines
  bool too_much_input = false;     // inputs exceeded max_input_lines; text is empty
  bool approximate = false;        // edit distance cap hit: one coarse replace block
};

// Splits at '\n'; a final line without newline is kept.
std::vector<std::string_view> split_lines(std::string_view text);

// Myers O(ND) diff of two line sequences, rendered as unified hunks.
LineDiff diff_lines(const std::vector<std::string_view>& a, const std::vector<std::string_view>& b,
                    const DiffOptions& options);
LineDiff diff_text(std::string_view a, std::string_view b, const DiffOptions& options);

// One xxd-style line per 16 bytes: "00000010: 0102 ... 0f10  ................".
std::string hexdump_line(Bytes row, std::uint64_t offset);
// Hex diff of two byte ranges: equal sizes are compared row by row (no
// alignment search); different sizes go through the line diff of the dumps.
LineDiff diff_hex(Bytes a, Bytes b, const DiffOptions& options, std::uint64_t base_offset = 0);

}  // namespace kmr::compare

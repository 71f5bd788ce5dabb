#include "rebuilder/compare/line_diff.h"

#include <algorithm>
#include <unordered_map>

namespace kmr::compare {

namespace {

// A run of the edit script: kEqual advances both sides, kDelete side a,
// kInsert side b.
enum class Op { kEqual, kDelete, kInsert };
struct Run {
  Op op;
  std::size_t a;  // start on side a
  std::size_t b;  // start on side b
  std::size_t len;
};

using LineGetter = std::function<std::string(bool side_b, std::size_t index)>;

void push_run(std::vector<Run>& runs, Op op, std::size_t a, std::size_t b, std::size_t len) {
  if (len == 0) return;
  if (!runs.empty() && runs.back().op == op) {
    Run& last = runs.back();
    bool contiguous = (op == Op::kInsert || last.a + last.len == a) &&
                      (op == Op::kDelete || last.b + last.len == b);
    if (contiguous) {
      last.len += len;
      return;
    }
  }
  runs.push_back(Run{op, a, b, len});
}

std::string range_text(std::size_t start, std::size_t len) {
  // GNU diff: 1-based start; an empty range names the line before it.
  std::size_t shown = len == 0 ? start : start + 1;
  if (len == 1) return std::to_string(shown);
  return std::to_string(shown) + "," + std::to_string(len);
}

// Renders an edit script as unified hunks with `context` lines around changes.
LineDiff render(const std::vector<Run>& runs, const LineGetter& line, const DiffOptions& opt) {
  LineDiff out;
  // Collect change indices (runs that are not equal).
  std::vector<std::size_t> changes;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    if (runs[i].op != Op::kEqual) changes.push_back(i);
  }
  if (changes.empty()) return out;
  out.identical = false;
  std::size_t emitted = 0;
  std::size_t ci = 0;
  while (ci < changes.size()) {
    // A hunk spans change runs whose separating equal runs are <= 2*context.
    std::size_t first = changes[ci];
    std::size_t last = first;
    std::size_t cj = ci + 1;
    while (cj < changes.size()) {
      std::size_t gap = 0;
      for (std::size_t k = last + 1; k < changes[cj]; ++k) gap += runs[k].len;
      if (gap > 2 * opt.context) break;
      last = changes[cj];
      ++cj;
    }
    // Leading context.
    std::size_t a_start = runs[first].a;
    std::size_t b_start = runs[first].b;
    std::size_t lead = 0;
    if (first > 0 && runs[first - 1].op == Op::kEqual) lead = std::min(opt.context, runs[first - 1].len);
    a_start -= lead;
    b_start -= lead;
    std::size_t trail = 0;
    if (last + 1 < runs.size() && runs[last + 1].op == Op::kEqual) trail = std::min(opt.context, runs[last + 1].len);
    std::vector<std::string> body;
    std::size_t a_len = 0;
    std::size_t b_len = 0;
    for (std::size_t i = 0; i < lead; ++i) {
      body.push_back(" " + line(false, a_start + i));
      ++a_len;
      ++b_len;
    }
    for (std::size_t k = first; k <= last; ++k) {
      const Run& r = runs[k];
      for (std::size_t i = 0; i < r.len; ++i) {
        if (r.op == Op::kEqual) {
          body.push_back(" " + line(false, r.a + i));
          ++a_len;
          ++b_len;
        } else if (r.op == Op::kDelete) {
          body.push_back("-" + line(false, r.a + i));
          ++a_len;
        } else {
          body.push_back("+" + line(true, r.b + i));
          ++b_len;
        }
      }
    }
    if (trail > 0) {
      const Run& r = runs[last + 1];
      for (std::size_t i = 0; i < trail; ++i) {
        body.push_back(" " + line(false, r.a + i));
        ++a_len;
        ++b_len;
      }
    }
    std::string header = "@@ -" + range_text(a_start, a_len) + " +" + range_text(b_start, b_len) + " @@";
    if (emitted < opt.max_output_lines) {
      out.text += header + "\n";
      ++emitted;
    } else {
      ++out.lines_removed;
    }
    for (auto& l : body) {
      if (emitted < opt.max_output_lines) {
        out.text += l;
        out.text += '\n';
        ++emitted;
      } else {
        ++out.lines_removed;
      }
    }
    ci = cj;
  }
  if (out.lines_removed > 0) {
    out.text += "[ " + std::to_string(out.lines_removed) + " lines removed ]\n";
  }
  return out;
}

// Myers' greedy O(ND) algorithm on interned lines, with the trace kept for
// the backtrack (memory O(D^2), hence the edit-distance cap).
std::vector<Run> myers(const std::vector<int>& a, const std::vector<int>& b, std::size_t max_d,
                       bool& approximate) {
  std::vector<Run> runs;
  std::size_t n = a.size();
  std::size_t m = b.size();
  // Common prefix and suffix first.
  std::size_t pre = 0;
  while (pre < n && pre < m && a[pre] == b[pre]) ++pre;
  std::size_t suf = 0;
  while (suf < n - pre && suf < m - pre && a[n - 1 - suf] == b[m - 1 - suf]) ++suf;
  push_run(runs, Op::kEqual, 0, 0, pre);
  const long N = static_cast<long>(n - pre - suf);
  const long M = static_cast<long>(m - pre - suf);
  const int* A = a.data() + pre;
  const int* B = b.data() + pre;
  std::vector<Run> middle;
  if (N == 0 || M == 0) {
    push_run(middle, Op::kDelete, pre, pre, static_cast<std::size_t>(N));
    push_run(middle, Op::kInsert, pre + static_cast<std::size_t>(N), pre, static_cast<std::size_t>(M));
  } else {
    const long max = std::min<long>(N + M, static_cast<long>(max_d));
    const long off = max + 1;
    std::vector<long> v(static_cast<std::size_t>(2 * max + 3), 0);
    std::vector<std::vector<long>> trace;
    long found_d = -1;
    for (long d = 0; d <= max && found_d < 0; ++d) {
      for (long k = -d; k <= d; k += 2) {
        long x;
        if (k == -d || (k != d && v[static_cast<std::size_t>(off + k - 1)] < v[static_cast<std::size_t>(off + k + 1)])) {
          x = v[static_cast<std::size_t>(off + k + 1)];
        } else {
          x = v[static_cast<std::size_t>(off + k - 1)] + 1;
        }
        long y = x - k;
        while (x < N && y < M && A[x] == B[y]) {
          ++x;
          ++y;
        }
        v[static_cast<std::size_t>(off + k)] = x;
        if (x >= N && y >= M) {
          found_d = d;
          break;
        }
      }
      trace.emplace_back(v.begin() + (off - d - 1 < 0 ? 0 : off - d - 1), v.begin() + off + d + 2);
    }
    if (found_d < 0) {
      approximate = true;
      push_run(middle, Op::kDelete, pre, pre, static_cast<std::size_t>(N));
      push_run(middle, Op::kInsert, pre + static_cast<std::size_t>(N), pre, static_cast<std::size_t>(M));
    } else {
      // Backtrack from (N, M).
      std::vector<Run> rev;
      long x = N;
      long y = M;
      for (long d = found_d; d > 0; --d) {
        const std::vector<long>& pv = trace[static_cast<std::size_t>(d - 1)];
        // pv holds v[off-d .. off+d] (index 0 == k = -d).
        auto at = [&](long k) { return pv[static_cast<std::size_t>(k + d)]; };
        long k = x - y;
        long prev_k;
        if (k == -d || (k != d && at(k - 1) < at(k + 1))) {
          prev_k = k + 1;
        } else {
          prev_k = k - 1;
        }
        long prev_x = at(prev_k);
        long prev_y = prev_x - prev_k;
        // Snake from (mid_x, mid_y) to (x, y).
        long mid_x = prev_k == k + 1 ? prev_x : prev_x + 1;
        long mid_y = mid_x - k;
        if (x > mid_x) rev.push_back(Run{Op::kEqual, pre + static_cast<std::size_t>(mid_x), pre + static_cast<std::size_t>(mid_y), static_cast<std::size_t>(x - mid_x)});
        if (prev_k == k + 1) {
          rev.push_back(Run{Op::kInsert, pre + static_cast<std::size_t>(prev_x), pre + static_cast<std::size_t>(prev_y), 1});
        } else {
          rev.push_back(Run{Op::kDelete, pre + static_cast<std::size_t>(prev_x), pre + static_cast<std::size_t>(prev_y), 1});
        }
        x = prev_x;
        y = prev_y;
      }
      if (x > 0) rev.push_back(Run{Op::kEqual, pre, pre, static_cast<std::size_t>(x)});
      for (auto it = rev.rbegin(); it != rev.rend(); ++it) push_run(middle, it->op, it->a, it->b, it->len);
    }
  }
  for (const Run& r : middle) push_run(runs, r.op, r.a, r.b, r.len);
  push_run(runs, Op::kEqual, n - suf, m - suf, suf);
  return runs;
}

}  // namespace

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) {
      lines.push_back(text.substr(start));
      break;
    }
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

LineDiff diff_lines(const std::vector<std::string_view>& a, const std::vector<std::string_view>& b,
                    const DiffOptions& options) {
  if (a.size() > options.max_input_lines || b.size() > options.max_input_lines) {
    LineDiff out;
    out.identical = a == b;
    out.too_much_input = !out.identical;
    return out;
  }
  std::unordered_map<std::string_view, int> ids;
  ids.reserve(a.size() + b.size());
  std::vector<int> ia;
  std::vector<int> ib;
  ia.reserve(a.size());
  ib.reserve(b.size());
  for (auto l : a) ia.push_back(ids.emplace(l, static_cast<int>(ids.size())).first->second);
  for (auto l : b) ib.push_back(ids.emplace(l, static_cast<int>(ids.size())).first->second);
  bool approximate = false;
  std::vector<Run> runs = myers(ia, ib, options.max_edit_distance, approximate);
  LineDiff out = render(runs, [&](bool side_b, std::size_t i) {
    return std::string(side_b ? b[i] : a[i]);
  }, options);
  out.approximate = approximate;
  return out;
}

LineDiff diff_text(std::string_view a, std::string_view b, const DiffOptions& options) {
  if (a == b) return LineDiff{};
  return diff_lines(split_lines(a), split_lines(b), options);
}

std::string hexdump_line(Bytes row, std::uint64_t offset) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  s.reserve(68);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08llx: ", static_cast<unsigned long long>(offset));
  s += buf;
  for (std::size_t i = 0; i < 16; ++i) {
    if (i < row.size()) {
      s += kHex[row[i] >> 4];
      s += kHex[row[i] & 15];
    } else {
      s += "  ";
    }
    if (i % 2 == 1) s += ' ';
  }
  s += ' ';
  for (std::uint8_t c : row) s += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
  return s;
}

LineDiff diff_hex(Bytes a, Bytes b, const DiffOptions& options, std::uint64_t base_offset) {
  auto row = [&](Bytes data, std::size_t i) {
    std::size_t off = i * 16;
    return data.subspan(off, std::min<std::size_t>(16, data.size() - off));
  };
  std::size_t rows_a = (a.size() + 15) / 16;
  std::size_t rows_b = (b.size() + 15) / 16;
  if (a.size() == b.size()) {
    std::vector<Run> runs;
    for (std::size_t i = 0; i < rows_a; ++i) {
      Bytes ra = row(a, i);
      Bytes rb = row(b, i);
      bool same = std::equal(ra.begin(), ra.end(), rb.begin());
      if (same) {
        push_run(runs, Op::kEqual, i, i, 1);
      } else {
        push_run(runs, Op::kDelete, i, i, 1);
        push_run(runs, Op::kInsert, i + 1, i, 1);
      }
    }
    // Group delete/insert pairs: reorder consecutive D/I runs so all deletes
    // of a block come before its inserts (unified diff convention).
    std::vector<Run> grouped;
    for (std::size_t i = 0; i < runs.size();) {
      if (runs[i].op == Op::kEqual) {
        grouped.push_back(runs[i]);
        ++i;
        continue;
      }
      std::size_t j = i;
      std::size_t start = runs[i].op == Op::kDelete ? runs[i].a : runs[i].b;
      std::size_t len = 0;
      while (j < runs.size() && runs[j].op != Op::kEqual) {
        if (runs[j].op == Op::kDelete) len += runs[j].len;
        ++j;
      }
      grouped.push_back(Run{Op::kDelete, start, start, len});
      grouped.push_back(Run{Op::kInsert, start + len, start, len});
      i = j;
    }
    return render(grouped, [&](bool side_b, std::size_t i) {
      return hexdump_line(row(side_b ? b : a, i), base_offset + i * 16);
    }, options);
  }
  if (rows_a > options.max_input_lines || rows_b > options.max_input_lines) {
    LineDiff out;
    out.identical = false;
    out.too_much_input = true;
    return out;
  }
  std::vector<std::string> la;
  std::vector<std::string> lb;
  la.reserve(rows_a);
  lb.reserve(rows_b);
  // Offsets are left out of the alignment key: an insertion would otherwise
  // make every later line differ.
  for (std::size_t i = 0; i < rows_a; ++i) la.push_back(hexdump_line(row(a, i), base_offset + i * 16));
  for (std::size_t i = 0; i < rows_b; ++i) lb.push_back(hexdump_line(row(b, i), base_offset + i * 16));
  std::vector<std::string_view> ka;
  std::vector<std::string_view> kb;
  ka.reserve(la.size());
  kb.reserve(lb.size());
  for (auto& l : la) ka.push_back(std::string_view(l).substr(10));
  for (auto& l : lb) kb.push_back(std::string_view(l).substr(10));
  std::unordered_map<std::string_view, int> ids;
  std::vector<int> ia;
  std::vector<int> ib;
  ia.reserve(ka.size());
  ib.reserve(kb.size());
  for (auto l : ka) ia.push_back(ids.emplace(l, static_cast<int>(ids.size())).first->second);
  for (auto l : kb) ib.push_back(ids.emplace(l, static_cast<int>(ids.size())).first->second);
  bool approximate = false;
  std::vector<Run> runs = myers(ia, ib, options.max_edit_distance, approximate);
  LineDiff out = render(runs, [&](bool side_b, std::size_t i) { return side_b ? lb[i] : la[i]; }, options);
  out.approximate = approximate;
  return out;
}

}  // namespace kmr::compare

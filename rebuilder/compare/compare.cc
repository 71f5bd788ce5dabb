// Comparison driver: hashing, dispatch through the registry, degradation to a
// binary diff, and the shared member-pairing logic of every container.
#include <algorithm>
#include <map>
#include <thread>
#include <unordered_map>

#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/compare/comparator.h"
#include "rebuilder/compare/pairing.h"

namespace kmr::compare {

namespace {

std::string sha_hex(Bytes b) { return to_hex(sha256(b)); }

constexpr std::size_t kParallelHashBytes = 32 << 20;

void apply_line_diff(Context& ctx, const LineDiff& ld, std::string_view a_sha_src, std::string_view b_sha_src,
                     Difference& out) {
  if (ld.identical) return;
  if (ld.too_much_input) {
    out.comments.push_back("[ Too much input for diff (SHA256: " + sha_hex(as_bytes(a_sha_src)) + " vs " +
                           sha_hex(as_bytes(b_sha_src)) + ") ]");
    return;
  }
  if (ld.approximate) out.comments.push_back("Diff is approximate: edit distance limit reached.");
  if (ld.lines_removed > 0) {
    out.comments.push_back("Diff truncated: " + std::to_string(ld.lines_removed) + " lines removed.");
  }
  if (!ctx.charge_report(ld.text.size())) {
    out.comments.push_back(kReportSizeComment);
    return;
  }
  out.unified_diff = ld.text;
}

}  // namespace

void add_hex_diff(Context& ctx, Bytes a, Bytes b, Difference& out) {
  LineDiff ld = diff_hex(a, b, ctx.options().diff);
  if (ld.identical) return;
  out.has_internal_linenos = true;
  if (ld.too_much_input) {
    out.comments.push_back("[ Too much input for diff (SHA256: " + sha_hex(a) + " vs " + sha_hex(b) + ") ]");
    return;
  }
  apply_line_diff(ctx, ld, {}, {}, out);
}

void set_text_diff(Context& ctx, std::string_view a, std::string_view b, Difference& out) {
  LineDiff ld = diff_text(a, b, ctx.options().diff);
  apply_line_diff(ctx, ld, a, b, out);
}

void add_text_view(Context& ctx, Difference& parent, const std::string& label, const std::string& kind,
                   std::string_view a, std::string_view b) {
  if (a == b) return;
  Difference v;
  v.source1 = label;
  v.source2 = label;
  v.kind = kind;
  set_text_diff(ctx, a, b, v);
  if (v.empty()) v.comments.push_back("Texts differ");
  parent.details.push_back(std::move(v));
}

const Comparator& identify(Bytes data, std::string_view name) {
  const auto& reg = registry();
  for (const auto& c : reg) {
    if (c.recognize(data, name)) return c;
  }
  return reg.back();
}

std::optional<Difference> compare_inputs(Context& ctx, const Input& a, const Input& b, int depth) {
  Difference d;
  d.source1 = a.name;
  d.source2 = b.name;
  if (a.is_directory() || b.is_directory()) {
    d.kind = "directory";
    if (!(a.is_directory() && b.is_directory())) {
      d.comments.push_back(a.is_directory() ? "First is a directory, second is a file"
                                            : "First is a file, second is a directory");
      return d;
    }
    const Comparator& dir = registry().front();  // "directory" is first in the registry
    auto r = dir.compare(ctx, a, b, depth, d);
    if (!r) d.comments.push_back("Directory comparison failed: " + r.error().to_string());
    if (d.empty()) return std::nullopt;
    return d;
  }
  Bytes ba = a.bytes();
  Bytes bb = b.bytes();
  d.size1 = ba.size();
  d.size2 = bb.size();
  auto hash = [](const Input& in, Bytes bytes) {
    return !in.sha256.empty() ? in.sha256 : in.blob ? blob_sha256_hex(*in.blob) : sha_hex(bytes);
  };
  if (a.sha256.empty() && b.sha256.empty() && ba.size() + bb.size() > kParallelHashBytes) {
    // Large top-level inputs: one core each.
    std::thread t([&] { d.sha256_1 = hash(a, ba); });
    d.sha256_2 = hash(b, bb);
    t.join();
  } else {
    d.sha256_1 = hash(a, ba);
    d.sha256_2 = hash(b, bb);
  }
  if (d.sha256_1 == d.sha256_2) return std::nullopt;
  if (ctx.timed_out()) {
    d.kind = "binary";
    d.comments.push_back(kTimeoutComment);
    return d;
  }
  const Comparator& ca = identify(ba, a.name);
  const Comparator& cb = identify(bb, b.name);
  if (&ca != &cb && ca.compare != cb.compare && (is_single_stream_compressor(ca) || is_single_stream_compressor(cb))) {
    // One side compressed, the other not (or another format inside): compare
    // what the compressed side holds with the other side.
    d.kind = "recompressed";
    add_text_view(ctx, d, "filetype from kmr", "filetype", std::string(ca.kind) + "\n", std::string(cb.kind) + "\n");
    auto r = compare_recompressed(ctx, a, b, is_single_stream_compressor(ca), depth, d);
    if (!r) {
      d.details.clear();
      d.comments.push_back("recompressed comparison failed (" + r.error().to_string() + "); falling back to a binary comparison");
      add_hex_diff(ctx, ba, bb, d);
    }
    return d;
  }
  if (&ca != &cb && ca.compare != cb.compare) {
    d.kind = "binary";
    add_text_view(ctx, d, "filetype from kmr", "filetype", std::string(ca.kind) + "\n", std::string(cb.kind) + "\n");
    add_hex_diff(ctx, ba, bb, d);
    return d;
  }
  d.kind = std::string(ca.kind);
  if (&ca != &cb) {  // e.g. xz vs zstd: same comparator, different format
    add_text_view(ctx, d, "filetype from kmr", "filetype", std::string(ca.kind) + "\n", std::string(cb.kind) + "\n");
  }
  if (ca.container && depth >= static_cast<int>(ctx.options().limits.max_container_depth)) {
    d.comments.push_back("Reached max container depth (" +
                         std::to_string(ctx.options().limits.max_container_depth) + ")");
    return d;
  }
  auto r = ca.compare(ctx, a, b, depth, d);
  if (!r) {
    d.details.clear();
    d.unified_diff.reset();
    d.comments.push_back(std::string(ca.kind) + " comparison failed (" + r.error().to_string() +
                         "); falling back to a binary comparison");
    add_hex_diff(ctx, ba, bb, d);
  } else if (d.empty()) {
    d.comments.push_back("No format-specific differences found; falling back to a binary comparison");
    add_hex_diff(ctx, ba, bb, d);
  }
  return d;
}

// ---- containers -------------------------------------------------------

namespace {

char type_char(MemberType t) {
  switch (t) {
    case MemberType::kFile: return '-';
    case MemberType::kDirectory: return 'd';
    case MemberType::kSymlink: return 'l';
    case MemberType::kHardlink: return 'h';
    case MemberType::kOther: return '?';
  }
  return '?';
}

std::string listing(const MemberList& l) {
  std::string s;
  char buf[64];
  for (const auto& m : l.members) {
    std::snprintf(buf, sizeof buf, "%c%04o %10llu ", type_char(m.type), m.mode & 07777,
                  static_cast<unsigned long long>(m.size));
    s += buf;
    s += m.path;
    if (!m.link.empty()) s += " -> " + m.link;
    s += '\n';
  }
  return s;
}

Difference one_sided(const Member& m, Status status) {
  Difference d;
  d.status = status;
  d.kind = m.type == MemberType::kDirectory ? "directory" : m.type == MemberType::kSymlink ? "symlink" : "file";
  if (status == Status::kAdded) {
    d.source1 = "/dev/null";
    d.source2 = m.path;
    d.size2 = m.size;
    d.sha256_2 = m.sha256;
    d.comments.push_back("Only in second");
  } else {
    d.source1 = m.path;
    d.source2 = "/dev/null";
    d.size1 = m.size;
    d.sha256_1 = m.sha256;
    d.comments.push_back("Only in first");
  }
  return d;
}

struct Task {
  std::size_t a;
  std::size_t b;
  std::optional<double> similarity;  // fuzzy pair
  std::size_t order;                 // position in the output
};

// Output nodes with their position (a's index, or |a| + b's index).
using Nodes = std::vector<std::pair<std::size_t, Difference>>;

// Members paired by path with the kernel release normalised; a repeated path
// pairs its n-th occurrence on each side.
struct PathPairing {
  std::vector<long> pair_of_a;  // index in b, or -1
  std::vector<bool> b_paired;
};

PathPairing pair_by_path(const MemberList& a, const MemberList& b) {
  std::vector<std::string> paths_a;
  std::vector<std::string> paths_b;
  for (const auto& m : a.members) paths_a.push_back(m.path);
  for (const auto& m : b.members) paths_b.push_back(m.path);
  auto rel_a = kernel_releases(paths_a);
  auto rel_b = kernel_releases(paths_b);
  std::unordered_map<std::string, std::vector<std::size_t>> index_b;
  for (std::size_t j = 0; j < b.members.size(); ++j) {
    index_b[normalise_path(b.members[j].path, rel_b)].push_back(j);
  }
  PathPairing p{std::vector<long>(a.members.size(), -1), std::vector<bool>(b.members.size(), false)};
  std::unordered_map<std::string, std::size_t> taken;  // occurrence counters for duplicate paths
  for (std::size_t i = 0; i < a.members.size(); ++i) {
    std::string key = normalise_path(a.members[i].path, rel_a);
    auto it = index_b.find(key);
    if (it == index_b.end()) continue;
    std::size_t& k = taken[key];
    if (k >= it->second.size()) continue;
    p.pair_of_a[i] = static_cast<long>(it->second[k++]);
    p.b_paired[static_cast<std::size_t>(p.pair_of_a[i])] = true;
  }
  return p;
}

// Paired members: a node when the type or a link target changed, a task when
// two files' hashes differ (or one could not be read).
void classify_pairs(Context& ctx, const MemberList& a, const MemberList& b, const PathPairing& p,
                    std::vector<Task>& tasks, Nodes& nodes) {
  for (std::size_t i = 0; i < a.members.size(); ++i) {
    if (p.pair_of_a[i] < 0) continue;
    auto j = static_cast<std::size_t>(p.pair_of_a[i]);
    const Member& ma = a.members[i];
    const Member& mb = b.members[j];
    if (ma.type != mb.type) {
      Difference d;
      d.source1 = ma.path;
      d.source2 = mb.path;
      d.kind = "file";
      d.comments.push_back(std::string("Type changed: ") + type_char(ma.type) + " vs " + type_char(mb.type));
      nodes.emplace_back(i, std::move(d));
      continue;
    }
    if (ma.type == MemberType::kSymlink || ma.type == MemberType::kHardlink) {
      if (ma.link != mb.link) {
        Difference d;
        d.source1 = ma.path;
        d.source2 = mb.path;
        d.kind = "symlink";
        set_text_diff(ctx, "destination: " + ma.link + "\n", "destination: " + mb.link + "\n", d);
        nodes.emplace_back(i, std::move(d));
      }
      continue;
    }
    if (ma.type != MemberType::kFile) continue;
    if (ma.sha256 != mb.sha256 || !ma.error.empty() || !mb.error.empty()) tasks.push_back(Task{i, j, {}, i});
  }
}

// Files without a counterpart by path, and whether they go to fuzzy pairing
// (a comment says why not when there are too many).
struct Leftovers {
  std::vector<std::size_t> a;
  std::vector<std::size_t> b;
  bool fuzzy = false;
};

Leftovers unpaired_files(Context& ctx, const MemberList& a, const MemberList& b, const PathPairing& p,
                         Difference& out) {
  Leftovers left;
  for (std::size_t i = 0; i < a.members.size(); ++i) {
    if (p.pair_of_a[i] < 0 && a.members[i].type == MemberType::kFile) left.a.push_back(i);
  }
  for (std::size_t j = 0; j < b.members.size(); ++j) {
    if (!p.b_paired[j] && b.members[j].type == MemberType::kFile) left.b.push_back(j);
  }
  const Options& o = ctx.options();
  left.fuzzy = o.fuzzy && !left.a.empty() && !left.b.empty();
  if (left.fuzzy && (left.a.size() > o.fuzzy_max_members || left.b.size() > o.fuzzy_max_members)) {
    out.comments.push_back("Fuzzy pairing skipped: " + std::to_string(left.a.size()) + " x " +
                           std::to_string(left.b.size()) + " unpaired members exceed the limit of " +
                           std::to_string(o.fuzzy_max_members));
    left.fuzzy = false;
  }
  return left;
}

// Loads the content of every member that will be looked into and is not in
// memory yet (both sides at once when a worker is free).
void load_contents(Context& ctx, MemberList& a, MemberList& b, const std::vector<Task>& tasks,
                   const Leftovers& left, const Fetcher& fetch_a, const Fetcher& fetch_b, Difference& out) {
  std::vector<std::size_t> want_a;
  std::vector<std::size_t> want_b;
  for (const auto& t : tasks) {
    if (!a.members[t.a].content) want_a.push_back(t.a);
    if (!b.members[t.b].content) want_b.push_back(t.b);
  }
  if (left.fuzzy) {
    for (auto i : left.a) if (!a.members[i].content) want_a.push_back(i);
    for (auto j : left.b) if (!b.members[j].content) want_b.push_back(j);
  }
  Result<void> fa = ok();
  Result<void> fb = ok();
  if (!want_a.empty() && !want_b.empty() && ctx.try_acquire_worker()) {
    std::thread t([&] { fa = fetch_a(a, want_a); });
    fb = fetch_b(b, want_b);
    t.join();
    ctx.release_worker();
  } else {
    if (!want_a.empty()) fa = fetch_a(a, want_a);
    if (!want_b.empty()) fb = fetch_b(b, want_b);
  }
  if (!fa) out.comments.push_back("first: re-reading members failed: " + fa.error().to_string());
  if (!fb) out.comments.push_back("second: re-reading members failed: " + fb.error().to_string());
}

// Pairs leftover files by content similarity (a global assignment): equal
// content under another name is a node, similar content a task. Marks the
// members it paired.
void pair_fuzzy(Context& ctx, const MemberList& a, const MemberList& b, const Leftovers& left,
                std::vector<Task>& tasks, Nodes& nodes, std::vector<bool>& fuzzy_a, std::vector<bool>& fuzzy_b) {
  std::vector<Sketch> sa;
  std::vector<Sketch> sb;
  std::vector<std::string> na;
  std::vector<std::string> nb;
  for (auto i : left.a) {
    sa.push_back(make_sketch(a.members[i].content ? a.members[i].content->bytes() : Bytes()));
    na.push_back(a.members[i].path);
  }
  for (auto j : left.b) {
    sb.push_back(make_sketch(b.members[j].content ? b.members[j].content->bytes() : Bytes()));
    nb.push_back(b.members[j].path);
  }
  for (const auto& p : fuzzy_pairs(sa, na, sb, nb, ctx.options().fuzzy_threshold)) {
    std::size_t i = left.a[p.a];
    std::size_t j = left.b[p.b];
    fuzzy_a[i] = true;
    fuzzy_b[j] = true;
    if (a.members[i].sha256 != b.members[j].sha256) {
      tasks.push_back(Task{i, j, p.similarity, i});
      continue;
    }
    Difference d;
    d.source1 = a.members[i].path;
    d.source2 = b.members[j].path;
    d.kind = "file";
    d.sha256_1 = a.members[i].sha256;
    d.sha256_2 = b.members[j].sha256;
    d.size1 = a.members[i].size;
    d.size2 = b.members[j].size;
    d.comments.push_back("Files identical despite different names");
    nodes.emplace_back(i, std::move(d));
  }
}

// Removed and added members. One-sided directories appear in the file list
// only (like diffoscope).
void add_one_sided(const MemberList& a, const MemberList& b, const PathPairing& p, const Leftovers& left,
                   const std::vector<bool>& fuzzy_a, const std::vector<bool>& fuzzy_b, Nodes& nodes) {
  for (auto i : left.a) {
    if (!fuzzy_a[i]) nodes.emplace_back(i, one_sided(a.members[i], Status::kRemoved));
  }
  for (std::size_t i = 0; i < a.members.size(); ++i) {
    if (p.pair_of_a[i] < 0 && a.members[i].type != MemberType::kFile && a.members[i].type != MemberType::kDirectory) {
      nodes.emplace_back(i, one_sided(a.members[i], Status::kRemoved));
    }
  }
  for (std::size_t j = 0; j < b.members.size(); ++j) {
    if (!p.b_paired[j] && !fuzzy_b[j] && b.members[j].type != MemberType::kDirectory) {
      nodes.emplace_back(a.members.size() + j, one_sided(b.members[j], Status::kAdded));
    }
  }
}

// A pair whose content is missing or was not read completely: hashes, the
// reasons, and a hex diff of what there is.
Difference unreadable_pair(Context& ctx, const Member& ma, const Member& mb) {
  Difference d;
  d.source1 = ma.path;
  d.source2 = mb.path;
  d.kind = "binary";
  d.size1 = ma.size;
  d.size2 = mb.size;
  d.sha256_1 = ma.sha256;
  d.sha256_2 = mb.sha256;
  if (!ma.error.empty()) d.comments.push_back("first: " + ma.error);
  if (!mb.error.empty()) d.comments.push_back("second: " + mb.error);
  if (!ma.content || !mb.content) {
    d.comments.push_back("Member content unavailable; only hashes compared");
  } else {
    d.comments.push_back("Member could not be read completely; falling back to a binary comparison");
    add_hex_diff(ctx, ma.content->bytes(), mb.content->bytes(), d);
  }
  return d;
}

std::optional<Difference> compare_pair(Context& ctx, const Task& t, const MemberList& a, const MemberList& b,
                                       int depth) {
  const Member& ma = a.members[t.a];
  const Member& mb = b.members[t.b];
  if (!ma.content || !mb.content || !ma.error.empty() || !mb.error.empty()) return unreadable_pair(ctx, ma, mb);
  Input ia{ma.path, ma.content, {}, ma.sha256};
  Input ib{mb.path, mb.content, {}, mb.sha256};
  auto r = compare_inputs(ctx, ia, ib, depth + 1);
  if (t.similarity) {
    if (!r) {
      r = Difference{};
      r->source1 = ma.path;
      r->source2 = mb.path;
      r->kind = "file";
    }
    char buf[96];
    std::snprintf(buf, sizeof buf, "Files %.0f%% similar despite different names", *t.similarity * 100);
    r->comments.insert(r->comments.begin(), buf);
  }
  return r;
}

// Compares the differing pairs, independent members in parallel.
void run_tasks(Context& ctx, const std::vector<Task>& tasks, const MemberList& a, const MemberList& b, int depth,
               Nodes& nodes) {
  std::vector<std::optional<Difference>> results(tasks.size());
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t k = next.fetch_add(1); k < tasks.size(); k = next.fetch_add(1)) {
      results[k] = compare_pair(ctx, tasks[k], a, b, depth);
    }
  };
  std::vector<std::thread> extra;
  while (tasks.size() > extra.size() + 1 && ctx.try_acquire_worker()) {
    extra.emplace_back([&] {
      work();
      ctx.release_worker();
    });
  }
  work();
  for (auto& t : extra) t.join();
  for (std::size_t k = 0; k < tasks.size(); ++k) {
    if (results[k]) nodes.emplace_back(tasks[k].order, std::move(*results[k]));
  }
}

}  // namespace

void compare_members(Context& ctx, MemberList& a, MemberList& b, const Fetcher& fetch_a, const Fetcher& fetch_b,
                     int depth, Difference& out) {
  for (const auto& c : a.comments) out.comments.push_back("first: " + c);
  for (const auto& c : b.comments) out.comments.push_back("second: " + c);
  add_text_view(ctx, out, "file list", "file-list", listing(a), listing(b));

  const PathPairing paired = pair_by_path(a, b);
  std::vector<Task> tasks;
  Nodes nodes;
  classify_pairs(ctx, a, b, paired, tasks, nodes);
  const Leftovers left = unpaired_files(ctx, a, b, paired, out);
  load_contents(ctx, a, b, tasks, left, fetch_a, fetch_b, out);
  std::vector<bool> fuzzy_a(a.members.size(), false);
  std::vector<bool> fuzzy_b(b.members.size(), false);
  if (left.fuzzy) pair_fuzzy(ctx, a, b, left, tasks, nodes, fuzzy_a, fuzzy_b);
  add_one_sided(a, b, paired, left, fuzzy_a, fuzzy_b, nodes);
  run_tasks(ctx, tasks, a, b, depth, nodes);
  std::stable_sort(nodes.begin(), nodes.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  for (auto& n : nodes) out.details.push_back(std::move(n.second));
}

}  // namespace kmr::compare

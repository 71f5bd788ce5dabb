// `kmr diff A B`: diffoscope-style recursive comparison.
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <limits>

#include "rebuilder/base/file.h"
#include "rebuilder/base/command.h"
#include "rebuilder/base/flags.h"
#include "rebuilder/compare/comparator.h"
#include "rebuilder/compare/presenters.h"

namespace kmr::compare {

namespace {

Result<void> emit(const std::string& target, const std::string& text) {
  if (target == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return ok();
  }
  // Atomic replace only for regular files: never rename over a device
  // (/dev/null, /dev/stdout) or anything else that is not ours.
  struct stat st {};
  if (::stat(target.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    std::FILE* f = std::fopen(target.c_str(), "w");
    if (f == nullptr) return io_error(target + ": cannot open: " + std::strerror(errno));
    bool good = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    good = (std::fclose(f) == 0) && good;
    if (!good) return io_error(target + ": write failed");
    return ok();
  }
  return write_file_atomic(target, as_bytes(text));
}

Result<Input> open_input(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return io_error(path + ": cannot read: " + std::strerror(errno));
  Input in;
  in.name = path;
  if (S_ISDIR(st.st_mode)) {
    in.dir_path = path;
    return in;
  }
  KMR_ASSIGN_OR_RETURN(in.blob, blob_from_file(path));
  return in;
}

// Every flag of kmr diff, applied to Options and the three outputs after parsing.
struct DiffFlags {
  std::string text_out, json_out, html_out;
  std::int64_t depth = 0, diff_lines = 0, report_size = -1, member_size = 0, timeout = 0, jobs = 0;
  bool no_fuzzy = false, no_objdump = false;
  double fuzzy_threshold = -1;
  std::vector<std::string> paths;

  void declare(cli::FlagParser& p) {
    constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
    p.string("--text", "FILE|-", &text_out, "text report (default: text on stdout)")
        .string("--json", "FILE|-", &json_out, "JSON (diffoscope structure + kind/status/sha256/size + summary)")
        .string("--html", "DIR", &html_out, "self-contained DIR/index.html, nodes collapsed")
        .integer("--max-container-depth", "N", &depth, 1, 1000, "default 50")
        .integer("--max-diff-lines", "N", &diff_lines, 1, kMax, "lines per diff node, default 4096")
        .integer("--max-report-size", "BYTES", &report_size, 0, kMax, "total diff text, default 67108864")
        .integer("--max-member-size", "BYTES", &member_size, 1, kMax, "one decompressed member, default 4294967296")
        .integer("--timeout", "SECONDS", &timeout, 1, std::int64_t{365} * 24 * 3600, "total wall time, default 3600")
        .integer("--jobs", "N", &jobs, 1, 64, "threads, default 2")
        .boolean("--no-fuzzy", &no_fuzzy, "do not pair leftover members by similarity")
        .real("--fuzzy-threshold", "F", &fuzzy_threshold, 0, 1, "minimum similarity 0..1, default 0.5")
        .boolean("--no-objdump", &no_objdump, "never disassemble (hex dumps instead)")
        .positionals("INPUT", &paths, 2, 2)
        .epilogue("Several outputs may be combined.\nExit status: 0 identical, 1 different, 2 error (an input cannot be read).");
  }

  void apply(Options& opt) const {
    if (depth > 0) opt.limits.max_container_depth = static_cast<std::uint32_t>(depth);
    if (diff_lines > 0) opt.diff.max_output_lines = static_cast<std::uint64_t>(diff_lines);
    if (report_size >= 0) opt.limits.max_report_bytes = static_cast<std::uint64_t>(report_size);
    if (member_size > 0) opt.limits.max_member_bytes = static_cast<std::uint64_t>(member_size);
    if (timeout > 0) opt.limits.max_wall_time = std::chrono::seconds(timeout);
    if (jobs > 0) opt.jobs = static_cast<unsigned>(jobs);
    if (no_fuzzy) opt.fuzzy = false;
    if (fuzzy_threshold >= 0) opt.fuzzy_threshold = fuzzy_threshold;
    if (no_objdump) opt.use_objdump = false;
  }
};

int run_diff(const std::vector<std::string>& args) {
  Options opt;
  DiffFlags f;
  cli::FlagParser p("kmr diff", "[options] A B",
                    "Compares two files, archives or directories recursively and reports where\n"
                    "they differ (diffoscope-compatible structure, kernel-aware).");
  f.declare(p);
  if (auto code = p.parse_or_exit(args)) return *code;
  f.apply(opt);
  std::string& text_out = f.text_out;
  const std::string& json_out = f.json_out;
  const std::string& html_out = f.html_out;
  const std::vector<std::string>& paths = f.paths;
  if (text_out.empty() && json_out.empty() && html_out.empty()) text_out = "-";

  install_cleanup_handlers();
  auto a = open_input(paths[0]);
  if (!a) {
    std::fprintf(stderr, "kmr diff: %s\n", a.error().to_string().c_str());
    return cli::kExitError;
  }
  auto b = open_input(paths[1]);
  if (!b) {
    std::fprintf(stderr, "kmr diff: %s\n", b.error().to_string().c_str());
    return cli::kExitError;
  }
  auto start = std::chrono::steady_clock::now();
  std::optional<Difference> diff;
  {
    Context ctx(opt);
    diff = compare_inputs(ctx, *a, *b, 0);
  }
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  bool different = diff.has_value();
  Difference root;
  if (different) {
    root = std::move(*diff);
  } else {
    root.source1 = paths[0];
    root.source2 = paths[1];
    root.kind = a->is_directory() ? "directory" : "file";
  }
  int rc = different ? cli::kExitFailed : cli::kExitOk;
  if (!text_out.empty() && (different || text_out != "-")) {
    auto r = emit(text_out, different ? render_text(root) : std::string());
    if (!r) {
      std::fprintf(stderr, "kmr diff: %s\n", r.error().to_string().c_str());
      rc = cli::kExitError;
    }
  }
  if (!json_out.empty()) {
    auto r = emit(json_out, render_json(root, elapsed));
    if (!r) {
      std::fprintf(stderr, "kmr diff: %s\n", r.error().to_string().c_str());
      rc = cli::kExitError;
    }
  }
  if (!html_out.empty()) {
    auto r = write_html(html_out, root, elapsed);
    if (!r) {
      std::fprintf(stderr, "kmr diff: %s\n", r.error().to_string().c_str());
      rc = cli::kExitError;
    }
  }
  return rc;
}

}  // namespace

KMR_REGISTER_COMMAND(diff, "diff", "compare two files, packages or directories recursively (diffoscope-style)", run_diff);

}  // namespace kmr::compare

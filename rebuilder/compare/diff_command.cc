// `kmr diff A B`: diffoscope-style recursive comparison.
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "rebuilder/base/file.h"
#include "rebuilder/base/command.h"
#include "rebuilder/compare/comparator.h"
#include "rebuilder/compare/presenters.h"

namespace kmr::compare {

namespace {

constexpr const char* kUsage = R"(usage: kmr diff [options] A B

Compares two files, archives or directories recursively and reports where
they differ (diffoscope-compatible structure, kernel-aware).

Output (several may be combined; default: text on stdout):
  --text FILE|-            text report
  --json FILE|-            JSON (diffoscope structure + kind/status/sha256/size + summary)
  --html DIR               self-contained DIR/index.html, nodes collapsed
Limits:
  --max-container-depth N  default 50
  --max-diff-lines N       lines per diff node, default 4096
  --max-report-size BYTES  total diff text, default 67108864
  --max-member-size BYTES  one decompressed member, default 4294967296
  --timeout SECONDS        total wall time, default 3600
Behaviour:
  --jobs N                 threads, default 2
  --no-fuzzy               do not pair leftover members by similarity
  --fuzzy-threshold F      minimum similarity 0..1, default 0.5
  --no-objdump             never disassemble (hex dumps instead)
Exit status: 0 identical, 1 different, 2 error (an input cannot be read).
)";

bool parse_u64(const std::string& s, std::uint64_t& out) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 19) return false;
  out = std::stoull(s);
  return true;
}

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

int run_diff(const std::vector<std::string>& args) {
  Options opt;
  std::string text_out;
  std::string json_out;
  std::string html_out;
  std::vector<std::string> paths;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= args.size()) return false;
      out = args[++i];
      return true;
    };
    auto number = [&](std::uint64_t& out) {
      std::string v;
      return value(v) && parse_u64(v, out);
    };
    std::uint64_t n = 0;
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return cli::kExitOk;
    } else if (a == "--text") {
      if (!value(text_out)) goto bad;
    } else if (a == "--json") {
      if (!value(json_out)) goto bad;
    } else if (a == "--html") {
      if (!value(html_out)) goto bad;
    } else if (a == "--max-container-depth") {
      if (!number(n) || n == 0 || n > 1000) goto bad;
      opt.limits.max_container_depth = static_cast<std::uint32_t>(n);
    } else if (a == "--max-diff-lines") {
      if (!number(n) || n == 0) goto bad;
      opt.diff.max_output_lines = n;
    } else if (a == "--max-report-size") {
      if (!number(n)) goto bad;
      opt.limits.max_report_bytes = n;
    } else if (a == "--max-member-size") {
      if (!number(n) || n == 0) goto bad;
      opt.limits.max_member_bytes = n;
    } else if (a == "--timeout") {
      if (!number(n) || n == 0) goto bad;
      opt.limits.max_wall_time = std::chrono::seconds(n);
    } else if (a == "--jobs") {
      if (!number(n) || n == 0 || n > 64) goto bad;
      opt.jobs = static_cast<unsigned>(n);
    } else if (a == "--no-fuzzy") {
      opt.fuzzy = false;
    } else if (a == "--fuzzy-threshold") {
      std::string v;
      if (!value(v)) goto bad;
      try {
        opt.fuzzy_threshold = std::stod(v);
      } catch (...) {
        goto bad;
      }
    } else if (a == "--no-objdump") {
      opt.use_objdump = false;
    } else if (!a.empty() && a[0] == '-' && a != "-") {
      std::fprintf(stderr, "kmr diff: unknown option %s (see --help)\n", a.c_str());
      return cli::kExitError;
    } else {
      paths.push_back(a);
    }
    continue;
  bad:
    std::fprintf(stderr, "kmr diff: %s needs a valid value (see --help)\n", a.c_str());
    return cli::kExitError;
  }
  if (paths.size() != 2) {
    std::fprintf(stderr, "kmr diff: need exactly two inputs (see --help)\n");
    return cli::kExitError;
  }
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

#include "rebuilder/base/flags.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <system_error>

namespace kmr::cli {
namespace {

constexpr std::size_t kEchoBytes = 64;
constexpr std::size_t kHelpColumn = 24;

bool is_option(const std::string& a) { return a.size() > 1 && a[0] == '-'; }

std::string range_text(std::int64_t min, std::int64_t max) {
  if (max == std::numeric_limits<std::int64_t>::max()) return "an integer >= " + std::to_string(min);
  return "an integer from " + std::to_string(min) + " to " + std::to_string(max);
}

std::string number_text(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

Result<std::int64_t> parse_integer(const std::string& v, std::int64_t min, std::int64_t max) {
  std::int64_t n = 0;
  const char* end = v.data() + v.size();
  auto r = std::from_chars(v.data(), end, n, 10);
  if (v.empty() || v[0] == '+' || r.ec != std::errc() || r.ptr != end || n < min || n > max)
    return malformed("'" + printable_arg(v) + "' is not " + range_text(min, max));
  return n;
}

Result<double> parse_real(const std::string& v, double min, double max) {
  double d = 0;
  const char* end = v.data() + v.size();
  auto r = std::from_chars(v.data(), end, d, std::chars_format::fixed);
  if (v.empty() || r.ec != std::errc() || r.ptr != end || !std::isfinite(d) || d < min || d > max)
    return malformed("'" + printable_arg(v) + "' is not a number from " + number_text(min) + " to " +
                     number_text(max));
  return d;
}

// "  --name METAVAR" padded to the help column; help lines indented below it.
void append_flag_help(std::string& out, const std::string& left, const std::string& help) {
  out += left;
  std::size_t start = 0;
  bool first = true;
  do {
    std::size_t nl = help.find('\n', start);
    std::string line = help.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    const std::size_t col = first ? left.size() : 0;
    if (first && col + 1 >= kHelpColumn) {
      out += "\n";
      out.append(kHelpColumn, ' ');
    } else {
      out.append(kHelpColumn - col, ' ');
    }
    out += line + "\n";
    first = false;
    start = nl == std::string::npos ? std::string::npos : nl + 1;
  } while (start != std::string::npos && start < help.size());
}

}  // namespace

std::string printable_arg(std::string_view arg) {
  std::string out;
  for (std::size_t i = 0; i < arg.size() && i < kEchoBytes; ++i) {
    const auto c = static_cast<unsigned char>(arg[i]);
    if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (arg.size() > kEchoBytes) out += "...";
  return out;
}

FlagParser::FlagParser(std::string program, std::string synopsis, std::string description)
    : program_(std::move(program)), synopsis_(std::move(synopsis)), description_(std::move(description)) {}

FlagParser& FlagParser::add(Flag f) {
  KMR_CHECK(f.name.size() > 2 && f.name.rfind("--", 0) == 0 && find(f.name) == nullptr);
  flags_.push_back(std::move(f));
  return *this;
}

FlagParser& FlagParser::boolean(std::string name, bool* out, std::string help) {
  return add(Flag{std::move(name), "", std::move(help), Kind::kBool, out});
}

FlagParser& FlagParser::string(std::string name, std::string metavar, std::string* out, std::string help) {
  return add(Flag{std::move(name), std::move(metavar), std::move(help), Kind::kString, out});
}

FlagParser& FlagParser::strings(std::string name, std::string metavar, std::vector<std::string>* out,
                                std::string help) {
  return add(Flag{std::move(name), std::move(metavar), std::move(help), Kind::kStrings, out});
}

FlagParser& FlagParser::integer(std::string name, std::string metavar, std::int64_t* out, std::int64_t min,
                                std::int64_t max, std::string help) {
  Flag f{std::move(name), std::move(metavar), std::move(help), Kind::kInteger, out};
  f.imin = min;
  f.imax = max;
  return add(std::move(f));
}

FlagParser& FlagParser::real(std::string name, std::string metavar, double* out, double min, double max,
                             std::string help) {
  Flag f{std::move(name), std::move(metavar), std::move(help), Kind::kReal, out};
  f.dmin = min;
  f.dmax = max;
  return add(std::move(f));
}

FlagParser& FlagParser::each(std::string name, std::string metavar,
                             std::function<Result<void>(const std::string&)> on_value, std::string help) {
  Flag f{std::move(name), std::move(metavar), std::move(help), Kind::kEach};
  f.on_value = std::move(on_value);
  return add(std::move(f));
}

FlagParser& FlagParser::positionals(std::string metavar, std::vector<std::string>* out, std::size_t min,
                                    std::size_t max) {
  positional_metavar_ = std::move(metavar);
  positional_out_ = out;
  positional_min_ = min;
  positional_max_ = max;
  return *this;
}

FlagParser& FlagParser::epilogue(std::string text) {
  epilogue_ = std::move(text);
  return *this;
}

FlagParser& FlagParser::hidden() {
  KMR_CHECK(!flags_.empty());
  flags_.back().hidden = true;
  return *this;
}

FlagParser::Flag* FlagParser::find(std::string_view name) {
  for (auto& f : flags_)
    if (f.name == name) return &f;
  return nullptr;
}

bool FlagParser::given(std::string_view name) const {
  for (const auto& f : flags_)
    if (f.name == name) return f.seen > 0;
  return false;
}

Result<void> FlagParser::apply(Flag& f, const std::string& value) {
  const bool single = f.kind == Kind::kString || f.kind == Kind::kInteger || f.kind == Kind::kReal;
  if (single && f.seen > 0) return malformed(f.name + " given twice");
  if (value.empty()) return malformed(f.name + " needs a non-empty value");
  ++f.seen;
  switch (f.kind) {
    case Kind::kString:
      *static_cast<std::string*>(f.out) = value;
      return ok();
    case Kind::kStrings:
      static_cast<std::vector<std::string>*>(f.out)->push_back(value);
      return ok();
    case Kind::kInteger: {
      auto n = parse_integer(value, f.imin, f.imax);
      if (!n) return malformed(f.name + ": " + n.error().message());
      *static_cast<std::int64_t*>(f.out) = *n;
      return ok();
    }
    case Kind::kReal: {
      auto d = parse_real(value, f.dmin, f.dmax);
      if (!d) return malformed(f.name + ": " + d.error().message());
      *static_cast<double*>(f.out) = *d;
      return ok();
    }
    case Kind::kEach: {
      auto r = f.on_value(value);
      if (!r) return Error(r.error().code(), f.name + ": " + r.error().to_string());
      return ok();
    }
    case Kind::kBool:
      break;
  }
  return internal_error("flag kind");
}

Result<void> FlagParser::check_limits(const std::vector<std::string>& args) const {
  if (args.size() > kMaxArgs) return limit_exceeded("more than " + std::to_string(kMaxArgs) + " arguments");
  for (std::size_t i = 0; i < args.size(); ++i)
    if (args[i].size() > kMaxArgBytes)
      return limit_exceeded("argument " + std::to_string(i + 1) + " is longer than " + std::to_string(kMaxArgBytes) +
                            " bytes");
  return ok();
}

// args[i] starts with "--" or "-": one flag, with its value from "=..." or args[i + 1].
Result<void> FlagParser::take_option(const std::vector<std::string>& args, std::size_t& i) {
  const std::string& a = args[i];
  const auto eq = a.rfind("--", 0) == 0 ? a.find('=') : std::string::npos;
  const std::string name = a.substr(0, eq);
  Flag* f = find(name);
  if (f == nullptr) return malformed("unknown option '" + printable_arg(name) + "'");
  if (f->kind == Kind::kBool) {
    if (eq != std::string::npos) return malformed(f->name + " takes no value");
    *static_cast<bool*>(f->out) = true;
    ++f->seen;
    return ok();
  }
  if (eq != std::string::npos) return apply(*f, a.substr(eq + 1));
  if (i + 1 >= args.size()) return malformed(f->name + " needs a value");
  return apply(*f, args[++i]);
}

Result<void> FlagParser::check_positionals() const {
  const std::size_t n = positional_seen_.size();
  if (positional_out_ == nullptr && n > 0) return malformed("unexpected argument '" + printable_arg(positional_seen_[0]) + "'");
  if (n < positional_min_) {
    if (positional_min_ == 1) return malformed("missing " + positional_metavar_);
    return malformed("expected at least " + std::to_string(positional_min_) + " " + positional_metavar_ +
                     " arguments, got " + std::to_string(n));
  }
  if (n > positional_max_) {
    if (positional_max_ == 1) return malformed("more than one " + positional_metavar_);
    return malformed("expected at most " + std::to_string(positional_max_) + " " + positional_metavar_ +
                     " arguments, got " + std::to_string(n));
  }
  return ok();
}

Result<ParseOutcome> FlagParser::parse(const std::vector<std::string>& args) {
  KMR_TRY(check_limits(args));
  for (const auto& a : args) {
    if (a == "--") break;
    if (a == "--help" || a == "-h") return ParseOutcome::kHelp;
  }
  positional_seen_.clear();
  for (auto& f : flags_) f.seen = 0;
  bool options_done = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (!options_done && a == "--") {
      options_done = true;
    } else if (!options_done && is_option(a)) {
      KMR_TRY(take_option(args, i));
    } else {
      positional_seen_.push_back(a);
    }
  }
  KMR_TRY(check_positionals());
  if (positional_out_ != nullptr)
    positional_out_->insert(positional_out_->end(), positional_seen_.begin(), positional_seen_.end());
  return ParseOutcome::kRun;
}

int FlagParser::usage_error(const std::string& message, std::FILE* err) const {
  std::fprintf(err, "%s: %s (see '%s --help')\n", program_.c_str(), message.c_str(), program_.c_str());
  return kExitUsage;
}

std::optional<int> FlagParser::parse_or_exit(const std::vector<std::string>& args, std::FILE* out,
                                             std::FILE* err) {
  auto r = parse(args);
  if (!r) return usage_error(r.error().to_string(), err);
  if (*r == ParseOutcome::kHelp) {
    const std::string h = help();
    std::fwrite(h.data(), 1, h.size(), out);
    return 0;
  }
  return std::nullopt;
}

std::string FlagParser::usage_line() const { return program_ + (synopsis_.empty() ? "" : " " + synopsis_); }

std::string FlagParser::help() const {
  std::string out = "Usage: " + usage_line() + "\n";
  if (!description_.empty()) out += "\n" + description_ + (description_.back() == '\n' ? "" : "\n");
  out += "\nOptions:\n";
  for (const auto& f : flags_) {
    if (f.hidden) continue;
    append_flag_help(out, "  " + f.name + (f.metavar.empty() ? "" : " " + f.metavar), f.help);
  }
  append_flag_help(out, "  -h, --help", "show this help and exit");
  if (!epilogue_.empty()) out += "\n" + epilogue_ + (epilogue_.back() == '\n' ? "" : "\n");
  return out;
}

}  // namespace kmr::cli

#include "rebuilder/distros/debian/sources.h"

#include <algorithm>
#include <map>
#include <sstream>

namespace kmr::debian {
namespace {

bool lower_hex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// A relative pool directory of plain segments ("pool/main/l/linux").
bool plain_directory(std::string_view d) {
  if (d.empty() || d.size() > 1024 || d.front() == '/' || d.back() == '/') return false;
  std::size_t pos = 0;
  while (pos <= d.size()) {
    const auto slash = d.find('/', pos);
    const auto seg = d.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    if (!distros::is_segment_value(seg)) return false;
    if (slash == std::string_view::npos) break;
    pos = slash + 1;
  }
  return true;
}

}  // namespace

const std::vector<distros::TemplateSpec>& template_specs(std::string_view distro) {
  static const std::set<std::string> vars = {"source", "source_c", "version", "source_version", "arch"};
  static const std::vector<distros::TemplateSpec> debian = {
      {"buildinfo", "https://buildinfos.debian.net/buildinfo-pool/{source_c}/{source}/{source}_{version}_{arch}.buildinfo",
       vars, true, ".buildinfo of each binary package"}};
  static const std::vector<distros::TemplateSpec> proxmox = {
      {"buildinfo", "", vars, true, ".buildinfo of each binary package (Proxmox publishes none: off by default)"}};
  return distro == "proxmox" ? proxmox : debian;
}

std::string pool_prefix(std::string_view source) {
  if (source.size() > 3 && source.substr(0, 3) == "lib") return std::string(source.substr(0, 4));
  return std::string(source.substr(0, 1));
}

std::string strip_epoch(std::string_view version) {
  const auto colon = version.find(':');
  return std::string(colon == std::string_view::npos ? version : version.substr(colon + 1));
}

std::string buildinfo_version(const BinaryRef& ref) {
  // A binNMU's binary version is the source version plus "+bN", and its
  // .buildinfo carries that version; any other binary version (a signed
  // kernel's linux-image 6.1.170-3 from linux-signed-amd64 6.1.170+3) was set
  // by the build, and the .buildinfo carries the source version.
  const std::string_view v = ref.version, s = ref.source_version;
  if (v.size() > s.size() + 2 && v.substr(0, s.size()) == s && v.substr(s.size(), 2) == "+b" &&
      std::all_of(v.begin() + static_cast<std::ptrdiff_t>(s.size() + 2), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return strip_epoch(v);
  return strip_epoch(s);
}

Result<distros::SourceFile> buildinfo_source(const std::string& buildinfo_template, const BinaryRef& ref) {
  const std::string version = buildinfo_version(ref);
  distros::TemplateVars vars = {{"source", ref.source},
                                {"source_c", pool_prefix(ref.source)},
                                {"version", version},
                                {"source_version", strip_epoch(ref.source_version)},
                                {"arch", ref.arch}};
  distros::SourceFile f;
  KMR_ASSIGN_OR_RETURN(f.url, distros::expand_template(buildinfo_template, vars));
  f.name = ref.source + "_" + version + "_" + ref.arch + ".buildinfo";
  f.what = ".buildinfo of " + ref.source + " " + ref.version + " " + ref.arch;
  if (!distros::is_plain_file_name(f.name)) return malformed("buildinfo file name " + f.name.substr(0, 80) + " is not a plain file name");
  return f;
}

const archive::Deb822Paragraph* find_source(const std::vector<archive::Deb822Paragraph>& sources, std::string_view source,
                                            std::string_view version) {
  for (const auto& p : sources)
    if (p.get_or("Package") == source && p.get_or("Version") == version) return &p;
  return nullptr;
}

Result<std::vector<distros::SourceFile>> dsc_files(const archive::Deb822Paragraph& source, const std::string& archive_root) {
  const std::string name = source.get_or("Package"), version = source.get_or("Version");
  const std::string where = "Sources entry " + name.substr(0, 80) + " " + version.substr(0, 80);
  const std::string dir = source.get_or("Directory");
  if (!plain_directory(dir)) return malformed(where + ": Directory \"" + dir.substr(0, 80) + "\" is not a relative pool path");
  const std::string* sums = source.get("Checksums-Sha256");
  if (sums == nullptr) return malformed(where + ": no Checksums-Sha256");
  std::vector<distros::SourceFile> out;
  std::istringstream lines(*sums);
  std::string line;
  bool have_dsc = false;
  while (std::getline(lines, line)) {
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::istringstream w(line);
    std::string hash, size, file, extra;
    w >> hash >> size >> file;
    if (file.empty() || (w >> extra)) return malformed(where + ": Checksums-Sha256 line is not \"hash size name\"");
    if (!lower_hex64(hash)) return malformed(where + ": " + file.substr(0, 80) + " has a bad sha256");
    if (size.empty() || size.size() > 15 || !std::all_of(size.begin(), size.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return malformed(where + ": " + file.substr(0, 80) + " has a bad size");
    if (!distros::is_plain_file_name(file)) return malformed(where + ": \"" + file.substr(0, 80) + "\" is not a plain file name");
    const bool dsc = file.size() > 4 && file.compare(file.size() - 4, 4, ".dsc") == 0;
    have_dsc = have_dsc || dsc;
    out.push_back({file, archive_root + dir + "/" + file, hash, std::stoull(size),
                   dsc ? "source package " + name + " " + version + " (.dsc)" : "source file of " + name + " " + version});
    if (out.size() > distros::kMaxSourceFiles) return limit_exceeded(where + ": more than 256 files");
  }
  if (!have_dsc) return malformed(where + ": no .dsc among its files");
  // The .dsc first: it is what a rebuild opens.
  std::stable_partition(out.begin(), out.end(), [](const distros::SourceFile& f) { return f.name.ends_with(".dsc"); });
  return out;
}

std::vector<std::string> sources_index_paths(const std::vector<archive::ReleaseFile>& release_files) {
  std::map<std::string, std::string> best;  // index without compression suffix -> path
  auto rank = [](const std::string& p) { return p.ends_with(".xz") ? 0 : p.ends_with(".gz") ? 1 : 2; };
  for (const auto& f : release_files) {
    const std::string& p = f.path;
    const std::string stem = p.ends_with(".xz") || p.ends_with(".gz") ? p.substr(0, p.size() - 3) : p;
    if (!stem.ends_with("/source/Sources")) continue;
    auto it = best.find(stem);
    if (it == best.end() || rank(p) < rank(it->second)) best[stem] = p;
  }
  std::vector<std::string> out;
  for (const auto& [stem, path] : best) out.push_back(path);
  return out;
}

std::string paragraphs_of(std::string_view text, const std::set<std::string>& wanted) {
  std::string out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find("\n\n", pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view para = text.substr(pos, end - pos);
    const std::size_t at = para.rfind("Package: ", 0) == 0 ? 0 : para.find("\nPackage: ");
    if (at != std::string_view::npos) {
      const std::size_t name_at = at == 0 ? 9 : at + 10;
      const std::size_t nl = para.find('\n', name_at);
      const std::string name(para.substr(name_at, nl == std::string_view::npos ? std::string_view::npos : nl - name_at));
      if (wanted.count(name)) out.append(para).append("\n\n");
    }
    pos = end + 2;
  }
  return out;
}

BinaryRef binary_ref(const archive::Deb822Paragraph& p) {
  BinaryRef r;
  r.version = p.get_or("Version");
  r.arch = p.get_or("Architecture");
  r.source = p.get_or("Source", p.get_or("Package"));
  r.source_version = r.version;
  if (auto paren = r.source.find(" ("); paren != std::string::npos && r.source.back() == ')') {
    r.source_version = r.source.substr(paren + 2, r.source.size() - paren - 3);
    r.source = r.source.substr(0, paren);
  }
  return r;
}

}  // namespace kmr::debian

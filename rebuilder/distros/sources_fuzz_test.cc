// Fuzzes the source list a job carries and the Sources-index and template
// paths sync feeds with mirror bytes: every input either yields entries
// whose names are plain file names and whose URLs stay under the given
// root, or an error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "rebuilder/archive/deb822.h"
#include "rebuilder/distros/arch/sources.h"
#include "rebuilder/distros/debian/sources.h"
#include "rebuilder/distros/common/source_list.h"
#include "rebuilder/distros/common/template.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto list = kmr::distros::parse_source_list(text)) {
    for (const auto& f : list->files)
      if (!kmr::distros::is_plain_file_name(f.name) || !kmr::distros::is_source_url(f.url)) __builtin_trap();
    for (const auto& g : list->git)
      if (!kmr::distros::is_plain_file_name(g.dir) || g.ref.find("..") != std::string::npos) __builtin_trap();
    if (!kmr::distros::to_json(*list)) __builtin_trap();
  }
  kmr::archive::Deb822Options opt;
  opt.limits.max_line_len = 4096;
  opt.max_paragraphs = 64;
  if (auto paras = kmr::archive::parse_deb822(text, "Sources", opt)) {
    const std::string root = "https://mirror.example/debian/";
    for (const auto& p : *paras) {
      auto files = kmr::debian::dsc_files(p, root);
      if (files)
        for (const auto& f : *files)
          if (f.url.compare(0, root.size(), root) != 0 || f.url.find("/../") != std::string::npos ||
              !kmr::distros::is_plain_file_name(f.name))
            __builtin_trap();
      auto ref = kmr::debian::binary_ref(p);
      if (auto b = kmr::debian::buildinfo_source("https://b.example/{source_c}/{source}/{source}_{version}_{arch}.buildinfo", ref))
        if (b->url.compare(0, 18, "https://b.example/") != 0 || b->url.find("..") != std::string::npos) __builtin_trap();
    }
  }
  const std::string s(text.substr(0, 300));
  if (auto t = kmr::distros::expand_template("https://h.example/{a}", {{"a", s}}))
    if (t->find('/', 18) != std::string::npos || t->find('?') != std::string::npos) __builtin_trap();
  if (auto p = kmr::arch::parse_installed(s))
    if (auto u = kmr::arch::archive_url("https://a.example/{c}/{name}/{file}", *p))
      if (u->find("..") != std::string::npos && u->find("/../") != std::string::npos) __builtin_trap();
  (void)kmr::arch::gitlab_project_path(s);
  (void)kmr::distros::template_placeholders(s);
  return 0;
}

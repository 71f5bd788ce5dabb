// Source URL templates against the real published layouts (the exact URLs
// Arch's archive and GitLab, buildinfos.debian.net, Debian's pool,
// download.opensuse.org and GitHub serve), GitLab project paths against
// devtools' own sed pipeline run by bash, a real Sources paragraph from
// Debian bookworm, and hostile templates, values and source lists.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "rebuilder/archive/deb822.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/distros/arch/sources.h"
#include "rebuilder/distros/debian/sources.h"
#include "rebuilder/distros/nixos/sources.h"
#include "rebuilder/distros/common/source_list.h"
#include "rebuilder/distros/source_templates.h"
#include "rebuilder/distros/suse/sources.h"
#include "rebuilder/distros/common/template.h"

namespace kmr::distros {
namespace {

std::string defaults(const std::string& distro, const std::string& key) {
  auto t = resolve_source_templates(distro, {}, "t");
  EXPECT_TRUE(t) << t.error().to_string();
  return t ? t->at(key) : "";
}

TEST(Template, Placeholders) {
  auto n = template_placeholders("https://h/{a}/{b_1}/{a}.x");
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, (std::vector<std::string>{"a", "b_1", "a"}));
  for (const char* bad : {"https://h/{", "https://h/}", "https://h/{}", "https://h/{A}", "https://h/{a-b}", "https://h/{{a}}",
                          "https://h/{a{b}}"})
    EXPECT_FALSE(template_placeholders(bad)) << bad;
  EXPECT_FALSE(template_placeholders(std::string(3000, 'a')));
}

TEST(Template, UrlTemplateChecks) {
  EXPECT_TRUE(check_url_template("k", "https://h.example/{x}/y", {"x"}));
  EXPECT_TRUE(check_url_template("k", "file:///srv/{x}", {"x"}));
  auto unknown = check_url_template("repo.sources.buildinfo", "https://h/{nope}", {"x", "y"});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().message(), "repo.sources.buildinfo: unknown placeholder {nope} (known: {x}, {y})");
  for (const char* bad : {"ftp://h/{x}", "https://{x}.example/a", "https://h", "https:///a", "https://h/a b",
                          "https://h/a\\b", "https://h/\x01", "//h/{x}", "git://h/x", "https://h:{x}/a"})
    EXPECT_FALSE(check_url_template("k", bad, {"x"})) << bad;
}

TEST(Template, ValuesAreOneSegment) {
  EXPECT_EQ(*expand_template("https://h/{a}/{b}", {{"a", "1:2.3-4+b1~x"}, {"b", "c++"}}), "https://h/1:2.3-4+b1~x/c++");
  for (const char* bad : {"", ".", "..", "a/b", "a?b", "a#b", "a%2f", "a b", "a\nb", "\xc3\xa9"}) {
    auto r = expand_template("https://h/{a}", {{"a", bad}});
    EXPECT_FALSE(r) << bad;
  }
  EXPECT_FALSE(expand_template("https://h/{a}", {{"a", std::string(256, 'x')}}));
  auto missing = expand_template("https://h/{a}", {});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message(), "template \"https://h/{a}\": no value for {a}");
}

TEST(ArchSources, RealLayouts) {
  auto git = arch::pkgbuild_source(defaults("arch", "pkgbuild_git"), "linux", "6.18.5.arch1-1");
  ASSERT_TRUE(git) << git.error().to_string();
  EXPECT_EQ(git->url, "https://gitlab.archlinux.org/archlinux/packaging/packages/linux.git");
  EXPECT_EQ(git->ref, "6.18.5.arch1-1");
  EXPECT_EQ(git->dir, "linux");
  // An epoch: devtools tags 2:1.19.5-1 as 2-1.19.5-1.
  auto epoch = arch::pkgbuild_source(defaults("arch", "pkgbuild_git"), "gopass", "2:1.19.5-1");
  ASSERT_TRUE(epoch);
  EXPECT_EQ(epoch->ref, "2-1.19.5-1");
  EXPECT_EQ(arch::release_tag("1.0~rc1-2"), "1.0.rc1-2");
  auto gtk = arch::pkgbuild_source(defaults("arch", "pkgbuild_git"), "gtk2+extra", "1-1");
  ASSERT_TRUE(gtk);
  EXPECT_EQ(gtk->url, "https://gitlab.archlinux.org/archlinux/packaging/packages/gtk2-extra.git");

  auto p = arch::parse_installed("linux-headers-6.18.5.arch1-1-x86_64");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->name, "linux-headers");
  EXPECT_EQ(p->version, "6.18.5.arch1-1");
  EXPECT_EQ(p->arch, "x86_64");
  auto url = arch::archive_url(defaults("arch", "archive"), *p);
  ASSERT_TRUE(url);
  EXPECT_EQ(*url, "https://archive.archlinux.org/packages/l/linux-headers/linux-headers-6.18.5.arch1-1-x86_64.pkg.tar.zst");
  auto keyring = arch::parse_installed("archlinux-keyring-20251116-1-any");
  ASSERT_TRUE(keyring);
  EXPECT_EQ(*arch::archive_url(defaults("arch", "archive"), *keyring, ".pkg.tar.xz"),
            "https://archive.archlinux.org/packages/a/archlinux-keyring/archlinux-keyring-20251116-1-any.pkg.tar.xz");
  auto ep = arch::parse_installed("ffmpeg-2:8.0-3-x86_64");
  ASSERT_TRUE(ep);
  EXPECT_EQ(*arch::archive_url(defaults("arch", "archive"), *ep),
            "https://archive.archlinux.org/packages/f/ffmpeg/ffmpeg-2:8.0-3-x86_64.pkg.tar.zst");
  for (const char* bad : {"", "linux", "linux-1-x86_64", "-1-1-x86_64", "a/b-1-1-x86_64", "x-1-1-"})
    EXPECT_FALSE(arch::parse_installed(bad)) << bad;
}

// devtools' gitlab_project_name_to_path, run by bash and sed, is the reference.
TEST(ArchSources, GitlabPathMatchesDevtools) {
  const std::vector<std::string> names = {"linux", "gtk+", "gtk2+extra", "libsigc++", "dvd+rw-tools", "tree", "a+b+c",
                                          "x__y", "foo_-bar", "lib32-gtk+", "perl-class-c3", "c++utilities", "a.b_c",
                                          "zzz+", "+a", "tree-sitter", "mm++a"};
  std::string script =
      "f() { printf '%s' \"$1\" | sed -E 's/([a-zA-Z0-9]+)\\+([a-zA-Z]+)/\\1-\\2/g' | sed -E 's/\\+/plus/g' "
      "| sed -E 's/[^a-zA-Z0-9_\\-\\.]/-/g' | sed -E 's/[_\\-]{2,}/-/g' | sed -E 's/^tree$/unix-tree/g'; echo; }\n";
  for (const auto& n : names) script += "f '" + n + "'\n";
  auto r = run_subprocess({"bash", "-c", script});
  ASSERT_TRUE(r && r->success()) << (r ? r->err : r.error().to_string());
  std::string want;
  for (const auto& n : names) want += arch::gitlab_project_path(n) + "\n";
  EXPECT_EQ(r->out, want);
  EXPECT_EQ(arch::gitlab_project_path("libsigc++"), "libsigcplusplus");
  EXPECT_EQ(arch::gitlab_project_path("tree"), "unix-tree");
}

TEST(DebianSources, BuildinfoUrls) {
  const std::string t = defaults("debian", "buildinfo");
  // A plain package.
  auto hello = debian::buildinfo_source(t, {"hello", "2.10-3", "2.10-3", "amd64"});
  ASSERT_TRUE(hello) << hello.error().to_string();
  EXPECT_EQ(hello->url, "https://buildinfos.debian.net/buildinfo-pool/h/hello/hello_2.10-3_amd64.buildinfo");
  EXPECT_EQ(hello->name, "hello_2.10-3_amd64.buildinfo");
  // lib* sources use a four-letter prefix; the epoch is not in file names.
  auto cap = debian::buildinfo_source(t, {"libcap2", "1:2.66-4", "1:2.66-4", "amd64"});
  ASSERT_TRUE(cap);
  EXPECT_EQ(cap->url, "https://buildinfos.debian.net/buildinfo-pool/libc/libcap2/libcap2_2.66-4_amd64.buildinfo");
  // The signed kernel (bookworm's Packages: linux-image-6.1.0-47-amd64 6.1.170-3, Source: linux-signed-amd64 (6.1.170+3)).
  auto kernel = debian::buildinfo_source(t, {"linux-signed-amd64", "6.1.170+3", "6.1.170-3", "amd64"});
  ASSERT_TRUE(kernel);
  EXPECT_EQ(kernel->url,
            "https://buildinfos.debian.net/buildinfo-pool/l/linux-signed-amd64/linux-signed-amd64_6.1.170+3_amd64.buildinfo");
  // A binNMU (libax25 0.0.12-rc5+git20190411+b17ff36-4+b1): the binary version.
  auto binnmu = debian::buildinfo_source(t, {"libax25", "0.0.12-rc5+git20190411+b17ff36-4", "0.0.12-rc5+git20190411+b17ff36-4+b1", "amd64"});
  ASSERT_TRUE(binnmu);
  EXPECT_EQ(binnmu->url,
            "https://buildinfos.debian.net/buildinfo-pool/liba/libax25/libax25_0.0.12-rc5+git20190411+b17ff36-4+b1_amd64.buildinfo");
  EXPECT_EQ(defaults("proxmox", "buildinfo"), "");
  EXPECT_EQ(debian::pool_prefix("lib"), "l");
  EXPECT_FALSE(debian::buildinfo_source(t, {"../x", "1", "1", "amd64"}));
}

// bookworm's Sources paragraph of hello (deb.debian.org, main/source/Sources.xz).
constexpr const char* kHello =
    "Package: hello\nBinary: hello\nVersion: 2.10-3\nFormat: 3.0 (quilt)\n"
    "Files:\n af0c4d1ec4eb1af8e20843cee44bbcde 1721 hello_2.10-3.dsc\n"
    " 6cd0ffea3884a4e79330338dcc2987d6 725946 hello_2.10.orig.tar.gz\n"
    " e6074bb23a0f184e00fdfb5c546b3bc2 819 hello_2.10.orig.tar.gz.asc\n"
    " 27ab798c1d8d9048ffc8127e9b8dbfca 12684 hello_2.10-3.debian.tar.xz\n"
    "Checksums-Sha256:\n"
    " 75296f5ef618ae2f1849e22b142a2b5ab52c452ebefa4e7b0564c44617db3790 1721 hello_2.10-3.dsc\n"
    " 31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b 725946 hello_2.10.orig.tar.gz\n"
    " 4ea69de913428a4034d30dcdcb34ab84f5c4a76acf9040f3091f0d3fac411b60 819 hello_2.10.orig.tar.gz.asc\n"
    " 60ee7a466808301fbaa7fea2490b5e7a6d86f598956fb3e79c71b3295dc1f249 12684 hello_2.10-3.debian.tar.xz\n"
    "Directory: pool/main/h/hello\nPriority: source\nSection: devel\n";

TEST(DebianSources, DscFilesFromSourcesIndex) {
  auto paras = archive::parse_deb822(kHello, "Sources");
  ASSERT_TRUE(paras);
  const auto* p = debian::find_source(*paras, "hello", "2.10-3");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(debian::find_source(*paras, "hello", "2.10-4"), nullptr);
  auto files = debian::dsc_files(*p, "https://deb.debian.org/debian/");
  ASSERT_TRUE(files) << files.error().to_string();
  ASSERT_EQ(files->size(), 4u);
  EXPECT_EQ((*files)[0].name, "hello_2.10-3.dsc");
  EXPECT_EQ((*files)[0].url, "https://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3.dsc");
  EXPECT_EQ((*files)[0].sha256, "75296f5ef618ae2f1849e22b142a2b5ab52c452ebefa4e7b0564c44617db3790");
  EXPECT_EQ((*files)[0].size, 1721u);
  EXPECT_EQ((*files)[3].url, "https://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3.debian.tar.xz");
  SourceList list;
  list.files = *files;
  EXPECT_TRUE(validate(list));
}

TEST(DebianSources, HostileSourcesParagraphs) {
  const std::string good = " 75296f5ef618ae2f1849e22b142a2b5ab52c452ebefa4e7b0564c44617db3790 1721 x_1.dsc\n";
  auto para = [](const std::string& dir, const std::string& sums) {
    archive::Deb822Paragraph p;
    p.fields = {{"Package", "x"}, {"Version", "1"}, {"Directory", dir}, {"Checksums-Sha256", sums}};
    return p;
  };
  EXPECT_TRUE(debian::dsc_files(para("pool/main/x/x", good), "https://h/"));
  for (const char* dir : {"", "/pool/x", "pool/../x", "pool//x", "pool/x/", "pool/x y", "pool/%2e%2e"})
    EXPECT_FALSE(debian::dsc_files(para(dir, good), "https://h/")) << dir;
  for (const std::string& sums :
       {std::string(" 75296f5e 1721 x_1.dsc\n"), std::string(" 75296F5EF618AE2F1849E22B142A2B5AB52C452EBEFA4E7B0564C44617DB3790 1 x_1.dsc\n"),
        good.substr(0, 66) + "-1 x_1.dsc\n", good.substr(0, 66) + "1 ../x_1.dsc\n", good.substr(0, 66) + "1 x_1.dsc extra\n",
        good.substr(0, 66) + "1 x.orig.tar.gz\n", good.substr(0, 66) + "99999999999999999999 x_1.dsc\n", std::string("")})
    EXPECT_FALSE(debian::dsc_files(para("pool/x", sums), "https://h/")) << sums;
  std::string many;
  for (int i = 0; i < 300; ++i) many += good.substr(0, 71) + "f" + std::to_string(i) + ".dsc\n";
  EXPECT_FALSE(debian::dsc_files(para("pool/x", many), "https://h/"));
}

TEST(SuseSources, RealLayouts) {
  const std::string t = defaults("suse", "srpm");
  auto k = suse::srpm_source(t, "kernel-default-6.17.1-1.1.nosrc.rpm");
  ASSERT_TRUE(k) << k.error().to_string();
  EXPECT_EQ(k->url, "https://download.opensuse.org/source/tumbleweed/repo/oss/nosrc/kernel-default-6.17.1-1.1.nosrc.rpm");
  auto s = suse::srpm_source(t, "kernel-source-6.17.1-1.1.src.rpm");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->url, "https://download.opensuse.org/source/tumbleweed/repo/oss/src/kernel-source-6.17.1-1.1.src.rpm");
  for (const char* bad : {"", "x.rpm", "../x.src.rpm", "a/b.src.rpm", ".src.rpm"}) EXPECT_FALSE(suse::srpm_source(t, bad)) << bad;
}

TEST(NixosSources, RealLayouts) {
  const std::string rev = "b6cc1b6c2e15a4a4b1a0b0a4b4d3c4f2e1d0c9b8";
  auto f = nixos::nixpkgs_source(defaults("nixos", "nixpkgs_tarball"), rev);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->url, "https://github.com/NixOS/nixpkgs/archive/" + rev + ".tar.gz");
  EXPECT_EQ(f->name, "nixpkgs-" + rev + ".tar.gz");
  EXPECT_EQ(*nixos::git_revision_url(defaults("nixos", "git_revision"), "nixos-25.05"),
            "https://channels.nixos.org/nixos-25.05/git-revision");
  EXPECT_EQ(*nixos::parse_git_revision(rev + "\n"), rev);
  for (const std::string& bad : {std::string(""), rev.substr(1), rev + "\n\n", rev + "0", std::string(40, 'G'), rev + " "})
    EXPECT_FALSE(nixos::parse_git_revision(bad)) << bad;
  EXPECT_FALSE(nixos::nixpkgs_source(defaults("nixos", "nixpkgs_tarball"), "master"));
}

TEST(SourceTemplates, ConfigChecks) {
  auto over = resolve_source_templates("arch", {{"archive", "https://mirror.example/archive/{c}/{name}/{file}"}}, "r");
  ASSERT_TRUE(over);
  EXPECT_EQ(over->at("archive"), "https://mirror.example/archive/{c}/{name}/{file}");
  EXPECT_EQ(over->at("pkgbuild_git"), "https://gitlab.archlinux.org/archlinux/packaging/packages/{project}.git");
  auto off = resolve_source_templates("debian", {{"buildinfo", ""}}, "r");
  ASSERT_TRUE(off);
  EXPECT_EQ(off->at("buildinfo"), "");
  auto unknown = resolve_source_templates("suse", {{"pkgbuild_git", "https://h/x"}}, "r.sources");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().message(), "r.sources: unknown key \"pkgbuild_git\" for distro suse (known: srpm, srpm_index)");
  auto ph = resolve_source_templates("debian", {{"buildinfo", "https://h/{package}.buildinfo"}}, "r.sources");
  ASSERT_FALSE(ph);
  EXPECT_EQ(ph.error().message(),
            "r.sources.buildinfo: unknown placeholder {package} (known: {arch}, {source}, {source_c}, {source_version}, {version})");
  EXPECT_FALSE(resolve_source_templates("nixos", {{"channel", "nixos/25.05"}}, "r"));
  EXPECT_TRUE(resolve_source_templates("nixos", {{"channel", "nixos-25.05"}}, "r"));
  EXPECT_TRUE(resolve_source_templates("other", {}, "r"));
  EXPECT_FALSE(resolve_source_templates("other", {{"x", "y"}}, "r"));
}

TEST(SourceList, RoundTripAndHostile) {
  SourceList l;
  l.files.push_back({"hello_2.10-3.dsc", "https://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3.dsc",
                     "75296f5ef618ae2f1849e22b142a2b5ab52c452ebefa4e7b0564c44617db3790", 1721, ".dsc"});
  l.files.push_back({"x.buildinfo", "https://h/x.buildinfo", "", std::nullopt, "buildinfo"});
  l.git.push_back({"https://gitlab.archlinux.org/archlinux/packaging/packages/linux.git", "6.18.5.arch1-1", "linux", "PKGBUILD"});
  auto text = to_json(l);
  ASSERT_TRUE(text);
  EXPECT_TRUE(looks_like_source_list(*text));
  EXPECT_FALSE(looks_like_source_list("file:///srv/sources"));
  auto back = parse_source_list(*text);
  ASSERT_TRUE(back) << back.error().to_string();
  ASSERT_EQ(back->files.size(), 2u);
  EXPECT_EQ(back->files[0].size, 1721u);
  EXPECT_EQ(back->files[1].sha256, "");
  EXPECT_EQ(back->git[0].ref, "6.18.5.arch1-1");
  const std::vector<std::string> hostile = {
      "", "[]", "{}", R"({"kmr_sources":2})", R"({"kmr_sources":1,"x":1})",
      R"({"kmr_sources":1,"files":[{"name":"../x","url":"https://h/x"}]})",
      R"({"kmr_sources":1,"files":[{"name":".x","url":"https://h/x"}]})",
      R"({"kmr_sources":1,"files":[{"name":"x","url":"ftp://h/x"}]})",
      R"({"kmr_sources":1,"files":[{"name":"x","url":"file://h/x"}]})",
      R"({"kmr_sources":1,"files":[{"name":"x","url":"https://h/x","sha256":"00"}]})",
      R"({"kmr_sources":1,"files":[{"name":"x","url":"https://h/x","size":-1}]})",
      R"({"kmr_sources":1,"files":[{"name":"x","url":"https://h/x"},{"name":"x","url":"https://h/y"}]})",
      R"({"kmr_sources":1,"files":[{"name":"x","url":"https://h/x","extra":1}]})",
      R"({"kmr_sources":1,"git":[{"url":"https://h/x","ref":"--upload-pack=x","dir":"d"}]})",
      R"({"kmr_sources":1,"git":[{"url":"https://h/x","ref":"a/../b","dir":"d"}]})",
      R"({"kmr_sources":1,"git":[{"url":"ext::sh -c x","ref":"t","dir":"d"}]})",
      R"({"kmr_sources":1,"files":"x"})",
      std::string(2 << 20, ' '),
      R"({"kmr_sources":1,"files":[[[[[[]]]]]]})",
  };
  for (const auto& h : hostile) EXPECT_FALSE(parse_source_list(h)) << h.substr(0, 120);
  std::string deep = R"({"kmr_sources":1,"files":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_FALSE(parse_source_list(deep));
  SourceList big;
  for (int i = 0; i < 300; ++i) big.files.push_back({"f" + std::to_string(i), "https://h/f", "", std::nullopt, ""});
  EXPECT_FALSE(to_json(big));
}

}  // namespace
}  // namespace kmr::distros

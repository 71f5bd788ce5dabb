// The SUSE build root's parsers (primary.xml, OBS _buildenv, rpm's
// requirement lines), version order checked against rpm's own rpm.vercmp,
// resolution and the cache key. Offline; the mirror side is
// suse_buildroot_test.sh.
#include "rebuilder/distros/suse/buildroot.h"

#include <gtest/gtest.h>

#include <sstream>

#include "rebuilder/base/require.h"
#include "rebuilder/base/subprocess.h"

namespace kmr::suse {
namespace {

const char* kSha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

std::string package_xml(const std::string& name, const std::string& ver, const std::string& rel, const std::string& arch,
                        const std::string& format, const std::string& location = "") {
  return "<package type=\"rpm\"><name>" + name + "</name><arch>" + arch + "</arch><version epoch=\"0\" ver=\"" + ver +
         "\" rel=\"" + rel + "\"/><checksum type=\"sha256\" pkgid=\"YES\">" + kSha + "</checksum><size package=\"1234\"/>" +
         "<location href=\"" + (location.empty() ? arch + "/" + name + "-" + ver + "-" + rel + "." + arch + ".rpm" : location) +
         "\"/><format>" + format + "</format></package>";
}

std::string primary(const std::string& packages) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" "
         "xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"2\">" + packages + "</metadata>";
}

TEST(Vercmp, AgreesWithRpm) {
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"1.0", "1.0"}, {"1.0", "2.0"}, {"2.0.1", "2.0"}, {"1.0~rc1", "1.0"}, {"1.0^git1", "1.0"}, {"1.0^git1", "1.0.1"},
      {"1.0a", "1.0"}, {"1.0", "1.0a"}, {"010", "10"}, {"1.001", "1.1"}, {"a", "1"}, {"1.0.0", "1.0"},
      {"12.2.0", "12.10"}, {"1_0", "1.0"}, {"1..0", "1.0"}, {"~~", "~"}, {"2a", "2.a"}, {"1.0~rc1^1", "1.0~rc1"},
      {"20260101", "2026.01"}, {"5.3+git", "5.3"}};
  if (!have_program("rpm")) KMR_SKIP_OR_FAIL("rpm not installed");
  std::string lua = "%{lua:";
  for (const auto& [a, b] : pairs) lua += "print(rpm.vercmp('" + a + "','" + b + "')) print('\\n') ";
  lua += "}";
  auto r = run_subprocess({"rpm", "--eval", lua});
  ASSERT_TRUE(r && r->success()) << (r ? r->err : r.error().to_string());
  std::istringstream in(r->out);
  for (const auto& [a, b] : pairs) {
    int want = 0;
    ASSERT_TRUE(in >> want) << r->out;
    EXPECT_EQ(rpmvercmp(a, b), want) << a << " vs " << b;
    EXPECT_EQ(rpmvercmp(b, a), -want) << b << " vs " << a;
  }
}

TEST(Primary, ParsesPackagesWithDependencies) {
  auto p = parse_primary_packages(
      primary(package_xml("gcc", "12.2.0", "14.1", "x86_64",
                          "<rpm:provides><rpm:entry name=\"gcc\" flags=\"EQ\" epoch=\"0\" ver=\"12.2.0\" rel=\"14.1\"/>"
                          "<rpm:entry name=\"c_compiler\"/></rpm:provides><rpm:requires><rpm:entry name=\"binutils\" "
                          "flags=\"GE\" epoch=\"0\" ver=\"2.40\"/></rpm:requires><file>/usr/bin/gcc</file>") +
              package_xml("binutils", "2.40", "1.1", "x86_64", "")),
      "primary.xml");
  ASSERT_TRUE(p) << p.error().to_string();
  ASSERT_EQ(p->size(), 2u);
  EXPECT_EQ((*p)[0].nevra(), "gcc-0:12.2.0-14.1.x86_64");
  EXPECT_EQ((*p)[0].location, "x86_64/gcc-12.2.0-14.1.x86_64.rpm");
  EXPECT_EQ((*p)[0].size, 1234u);
  ASSERT_EQ((*p)[0].provides.size(), 2u);
  ASSERT_EQ((*p)[0].requirements.size(), 1u);
  EXPECT_EQ((*p)[0].requirements[0].flags, "GE");
  EXPECT_EQ((*p)[0].files, std::vector<std::string>{"/usr/bin/gcc"});
}

TEST(Primary, RefusesHostileInput) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"traversal", primary(package_xml("gcc", "1", "1", "x86_64", "", "../../etc/passwd"))},
      {"absolute", primary(package_xml("gcc", "1", "1", "x86_64", "", "/etc/passwd"))},
      {"scheme", primary(package_xml("gcc", "1", "1", "x86_64", "", "https://evil/x.rpm"))},
      {"double slash", primary(package_xml("gcc", "1", "1", "x86_64", "", "x86_64//x.rpm"))},
      {"option name", primary(package_xml("--nodeps", "1", "1", "x86_64", ""))},
      {"blank in version", primary(package_xml("gcc", "1 2", "1", "x86_64", ""))},
      {"bad flags", primary(package_xml("gcc", "1", "1", "x86_64", "<rpm:requires><rpm:entry name=\"x\" flags=\"XX\"/></rpm:requires>"))},
      {"md5", "<metadata><package><name>a</name><arch>noarch</arch><version ver=\"1\" rel=\"1\"/><checksum type=\"md5\">00</checksum></package></metadata>"},
      {"no checksum", "<metadata><package><name>a</name><arch>noarch</arch><version ver=\"1\" rel=\"1\"/><location href=\"a.rpm\"/></package></metadata>"},
      {"doctype", "<!DOCTYPE x [<!ENTITY a \"b\">]><metadata/>"},
      {"other root", "<repomd/>"},
      {"long name", primary(package_xml(std::string(5000, 'a'), "1", "1", "x86_64", ""))},
  };
  for (const auto& [what, xml] : bad) EXPECT_FALSE(parse_primary_packages(xml, "p")) << what;
}

TEST(Buildenv, ParsesObsBuildenv) {
  // The shape OBS publishes as _buildenv beside a build's results.
  const std::string xml =
      "<buildinfo project=\"openSUSE:Factory\" repository=\"standard\" package=\"kernel-kmrfix\">\n"
      "  <arch>x86_64</arch>\n  <srcmd5>0123</srcmd5>\n"
      "  <bdep name=\"rpm-build\" version=\"4.20.1\" release=\"2.1\" arch=\"x86_64\" hdrmd5=\"aa\"/>\n"
      "  <bdep name=\"gcc\" epoch=\"\" version=\"15\" release=\"3.2\" arch=\"x86_64\" hdrmd5=\"bb\"/>\n"
      "  <bdep name=\"aaa_base\" version=\"84.87+git20250101\" release=\"1.1\" arch=\"noarch\"/>\n"
      "</buildinfo>\n";
  auto p = parse_buildenv(xml, "_buildenv");
  ASSERT_TRUE(p) << p.error().to_string();
  ASSERT_EQ(p->size(), 3u);
  EXPECT_EQ((*p)[0].nevra(), "aaa_base-0:84.87+git20250101-1.1.noarch");
  EXPECT_EQ((*p)[1].nevra(), "gcc-0:15-3.2.x86_64");
  EXPECT_EQ((*p)[2].name, "rpm-build");
  EXPECT_FALSE(parse_buildenv("<buildinfo><bdep name=\"gcc\" version=\"1\" release=\"1\"/><bdep name=\"gcc\" version=\"2\" release=\"1\"/></buildinfo>", "d"));
  EXPECT_FALSE(parse_buildenv("<buildinfo><bdep name=\"gcc\" version=\"1\"/></buildinfo>", "no release"));
  EXPECT_FALSE(parse_buildenv("<buildinfo><bdep name=\"-rf\" version=\"1\" release=\"1\"/></buildinfo>", "option"));
  EXPECT_FALSE(parse_buildenv("<buildinfo><bdep name=\"gcc\" version=\"1;rm\" release=\"1\"/></buildinfo>", "shell"));
  EXPECT_FALSE(parse_buildenv("<buildinfo><bdep name=\"gcc\" epoch=\"x\" version=\"1\" release=\"1\"/></buildinfo>", "epoch"));
  EXPECT_FALSE(parse_buildenv("<project/>", "root"));
}

TEST(Requires, ParsesRpmQueryLines) {
  auto r = parse_requires("binutils\ngcc >= 12\npython3 = 3:3.11-1\nrpmlib(CompressedFileNames) <= 3.0.4-1\n/bin/sh\n", "srpm");
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ((*r)[1].flags, "GE");
  EXPECT_EQ((*r)[1].version, "12");
  EXPECT_EQ((*r)[2].epoch, "3");
  EXPECT_EQ((*r)[2].release, "1");
  EXPECT_EQ((*r)[3].name, "/bin/sh");
  EXPECT_FALSE(parse_requires("gcc >=\n", "x"));
  EXPECT_FALSE(parse_requires("gcc ~ 1\n", "x"));
  EXPECT_FALSE(parse_requires("gcc >= 1 2\n", "x"));
}

TEST(Resolve, NewestProviderAndClosure) {
  auto repo = parse_primary_packages(
      primary(package_xml("gcc", "12", "1", "x86_64", "<rpm:requires><rpm:entry name=\"cc-backend\"/><rpm:entry name=\"/bin/sh\"/></rpm:requires>") +
              package_xml("gcc", "13", "1", "x86_64", "<rpm:requires><rpm:entry name=\"cc-backend\"/><rpm:entry name=\"/bin/sh\"/></rpm:requires>") +
              package_xml("gcc", "14", "1", "aarch64", "") +
              package_xml("backend", "1", "1", "x86_64", "<rpm:provides><rpm:entry name=\"cc-backend\"/></rpm:provides>") +
              package_xml("bash", "5", "1", "x86_64", "<file>/bin/sh</file>") +
              package_xml("aaa_base", "1", "1", "noarch", "")),
      "p");
  ASSERT_TRUE(repo) << repo.error().to_string();
  auto r = resolve({{"gcc", "", "", "", ""}, {"aaa_base", "", "", "", ""}, {"nothere", "GE", "", "1", ""}}, *repo, "x86_64");
  std::vector<std::string> got;
  for (const auto& p : r.pinned) got.push_back(p.nevra());
  EXPECT_EQ(got, (std::vector<std::string>{"aaa_base-0:1-1.noarch", "backend-0:1-1.x86_64", "bash-0:5-1.x86_64", "gcc-0:13-1.x86_64"}));
  EXPECT_EQ(r.unresolved, std::vector<std::string>{"nothere >= 1"});
  auto pinned_old = resolve({{"gcc", "LT", "", "13", ""}}, *repo, "x86_64");
  ASSERT_FALSE(pinned_old.pinned.empty());
  EXPECT_EQ(pinned_old.pinned.back().nevra(), "gcc-0:12-1.x86_64");
}

TEST(RootKey, DependsOnSetNotOrder) {
  EXPECT_EQ(root_key("x86_64", {"a 1", "b 2"}), root_key("x86_64", {"b 2", "a 1"}));
  EXPECT_NE(root_key("x86_64", {"a 1"}), root_key("x86_64", {"a 2"}));
  EXPECT_NE(root_key("x86_64", {"a 1"}), root_key("aarch64", {"a 1"}));
}

TEST(Options, NoKeyIsEnvironmentUnavailable) {
  MirrorOptions o;
  o.key = "";
  auto r = ensure_build_root({"/nonexistent.src.rpm", ""}, o);
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_EQ(r->missing.size(), 1u);
  EXPECT_NE(r->missing[0].find("KMR_SUSE_REPO_KEY"), std::string::npos);
  EXPECT_TRUE(r->path.empty());
}

}  // namespace
}  // namespace kmr::suse

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "rebuilder/base/file.h"
#include "rebuilder/rebuild/artifact.h"

namespace kmr::build {
namespace {

namespace fs = std::filesystem;

std::string fresh(const std::string& name) {
  const char* t = std::getenv("TEST_TMPDIR");
  const std::string d = std::string(t ? t : "/tmp") + "/" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string slurp(const std::string& path) {
  auto t = read_text_file(path, 1 << 20);
  return t ? *t : "<unreadable>";
}

// A host file the tree's links point at, standing for a secret.
struct Secret {
  std::string dir = fresh("secret");
  std::string path = dir + "/key.pem";
  Secret() { write(path, "SECRET-KEY\n"); }
};

TEST(CopyTree, CopiesFilesDirsAndInsideLinksAsLinks) {
  const std::string src = fresh("src-ok"), dst = fresh("dst-ok") + "/copy";
  fs::create_directories(src + "/sub/deeper");
  write(src + "/PKGBUILD", "pkgname=x\n");
  write(src + "/sub/deeper/config", "CONFIG_X=y\n");
  ::chmod((src + "/PKGBUILD").c_str(), 0750);
  fs::create_symlink("../PKGBUILD", src + "/sub/up");
  fs::create_symlink("deeper/config", src + "/sub/down");
  fs::create_symlink("./sub/./deeper", src + "/dirlink");
  auto r = copy_tree_no_follow(src, dst);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(slurp(dst + "/PKGBUILD"), "pkgname=x\n");
  EXPECT_EQ(fs::status(dst + "/PKGBUILD").permissions() & fs::perms::all, static_cast<fs::perms>(0750));
  EXPECT_EQ(slurp(dst + "/sub/deeper/config"), "CONFIG_X=y\n");
  ASSERT_TRUE(fs::is_symlink(dst + "/sub/up"));
  EXPECT_EQ(fs::read_symlink(dst + "/sub/up"), "../PKGBUILD");
  EXPECT_EQ(fs::read_symlink(dst + "/sub/down"), "deeper/config");
  EXPECT_EQ(fs::read_symlink(dst + "/dirlink"), "./sub/./deeper");
}

TEST(CopyTree, RejectsLinksThatLeaveTheTree) {
  Secret secret;
  struct Case {
    std::string at, target;
  };
  for (const auto& c : std::vector<Case>{{"abs", secret.path},
                                         {"up", "../secret/key.pem"},
                                         {"sub/up2", "../../secret/key.pem"},
                                         {"sub/trick", "x/../../.."},  // ".." after a component: a link there could be "."
                                         {"sub/dotdot", ".."},          // fine: stays inside
                                         {"etc", "/etc"}}) {
    const std::string src = fresh("src-bad"), dst = fresh("dst-bad") + "/copy";
    fs::create_directories(src + "/sub");
    write(src + "/sub/file", "ok\n");
    fs::create_symlink(c.target, src + "/" + c.at);
    auto r = copy_tree_no_follow(src, dst);
    if (c.at == "sub/dotdot") {
      EXPECT_TRUE(r) << r.error().to_string();
      continue;
    }
    ASSERT_FALSE(r) << c.at;
    EXPECT_NE(r.error().message().find(c.at + ": symlink to '" + c.target + "' leaves the tree"), std::string::npos)
        << r.error().message();
    // Nothing of the secret reached the copy.
    std::error_code ec;
    for (fs::recursive_directory_iterator it(dst, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_regular_file() && !it->is_symlink()) {
        EXPECT_EQ(slurp(it->path()).find("SECRET"), std::string::npos);
      }
    }
  }
}

// Every target of up to four components from {.., ., sub, deep, dot, x}
// for a link two levels down, next to in-tree links `dot -> .` and
// `sub/back -> ..`: whatever copy_tree_no_follow accepts, the kernel resolves
// inside the copy (checked with the OS's own resolution, not the rule).
TEST(CopyTree, AcceptedLinksResolveInsideTheCopy) {
  const std::vector<std::string> parts = {"..", ".", "sub", "deep", "dot", "x", "back"};
  std::vector<std::string> targets;
  std::function<void(const std::string&, int)> gen = [&](const std::string& prefix, int left) {
    if (!prefix.empty()) targets.push_back(prefix);
    if (left == 0) return;
    for (const auto& p : parts) gen(prefix.empty() ? p : prefix + "/" + p, left - 1);
  };
  gen("", 4);
  int accepted = 0, rejected = 0;
  const std::string src = fresh("src-prop"), dst_root = fresh("dst-prop");
  fs::create_directories(src + "/sub/deep");
  fs::create_symlink(".", src + "/dot");
  fs::create_symlink("..", src + "/sub/back");
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const std::string link = src + "/sub/deep/l";
    fs::remove(link);
    fs::create_symlink(targets[i], link);
    const std::string dst = dst_root + "/" + std::to_string(i);
    auto r = copy_tree_no_follow(src, dst);
    if (!r) {
      ++rejected;
      EXPECT_NE(r.error().message().find("leaves the tree"), std::string::npos) << r.error().message();
      fs::remove_all(dst);
      continue;
    }
    ++accepted;
    std::error_code ec;
    const fs::path real = fs::weakly_canonical(dst + "/sub/deep/l", ec);
    const fs::path root = fs::canonical(dst);
    const std::string rel = real.lexically_relative(root).string();
    EXPECT_TRUE(!rel.empty() && rel.rfind("..", 0) != 0) << targets[i] << " resolves to " << real;
    fs::remove_all(dst);
  }
  EXPECT_GT(accepted, 100);
  EXPECT_GT(rejected, 100);
}

TEST(CopyTree, RejectsSpecialFiles) {
  const std::string src = fresh("src-fifo"), dst = fresh("dst-fifo") + "/copy";
  ASSERT_EQ(::mkfifo((src + "/pipe").c_str(), 0644), 0);
  auto r = copy_tree_no_follow(src, dst);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("pipe: not a regular file, directory or symlink"), std::string::npos)
      << r.error().message();
}

TEST(CopyFile, RefusesASymlinkedSource) {
  Secret secret;
  const std::string d = fresh("srcfile");
  fs::create_symlink(secret.path, d + "/linux.src.rpm");
  auto r = copy_file_no_follow(d + "/linux.src.rpm", d + "/copy.rpm");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "source " + d + "/linux.src.rpm is a symlink");
  EXPECT_FALSE(fs::exists(d + "/copy.rpm"));
  write(d + "/real.src.rpm", "rpm\n");
  ASSERT_TRUE(copy_file_no_follow(d + "/real.src.rpm", d + "/copy.rpm"));
  EXPECT_EQ(slurp(d + "/copy.rpm"), "rpm\n");
}

TEST(CollectOutput, AcceptsOnlyRegularFilesBeneathTheRoot) {
  Secret secret;
  const std::string work = fresh("work"), out = fresh("collected");
  fs::create_directories(work + "/pkgdest");
  write(work + "/pkgdest/linux.pkg.tar.zst", "PACKAGE");
  auto ok = collect_output(work, "pkgdest/linux.pkg.tar.zst", out + "/linux.pkg.tar.zst");
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_EQ(slurp(out + "/linux.pkg.tar.zst"), "PACKAGE");

  // The build replaced its output with a link to a host secret.
  fs::create_symlink(secret.path, work + "/pkgdest/evil.pkg.tar.zst");
  auto r = collect_output(work, "pkgdest/evil.pkg.tar.zst", out + "/evil");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "build output pkgdest/evil.pkg.tar.zst is or passes through a symlink");
  // ...or a directory on the way.
  fs::create_symlink(secret.dir, work + "/linkdir");
  r = collect_output(work, "linkdir/key.pem", out + "/evil2");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "build output linkdir/key.pem is or passes through a symlink");
  // ...or climbs out of the tree.
  r = collect_output(work, "../secret/key.pem", out + "/evil3");
  ASSERT_FALSE(r);
  // A FIFO neither blocks nor is accepted.
  ASSERT_EQ(::mkfifo((work + "/pkgdest/fifo.pkg").c_str(), 0644), 0);
  r = collect_output(work, "pkgdest/fifo.pkg", out + "/fifo");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "build output pkgdest/fifo.pkg is not a regular file");
  // A hard link the build made to a file it could read is its own content anyway;
  // nothing of the secret was copied by the refused attempts.
  for (const char* f : {"/evil", "/evil2", "/evil3"}) EXPECT_FALSE(fs::exists(out + f)) << f;
  EXPECT_EQ(collect_output(work, "pkgdest/missing", out + "/m").error().message(),
            "the build did not produce pkgdest/missing");
}

}  // namespace
}  // namespace kmr::build

// One distro's layout against the member paths of its packages: linked into
// rebuilder/distros/<name>:layout_test (kmr_distro_layout) with that layout
// alone, it reads rebuilder/distros/<name>/testdata/layout_paths.txt, one
// "path<TAB>claim" a line ("image <release>", "vmlinux", "metadata", or "-"
// for a path the layout leaves alone; '#' starts a comment).
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "rebuilder/distro/package_layout.h"
#include "rebuilder/distro/test_layouts.h"

namespace kmr::distro {
namespace {

TEST(LayoutPaths, EveryPathClaimedAsListed) {
  ASSERT_EQ(registered_layouts().size(), 1u) << "link exactly one distro's layout";
  const std::string name(registered_layouts()[0]->name());
  const std::string file = "rebuilder/distros/" + name + "/testdata/layout_paths.txt";
  std::ifstream in(file);
  ASSERT_TRUE(in) << "cannot read " << file;
  std::string line;
  int paths = 0;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty() || line[0] == '#') continue;
    const std::size_t tab = line.find('\t');
    ASSERT_NE(tab, std::string::npos) << file << ":" << n << ": no tab";
    const std::string path = line.substr(0, tab), want = line.substr(tab + 1);
    EXPECT_EQ(testing::claim(path), want == "-" ? "" : name + ": " + want) << file << ":" << n;
    ++paths;
  }
  EXPECT_GT(paths, 0) << file;
}

}  // namespace
}  // namespace kmr::distro

// The engine in-process: identification order, hash-first short cut,
// degradation with a comment, timeouts, JSON shape.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "rebuilder/compare/comparator.h"
#include "rebuilder/compare/presenters.h"

namespace kmr::compare {
namespace {

Input mem(const std::string& name, const std::string& bytes) {
  return Input{name, blob_from_vector(ByteVector(bytes.begin(), bytes.end())), {}, {}};
}

TEST(Registry, IdentificationByMagicFirst) {
  auto kind = [](const std::string& bytes, const std::string& name) {
    return std::string(identify(as_bytes(bytes), name).kind);
  };
  EXPECT_EQ(kind(std::string("\x1f\x8b\x08\x00", 4), "x.bin"), "gzip");
  EXPECT_EQ(kind(std::string("\xfd" "7zXZ\x00", 6), "x"), "xz");
  EXPECT_EQ(kind(std::string("\x28\xb5\x2f\xfd", 4), "x"), "zstd");
  EXPECT_EQ(kind("BZh9", "x"), "bzip2");
  EXPECT_EQ(kind(std::string("\x04\x22\x4d\x18", 4), "x"), "lz4");
  EXPECT_EQ(kind("!<arch>\ndebian-binary   ", "x"), "deb");
  EXPECT_EQ(kind("!<arch>\nfoo.o/", "x"), "ar");
  EXPECT_EQ(kind("070701000000", "x"), "cpio");
  EXPECT_EQ(kind(std::string("\xed\xab\xee\xdb", 4), "x"), "rpm");
  EXPECT_EQ(kind(std::string("\x0d\0\0\0\0\0\0\0nix-archive-1\0\0\0", 24), "x"), "nar");
  std::string elf("\x7f" "ELF\x02\x01\x01", 7);
  elf.resize(64, '\0');
  EXPECT_EQ(kind(elf, "a.o"), "elf");
  EXPECT_EQ(kind(elf, "a.ko"), "kernel-module");
  EXPECT_EQ(kind(elf + "~Module signature appended~\n", "a"), "kernel-module");
  EXPECT_EQ(kind("hello\nworld\n", "x"), "text");
  EXPECT_EQ(kind(std::string("\x01\x02\x00", 3), "x"), "binary");
  std::string tar(512, '\0');
  tar.replace(257, 5, "ustar");
  EXPECT_EQ(kind(tar, "x"), "tar");
  // The fallback comes last and matches everything.
  EXPECT_EQ(registry().back().kind, "binary");
}

TEST(Compare, IdenticalBytesAreNotDescended) {
  Context ctx(Options{});
  EXPECT_FALSE(compare_inputs(ctx, mem("a", "same\n"), mem("b", "same\n"), 0).has_value());
}

TEST(Compare, BrokenFormatFallsBackWithComment) {
  Context ctx(Options{});
  // gzip magic, garbage after it: the gzip comparator fails, hex diff instead.
  auto d = compare_inputs(ctx, mem("a.gz", std::string("\x1f\x8b\x08garbage-a", 12)),
                          mem("b.gz", std::string("\x1f\x8b\x08garbage-b", 12)), 0);
  ASSERT_TRUE(d.has_value());
  ASSERT_FALSE(d->comments.empty());
  EXPECT_NE(d->comments.back().find("falling back to a binary comparison"), std::string::npos) << d->comments.back();
  EXPECT_TRUE(d->unified_diff.has_value());
  EXPECT_TRUE(d->has_internal_linenos);
}

TEST(Compare, TimeoutIsMarked) {
  Options opt;
  opt.limits.max_wall_time = std::chrono::seconds(0);
  Context ctx(opt);
  auto d = compare_inputs(ctx, mem("a", "x\n"), mem("b", "y\n"), 0);
  ASSERT_TRUE(d.has_value());
  ASSERT_EQ(d->comments.size(), 1u);
  EXPECT_EQ(d->comments[0], kTimeoutComment);
}

TEST(Compare, DifferentFormatsGetFiletypeView) {
  Context ctx(Options{});
  auto d = compare_inputs(ctx, mem("a", "text\n"), mem("b", std::string("\x01\x00", 2)), 0);
  ASSERT_TRUE(d.has_value());
  ASSERT_FALSE(d->details.empty());
  EXPECT_EQ(d->details[0].source1, "filetype from kmr");
}

TEST(Presenters, JsonShapeFollowsDiffoscope) {
  Context ctx(Options{});
  auto d = compare_inputs(ctx, mem("a.txt", "1\n2\n"), mem("b.txt", "1\n3\n"), 0);
  ASSERT_TRUE(d.has_value());
  auto j = nlohmann::ordered_json::parse(render_json(*d, std::chrono::milliseconds(5)));
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  ASSERT_GE(keys.size(), 4u);
  EXPECT_EQ(keys[0], "diffoscope-json-version");
  EXPECT_EQ(keys[1], "source1");
  EXPECT_EQ(keys[2], "source2");
  EXPECT_EQ(keys[3], "unified_diff");
  EXPECT_EQ(j["diffoscope-json-version"], 1);
  EXPECT_EQ(j["kind"], "text");
  EXPECT_EQ(j["status"], "changed");
  EXPECT_EQ(j["sha256"]["source1"].get<std::string>().size(), 64u);
  EXPECT_EQ(j["summary"]["changed"], 1);
  std::string html = render_html(*d, std::chrono::milliseconds(5));
  EXPECT_NE(html.find("<details open>"), std::string::npos);
  EXPECT_EQ(html.find("http"), std::string::npos);
}

TEST(Presenters, HtmlHandlesTenThousandNodes) {
  Difference root;
  root.source1 = "a";
  root.source2 = "b";
  for (int i = 0; i < 10000; ++i) {
    Difference c;
    c.source1 = c.source2 = "m" + std::to_string(i) + ".ko <&>";
    c.unified_diff = "@@ -1 +1 @@\n-x\n+y\n";
    root.details.push_back(c);
  }
  std::string html = render_html(root, std::chrono::milliseconds(1));
  EXPECT_EQ(summarize(root).nodes, 10001u);
  EXPECT_NE(html.find("m9999.ko &lt;&amp;&gt;"), std::string::npos);
  EXPECT_LT(html.size(), 4u << 20);
}

}  // namespace
}  // namespace kmr::compare

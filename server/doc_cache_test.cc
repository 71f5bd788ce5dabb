#include "server/doc_cache.h"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace kmr::server {
namespace {

DocCache::Doc doc(std::string body, std::string cc = "no-cache") {
  DocCache::Doc d;
  d.etag = DocCache::etag_of(body);
  d.body = std::move(body);
  d.cache_control = std::move(cc);
  return d;
}

TEST(DocCache, EtagIsQuotedSha256Prefix) {
  // sha256("abc") from FIPS 180-2, appendix B.1.
  EXPECT_EQ(DocCache::etag_of("abc"), "\"ba7816bf8f01cfea414140de5dae2223\"");
  EXPECT_NE(DocCache::etag_of("abc"), DocCache::etag_of("abd"));
}

TEST(DocCache, FindsWhatWasInserted) {
  DocCache c(1 << 20);
  EXPECT_EQ(c.find("a"), nullptr);
  ASSERT_TRUE(c.insert("a", doc("{\"x\":1}"), {"a"}, false, c.epoch()));
  auto d = c.find("a");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->body, "{\"x\":1}");
  EXPECT_EQ(d->etag, DocCache::etag_of("{\"x\":1}"));
  auto st = c.stats();
  EXPECT_EQ(st.entries, 1u);
  EXPECT_EQ(st.hits, 1u);
  EXPECT_EQ(st.misses, 1u);
}

TEST(DocCache, InvalidationDropsEveryDocumentBuiltFromTheArtifact) {
  DocCache c(1 << 20);
  ASSERT_TRUE(c.insert("a", doc("A"), {"a"}, false, c.epoch()));
  ASSERT_TRUE(c.insert("b", doc("B"), {"b"}, false, c.epoch()));
  // A member lookup answered with artifacts a and b.
  ASSERT_TRUE(c.insert("m", doc("M"), {"m", "a", "b"}, true, c.epoch()));
  c.invalidate_artifacts({"a"});
  EXPECT_EQ(c.find("a"), nullptr);
  EXPECT_EQ(c.find("m"), nullptr);
  EXPECT_NE(c.find("b"), nullptr);
  // The index holds no dangling key: b's invalidation still drops b only.
  c.invalidate_artifacts({"b"});
  EXPECT_EQ(c.find("b"), nullptr);
  EXPECT_EQ(c.stats().entries, 0u);
  EXPECT_EQ(c.stats().bytes, 0u);
}

TEST(DocCache, MemberInvalidationKeepsArtifactAnswers) {
  DocCache c(1 << 20);
  ASSERT_TRUE(c.insert("a", doc("A"), {"a"}, false, c.epoch()));
  ASSERT_TRUE(c.insert("m", doc("M"), {"m", "a"}, true, c.epoch()));
  c.invalidate_members();
  EXPECT_NE(c.find("a"), nullptr);
  EXPECT_EQ(c.find("m"), nullptr);
  c.clear();
  EXPECT_EQ(c.find("a"), nullptr);
}

TEST(DocCache, DocumentReadBeforeAnInvalidationIsNotKept) {
  DocCache c(1 << 20);
  std::uint64_t before = c.epoch();
  c.invalidate_artifacts({"other"});  // a write committed while the document was being built
  EXPECT_FALSE(c.insert("a", doc("old"), {"a"}, false, before));
  EXPECT_EQ(c.find("a"), nullptr);
  EXPECT_TRUE(c.insert("a", doc("new"), {"a"}, false, c.epoch()));
  EXPECT_EQ(c.stats().rejected, 1u);
}

TEST(DocCache, BoundedByBytesLeastRecentlyUsedFirst) {
  const std::uint64_t budget = 64 * 1024;
  DocCache c(budget);
  const std::string body(4000, 'x');
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(c.insert("k" + std::to_string(i), doc(body), {"k" + std::to_string(i)}, false, c.epoch()));
    ASSERT_NE(c.find("k0"), nullptr) << i;  // k0 is used all the time: never the one dropped
    ASSERT_LE(c.stats().bytes, budget);
  }
  EXPECT_EQ(c.find("k1"), nullptr);
  EXPECT_NE(c.find("k99"), nullptr);
  EXPECT_GE(c.stats().entries, 10u);
  // Larger than a quarter of the budget: not kept at all.
  EXPECT_FALSE(c.insert("big", doc(std::string(budget / 2, 'y')), {"big"}, false, c.epoch()));
}

TEST(DocCache, ConcurrentUseKeepsItsAccounting) {
  DocCache c(256 * 1024);
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 3000; ++i) {
        std::string k = "k" + std::to_string((i * 7 + t) % 97);
        if (i % 5 == 0) c.invalidate_artifacts({k});
        else if (i % 3 == 0) c.insert(k, doc(std::string(100 + i % 900, 'z')), {k, "shared"}, i % 2, c.epoch());
        else if (auto d = c.find(k)) {
          EXPECT_EQ(d->etag, DocCache::etag_of(d->body));
        }
      }
    });
  for (auto& t : ts) t.join();
  auto st = c.stats();
  EXPECT_LE(st.bytes, 256u * 1024);
  c.invalidate_artifacts({"shared"});
  EXPECT_EQ(c.stats().entries, 0u);
  EXPECT_EQ(c.stats().bytes, 0u);
}

}  // namespace
}  // namespace kmr::server

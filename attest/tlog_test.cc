#include "attest/tlog.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <random>

#include <gtest/gtest.h>

#include "attest/base64.h"
#include "attest/keys.h"
#include "attest/merkle.h"
#include "attest/note.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"

namespace kmr::attest {
namespace {

// Independent, naive RFC 6962 reference (recursive over the leaf list).
Hash ref_mth(const std::vector<ByteVector>& d, std::size_t lo, std::size_t hi) {
  if (hi == lo) return empty_root();
  if (hi - lo == 1) return leaf_hash(d[lo]);
  std::size_t k = 1;
  while (k * 2 < hi - lo) k *= 2;
  return node_hash(ref_mth(d, lo, lo + k), ref_mth(d, lo + k, hi));
}

void ref_path(const std::vector<ByteVector>& d, std::size_t m, std::size_t lo, std::size_t hi, std::vector<Hash>& out) {
  if (hi - lo <= 1) return;
  std::size_t k = 1;
  while (k * 2 < hi - lo) k *= 2;
  if (m < k) {
    ref_path(d, m, lo, lo + k, out);
    out.push_back(ref_mth(d, lo + k, hi));
  } else {
    ref_path(d, m - k, lo + k, hi, out);
    out.push_back(ref_mth(d, lo, lo + k));
  }
}

std::string hex(const Hash& h) { return to_hex(Bytes(h.data(), h.size())); }

ByteVector entry_bytes(std::uint64_t i) {
  std::string s = "entry-" + std::to_string(i);
  return ByteVector(s.begin(), s.end());
}

TEST(Merkle, Rfc6962Vectors) {
  EXPECT_EQ(hex(leaf_hash(Bytes())), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
  EXPECT_EQ(hex(node_hash(leaf_hash(as_bytes("a")), leaf_hash(as_bytes("b")))),
            "b137985ff484fb600db93107c77b0365c80d78f5b429ded0fd97361d077999eb");
  EXPECT_EQ(hex(empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_.emplace(std::move(TempDir::create("tlog")).value()); }
  std::string path() const { return dir_->path() + "/log"; }
  std::optional<TempDir> dir_;
};

TEST_F(LogTest, RootsAndProofsMatchReferenceAndVerify) {
  auto log = std::move(TransparencyLog::open(path())).value();
  std::vector<ByteVector> d;
  for (std::uint64_t i = 0; i < 70; ++i) {
    d.push_back(entry_bytes(i));
    if (i % 3 == 0) {
      ASSERT_TRUE(log->append(d.back()));
    } else if (i % 3 == 2) {
      ASSERT_TRUE(log->append_batch({d[i - 1], d[i]}));
    }
  }
  ASSERT_EQ(log->size(), 70u);
  EXPECT_EQ(hex(*log->root(0)), hex(empty_root()));
  for (std::uint64_t n = 1; n <= 70; ++n) {
    Hash root = *log->root(n);
    ASSERT_EQ(hex(root), hex(ref_mth(d, 0, n))) << n;
    for (std::uint64_t m = 0; m < n; ++m) {
      auto proof = log->inclusion_proof(m, n);
      ASSERT_TRUE(proof);
      std::vector<Hash> ref;
      ref_path(d, m, 0, n, ref);
      ASSERT_EQ(proof->size(), ref.size());
      for (std::size_t i = 0; i < ref.size(); ++i) ASSERT_EQ((*proof)[i], ref[i]);
      auto v = verify_inclusion(m, n, leaf_hash(d[m]), *proof, root);
      ASSERT_TRUE(v) << m << "/" << n << ": " << v.error().message();
    }
    for (std::uint64_t m = 0; m <= n; ++m) {
      auto proof = log->consistency_proof(m, n);
      ASSERT_TRUE(proof);
      auto v = verify_consistency(m, n, ref_mth(d, 0, m), root, *proof);
      ASSERT_TRUE(v) << m << "->" << n << ": " << v.error().message();
    }
  }
  EXPECT_EQ(*log->find_leaf(leaf_hash(d[42])), 42u);
  EXPECT_FALSE(log->find_leaf(leaf_hash(as_bytes("nope"))));
  EXPECT_EQ(*log->entry(7), d[7]);
  EXPECT_FALSE(log->entry(70));
}

TEST_F(LogTest, TamperedTruncatedReorderedProofsAreRejected) {
  auto log = std::move(TransparencyLog::open(path())).value();
  std::vector<ByteVector> d;
  for (std::uint64_t i = 0; i < 13; ++i) d.push_back(entry_bytes(i));
  ASSERT_TRUE(log->append_batch(d));
  Hash root = *log->root(13);
  auto proof = *log->inclusion_proof(5, 13);
  ASSERT_GE(proof.size(), 3u);
  auto truncated = proof;
  truncated.pop_back();
  EXPECT_EQ(verify_inclusion(5, 13, leaf_hash(d[5]), truncated, root).error().message(), "inclusion proof: too few hashes");
  auto extended = proof;
  extended.push_back(root);
  EXPECT_EQ(verify_inclusion(5, 13, leaf_hash(d[5]), extended, root).error().message(), "inclusion proof: too many hashes");
  auto reordered = proof;
  std::swap(reordered[0], reordered[1]);
  EXPECT_EQ(verify_inclusion(5, 13, leaf_hash(d[5]), reordered, root).error().message(),
            "inclusion proof: computed root does not match the checkpoint root");
  EXPECT_FALSE(verify_inclusion(6, 13, leaf_hash(d[5]), proof, root));
  EXPECT_EQ(verify_inclusion(13, 13, leaf_hash(d[5]), proof, root).error().message(),
            "inclusion proof: index 13 is not below tree size 13");

  Hash old_root = *log->root(6);
  auto cproof = *log->consistency_proof(6, 13);
  ASSERT_TRUE(verify_consistency(6, 13, old_root, root, cproof));
  auto ct = cproof;
  ct.pop_back();
  EXPECT_FALSE(verify_consistency(6, 13, old_root, root, ct));
  auto cr = cproof;
  std::swap(cr[0], cr[1]);
  EXPECT_FALSE(verify_consistency(6, 13, old_root, root, cr));
  EXPECT_EQ(verify_consistency(6, 13, old_root, root, {}).error().message(), "consistency proof: empty proof");
  EXPECT_EQ(verify_consistency(13, 13, old_root, root, {}).error().message(),
            "consistency proof: roots differ at the same size (forked log)");
  EXPECT_EQ(verify_consistency(0, 13, old_root, root, cproof).error().message(),
            "consistency proof: must be empty when the old tree is empty");

  // A forked log: same first 5 entries, a different 6th.
  auto fork = std::move(TransparencyLog::open(dir_->path() + "/fork")).value();
  auto fd = d;
  fd[5] = entry_bytes(999);
  ASSERT_TRUE(fork->append_batch(fd));
  Hash fork_old = *fork->root(6);
  auto fproof = *fork->consistency_proof(6, 13);
  // Our honest old checkpoint cannot be extended to the fork's new root.
  EXPECT_EQ(verify_consistency(6, 13, old_root, *fork->root(13), fproof).error().message(),
            "consistency proof: does not reproduce the old root (forked or rewritten log)");
  EXPECT_TRUE(verify_consistency(6, 13, fork_old, *fork->root(13), fproof));
}

TEST_F(LogTest, ReopenKeepsRootAndDiscardsUncommittedTail) {
  Hash root;
  {
    auto log = std::move(TransparencyLog::open(path())).value();
    std::vector<ByteVector> d;
    for (std::uint64_t i = 0; i < 300; ++i) d.push_back(entry_bytes(i));
    ASSERT_TRUE(log->append_batch({d.begin(), d.begin() + 100}));
    ASSERT_TRUE(log->append_batch({d.begin() + 100, d.end()}));
    root = *log->root(300);
  }
  // Simulate a crash after the data files were written but before commit.
  {
    FILE* f = std::fopen((path() + "/entries.dat").c_str(), "ab");
    std::fputs("garbage", f);
    std::fclose(f);
    f = std::fopen((path() + "/level-00.dat").c_str(), "ab");
    std::fputs("0123456789abcdef0123456789abcdefXX", f);
    std::fclose(f);
  }
  // Derived upper levels lost (they are not fsynced per append): rebuilt.
  ASSERT_EQ(::truncate((path() + "/level-01.dat").c_str(), 32 * 7), 0);
  ASSERT_EQ(::unlink((path() + "/level-03.dat").c_str()), 0);
  auto log = std::move(TransparencyLog::open(path())).value();
  EXPECT_EQ(log->size(), 300u);
  EXPECT_EQ(*log->root(300), root);
  for (std::uint64_t m : {0u, 17u, 255u, 299u}) {
    EXPECT_TRUE(verify_inclusion(m, 300, leaf_hash(entry_bytes(m)), *log->inclusion_proof(m, 300), root));
  }
  ASSERT_TRUE(log->append(entry_bytes(300)));
  EXPECT_EQ(*log->entry(300), entry_bytes(300));
  EXPECT_TRUE(verify_consistency(300, 301, root, *log->root(301), *log->consistency_proof(300, 301)));
}

// A child process appends as fast as it can and reports every committed
// (size, root); the parent kills it with SIGKILL mid-append, reopens, and
// checks the reopened log extends everything the child reported.
TEST_F(LogTest, SecondWriterIsRefused) {
  auto log = std::move(TransparencyLog::open(path())).value();
  auto second = TransparencyLog::open(path());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), ErrorCode::kDbBusy);
  log.reset();
  EXPECT_TRUE(TransparencyLog::open(path()));
}

TEST_F(LogTest, TornCommitSlotFallsBackToPreviousCommit) {
  Hash root9;
  {
    auto log = std::move(TransparencyLog::open(path())).value();
    for (std::uint64_t i = 0; i < 10; ++i) {
      ASSERT_TRUE(log->append(entry_bytes(i)));
      if (i == 8) root9 = *log->root(9);
    }
  }
  // Generation 10 lives in slot 0; tear it.
  FILE* f = std::fopen((path() + "/commit").c_str(), "r+b");
  std::fseek(f, 20, SEEK_SET);
  std::fputc(0x55, f);
  std::fclose(f);
  auto log = std::move(TransparencyLog::open(path())).value();
  EXPECT_EQ(log->size(), 9u);
  EXPECT_EQ(*log->root(9), root9);
  // Both slots torn: refuse to guess.
  f = std::fopen((path() + "/commit").c_str(), "r+b");
  std::fseek(f, 64 + 20, SEEK_SET);
  std::fputc(0x55, f);
  std::fclose(f);
  log.reset();
  auto bad = TransparencyLog::open(path());
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("no valid commit slot"), std::string::npos);
}

std::string read_all(const std::string& p) {
  auto d = read_file(p, 1 << 24);
  KMR_CHECK(d.has_value());
  return std::string(d->begin(), d->end());
}

void write_all(const std::string& p, const std::string& data) {
  KMR_CHECK(write_file_atomic(p, as_bytes(data)).has_value());
}

TEST_F(LogTest, CommitRecordCarriesTheRootAndOpenChecksIt) {
  std::vector<ByteVector> d;
  for (std::uint64_t i = 0; i < 37; ++i) d.push_back(entry_bytes(i));
  { ASSERT_TRUE(std::move(TransparencyLog::open(path())).value()->append_batch(d)); }
  // The committed slot holds "KMRTLOG2", the size and the RFC 6962 root (independent reference).
  std::string commit = read_all(path() + "/commit");
  ASSERT_EQ(commit.size(), 128u);
  const std::string slot = commit.substr(64, 64);  // generation 1 -> slot 1
  EXPECT_EQ(slot.substr(0, 8), "KMRTLOG2");
  EXPECT_EQ(static_cast<unsigned char>(slot[23]), 37u);
  const Hash want = ref_mth(d, 0, d.size());
  EXPECT_EQ(to_hex(as_bytes(slot.substr(24, 32))), hex(want));
  auto log = TransparencyLog::open(path());
  ASSERT_TRUE(log) << log.error().to_string();
  EXPECT_EQ(*(*log)->root(37), want);
}

TEST_F(LogTest, ChangedEntryIsRefusedOnOpen) {
  { auto log = std::move(TransparencyLog::open(path())).value();
    for (std::uint64_t i = 0; i < 20; ++i) ASSERT_TRUE(log->append(entry_bytes(i))); }
  std::string entries = read_all(path() + "/entries.dat");
  entries[entries.find("entry-7")] = 'E';
  write_all(path() + "/entries.dat", entries);
  auto bad = TransparencyLog::open(path());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::kVerificationFailed);
  EXPECT_NE(bad.error().message().find("entry 7 does not hash to its stored leaf"), std::string::npos)
      << bad.error().message();
}

TEST_F(LogTest, ReplacedLogOfTheSameSizeIsRefused) {
  // Another, self-consistent log of the same size copied over the data files: only the
  // committed root can tell.
  const std::string other = dir_->path() + "/other";
  { auto a = std::move(TransparencyLog::open(path())).value();
    auto b = std::move(TransparencyLog::open(other)).value();
    for (std::uint64_t i = 0; i < 12; ++i) {
      ASSERT_TRUE(a->append(entry_bytes(i)));
      ASSERT_TRUE(b->append(entry_bytes(100 + i)));
    } }
  for (const char* f : {"/entries.dat", "/offsets.dat", "/level-00.dat", "/level-01.dat", "/level-02.dat", "/level-03.dat"})
    write_all(path() + f, read_all(other + f));
  auto bad = TransparencyLog::open(path());
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("does not have the committed root"), std::string::npos) << bad.error().message();
}

TEST_F(LogTest, CorruptDerivedLevelIsRebuiltFromTheLeaves) {
  std::vector<ByteVector> d;
  for (std::uint64_t i = 0; i < 64; ++i) d.push_back(entry_bytes(i));
  { ASSERT_TRUE(std::move(TransparencyLog::open(path())).value()->append_batch(d)); }
  std::string l2 = read_all(path() + "/level-02.dat");
  l2[5] ^= 0x40;
  write_all(path() + "/level-02.dat", l2);
  auto log = TransparencyLog::open(path());
  ASSERT_TRUE(log) << log.error().to_string();
  EXPECT_EQ(hex(*(*log)->root(64)), hex(ref_mth(d, 0, 64)));
  EXPECT_EQ(hex(*(*log)->root(13)), hex(ref_mth(d, 0, 13)));
}

TEST_F(LogTest, CommitRecordsWithoutARootStillOpen) {
  { auto log = std::move(TransparencyLog::open(path())).value();
    for (std::uint64_t i = 0; i < 5; ++i) ASSERT_TRUE(log->append(entry_bytes(i))); }
  // The earlier record layout: "KMRTLOG1" | generation | size | SHA-256 of the first 24 bytes.
  std::string rec = "KMRTLOG1" + std::string(7, '\0') + "\x09" + std::string(7, '\0') + "\x05";
  Digest256 sum = sha256(as_bytes(rec));
  rec += std::string(reinterpret_cast<const char*>(sum.data()), 32) + std::string(8, '\0');
  write_all(path() + "/commit", rec + std::string(64, '\0'));
  auto log = TransparencyLog::open(path());
  ASSERT_TRUE(log) << log.error().to_string();
  EXPECT_EQ((*log)->size(), 5u);
  ASSERT_TRUE((*log)->append(entry_bytes(5)));  // writes a KMRTLOG2 record from now on
  log->reset();
  EXPECT_EQ(read_all(path() + "/commit").substr(0, 8), "KMRTLOG2");  // generation 10 -> slot 0
}

TEST_F(LogTest, SurvivesKill9MidAppendWithoutForking) {
  { auto log = std::move(TransparencyLog::open(path())).value(); }
  for (int round = 0; round < 3; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      auto log = std::move(TransparencyLog::open(path())).value();
      for (std::uint64_t i = log->size();; ++i) {
        if (!log->append(entry_bytes(i))) ::_exit(3);
        std::string line = std::to_string(log->size()) + " " + hex(*log->root(log->size())) + "\n";
        if (::write(fds[1], line.data(), line.size()) < 0) ::_exit(4);
      }
    }
    ::close(fds[1]);
    std::string got;
    char buf[4096];
    std::size_t lines = 0;
    while (lines < 40u + static_cast<std::size_t>(round) * 17) {
      ssize_t n = ::read(fds[0], buf, sizeof buf);
      ASSERT_GT(n, 0);
      got.append(buf, static_cast<std::size_t>(n));
      lines = static_cast<std::size_t>(std::count(got.begin(), got.end(), '\n'));
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));
    while (true) {
      ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    auto nl = got.rfind('\n', got.size() - 2);
    std::string last = got.substr(nl == std::string::npos ? 0 : nl + 1);
    std::uint64_t reported = std::stoull(last.substr(0, last.find(' ')));
    std::string reported_root = last.substr(last.find(' ') + 1, 64);

    auto log = std::move(TransparencyLog::open(path())).value();
    ASSERT_GE(log->size(), reported);
    ASSERT_LE(log->size(), reported + 1);
    EXPECT_EQ(hex(*log->root(reported)), reported_root);
    // Everything is consistent with what the child published, and the data
    // matches an independent recomputation from the stored entries.
    std::vector<ByteVector> d;
    for (std::uint64_t i = 0; i < log->size(); ++i) {
      d.push_back(*log->entry(i));
      ASSERT_EQ(d.back(), entry_bytes(i));
    }
    EXPECT_EQ(*log->root(log->size()), ref_mth(d, 0, d.size()));
    auto proof = log->consistency_proof(reported, log->size());
    ASSERT_TRUE(proof);
    Hash rr;
    auto raw = from_hex(reported_root);
    std::copy(raw->begin(), raw->end(), rr.begin());
    EXPECT_TRUE(verify_consistency(reported, log->size(), rr, *log->root(log->size()), *proof));
  }
}

TEST(Tiles, PathEncoding) {
  EXPECT_EQ(tile_index_path(1234067), "x001/x234/067");
  EXPECT_EQ(tile_index_path(0), "000");
  EXPECT_EQ(tile_index_path(1000), "x001/000");
  auto t = parse_tile_path("0/x001/x234/067");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->index, 1234067u);
  EXPECT_EQ(t->width, 256u);
  t = parse_tile_path("entries/x001/x234/067.p/8");
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->entries);
  EXPECT_EQ(t->index, 1234067u);
  EXPECT_EQ(t->width, 8u);
  EXPECT_EQ(format_tile_path(*t), "entries/x001/x234/067.p/8");
  struct Case {
    const char* path;
    const char* msg;
  } bad[] = {
      {"0", "tile path: expected <L>/<N> or entries/<N>"},
      {"9/000", "tile path: bad level '9'"},
      {"0/12", "tile path: bad index element '12'"},
      {"0/x000/123", "tile path: non-canonical index"},
      {"0/001/002", "tile path: bad index element '001'"},
      {"0/000.p/256", "tile path: bad partial width"},
      {"0/000.p/0", "tile path: bad partial width"},
      {"0/x1a3/000", "tile path: bad index element '1a3'"},
  };
  for (const auto& c : bad) {
    auto r = parse_tile_path(c.path);
    ASSERT_FALSE(r) << c.path;
    EXPECT_EQ(r.error().message(), c.msg) << c.path;
  }
}

TEST_F(LogTest, TilesFullAndPartialAndEntryBundles) {
  auto log = std::move(TransparencyLog::open(path())).value();
  std::vector<ByteVector> d;
  for (std::uint64_t i = 0; i < 70000; ++i) d.push_back(entry_bytes(i));
  ASSERT_TRUE(log->append_batch(d));
  // Spec example: size 70,000 -> 273 full level-0 tiles + partial width 112.
  EXPECT_TRUE(log->tile(0, 272, 256, 70000));
  EXPECT_FALSE(log->tile(0, 273, 256, 70000));
  auto partial = log->tile(0, 273, 112, 70000);
  ASSERT_TRUE(partial);
  EXPECT_EQ(partial->size(), 112u * 32);
  EXPECT_FALSE(log->tile(0, 273, 113, 70000));
  // Level 1: 70000 / 256 = 273 hashes -> one full tile + partial width 17.
  auto l1 = log->tile(1, 1, 17, 70000);
  ASSERT_TRUE(l1);
  // Each level-1 hash is the MTH of 256 leaves.
  auto first = log->tile(1, 0, 256, 70000);
  ASSERT_TRUE(first);
  Hash h0;
  std::copy(first->begin(), first->begin() + 32, h0.begin());
  EXPECT_EQ(h0, ref_mth(d, 0, 256));
  // Level-0 tile holds the leaf hashes.
  Hash leaf;
  std::copy(partial->begin(), partial->begin() + 32, leaf.begin());
  EXPECT_EQ(leaf, leaf_hash(d[273 * 256]));
  auto bundle = log->entry_bundle(273, 3, 70000);
  ASSERT_TRUE(bundle);
  std::string expect;
  for (int i = 0; i < 3; ++i) {
    auto& e = d[273 * 256 + static_cast<std::size_t>(i)];
    expect.push_back(static_cast<char>(e.size() >> 8));
    expect.push_back(static_cast<char>(e.size() & 0xff));
    expect.append(e.begin(), e.end());
  }
  EXPECT_EQ(*bundle, expect);
  // Proof reads are O(log n): never more than 2*log2(n)+2 stored hashes.
  std::uint64_t before = log->hash_reads();
  auto p = log->inclusion_proof(12345, 70000);
  ASSERT_TRUE(p);
  EXPECT_LE(log->hash_reads() - before, 2u * 17 + 2);
  EXPECT_TRUE(verify_inclusion(12345, 70000, leaf_hash(d[12345]), *p, *log->root(70000)));
}

TEST(Note, C2spExamplesVerify) {
  auto v = parse_vkey("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k");
  ASSERT_TRUE(v) << v.error().to_string();
  std::string note =
      "This is an example message.\n\n"
      "\xE2\x80\x94 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
  auto text = verify_note(note, {*v});
  ASSERT_TRUE(text) << text.error().to_string();
  EXPECT_EQ(*text, "This is an example message.\n");
  // Tampered text fails; unknown-only signatures fail.
  std::string bad = note;
  bad[0] = 't';
  EXPECT_EQ(verify_note(bad, {*v}).error().message(), "note: signature by known key example.com/foo does not verify");
  auto golang = parse_vkey("sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8");
  ASSERT_TRUE(golang) << golang.error().to_string();
  EXPECT_EQ(golang->key_id, 0x033de0aeu);
  EXPECT_EQ(verify_note(note, {*golang}).error().message(), "note: no signature by a known key");
  EXPECT_EQ(parse_vkey("sum.golang.org+033de0af+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8").error().message(),
            "vkey: key ID does not match name and key");
}

TEST(Note, CheckpointSignAndVerify) {
  auto key = std::move(Ed25519Key::generate()).value();
  Checkpoint cp{"kmr.example/log", 42, leaf_hash(as_bytes("x")), {}};
  auto note = sign_note(format_checkpoint(cp), cp.origin, key);
  ASSERT_TRUE(note);
  auto vk = parse_vkey(make_vkey(cp.origin, key));
  ASSERT_TRUE(vk);
  auto got = verify_checkpoint(*note, *vk);
  ASSERT_TRUE(got) << got.error().to_string();
  EXPECT_EQ(got->size, 42u);
  EXPECT_EQ(got->root, cp.root);
  auto other = std::move(Ed25519Key::generate()).value();
  EXPECT_FALSE(verify_checkpoint(*note, note_verifier(cp.origin, other)));
  // Signed by the right key under another origin name: rejected.
  auto note2 = sign_note(format_checkpoint({"evil.example/log", 1, cp.root, {}}), "evil.example/log", key);
  EXPECT_FALSE(verify_checkpoint(*note2, note_verifier(cp.origin, key)));
  struct Case {
    std::string text;
    std::string msg;
  } bad[] = {
      {"kmr.example/log\n042\nAAAA\n", "checkpoint: size is not a decimal without leading zeros"},
      {"kmr.example/log\n1\nAAAA\n", "checkpoint: root is not a base64 SHA-256 hash"},
      {"kmr.example/log\n1\n", "checkpoint: expected origin, size and root lines"},
      {"kmr.example/log\n18446744073709551616\nAAAA\n", "checkpoint: size is not a decimal without leading zeros"},
  };
  for (const auto& c : bad) {
    auto r = parse_checkpoint(c.text);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), c.msg);
  }
  EXPECT_EQ(verify_note("abc\n", {*vk}).error().message(), "note: missing blank line before signatures");
  EXPECT_EQ(verify_note("abc\n\nx y\n", {*vk}).error().message(), "note: signature line does not start with an em dash");
  EXPECT_EQ(verify_note("a\x01\n\n", {*vk}).error().message(), "note is not valid UTF-8 without control characters");
}

}  // namespace
}  // namespace kmr::attest

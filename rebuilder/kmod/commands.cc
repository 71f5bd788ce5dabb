// kmr subcommands of the module Merkle engine:
//   kmr merkle [--json] [--suffix .ko] [--proofs] [--strip-trailers] MODULES_ORDER
//   kmr vmlinux root [--json] [--expect-root HEX --expect-levels N] IMAGE
//   kmr modules verify [--json] [--vmlinux IMAGE] MODULE_TREE
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/command.h"
#include "rebuilder/base/flags.h"
#include "rebuilder/kmod/kernel_image.h"
#include "rebuilder/kmod/module_tree.h"

namespace kmr::kmod {
namespace {

using cli::kExitError;
using cli::kExitFailed;
using cli::kExitOk;

int fail_error(const std::string& cmd, bool json, const Error& e) {
  std::fprintf(stderr, "kmr %s: %s\n", cmd.c_str(), e.to_string().c_str());
  if (json) {
    nlohmann::json j = {{"error", e.to_string()}, {"code", std::string(error_code_name(e.code()))}};
    std::printf("%s\n", j.dump().c_str());
  }
  return kExitError;
}

constexpr std::int64_t kMaxThreads = 256;
constexpr const char* kThreadsHelp = "hashing threads, 1 to 256 (default: one per core)";

// ---- kmr merkle ----------------------------------------------------------

int run_merkle(const std::vector<std::string>& argv) {
  bool json = false, proofs = false, strip = false;
  std::string suffix = ".ko";
  std::int64_t threads = 0;
  std::vector<std::string> order;
  cli::FlagParser p("kmr merkle", "[--json] [--suffix .ko] [--proofs] [--strip-trailers] MODULES_ORDER",
                    "Computes the kernel's module Merkle tree (CONFIG_MODULE_HASHES) over the modules\n"
                    "listed in MODULES_ORDER, exactly like the kernel's scripts/modules-merkle-tree:\n"
                    "paths are relative to the directory of MODULES_ORDER, a trailing .o is replaced by\n"
                    "the suffix (default .ko); installed-form lines (.ko, .ko.zst, .ko.xz, .ko.gz) are\n"
                    "used as they are, and a .ko line also finds .ko.zst/.ko.xz/.ko.gz on disk.\n\n"
                    "What is hashed: each module file's bytes exactly as they are. Only the name decides\n"
                    "decompression: .ko.zst (zstd), .ko.xz (xz) and .ko.gz (gzip) are decompressed; any\n"
                    "other file, e.g. a .ko whose content starts with gzip, zstd, xz, lz4 or bzip2\n"
                    "magic, is raw module bytes. An empty module file is an error (the kernel's tool\n"
                    "cannot hash it either).");
  p.boolean("--json", &json, "print {\"count\":N,\"levels\":L,\"root\":\"<hex>\"}")
      .string("--suffix", "S", &suffix, "module suffix replacing .o (default .ko)")
      .boolean("--proofs", &proofs,
               "write each proof to <module path without its suffix>.merkle,\n"
               "e.g. drivers/net/foo.merkle next to drivers/net/foo.ko")
      .boolean("--strip-trailers", &strip,
               "cut an appended signature or proof off each module first\n"
               "(installed trees; gives the root over the module contents)")
      .integer("--threads", "N", &threads, 1, kMaxThreads, kThreadsHelp)
      .positionals("MODULES_ORDER", &order, 1, 1)
      .epilogue("Exit: 0 computed, 2 error.");
  if (auto code = p.parse_or_exit(argv)) return *code;
  HashOptions ho;
  ho.threads = static_cast<unsigned>(threads);
  ho.strip_trailer = strip;
  ho.allow_empty = false;
  auto tree = compute_tree(order[0], suffix, ho);
  if (!tree) return fail_error("merkle", json, tree.error());
  const MerkleRoot root = tree->tree.root();
  if (proofs) {
    for (std::size_t i = 0; i < tree->proof_paths.size(); ++i) {
      const ByteVector proof = tree->tree.proof_file(static_cast<std::uint32_t>(i));
      auto w = write_file_atomic(tree->proof_paths[i], proof);
      if (!w) return fail_error("merkle", json, w.error().with_context("writing " + tree->proof_paths[i]));
    }
  }
  if (json) {
    nlohmann::json j = {{"count", tree->tree.count()}, {"levels", root.levels}, {"root", to_hex(root.hash)}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("count  %llu\nlevels %u\nroot   %s\n", static_cast<unsigned long long>(tree->tree.count()), root.levels,
                to_hex(root.hash).c_str());
    if (proofs) std::printf("wrote %zu proof file(s)\n", tree->module_paths.size());
  }
  return kExitOk;
}

// ---- kmr vmlinux root ----------------------------------------------------

Result<std::optional<MerkleRoot>> expected_root(const std::string& hex, std::int64_t levels) {
  if (hex.empty() && levels < 0) return std::optional<MerkleRoot>();
  if (hex.empty() || levels < 0) return malformed("--expect-root and --expect-levels go together");
  const auto h = from_hex(hex);
  if (!h || h->size() != 32) return malformed("--expect-root: not 64 hex digits");
  MerkleRoot r;
  std::copy(h->begin(), h->end(), r.hash.begin());
  r.levels = static_cast<std::uint32_t>(levels);
  return std::optional<MerkleRoot>(r);
}

void print_root(bool json, const ImageRoot& r, const std::string& path) {
  if (json) {
    nlohmann::json j;
    if (r.present) {
      j = {{"levels", r.root.levels}, {"root", to_hex(r.root.hash)}, {"source", r.source}};
    } else {
      j = {{"module_hashes", "absent"}};
    }
    std::printf("%s\n", j.dump().c_str());
  } else if (r.present) {
    std::printf("levels %u\nroot   %s\nsource %s%s\n", r.root.levels, to_hex(r.root.hash).c_str(), r.source.c_str(),
                r.compression != "none" ? (" (file compressed with " + r.compression + ")").c_str() : "");
  } else {
    std::printf("%s: module hashes absent (no .module_hashes section%s)\n", path.c_str(),
                r.source == "absent" ? "; give --expect-root/--expect-levels to search raw images" : "");
  }
}

int run_vmlinux_root(const std::vector<std::string>& argv) {
  bool json = false;
  std::string hex;
  std::int64_t levels = -1;
  std::vector<std::string> image;
  cli::FlagParser p("kmr vmlinux root", "[--json] [--expect-root HEX --expect-levels N] IMAGE",
                    "Reads the module_hashes_root (levels + SHA-256 root) embedded in a kernel image:\n"
                    "an ELF vmlinux (.module_hashes section), an x86 bzImage (gzip, bzip2, lzma, xz, lz4\n"
                    "or zstd payload), vmlinux.xz/.gz, an arm64 EFI zboot image, or a raw/gzip'd arm64\n"
                    "Image, where the 36-byte struct can only be found by searching for an expected root.");
  p.boolean("--json", &json,
            "{\"levels\":L,\"root\":\"<hex>\",\"source\":\"elf-section|bzimage-<codec>|search\"}\n"
            "or {\"module_hashes\":\"absent\"}")
      .string("--expect-root", "HEX", &hex, "the root to search raw images for (64 hex digits)")
      .integer("--expect-levels", "N", &levels, 0, std::numeric_limits<std::uint32_t>::max(),
               "the levels of that root (with --expect-root)")
      .positionals("IMAGE", &image, 1, 1)
      .epilogue("Exit: 0 found, 1 module hashes absent, 2 error.");
  if (auto code = p.parse_or_exit(argv)) return *code;
  auto exp = expected_root(hex, levels);
  if (!exp) return fail_error("vmlinux root", json, exp.error());
  ImageOptions o;
  o.expected = *exp;
  auto r = root_from_image_file(image[0], o);
  if (!r) return fail_error("vmlinux root", json, r.error());
  print_root(json, *r, image[0]);
  return r->present ? kExitOk : kExitFailed;
}

// ---- kmr modules verify --------------------------------------------------

bool is_file(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// The usual places of the kernel image for .../lib/modules/<release>.
std::vector<std::string> image_candidates(const std::string& tree) {
  namespace fs = std::filesystem;
  const fs::path t = fs::path(tree).lexically_normal();
  const fs::path dir = t.has_filename() ? t : t.parent_path();
  const std::string release = dir.filename().string();
  std::vector<std::string> out = {(dir / "vmlinux").string(), (dir / "build" / "vmlinux").string(),
                                  (dir / "vmlinuz").string(), (dir / "Image").string()};
  // <prefix>/lib/modules/<release> or <prefix>/usr/lib/modules/<release>.
  fs::path prefix = dir.parent_path().parent_path().parent_path();
  if (dir.parent_path().filename() == "modules" && dir.parent_path().parent_path().filename() == "lib") {
    std::vector<fs::path> prefixes = {prefix};
    if (prefix.filename() == "usr") prefixes.push_back(prefix.parent_path());
    for (const auto& p : prefixes) {
      for (const char* name : {"vmlinux-", "vmlinuz-", "Image-", "vmlinux.xz-"}) {
        out.push_back((p / "boot" / (std::string(name) + release)).string());
      }
      out.push_back((p / "usr" / "lib" / "debug" / "boot" / ("vmlinux-" + release)).string());
    }
  }
  return out;
}

// When the image has no section table (raw arm64 Image), the root a proof
// leads to is the expected value to search for.
std::optional<MerkleRoot> root_from_first_proof(const std::string& tree) {
  auto text = read_text_file(tree + "/modules.order", 256 << 20);
  if (!text) return std::nullopt;
  auto entries = parse_modules_order(*text, ".ko", "modules.order");
  if (!entries) return std::nullopt;
  for (std::size_t i = 0; i < entries->size() && i < 16; ++i) {
    auto f = resolve_module_file(tree, (*entries)[i]);
    if (!f) continue;
    auto m = hash_module_file(*f, static_cast<std::uint32_t>(i), true);
    if (!m || !m->proof) continue;
    return MerkleRoot{static_cast<std::uint32_t>(m->proof->siblings.size()), proof_root(m->leaf, *m->proof)};
  }
  return std::nullopt;
}

// --vmlinux, or the first of the usual places that is a file.
Result<std::string> find_image(const std::string& tree, const std::string& given) {
  if (!given.empty()) return given;
  for (const auto& c : image_candidates(tree)) {
    if (is_file(c)) return c;
  }
  return not_found(tree + ": no kernel image found in the usual places; give --vmlinux IMAGE");
}

// The image's module_hashes root; raw images are searched for the root the proofs lead to.
Result<ImageRoot> image_root(const std::string& image, const std::string& tree) {
  KMR_ASSIGN_OR_RETURN(auto ir, root_from_image_file(image));
  if (!ir.present) {
    if (auto guess = root_from_first_proof(tree)) {
      ImageOptions o;
      o.expected = *guess;
      return root_from_image_file(image, o);
    }
  }
  return ir;
}

int print_hashes_absent(bool json, const std::string& image) {
  if (json) {
    nlohmann::json j = {{"module_hashes", "absent"}, {"image", image}, {"ok", false}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s: module hashes absent; nothing to verify against\nresult: NOT verified\n", image.c_str());
  }
  return kExitFailed;
}

void print_verify_json(const TreeReport& rep, const std::string& image, const ImageRoot& ir) {
  nlohmann::json failures = nlohmann::json::array();
  nlohmann::json unauth = nlohmann::json::array();
  for (const auto& m : rep.modules) {
    if (m.status == ModuleStatus::kFailed) {
      nlohmann::json f = {{"module", m.path}, {"reason", m.reason}, {"trailer", m.trailer}};
      if (m.pos) f["pos"] = *m.pos;
      failures.push_back(f);
    } else if (m.status == ModuleStatus::kUnauthenticated) {
      nlohmann::json u = {{"module", m.path}, {"trailer", m.trailer}, {"reason", m.reason}};
      if (m.pkcs7) {
        u["signer"] = m.pkcs7->signer;
        u["key_id"] = m.pkcs7->key_id;
      }
      unauth.push_back(u);
    }
  }
  nlohmann::json j = {{"verified", rep.verified},
                      {"failed", rep.failed},
                      {"unauthenticated", rep.unauthenticated},
                      {"root", to_hex(rep.root.hash)},
                      {"levels", rep.root.levels},
                      {"ok", rep.ok},
                      {"count", rep.count},
                      {"image", image},
                      {"source", ir.source},
                      {"failures", failures},
                      {"unauthenticated_modules", unauth},
                      {"problems", rep.problems}};
  std::printf("%s\n", j.dump().c_str());
}

void print_verify_text(const TreeReport& rep, const std::string& image, const ImageRoot& ir) {
  std::printf("image  %s (%s)\nroot   %s (levels %u)\n", image.c_str(), ir.source.c_str(),
              to_hex(rep.root.hash).c_str(), rep.root.levels);
  std::printf("modules.order lists %llu; %llu verified, %llu failed, %llu unauthenticated\n",
              static_cast<unsigned long long>(rep.count), static_cast<unsigned long long>(rep.verified),
              static_cast<unsigned long long>(rep.failed), static_cast<unsigned long long>(rep.unauthenticated));
  for (const auto& m : rep.modules) {
    if (m.status == ModuleStatus::kFailed) std::printf("FAILED          %s: %s\n", m.path.c_str(), m.reason.c_str());
  }
  for (const auto& m : rep.modules) {
    if (m.status == ModuleStatus::kUnauthenticated) {
      std::printf("UNAUTHENTICATED %s: %s%s\n", m.path.c_str(), m.reason.c_str(),
                  m.pkcs7 ? (" (signer \"" + m.pkcs7->signer + "\", key " + m.pkcs7->key_id + ")").c_str() : "");
    }
  }
  for (const auto& p : rep.problems) std::printf("problem: %s\n", p.c_str());
  std::printf("result: %s\n", rep.ok ? "verified" : "NOT verified");
}

int run_modules_verify(const std::vector<std::string>& argv) {
  bool json = false;
  std::string image;
  std::int64_t threads = 0;
  std::vector<std::string> trees;
  cli::FlagParser p(
      "kmr modules verify", "[--json] [--vmlinux IMAGE] MODULE_TREE",
      "Verifies an installed module tree (.../lib/modules/<release>/ with modules.order)\n"
      "against the module_hashes root in the kernel image (--vmlinux, or found in the usual\n"
      "places: <tree>/vmlinux, <tree>/build/vmlinux, <tree>/vmlinuz, <prefix>/boot/vmlinu[xz]-<release>):\n"
      "every module's Merkle proof must lead to the root, positions 0..n-1 must each be\n"
      "claimed exactly once, n must equal the modules.order count. Modules without a Merkle\n"
      "proof (or not listed in modules.order) are unauthenticated.");
  p.boolean("--json", &json,
            "{\"verified\":N,\"failed\":N,\"unauthenticated\":N,\"root\":\"<hex>\",\"levels\":L,\"ok\":bool,\n"
            " \"count\":N,\"image\":PATH,\"source\":S,\"failures\":[{\"module\",\"reason\"}],\n"
            " \"unauthenticated_modules\":[{\"module\",\"trailer\",\"reason\"}],\"problems\":[...]}")
      .string("--vmlinux", "IMAGE", &image, "the kernel image (default: found in the usual places)")
      .integer("--threads", "N", &threads, 1, kMaxThreads, kThreadsHelp)
      .positionals("MODULE_TREE", &trees, 1, 1)
      .epilogue("Exit: 0 all verified, 1 any failure / unauthenticated module / hashes absent, 2 error.");
  if (auto code = p.parse_or_exit(argv)) return *code;
  const std::string tree = trees[0];
  HashOptions ho;
  ho.threads = static_cast<unsigned>(threads);
  auto found = find_image(tree, image);
  if (!found) return fail_error("modules verify", json, found.error());
  image = *found;
  auto ir = image_root(image, tree);
  if (!ir) return fail_error("modules verify", json, ir.error());
  if (!ir->present) return print_hashes_absent(json, image);
  auto rep = verify_module_tree(tree, ir->root, ho);
  if (!rep) return fail_error("modules verify", json, rep.error());
  if (json) {
    print_verify_json(*rep, image, *ir);
  } else {
    print_verify_text(*rep, image, *ir);
  }
  return rep->ok ? kExitOk : kExitFailed;
}

}  // namespace

KMR_REGISTER_COMMAND(kmod_merkle, "merkle", "compute the kernel module Merkle root and proofs from modules.order",
                     run_merkle);
KMR_REGISTER_COMMAND(kmod_vmlinux_root, "vmlinux root", "read the module hashes root from a kernel image",
                     run_vmlinux_root);
KMR_REGISTER_COMMAND(kmod_modules_verify, "modules verify",
                     "verify an installed module tree's Merkle proofs against the kernel image", run_modules_verify);

}  // namespace kmr::kmod

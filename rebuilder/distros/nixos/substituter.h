#pragma once

// A Nix binary cache as the substituter of a rebuild's inputs (never of the
// outputs being rebuilt). kmr reads the cache itself, as Nix's
// BinaryCacheStore does, and trusts nothing it has not checked:
//   1. <cache>/<hash>.narinfo must name exactly the store path asked for and
//      carry a Sig: that verifies with one of the trusted public keys over
//      the fingerprint (StorePath, NarHash, NarSize, References);
//   2. the NAR at its URL (relative to the cache, no "..", no scheme) must
//      match FileSize/FileHash, decompress to exactly NarSize bytes with
//      NarHash, and parse as a canonical NAR.
// Then the verified paths are written in `nix-store --export` format, in
// dependency order, for `nix-store --import` into the job's own store.
// A path the cache does not have (HTTP 404, a failed connection) is
// "missing" with the store path and the URL tried; a bad signature, a hash
// that does not match or a malformed narinfo/NAR is an error.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/archive/narinfo.h"
#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"
#include "rebuilder/distros/nixos/derivation.h"

namespace kmr::nixos {

// GET of one URL with at most `max_bytes` of body; a missing document is
// kNotFound. The production one is http_fetcher() (https/http through kmr's
// HTTP client, file:// from the local file system).
using Fetcher = std::function<Result<std::string>(const std::string& url, std::uint64_t max_bytes)>;
Fetcher http_fetcher(std::chrono::milliseconds timeout);

struct CacheOptions {
  std::string url;                             // e.g. https://cache.nixos.org (no trailing '/')
  std::vector<archive::PublicKey> trusted_keys;
  std::uint64_t max_narinfo_bytes = 1 << 20;
  std::uint64_t max_nar_file_bytes = 8ull << 30;  // one compressed NAR
  std::uint64_t max_total_bytes = 16ull << 30;    // all NARs of one closure, uncompressed
  std::size_t max_paths = 20'000;
};

// Trusted keys: "name:base64(32 bytes)" separated by white space (a value of
// trusted-public-keys, or a file holding such lines; '#' starts a comment).
Result<std::vector<archive::PublicKey>> parse_trusted_keys(std::string_view text);

// Step 1 on a narinfo's text fetched from `url` for `store_path`.
Result<archive::NarInfo> check_narinfo(std::string_view text, const std::string& store_path, const std::string& url,
                                       const std::vector<archive::PublicKey>& keys);

// The NAR's URL: the narinfo's URL resolved against the cache; refuses
// absolute URLs, "..", empty segments, '?', '#', '%' and other characters.
Result<std::string> nar_url(const std::string& cache_url, const std::string& narinfo_url);

// The one regular file of a NAR whose root is a file (a .drv), at most max_bytes.
Result<std::string> nar_single_file(Bytes nar, const std::string& name, std::uint64_t max_bytes);

struct CachedPath {
  archive::NarInfo info;
  ByteVector nar;         // verified
  std::string narinfo_url;
  std::string nar_url;
};

struct Closure {
  std::map<std::string, CachedPath> paths;       // by store path
  std::vector<std::string> missing;              // "<store path>: <url>: <why>"
  std::vector<std::string> order;                // every fetched path, references first
  std::uint64_t nar_bytes = 0;
};

// Fetches `roots` and everything they reference (narinfo References) from
// the cache, skipping paths in `skip` (already fetched) and refusing any
// path in `forbidden` (the outputs to be rebuilt: they must never come from
// the cache). Missing paths are listed, not fatal; verification failures are.
Result<void> fetch_closure(const Fetcher& fetch, const CacheOptions& options, const std::vector<std::string>& roots,
                           const std::set<std::string>& forbidden, Closure& into);

// The named outputs of every input derivation of `derivation` (at
// `drv_path`), with their closures, into `into`; its own outputs are
// forbidden. `drvs` holds the parsed input derivations by path (fetched from
// the cache, or read from the job's store after instantiating nixpkgs); one
// absent from it is listed as missing.
Result<void> fetch_input_outputs(const Fetcher& fetch, const CacheOptions& options, const std::string& drv_path,
                                 const Derivation& derivation, const std::map<std::string, Derivation>& drvs,
                                 Closure& into);

// What a rebuild of `drv_path` needs from the cache: the derivation closure
// (every .drv and input source, through References) and the named outputs
// of every input derivation with their closures. The derivation's own
// outputs are forbidden. `derivation` receives the parsed target.
Result<Closure> fetch_build_inputs(const Fetcher& fetch, const CacheOptions& options, const std::string& drv_path,
                                   Derivation& derivation);

// The closure in `nix-store --export` format (references first): for each
// path 1, the NAR, "NIXE", the path, its references, its deriver, 0; then 0.
// Integers are u64 little-endian, strings a u64 length, the bytes and zero
// padding to 8 (as in a NAR).
void export_paths(const Closure& closure, const std::function<void(Bytes)>& sink);
Result<void> write_export(const Closure& closure, const std::string& path);

}  // namespace kmr::nixos

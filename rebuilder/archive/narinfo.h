#pragma once

// Nix binary-cache metadata: `.narinfo`, `nix-cache-info`, Ed25519 `Sig:`
// verification and public keys ("name:base64").

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/limits.h"
#include "rebuilder/base/result.h"

namespace kmr::archive {

struct NarInfo {
  std::string store_path;   // /nix/store/<hash>-<name>
  std::string url;          // nar/<nix32>.nar.xz
  std::string compression = "bzip2";
  std::string file_hash;    // sha256:<nix32>
  std::uint64_t file_size = 0;
  bool file_size_given = false;  // the narinfo has a FileSize line
  std::string nar_hash;     // sha256:<nix32> as written
  std::uint64_t nar_size = 0;
  std::vector<std::string> references;  // basenames
  std::string deriver;
  std::vector<std::string> sigs;        // "<keyname>:<base64>"
  std::string ca;

  std::string store_dir() const;  // "/nix/store"
  // The signed fingerprint: 1;<StorePath>;<NarHash nix32>;<NarSize>;<refs full, sorted, comma-joined>.
  Result<std::string> fingerprint() const;
  // NarHash decoded (accepts sha256:<nix32> or sha256:<hex>).
  Result<std::vector<std::uint8_t>> nar_hash_bytes() const;
};

// "sha256:<nix32>" or "sha256:<hex>" (NarHash, FileHash) decoded; errors name `field`.
Result<std::vector<std::uint8_t>> decode_sha256_field(std::string_view field, const std::string& value);

// The NAR behind `info`, from the cache file's bytes, checked before anyone
// compares against it:
//   1. the file: FileSize and FileHash (when the narinfo has them);
//   2. the NAR: decompressed with at most NarSize bytes of output (and
//      `max_ratio`, see decompress_all), then its size and SHA-256 against
//      NarSize and NarHash (the fields the signature covers).
// A mismatch is kVerificationFailed "<name>: <Field> mismatch: ...".
Result<ByteVector> load_verified_nar(Bytes file, const NarInfo& info, const std::string& name,
                                     std::uint64_t max_ratio = Limits{}.max_compression_ratio);

// Parses a narinfo; `name` appears in errors. Unknown keys are ignored;
// StorePath, URL, NarHash and NarSize are required.
Result<NarInfo> parse_narinfo(std::string_view text, const std::string& name, const Limits& limits = {});

struct NixCacheInfo {
  std::string store_dir = "/nix/store";
  bool want_mass_query = false;
  int priority = 50;
};
Result<NixCacheInfo> parse_nix_cache_info(std::string_view text, const std::string& name);

struct PublicKey {
  std::string name;
  std::vector<std::uint8_t> key;  // 32 bytes
};
// "name:base64(32 bytes)".
Result<PublicKey> parse_public_key(std::string_view text);

struct SigCheck {
  int valid = 0;       // signatures verified by a trusted key
  int invalid = 0;     // signatures by a trusted key name that do not verify
  int untrusted = 0;   // signatures by unknown key names
};
// Verifies every Sig: line against the trusted keys.
Result<SigCheck> verify_narinfo_sigs(const NarInfo& info, const std::vector<PublicKey>& keys);

// Strict base64 (RFC 4648, with padding).
std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view text);

}  // namespace kmr::archive

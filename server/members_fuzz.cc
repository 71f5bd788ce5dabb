// Fuzz target: the member index over hostile member bytes. The first input byte picks the
// member's name (compressed or plain module, image, compressed image, other file); the rest is
// its content. Also the Authenticode stripper on the raw bytes and the NarHash parser on the
// input as text. Every hash is 64 hex digits, the first entry is the file's own hash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "server/members.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kmr;
  if (size == 0) return 0;
  static const char* kNames[] = {"m.ko", "m.ko.zst", "m.ko.xz", "m.ko.gz", "boot/vmlinuz", "Image.gz", "README"};
  const std::string name = kNames[data[0] % (sizeof kNames / sizeof kNames[0])];
  Bytes body(data + 1, size - 1);
  auto hashes = server::member_hashes(name, body);
  if (hashes.empty() || hashes[0].kind != "file" || hashes[0].key != sha256_hex(body)) std::abort();
  for (const auto& h : hashes)
    if (h.key.size() != 64 || h.path != name) std::abort();
  ByteVector stripped = server::strip_authenticode(body);
  if (stripped.size() > body.size()) std::abort();
  std::string text(reinterpret_cast<const char*>(data), size);
  std::string hex = server::nar_hash_hex(text);
  if (!hex.empty() && hex.size() != 64) std::abort();
  return 0;
}

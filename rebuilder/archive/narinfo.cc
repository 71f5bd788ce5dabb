#include "rebuilder/archive/narinfo.h"

#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <memory>

#include "rebuilder/archive/decompress.h"
#include "rebuilder/archive/nar.h"
#include "rebuilder/base/hex.h"

namespace kmr::archive {

std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int pad = 0;
    std::uint32_t acc = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const char c = text[i + k];
      if (c == '=') {
        if (!last || k < 2) return std::nullopt;
        ++pad;
        acc <<= 6;
        continue;
      }
      if (pad) return std::nullopt;
      const int v = val(c);
      if (v < 0) return std::nullopt;
      acc = (acc << 6) | static_cast<std::uint32_t>(v);
    }
    out.push_back(static_cast<std::uint8_t>(acc >> 16));
    if (pad < 2) out.push_back(static_cast<std::uint8_t>(acc >> 8));
    if (pad < 1) out.push_back(static_cast<std::uint8_t>(acc));
  }
  return out;
}

namespace {

Result<std::uint64_t> parse_u64(std::string_view s, const std::string& what) {
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return malformed(what + ": not a number");
  return v;
}

// Calls fn(key, value) for "Key: value" lines.
template <typename Fn>
Result<void> for_each_line(std::string_view text, const std::string& name, const Limits& limits, Fn fn) {
  if (text.size() > (1u << 24)) return limit_exceeded(name + ": larger than 16 MiB");
  std::size_t lineno = 0;
  while (!text.empty()) {
    ++lineno;
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.size() > limits.max_line_len) {
      return limit_exceeded(name + ": line " + std::to_string(lineno) + " longer than " +
                            std::to_string(limits.max_line_len) + " bytes");
    }
    if (line.empty()) continue;
    const std::size_t colon = line.find(": ");
    if (colon == std::string_view::npos || colon == 0) {
      return malformed(name + ": line " + std::to_string(lineno) + ": expected 'Key: value'");
    }
    KMR_TRY(fn(line.substr(0, colon), line.substr(colon + 2), lineno));
  }
  return ok();
}

}  // namespace

Result<NarInfo> parse_narinfo(std::string_view text, const std::string& name, const Limits& limits) {
  NarInfo info;
  bool have_nar_size = false;
  KMR_TRY(for_each_line(text, name, limits, [&](std::string_view k, std::string_view v, std::size_t ln) -> Result<void> {
    const std::string where = name + ": line " + std::to_string(ln);
    if (k == "StorePath") {
      if (v.empty() || v.front() != '/' || v.find('\0') != std::string_view::npos) {
        return malformed(where + ": StorePath is not an absolute path");
      }
      info.store_path = v;
    } else if (k == "URL") {
      info.url = v;
    } else if (k == "Compression") {
      info.compression = v;
    } else if (k == "FileHash") {
      info.file_hash = v;
    } else if (k == "FileSize") {
      KMR_ASSIGN_OR_RETURN(info.file_size, parse_u64(v, where + ": FileSize"));
      info.file_size_given = true;
    } else if (k == "NarHash") {
      info.nar_hash = v;
    } else if (k == "NarSize") {
      KMR_ASSIGN_OR_RETURN(info.nar_size, parse_u64(v, where + ": NarSize"));
      have_nar_size = true;
    } else if (k == "References") {
      std::size_t i = 0;
      while (i < v.size()) {
        std::size_t j = v.find(' ', i);
        if (j == std::string_view::npos) j = v.size();
        if (j > i) {
          const std::string_view ref = v.substr(i, j - i);
          if (ref.find('/') != std::string_view::npos) return malformed(where + ": reference contains '/'");
          info.references.emplace_back(ref);
        }
        i = j + 1;
      }
    } else if (k == "Deriver") {
      if (v != "unknown-deriver") info.deriver = v;
    } else if (k == "Sig") {
      info.sigs.emplace_back(v);
    } else if (k == "CA") {
      info.ca = v;
    }
    return ok();
  }));
  if (info.store_path.empty()) return malformed(name + ": missing StorePath");
  if (info.url.empty()) return malformed(name + ": missing URL");
  if (info.nar_hash.empty()) return malformed(name + ": missing NarHash");
  if (!have_nar_size) return malformed(name + ": missing NarSize");
  if (info.store_dir().empty()) return malformed(name + ": StorePath has no directory");
  KMR_TRY(info.nar_hash_bytes());
  return info;
}

std::string NarInfo::store_dir() const {
  const std::size_t slash = store_path.rfind('/');
  if (slash == std::string::npos || slash == 0) return "";
  return store_path.substr(0, slash);
}

Result<std::vector<std::uint8_t>> decode_sha256_field(std::string_view field, const std::string& value) {
  const std::string f(field);
  if (value.rfind("sha256:", 0) != 0) return malformed(f + " is not sha256: '" + value.substr(0, 120) + "'");
  const std::string_view h = std::string_view(value).substr(7);
  if (h.size() == 64) {
    auto b = from_hex(h);
    if (b) return *b;
  } else if (auto b = nix32_decode(h, 32)) {
    return *b;
  }
  return malformed(f + " is not a valid sha256 hash: '" + value.substr(0, 120) + "'");
}

Result<std::vector<std::uint8_t>> NarInfo::nar_hash_bytes() const { return decode_sha256_field("NarHash", nar_hash); }

Result<ByteVector> load_verified_nar(Bytes file, const NarInfo& info, const std::string& name, std::uint64_t max_ratio) {
  auto mismatch = [&](const std::string& field, const std::string& detail) {
    return Error(ErrorCode::kVerificationFailed, name + ": " + field + " mismatch: " + detail);
  };
  auto hash_text = [](Bytes b) { return "sha256:" + nix32_encode(sha256(b)); };
  if (info.file_size_given && file.size() != info.file_size) {
    return mismatch("FileSize", "the file has " + std::to_string(file.size()) + " bytes, the narinfo says " +
                                    std::to_string(info.file_size));
  }
  if (!info.file_hash.empty()) {
    KMR_ASSIGN_OR_RETURN(auto want, decode_sha256_field("FileHash", info.file_hash));
    const Digest256 got = sha256(file);
    if (!std::equal(got.begin(), got.end(), want.begin(), want.end())) {
      return mismatch("FileHash", "the file has " + hash_text(file) + ", the narinfo says " + info.file_hash);
    }
  }
  KMR_ASSIGN_OR_RETURN(auto want_nar, info.nar_hash_bytes());
  auto nar = decompress_all(file, info.nar_size, max_ratio);
  if (!nar) {
    if (nar.error().message().rfind("decompressed size exceeds", 0) == 0) {
      return mismatch("NarSize", "the NAR decompresses to more than the narinfo's " + std::to_string(info.nar_size) + " bytes");
    }
    return std::move(nar).error().with_context("while decompressing " + name);
  }
  if (nar->size() != info.nar_size) {
    return mismatch("NarSize", "the NAR has " + std::to_string(nar->size()) + " bytes, the narinfo says " +
                                   std::to_string(info.nar_size));
  }
  const Digest256 got = sha256(*nar);
  if (!std::equal(got.begin(), got.end(), want_nar.begin(), want_nar.end())) {
    return mismatch("NarHash", "the NAR has " + hash_text(*nar) + ", the narinfo says " + info.nar_hash);
  }
  return std::move(*nar);
}

Result<std::string> NarInfo::fingerprint() const {
  KMR_ASSIGN_OR_RETURN(auto hash, nar_hash_bytes());
  std::vector<std::string> refs;
  for (const auto& r : references) refs.push_back(store_dir() + "/" + r);
  std::sort(refs.begin(), refs.end());
  std::string out = "1;" + store_path + ";sha256:" + nix32_encode(hash) + ";" + std::to_string(nar_size) + ";";
  for (std::size_t i = 0; i < refs.size(); ++i) {
    if (i) out += ',';
    out += refs[i];
  }
  return out;
}

Result<NixCacheInfo> parse_nix_cache_info(std::string_view text, const std::string& name) {
  NixCacheInfo info;
  KMR_TRY(for_each_line(text, name, Limits{}, [&](std::string_view k, std::string_view v, std::size_t ln) -> Result<void> {
    if (k == "StoreDir") {
      if (v.empty() || v.front() != '/') return malformed(name + ": line " + std::to_string(ln) + ": bad StoreDir");
      info.store_dir = v;
    } else if (k == "WantMassQuery") {
      info.want_mass_query = v == "1";
    } else if (k == "Priority") {
      KMR_ASSIGN_OR_RETURN(auto p, parse_u64(v, name + ": Priority"));
      info.priority = static_cast<int>(std::min<std::uint64_t>(p, 1000000));
    }
    return ok();
  }));
  return info;
}

Result<PublicKey> parse_public_key(std::string_view text) {
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) return malformed("public key: expected 'name:base64'");
  auto key = base64_decode(text.substr(colon + 1));
  if (!key || key->size() != 32) return malformed("public key '" + std::string(text.substr(0, colon)) + "': not 32 bytes of base64");
  return PublicKey{std::string(text.substr(0, colon)), *key};
}

namespace {
bool ed25519_verify(const std::vector<std::uint8_t>& pub, Bytes sig, std::string_view msg) {
  EVP_PKEY* raw = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, pub.data(), pub.size());
  if (!raw) return false;
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(raw, EVP_PKEY_free);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) != 1) return false;
  return EVP_DigestVerify(ctx.get(), sig.data(), sig.size(), reinterpret_cast<const unsigned char*>(msg.data()),
                          msg.size()) == 1;
}
}  // namespace

Result<SigCheck> verify_narinfo_sigs(const NarInfo& info, const std::vector<PublicKey>& keys) {
  KMR_ASSIGN_OR_RETURN(std::string fp, info.fingerprint());
  SigCheck out;
  for (const std::string& s : info.sigs) {
    const std::size_t colon = s.find(':');
    if (colon == std::string::npos) {
      ++out.invalid;
      continue;
    }
    const std::string kname = s.substr(0, colon);
    auto sig = base64_decode(std::string_view(s).substr(colon + 1));
    bool known = false;
    bool good = false;
    for (const PublicKey& k : keys) {
      if (k.name != kname) continue;
      known = true;
      if (sig && sig->size() == 64 && ed25519_verify(k.key, *sig, fp)) good = true;
    }
    if (!known) {
      ++out.untrusted;
    } else if (good) {
      ++out.valid;
    } else {
      ++out.invalid;
    }
  }
  return out;
}

}  // namespace kmr::archive

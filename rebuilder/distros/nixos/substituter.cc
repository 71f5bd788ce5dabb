#include "rebuilder/distros/nixos/substituter.h"

#include <unistd.h>

#include <cstdio>
#include <memory>

#include "rebuilder/archive/nar.h"
#include "rebuilder/base/file.h"
#include "rebuilder/net/http_client.h"

namespace kmr::nixos {

namespace {

constexpr std::string_view kStoreDir = "/nix/store/";

std::string narinfo_url_of(const std::string& cache_url, const std::string& store_path) {
  return cache_url + "/" + store_path_hash(store_path) + ".narinfo";
}

bool is_drv(std::string_view p) { return p.size() > 4 && p.substr(p.size() - 4) == ".drv"; }

}  // namespace

Fetcher http_fetcher(std::chrono::milliseconds timeout) {
  auto client = std::make_shared<std::unique_ptr<net::HttpClient>>();
  return [client, timeout](const std::string& url, std::uint64_t max_bytes) -> Result<std::string> {
    if (url.rfind("file://", 0) == 0) {
      const std::string path = url.substr(7);
      auto got = read_text_file(path, max_bytes);
      if (!got && got.error().code() == ErrorCode::kIo && ::access(path.c_str(), F_OK) != 0) {
        return not_found("no such file");
      }
      return got;
    }
    if (!*client) {
      KMR_ASSIGN_OR_RETURN(auto c, net::HttpClient::create(net::options_with_deadline(timeout)));
      *client = std::make_unique<net::HttpClient>(std::move(c));
    }
    return (*client)->get(url, max_bytes);
  };
}

Result<std::vector<archive::PublicKey>> parse_trusted_keys(std::string_view text) {
  std::vector<archive::PublicKey> keys;
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++i;
      continue;
    }
    if (c == '#') {
      while (i < text.size() && text[i] != '\n') ++i;
      continue;
    }
    std::size_t j = i;
    while (j < text.size() && text[j] != ' ' && text[j] != '\t' && text[j] != '\n' && text[j] != '\r') ++j;
    KMR_ASSIGN_OR_RETURN(auto key, archive::parse_public_key(text.substr(i, j - i)));
    keys.push_back(std::move(key));
    if (keys.size() > 64) return malformed("more than 64 trusted public keys");
    i = j;
  }
  if (keys.empty()) return malformed("no trusted public key (expected name:base64)");
  return keys;
}

Result<archive::NarInfo> check_narinfo(std::string_view text, const std::string& store_path, const std::string& url,
                                       const std::vector<archive::PublicKey>& keys) {
  KMR_ASSIGN_OR_RETURN(auto info, archive::parse_narinfo(text, url));
  if (info.store_path != store_path) {
    return Error(ErrorCode::kVerificationFailed,
                 url + ": StorePath is " + info.store_path + ", not the path asked for (" + store_path + ")");
  }
  for (const auto& r : info.references) {
    if (!is_store_path(std::string(kStoreDir) + r)) return malformed(url + ": reference '" + r + "' is not a store path name");
  }
  if (!info.deriver.empty() && !is_store_path(std::string(kStoreDir) + info.deriver)) {
    return malformed(url + ": Deriver '" + info.deriver + "' is not a store path name");
  }
  KMR_ASSIGN_OR_RETURN(auto sigs, archive::verify_narinfo_sigs(info, keys));
  if (sigs.valid == 0) {
    std::string names;
    for (const auto& k : keys) names += (names.empty() ? "" : ", ") + k.name;
    return Error(ErrorCode::kVerificationFailed,
                 url + ": no signature verifies with a trusted key (" + names + "): " + std::to_string(sigs.invalid) +
                     " signature(s) by a trusted key name do not verify, " + std::to_string(sigs.untrusted) +
                     " by other keys");
  }
  return info;
}

Result<std::string> nar_url(const std::string& cache_url, const std::string& narinfo_url) {
  const std::string& u = narinfo_url;
  if (u.empty() || u.size() > 1024 || u[0] == '/') return malformed("NAR URL '" + u + "' is not relative to the cache");
  std::size_t seg = 0;
  for (std::size_t i = 0; i <= u.size(); ++i) {
    if (i == u.size() || u[i] == '/') {
      const std::string_view s(u.data() + seg, i - seg);
      if (s.empty() || s == "." || s == "..") return malformed("NAR URL '" + u + "' has an empty, '.' or '..' segment");
      seg = i + 1;
      continue;
    }
    const char c = u[i];
    const bool okc = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                     c == '-' || c == '_' || c == '+';
    if (!okc) return malformed("NAR URL '" + u + "' has a character outside [A-Za-z0-9._+-/]");
  }
  return cache_url + "/" + u;
}

Result<std::string> nar_single_file(Bytes nar, const std::string& name, std::uint64_t max_bytes) {
  archive::ReaderOptions o;
  o.name = name;
  std::string out;
  bool seen = false;
  KMR_TRY(archive::read_nar_memory(nar, o, [&](const archive::Entry& e, archive::MemberStream& m) -> Result<void> {
    if (!e.path.empty() || e.type != archive::EntryType::kFile) return malformed(name + ": the NAR is not a single file");
    KMR_ASSIGN_OR_RETURN(auto bytes, m.read_all(max_bytes));
    out.assign(bytes.begin(), bytes.end());
    seen = true;
    return ok();
  }));
  if (!seen) return malformed(name + ": the NAR is not a single file");
  return out;
}

Result<void> fetch_closure(const Fetcher& fetch, const CacheOptions& options, const std::vector<std::string>& roots,
                           const std::set<std::string>& forbidden, Closure& into) {
  std::vector<std::string> todo(roots.rbegin(), roots.rend());
  std::set<std::string> missing_paths;
  while (!todo.empty()) {
    const std::string path = todo.back();
    todo.pop_back();
    if (into.paths.count(path) || missing_paths.count(path)) continue;
    if (!is_store_path(path)) return malformed("'" + path + "' is not a store path");
    if (forbidden.count(path)) {
      return Error(ErrorCode::kVerificationFailed,
                   path + " is an output of the derivation being rebuilt: it is built, never substituted");
    }
    if (into.paths.size() >= options.max_paths) return limit_exceeded("more than " + std::to_string(options.max_paths) + " store paths");
    const std::string iurl = narinfo_url_of(options.url, path);
    auto text = fetch(iurl, options.max_narinfo_bytes);
    if (!text) {
      if (text.error().code() == ErrorCode::kNotFound || text.error().code() == ErrorCode::kIo) {
        into.missing.push_back(path + ": " + iurl + ": " + text.error().message());
        missing_paths.insert(path);
        continue;
      }
      return std::move(text).error().with_context("while fetching " + iurl);
    }
    KMR_ASSIGN_OR_RETURN(auto info, check_narinfo(*text, path, iurl, options.trusted_keys));
    KMR_ASSIGN_OR_RETURN(auto nurl, nar_url(options.url, info.url));
    if (info.nar_size > options.max_total_bytes - std::min(options.max_total_bytes, into.nar_bytes)) {
      return limit_exceeded(iurl + ": NarSize " + std::to_string(info.nar_size) + " exceeds what is left of the " +
                            std::to_string(options.max_total_bytes) + "-byte budget");
    }
    const std::uint64_t max_file = info.file_size_given ? std::min(info.file_size, options.max_nar_file_bytes)
                                                        : options.max_nar_file_bytes;
    auto file = fetch(nurl, max_file);
    if (!file) {
      if (file.error().code() == ErrorCode::kNotFound || file.error().code() == ErrorCode::kIo) {
        into.missing.push_back(path + ": " + nurl + ": " + file.error().message());
        missing_paths.insert(path);
        continue;
      }
      return std::move(file).error().with_context("while fetching " + nurl);
    }
    const Bytes fb(reinterpret_cast<const std::uint8_t*>(file->data()), file->size());
    KMR_ASSIGN_OR_RETURN(auto nar, archive::load_verified_nar(fb, info, nurl));
    file->clear();
    file->shrink_to_fit();
    archive::ReaderOptions ro;
    ro.name = nurl;
    KMR_TRY(archive::read_nar_memory(nar, ro, [](const archive::Entry&, archive::MemberStream&) { return ok(); }));
    into.nar_bytes += nar.size();
    for (const auto& r : info.references) {
      const std::string full = std::string(kStoreDir) + r;
      if (full != path) todo.push_back(full);
    }
    into.paths.emplace(path, CachedPath{std::move(info), std::move(nar), iurl, nurl});
  }
  // References first (depth-first post-order over the fetched paths).
  into.order.clear();
  std::set<std::string> done, active;
  std::function<void(const std::string&)> visit = [&](const std::string& p) {
    if (done.count(p) || active.count(p)) return;
    active.insert(p);
    const auto it = into.paths.find(p);
    for (const auto& r : it->second.info.references) {
      const std::string full = std::string(kStoreDir) + r;
      if (full != p && into.paths.count(full)) visit(full);
    }
    active.erase(p);
    done.insert(p);
    into.order.push_back(p);
  };
  for (const auto& [p, _] : into.paths) visit(p);
  return ok();
}

Result<void> fetch_input_outputs(const Fetcher& fetch, const CacheOptions& options, const std::string& drv_path,
                                 const Derivation& derivation, const std::map<std::string, Derivation>& drvs,
                                 Closure& c) {
  const auto own = derivation.output_paths();
  const std::set<std::string> forbidden(own.begin(), own.end());
  for (const auto& p : own) {
    if (c.paths.count(p)) {
      return Error(ErrorCode::kVerificationFailed, drv_path + ": the derivation closure holds its own output " + p);
    }
  }
  std::vector<std::string> wanted;
  for (const auto& [in_drv, outs] : derivation.input_drvs) {
    const auto it = drvs.find(in_drv);
    if (it == drvs.end()) {
      c.missing.push_back(in_drv + ": not in the derivation closure");
      continue;
    }
    for (const auto& o : outs) {
      const auto oi = it->second.outputs.find(o);
      if (oi == it->second.outputs.end() || oi->second.path.empty()) {
        return malformed(in_drv + ": no output '" + o + "' with a fixed path (asked for by " + drv_path + ")");
      }
      wanted.push_back(oi->second.path);
    }
  }
  return fetch_closure(fetch, options, wanted, forbidden, c);
}

Result<Closure> fetch_build_inputs(const Fetcher& fetch, const CacheOptions& options, const std::string& drv_path,
                                   Derivation& derivation) {
  if (!is_store_path(drv_path) || !is_drv(drv_path)) return malformed("'" + drv_path + "' is not a .drv store path");
  Closure c;
  // The derivation first: its own outputs are then known and forbidden.
  KMR_TRY(fetch_closure(fetch, options, {drv_path}, {}, c));
  if (!c.paths.count(drv_path)) return c;  // missing: the caller reports c.missing
  std::map<std::string, Derivation> drvs;
  for (const auto& [p, cp] : c.paths) {
    if (!is_drv(p)) continue;
    KMR_ASSIGN_OR_RETURN(auto text, nar_single_file(cp.nar, cp.nar_url, DerivationLimits{}.max_bytes));
    KMR_ASSIGN_OR_RETURN(auto d, parse_derivation(text, p));
    drvs.emplace(p, std::move(d));
  }
  derivation = drvs.at(drv_path);
  KMR_TRY(fetch_input_outputs(fetch, options, drv_path, derivation, drvs, c));
  return c;
}

void export_paths(const Closure& closure, const std::function<void(Bytes)>& sink) {
  auto num = [&](std::uint64_t v) {
    std::uint8_t b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<std::uint8_t>(v >> (8 * i));
    sink(Bytes(b, 8));
  };
  auto str = [&](std::string_view s) {
    num(s.size());
    sink(Bytes(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
    static const std::uint8_t zero[8] = {};
    if (s.size() % 8) sink(Bytes(zero, 8 - s.size() % 8));
  };
  for (const auto& p : closure.order) {
    const auto& cp = closure.paths.at(p);
    num(1);
    sink(cp.nar);
    num(0x4558494e);  // "NIXE"
    str(p);
    std::set<std::string> refs;
    for (const auto& r : cp.info.references) refs.insert(std::string(kStoreDir) + r);
    num(refs.size());
    for (const auto& r : refs) str(r);
    str(cp.info.deriver.empty() ? std::string() : std::string(kStoreDir) + cp.info.deriver);
    num(0);  // no legacy signature
  }
  num(0);
}

Result<void> write_export(const Closure& closure, const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f) return io_error("cannot write " + path);
  bool failed = false;
  export_paths(closure, [&](Bytes b) {
    if (!failed && std::fwrite(b.data(), 1, b.size(), f.get()) != b.size()) failed = true;
  });
  if (std::fflush(f.get()) != 0 || failed) return io_error("cannot write " + path);
  return ok();
}

}  // namespace kmr::nixos

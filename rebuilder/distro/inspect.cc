#include "rebuilder/distro/inspect.h"

#include <sstream>

#include "rebuilder/base/hex.h"

namespace kmr::distro {

namespace {
nlohmann::json image_json(const std::optional<ImageInfo>& img) {
  if (!img) return nullptr;
  nlohmann::json j = {{"path", img->path}, {"kind", img->kind}};
  if (img->kind == "bzimage") {
    j["payload_codec"] = img->payload_codec;
    j["payload_is_x86_64_elf"] = img->payload_is_x86_64_elf;
  }
  j["module_hashes_root"] = img->root && img->root->present ? nlohmann::json(to_hex(img->root->root.hash)) : nullptr;
  j["root_searched"] = img->root_searched;
  if (!img->error.empty()) j["error"] = img->error;
  return j;
}

nlohmann::json signatures_json(const std::optional<ModuleSignaturesResult>& s) {
  if (!s) return nullptr;
  nlohmann::json failed = nlohmann::json::array();
  for (const auto& [module, reason] : s->failed) failed.push_back({{"module", module}, {"reason", reason}});
  nlohmann::json certs = nlohmann::json::array();
  for (const auto& c : s->certificates) {
    certs.push_back({{"subject", c.subject}, {"sha256", c.sha256}, {"source", c.source}});
  }
  return {{"signed", s->signed_count}, {"verified", s->verified}, {"unsigned", s->unsigned_count},
          {"failed", failed},          {"certificates", certs},  {"ok", s->ok}};
}

// The Authenticode signature of the image (or, failing that, the vmlinux).
nlohmann::json image_signature_json(const KernelLayout& L) {
  for (const auto* img : {&L.image, &L.vmlinux}) {
    if (!*img || !(*img)->authenticode) continue;
    const kmod::AuthenticodeInfo& a = *(*img)->authenticode;
    nlohmann::json j = {{"kind", "authenticode"}, {"signer", a.signer}, {"verified", a.verified},
                        {"issuer", a.signer_issuer}, {"digest", a.digest}, {"image", (*img)->path}};
    if (!a.verified) j["reason"] = a.reason;
    return j;
  }
  return nullptr;
}

// The transplant inputs: the build identity from the banner and the
// certificates built into the image (public parts, PEM).
nlohmann::json build_identity_json(const KernelLayout& L) {
  for (const auto* img : {&L.image, &L.vmlinux}) {
    if (!*img || !(*img)->build_identity) continue;
    const kmod::BuildIdentity& b = *(*img)->build_identity;
    return {{"banner", b.banner},
            {"release", b.release},
            {"compiler", b.compiler},
            {"flags", b.flags},
            {"kbuild", {{"KBUILD_BUILD_USER", b.user},
                        {"KBUILD_BUILD_HOST", b.host},
                        {"KBUILD_BUILD_VERSION", b.version},
                        {"KBUILD_BUILD_TIMESTAMP", b.timestamp}}},
            {"image", (*img)->path}};
  }
  return nullptr;
}

nlohmann::json embedded_certificates_json(const KernelLayout& L) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto* img : {&L.image, &L.vmlinux}) {
    if (!*img) continue;
    for (const auto& c : (*img)->certificates) {
      out.push_back({{"image", (*img)->path}, {"method", (*img)->certificates_method}, {"subject", c.subject},
                     {"issuer", c.issuer}, {"serial", c.serial}, {"sha256", c.sha256},
                     {"offset", c.offset ? nlohmann::json(*c.offset) : nlohmann::json(nullptr)},
                     {"pem", kmod::certificate_pem(c.der)}});
    }
  }
  return out;
}

nlohmann::json content_root_json(const KernelLayout& L) {
  if (!L.content_root) return nullptr;
  return {{"levels", L.content_root->root.levels}, {"root", to_hex(L.content_root->root.hash)}};
}

}  // namespace

namespace {
// Text lines for module signatures, the image signature and the content root.
void signature_text(std::ostringstream& t, const KernelLayout& L, const nlohmann::json& img_sig) {
  if (L.module_signatures) {
    const auto& s = *L.module_signatures;
    t << "module signatures: " << s.verified << " of " << s.signed_count << " PKCS#7 signatures verified ("
      << s.certificates.size() << " trusted certificate(s)) -> " << (s.ok ? "OK" : "FAILED") << "\n";
    for (const auto& c : s.certificates) t << "  certificate (" << c.source << "): " << c.subject << " sha256 " << c.sha256 << "\n";
    std::size_t shown = 0;
    for (const auto& [m, why] : s.failed) {
      if (shown++ < 20) t << "  FAILED " << m << ": " << why << "\n";
    }
  }
  if (!img_sig.is_null()) {
    t << "image signature: authenticode, signer " << img_sig["signer"].get<std::string>() << ": "
      << (img_sig["verified"].get<bool>() ? "verified" : "not verified (" + img_sig["reason"].get<std::string>() + ")")
      << "\n";
  }
  if (L.content_root) {
    t << "content root:    " << to_hex(L.content_root->root.hash) << " levels " << L.content_root->root.levels << "\n";
  }
}
}  // namespace

namespace {
// The main package: the first with kernel content and a format, else the
// first with a format; null when only build descriptions were given.
const PackageReport* main_package(const std::vector<PackageReport>& reps) {
  for (const auto& r : reps) {
    if (!r.format.empty() && r.has_kernel_content) return &r;
  }
  for (const auto& r : reps) {
    if (!r.format.empty()) return &r;
  }
  return nullptr;
}

// The "packages" list; every package's build fields (first one wins) into
// `build` and its failures into `failures`.
nlohmann::json packages_json(const std::vector<PackageReport>& reps, nlohmann::json& build, std::vector<std::string>& failures) {
  nlohmann::json pkgs = nlohmann::json::array();
  for (const auto& r : reps) {
    pkgs.push_back({{"path", r.path}, {"format", r.format}, {"name", r.name}, {"version", r.version}});
    for (auto it = r.build.begin(); it != r.build.end(); ++it) {
      if (!build.contains(it.key())) build[it.key()] = it.value();
    }
    failures.insert(failures.end(), r.failures.begin(), r.failures.end());
  }
  return pkgs;
}

// The layout's fields of the report, from "kernel_release" to "embedded_certificates".
void layout_json(nlohmann::json& j, const KernelLayout& L, const nlohmann::json& img_sig) {
  j["kernel_release"] = L.kernel_release.empty() ? nlohmann::json(nullptr) : nlohmann::json(L.kernel_release);
  j["image"] = L.image ? nlohmann::json(L.image->path) : nlohmann::json(nullptr);
  j["image_info"] = image_json(L.image);
  j["vmlinux"] = L.vmlinux_path.empty() ? nlohmann::json(nullptr) : nlohmann::json(L.vmlinux_path);
  j["vmlinux_info"] = image_json(L.vmlinux);
  j["modules_dir"] = L.modules_dir.empty() ? nlohmann::json(nullptr) : nlohmann::json(L.modules_dir);
  j["modules_order"] = L.has_modules_order ? nlohmann::json(L.modules_order.size()) : nlohmann::json(nullptr);
  j["modules"] = {{"count", L.modules.size()},
                  {"compression", L.compression_counts()},
                  {"trailers", L.trailer_counts()},
                  {"content_root", content_root_json(L)}};
  j["module_signatures"] = signatures_json(L.module_signatures);
  j["image_signature"] = img_sig;
  j["build_identity"] = build_identity_json(L);
  j["embedded_certificates"] = embedded_certificates_json(L);
}

// What fails in the layout: module signatures, module hashes, the content
// root against the embedded root, image errors, in that order.
void layout_failures(const KernelLayout& L, const std::optional<ModuleHashesResult>& mh, std::vector<std::string>& failures) {
  if (L.module_signatures && !L.module_signatures->ok) {
    failures.push_back("module signatures do not verify (" + std::to_string(L.module_signatures->failed.size()) +
                       " failed, " + std::to_string(L.module_signatures->verified) + " of " +
                       std::to_string(L.module_signatures->signed_count) + " verified)");
  }
  if (mh) {
    if (!mh->ok) failures.push_back("module hashes do not verify (" + std::to_string(mh->failed) + " failed)");
    if (L.content_root && !(L.content_root->root == mh->root)) {
      failures.push_back("content root " + to_hex(L.content_root->root.hash) + " differs from the embedded root " +
                         to_hex(mh->root.hash));
    }
  }
  for (const auto* img : {&L.image, &L.vmlinux}) {
    if (*img && !(*img)->error.empty()) failures.push_back((*img)->path + ": " + (*img)->error);
  }
}

nlohmann::json module_hashes_json(const std::optional<ModuleHashesResult>& mh) {
  if (!mh) return nullptr;
  return {{"levels", mh->root.levels}, {"root", to_hex(mh->root.hash)}, {"verified", mh->verified},
          {"failed", mh->failed},        {"ok", mh->ok},                {"problems", mh->problems}};
}

// Text lines for the packages, the image, the vmlinux and the modules.
void layout_text(std::ostringstream& t, const PackageReport& main, const std::vector<PackageReport>& reps, const KernelLayout& L) {
  t << "format:          " << main.format << "\n";
  t << "package:         " << main.name << " " << main.version << "\n";
  for (const auto& r : reps) {
    if (&r != &main) t << "  with:          " << r.path << " (" << (r.format.empty() ? "build description" : r.format) << ")\n";
  }
  t << "kernel release:  " << (L.kernel_release.empty() ? "(not found)" : L.kernel_release) << "\n";
  t << "image:           " << (L.image ? L.image->path + " (" + L.image->kind + ")" : "(none)") << "\n";
  if (L.image && L.image->kind == "bzimage") {
    t << "  payload:       " << L.image->payload_codec << ", "
      << (L.image->payload_is_x86_64_elf ? "x86-64 ELF" : "not an x86-64 ELF") << "\n";
  }
  if (!L.vmlinux_path.empty()) t << "vmlinux:         " << L.vmlinux_path << "\n";
  t << "modules dir:     " << (L.modules_dir.empty() ? "(none)" : L.modules_dir) << "\n";
  t << "modules:         " << L.modules.size();
  if (L.has_modules_order) t << " (modules.order lists " << L.modules_order.size() << ")";
  t << "\n  compression:  ";
  for (const auto& [k, v] : L.compression_counts()) {
    if (v) t << " " << k << "=" << v;
  }
  t << "\n  trailers:     ";
  for (const auto& [k, v] : L.trailer_counts()) {
    if (v) t << " " << k << "=" << v;
  }
  t << "\n";
}

void module_hashes_text(std::ostringstream& t, const std::optional<ModuleHashesResult>& mh, const KernelLayout& L) {
  if (mh) {
    t << "module hashes:   root " << to_hex(mh->root.hash) << " levels " << mh->root.levels << ": " << mh->verified
      << " verified, " << mh->failed << " failed -> " << (mh->ok ? "OK" : "FAILED") << "\n";
    for (const auto& p : mh->problems) t << "  " << p << "\n";
  } else if (L.image && !L.image->root_searched) {
    t << "module hashes:   absent (every module is PKCS#7-signed; image not searched, --full-image does)\n";
  } else {
    t << "module hashes:   absent\n";
  }
}
}  // namespace

Result<InspectReport> inspect_packages(const std::vector<std::string>& paths, const InspectOptions& options) {
  LayoutCollector collector;
  collector.set_full_image_analysis(options.full_image);
  KMR_TRY(collector.add_keyring_certificates(options.trusted_certificates));
  std::vector<PackageReport> reps;
  for (const std::string& p : paths) {
    KMR_ASSIGN_OR_RETURN(PackageReport r, read_package(p, collector, options));
    reps.push_back(std::move(r));
  }
  KMR_ASSIGN_OR_RETURN(KernelLayout L, collector.finish());
  const PackageReport* main = main_package(reps);
  if (!main) return malformed("no package given (only build descriptions)");

  InspectReport out;
  nlohmann::json& j = out.json;
  std::vector<std::string> failures;
  j["format"] = main->format;
  j["package"] = {{"name", main->name}, {"version", main->version}};
  nlohmann::json build = nlohmann::json::object();
  j["packages"] = packages_json(reps, build, failures);
  const nlohmann::json img_sig = image_signature_json(L);
  layout_json(j, L, img_sig);
  const auto mh = L.module_hashes();
  j["module_hashes"] = module_hashes_json(mh);
  layout_failures(L, mh, failures);
  j["build"] = build;
  j["warnings"] = L.warnings;
  j["failures"] = failures;
  out.ok = failures.empty();
  j["ok"] = out.ok;

  std::ostringstream t;
  layout_text(t, *main, reps, L);
  module_hashes_text(t, mh, L);
  signature_text(t, L, img_sig);
  t << "build:\n";
  for (auto it = build.begin(); it != build.end(); ++it) {
    t << "  " << it.key() << ": " << (it.value().is_string() ? it.value().get<std::string>() : it.value().dump()) << "\n";
  }
  for (const auto& w : L.warnings) t << "warning: " << w << "\n";
  for (const auto& f : failures) t << "FAILED: " << f << "\n";
  t << (out.ok ? "result: OK\n" : "result: FAILED\n");
  out.text = t.str();
  out.layout = std::move(L);
  return out;
}

}  // namespace kmr::distro

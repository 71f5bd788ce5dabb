#include "rebuilder/rebuild/kernel_rebuild.h"

#include <algorithm>
#include <filesystem>
#include <thread>
#include <variant>

#include "rebuilder/base/file.h"
#include "rebuilder/distro/inspect.h"
#include "rebuilder/kmod/module_sig.h"

namespace kmr::build {

namespace {

namespace fs = std::filesystem;

// A banner value pinned into the build: kbuild's mkcompile_h writes it into a
// shell here-document and a C string literal.
Result<void> check_pinnable(std::string_view name, std::string_view value) {
  for (char c : value) {
    if (c == '"' || c == '\\' || c == '`' || c == '$' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return malformed("kernel banner: " + std::string(name) + " '" + std::string(value) +
                       "' holds a character that cannot be pinned (quote, backslash, backtick, '$' or control)");
    }
  }
  return ok();
}

Result<void> check_identity(const kmod::BuildIdentity& id) {
  // Recorded in the JSON and the environment, which are strict UTF-8.
  if (!is_valid_utf8(id.banner)) return malformed("kernel banner: invalid UTF-8");
  KMR_TRY(check_pinnable("KBUILD_BUILD_USER", id.user));
  KMR_TRY(check_pinnable("KBUILD_BUILD_HOST", id.host));
  KMR_TRY(check_pinnable("KBUILD_BUILD_VERSION", id.version));
  KMR_TRY(check_pinnable("KBUILD_BUILD_TIMESTAMP", id.timestamp));
  return ok();
}

// The image the inputs come from: the bzImage, else the ELF vmlinux.
const distro::ImageInfo* kernel_image(const distro::KernelLayout& L) {
  for (const auto* img : {&L.image, &L.vmlinux}) {
    if (*img && (*img)->build_identity) return &**img;
  }
  if (L.image) return &*L.image;
  if (L.vmlinux) return &*L.vmlinux;
  return nullptr;
}

// The build-time certificate: the only certificate built into the image, self
// signed, and every shipped module signature verified against it (the
// layout was read without a keyring, so it is their signer). Else why not.
std::variant<const kmod::CertificateInfo*, std::string> build_time_certificate(const distro::KernelLayout& L,
                                                                                const distro::ImageInfo& img) {
  const auto& sig = L.module_signatures;
  if (!sig || sig->signed_count == 0) return std::string("no shipped module carries a PKCS#7 signature");
  if (!sig->ok || sig->verified != sig->signed_count) {
    return "the shipped module signatures do not all verify against the image's certificates (" +
           std::to_string(sig->verified) + " of " + std::to_string(sig->signed_count) + ")";
  }
  for (const auto& c : sig->certificates) {
    if (c.source != "embedded") return std::string("modules verified with keyring certificates");
  }
  if (img.certificates.size() != 1) {
    return "the image embeds " + std::to_string(img.certificates.size()) +
           " certificates: the modules' signer is not singled out";
  }
  const kmod::CertificateInfo& c = img.certificates.front();
  if (c.issuer != c.subject) {
    return "the embedded certificate " + c.subject + " is issued by " + c.issuer + " (a distro CA, not a build-time key)";
  }
  return &c;
}

std::string first_line(std::string_view s) {
  const auto nl = s.find('\n');
  return std::string(nl == std::string_view::npos ? s : s.substr(0, nl));
}

bool program_name(std::string_view w) {
  return !w.empty() && w.size() <= 64 && std::all_of(w.begin(), w.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '+' || c == '-';
         });
}

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : std::string(sep)) + s;
  return out;
}

}  // namespace

bool kernel_rebuild_backend(std::string_view backend) {
  return backend == "debian" || backend == "proxmox" || backend == "arch" || backend == "suse";
}

nlohmann::json KernelRebuild::to_json() const {
  using nlohmann::json;
  json j;
  j["image"] = image;
  j["identity"] = identity ? json{{"KBUILD_BUILD_USER", identity->user},
                                  {"KBUILD_BUILD_HOST", identity->host},
                                  {"KBUILD_BUILD_VERSION", identity->version},
                                  {"KBUILD_BUILD_TIMESTAMP", identity->timestamp},
                                  {"compiler", identity->compiler}}
                           : json(nullptr);
  j["transplant"] = transplant ? json{{"certificate_sha256", transplant->certificate_sha256},
                                      {"subject", transplant->subject},
                                      {"path", transplant->path},
                                      {"make_variables", transplant->make_variables}}
                               : json(nullptr);
  j["note"] = note;
  return j;
}

Result<std::optional<KernelRebuild>> kernel_rebuild_from_layout(const distro::KernelLayout& L) {
  const distro::ImageInfo* img = kernel_image(L);
  if (!img) return std::optional<KernelRebuild>();
  KernelRebuild k;
  k.image = img->path;
  if (img->build_identity) {
    KMR_TRY(check_identity(*img->build_identity));
    k.identity = img->build_identity;
  } else {
    k.note = "the image has no kernel banner: the build identity is not pinned";
  }
  auto cert = build_time_certificate(L, *img);
  if (const auto* why = std::get_if<std::string>(&cert)) {
    k.note += (k.note.empty() ? "" : "; ") + ("no certificate transplant: " + *why);
    return std::optional<KernelRebuild>(std::move(k));
  }
  const kmod::CertificateInfo& c = *std::get<const kmod::CertificateInfo*>(cert);
  if (!is_valid_utf8(c.subject)) return malformed("the embedded certificate's subject is not valid UTF-8");
  CertificateTransplant t;
  t.pem = kmod::certificate_pem(c.der);
  if (t.pem.empty()) return malformed("the embedded certificate " + c.subject + " has no PEM form");
  t.certificate_sha256 = c.sha256;
  t.subject = c.subject;
  t.path = std::string(kTransplantCertificate);
  t.make_variables = {"CONFIG_MODULE_SIG_KEY=" + t.path, "CONFIG_MODULE_SIG_ALL="};
  k.transplant = std::move(t);
  return std::optional<KernelRebuild>(std::move(k));
}

std::pair<std::string, std::string> compiler_programs(std::string_view banner_compiler) {
  const std::string_view cc_text = banner_compiler.substr(0, banner_compiler.rfind(", "));
  const std::string_view ld_text =
      banner_compiler.rfind(", ") == std::string_view::npos ? "" : banner_compiler.substr(banner_compiler.rfind(", ") + 2);
  std::string cc = "gcc";
  const std::string_view first = cc_text.substr(0, cc_text.find(' '));
  if (cc_text.find("clang") != std::string_view::npos) {
    cc = "clang";
  } else if (first.rfind("gcc", 0) == 0 && program_name(first)) {
    cc = std::string(first);
  }
  return {cc, ld_text.find("LLD") != std::string_view::npos ? "ld.lld" : "ld"};
}

std::string kbuild_compiler_text(std::string_view cc_version_output, std::string_view ld_version_output) {
  std::string cc = first_line(cc_version_output);
  cc.erase(std::remove(cc.begin(), cc.end(), '#'), cc.end());
  std::string ld = first_line(ld_version_output);
  if (const auto at = ld.find("(compatible with "); at != std::string::npos) {
    const auto close = ld.find(')', at);
    if (close != std::string::npos) ld.erase(at, close - at + 1);
  }
  while (!ld.empty() && (ld.back() == ' ' || ld.back() == '\t' || ld.back() == '\r')) ld.pop_back();
  return cc + ", " + ld;
}

std::string compiler_mismatch(std::string_view wanted, std::string_view found) {
  if (wanted == found) return "";
  return "compiler '" + std::string(wanted) + "' named by the shipped kernel's banner (the build's toolchain has '" +
         std::string(found) + "')";
}

Result<std::string> toolchain_compiler_text(const SandboxConfig& build, const std::string& probe_dir,
                                            std::string_view banner_compiler) {
  const auto [cc, ld] = compiler_programs(banner_compiler);
  SandboxConfig probe = build;
  probe.work_dir = probe_dir;
  probe.mounts.clear();
  probe.env.clear();
  probe.wall_time = std::chrono::seconds(120);
  const std::string marker = "@@kmr-status:";
  const std::string script = "LC_ALL=C " + shell_quote(cc) + " --version 2>&1; echo \"" + marker + "$?\"; LC_ALL=C " +
                             shell_quote(ld) + " -v 2>&1; echo \"" + marker + "$?\"\n";
  KMR_ASSIGN_OR_RETURN(auto run, run_in_sandbox(probe, {"/bin/sh", "-c", script}));
  std::error_code ec;
  fs::remove_all(probe_dir, ec);
  const std::string& out = run.process.out;
  const auto m1 = out.find(marker);
  const auto m2 = m1 == std::string::npos ? std::string::npos : out.find(marker, m1 + marker.size());
  if (!run.success() || m2 == std::string::npos) {
    return io_error("cannot run the toolchain probe in the sandbox: " + run.describe() + ": " + out.substr(0, 500));
  }
  auto status = [&](std::size_t at) { return out.compare(at + marker.size(), 2, "0\n") == 0; };
  const std::size_t ld_start = out.find('\n', m1) + 1;
  if (!status(m1)) return std::string("(no working " + cc + ": " + first_line(out.substr(0, m1)) + ")");
  if (!status(m2)) return std::string("(no working " + ld + ": " + first_line(out.substr(ld_start, m2 - ld_start)) + ")");
  return kbuild_compiler_text(out.substr(0, m1), out.substr(ld_start, m2 - ld_start));
}

Result<void> check_compiler(KernelRebuild& k, const SandboxConfig& build, const std::string& work) {
  if (!k.identity) return ok();
  KMR_ASSIGN_OR_RETURN(auto found, toolchain_compiler_text(build, work + "/kmr-toolchain-probe", k.identity->compiler));
  if (auto m = compiler_mismatch(k.identity->compiler, found); !m.empty()) k.missing.push_back(std::move(m));
  return ok();
}

Result<void> apply_kernel_rebuild(const KernelRebuild& k, SandboxConfig& s, const std::string& work) {
  if (k.identity) {
    s.env["KBUILD_BUILD_USER"] = k.identity->user;
    s.env["KBUILD_BUILD_HOST"] = k.identity->host;
    s.env["KBUILD_BUILD_VERSION"] = k.identity->version;
    s.env["KBUILD_BUILD_TIMESTAMP"] = k.identity->timestamp;
  }
  std::string flags = "-j" + std::to_string(std::max(1u, std::thread::hardware_concurrency()));
  if (k.transplant) {
    const std::string dir = work + "/kmr-kernel";
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return io_error("cannot create " + dir + ": " + ec.message());
    const std::string name = fs::path(k.transplant->path).filename().string();
    KMR_TRY(write_file_atomic(dir + "/" + name, as_bytes(k.transplant->pem)));
    fs::permissions(dir + "/" + name, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                          fs::perms::others_read, ec);
    s.mounts.push_back({dir, std::string(kTransplantDir), false});
    flags += " -- " + join(k.transplant->make_variables, " ");
  }
  s.env["GNUMAKEFLAGS"] = flags;
  return ok();
}

void record_kernel_rebuild(const KernelRebuild& k, BuildEnvironment& env) {
  env.fields["kernel_image"] = k.image;
  if (k.identity) {
    env.fields["kernel_kbuild_build_user"] = k.identity->user;
    env.fields["kernel_kbuild_build_host"] = k.identity->host;
    env.fields["kernel_kbuild_build_version"] = k.identity->version;
    env.fields["kernel_kbuild_build_timestamp"] = k.identity->timestamp;
    env.fields["kernel_compiler"] = k.identity->compiler;
  }
  if (k.transplant) {
    env.fields["kernel_transplant_certificate_sha256"] = k.transplant->certificate_sha256;
    env.fields["kernel_transplant_subject"] = k.transplant->subject;
    env.fields["kernel_transplant_make_variables"] = join(k.transplant->make_variables, " ");
  }
}

Result<std::optional<KernelRebuild>> prepare_kernel_rebuild(const std::vector<Artifact>& shipped,
                                                            SandboxConfig& sandbox, const std::string& work,
                                                            BuildEnvironment& env) {
  std::vector<std::string> files;
  bool image = false;
  for (const auto& a : shipped) {
    files.push_back(a.file);
    image = image || a.image_found;
  }
  if (!image) return std::optional<KernelRebuild>();
  distro::InspectOptions o;
  o.layout_only = true;
  auto rep = distro::inspect_packages(files, o);
  if (!rep) {
    KernelRebuild unread;
    unread.note = "kmr inspect cannot read the shipped packages (" + rep.error().message() +
                  "): no build identity pinned, no certificate transplant";
    env.fields["kernel_note"] = unread.note;
    return std::optional<KernelRebuild>(std::move(unread));
  }
  KMR_ASSIGN_OR_RETURN(auto k, kernel_rebuild_from_layout(rep->layout));
  if (!k) return k;
  KMR_TRY(check_compiler(*k, sandbox, work));
  record_kernel_rebuild(*k, env);
  if (k->missing.empty()) KMR_TRY(apply_kernel_rebuild(*k, sandbox, work));
  return k;
}

}  // namespace kmr::build

#pragma once

// Kernel-aware rebuild inputs, taken from the shipped kernel image:
// - its build identity from the banner (KBUILD_BUILD_USER, _HOST, _VERSION,
//   _TIMESTAMP) and the compiler it names, which the build's toolchain must
//   have (else the rebuild is environment-unavailable);
// - certificate transplant: when the shipped modules are signed by a
//   build-time key whose (self-signed) certificate is built into the image,
//   that certificate, public part only, becomes the rebuild's module-signing
//   "key" (CONFIG_MODULE_SIG_KEY=<file> as a make command-line variable) and
//   install-time signing is off (CONFIG_MODULE_SIG_ALL=): the image comes out
//   bit-identical and the modules unsigned, equal to the shipped ones minus
//   their signatures. A kernel whose modules verify only against a distro CA
//   or several embedded certificates is not transplanted.
// The make variables reach every nested make (deb-pkg's debian/rules, a
// PKGBUILD's build() and package()) through GNUMAKEFLAGS, which GNU make
// reads before MAKEFLAGS and turns into command-line variables for itself
// and its sub-makes; a MAKEFLAGS the recipe sets does not clear it.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "rebuilder/base/result.h"
#include "rebuilder/rebuild/artifact.h"
#include "rebuilder/buildenv/environment.h"
#include "rebuilder/buildenv/sandbox.h"
#include "rebuilder/distro/kernel_layout.h"
#include "rebuilder/kmod/banner.h"

namespace kmr::build {

// Where the transplanted certificate is mounted inside the sandbox.
inline constexpr std::string_view kTransplantDir = "/kmr-kernel";
inline constexpr std::string_view kTransplantCertificate = "/kmr-kernel/module-signing-cert.pem";

struct CertificateTransplant {
  std::string pem;                           // the certificate, public part only
  std::string certificate_sha256;            // of its DER encoding, hex
  std::string subject;
  std::string path;                          // inside the sandbox
  std::vector<std::string> make_variables;   // CONFIG_MODULE_SIG_KEY=<path>, CONFIG_MODULE_SIG_ALL=
};

struct KernelRebuild {
  std::string image;                              // member the identity and certificate come from
  std::optional<kmod::BuildIdentity> identity;    // nullopt: the image has no banner
  std::optional<CertificateTransplant> transplant;
  std::string note;                               // why there is no transplant / identity
  // Set by check_compiler: the compiler the banner names and the one the
  // build's toolchain has, when they differ.
  std::vector<std::string> missing;

  // {"image", "identity": {KBUILD_BUILD_USER, KBUILD_BUILD_HOST,
  // KBUILD_BUILD_VERSION, KBUILD_BUILD_TIMESTAMP, compiler} | null,
  // "transplant": {certificate_sha256, subject, path, make_variables} | null, "note"}
  nlohmann::json to_json() const;
};

// True for the backends that rebuild kernels this way (debian, proxmox, arch,
// suse: kbuild's rpm spec passes GNUMAKEFLAGS and the environment through).
bool kernel_rebuild_backend(std::string_view backend);

// The inputs from a shipped layout (read with no keyring): nullopt when it
// holds no kernel image. Errors when a banner value cannot be pinned safely
// (a quote, backslash, backtick or '$': it would land in a C string and a
// shell here-document in kbuild's mkcompile_h).
Result<std::optional<KernelRebuild>> kernel_rebuild_from_layout(const distro::KernelLayout& layout);

// The programs kbuild would use to print the banner's compiler text:
// {"gcc" | "gcc-12" | "clang" ..., "ld" | "ld.lld"}.
std::pair<std::string, std::string> compiler_programs(std::string_view banner_compiler);

// The text kbuild 6.x puts in the banner for a toolchain, from the outputs of
// `CC --version` and `LD -v` (scripts/mkcompile_h, CC_VERSION_TEXT): the first
// line of each, '#' removed from the compiler's, "(compatible with ...)" and
// trailing blanks removed from the linker's, joined by ", ".
std::string kbuild_compiler_text(std::string_view cc_version_output, std::string_view ld_version_output);

// "" when `found` equals the banner's compiler, else the missing-input line
// naming both.
std::string compiler_mismatch(std::string_view wanted, std::string_view found);

// The banner-style compiler text of the build's toolchain: CC and LD run
// inside a sandbox with the build's root (host /usr or the build root),
// work directory `probe_dir`.
Result<std::string> toolchain_compiler_text(const SandboxConfig& build, const std::string& probe_dir,
                                            std::string_view banner_compiler);

// Fills `k.missing` when the toolchain's compiler differs from the banner's.
Result<void> check_compiler(KernelRebuild& k, const SandboxConfig& build, const std::string& work);

// Applies the inputs to the build: KBUILD_BUILD_* in its environment, the
// certificate written under `work` and mounted read-only at kTransplantDir,
// GNUMAKEFLAGS with the make variables (and -j<cores>).
Result<void> apply_kernel_rebuild(const KernelRebuild& k, SandboxConfig& sandbox, const std::string& work);

// The same facts in the recorded environment (fields kernel_*), so the
// worker report and the attestation carry them.
void record_kernel_rebuild(const KernelRebuild& k, BuildEnvironment& env);

// The one call a backend makes after planning its build: derive (nullopt when
// no shipped package holds a kernel image), check the compiler (k.missing),
// apply and record. Applies nothing when k.missing is not empty. When kmr
// inspect cannot read the shipped packages (e.g. metadata it is stricter
// about than the rebuild), the rebuild goes on unpinned and the note says why.
Result<std::optional<KernelRebuild>> prepare_kernel_rebuild(const std::vector<Artifact>& shipped,
                                                            SandboxConfig& sandbox, const std::string& work,
                                                            BuildEnvironment& env);

}  // namespace kmr::build

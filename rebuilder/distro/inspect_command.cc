// `kmr inspect [--json] PACKAGE...`: what a distro kernel package contains
// and whether its module-hashes proofs verify.

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/kmod/module_sig.h"
#include "rebuilder/base/command.h"
#include "rebuilder/base/flags.h"
#include "rebuilder/distro/inspect.h"

namespace kmr::distro {
namespace {

constexpr const char* kDescription =
    "Reads distro kernel packages (format detected by content: Arch .pkg.tar.*, NixOS NAR or\n"
    ".narinfo (+ its NAR), SUSE RPM, Debian/Proxmox .deb, Debian .buildinfo) and reports the\n"
    "kernel release, image, modules (compression, trailer types), the module-hashes root and the\n"
    "result of verifying every shipped Merkle proof, every PKCS#7 module signature against the\n"
    "X.509 certificates built into the image (plus --keyring certificates), the image's\n"
    "Authenticode signature, the content root (the module-hashes root over the modules without\n"
    "their signatures), and a summary of the build description.\n"
    "Several packages form one kernel (Arch linux + linux-headers; Nix out + modules + dev).";

constexpr const char* kExit =
    "exit: 0 everything present verifies, 1 a check failed (a module signature or proof, a\n"
    "digest, a package signature), 2 error";

// --keyring FILE: X.509 certificates are parsed now; anything else is an OpenPGP keyring.
Result<void> add_keyring(InspectOptions& opt, const std::string& file) {
  KMR_ASSIGN_OR_RETURN(ByteVector data, read_file(file, 64 << 20));
  if (!kmod::looks_like_certificates(data)) {
    opt.keyring = file;
    return ok();
  }
  KMR_ASSIGN_OR_RETURN(auto certs, kmod::parse_certificate_file(data, file));
  for (auto& c : certs) opt.trusted_certificates.push_back(std::move(c));
  return ok();
}

int run_inspect(const std::vector<std::string>& args) {
  bool json = false;
  InspectOptions opt;
  std::vector<std::string> paths;
  cli::FlagParser p("kmr inspect", "[--json] [--full-image] [--nix-key NAME:BASE64]... [--keyring FILE] PACKAGE...",
                    kDescription);
  p.boolean("--json", &json, "machine-readable output")
      .each("--nix-key", "K",
            [&opt](const std::string& v) -> Result<void> {
              KMR_ASSIGN_OR_RETURN(auto k, archive::parse_public_key(v));
              opt.nix_keys.push_back(std::move(k));
              return ok();
            },
            "trusted narinfo signing key (repeatable)")
      .each("--keyring", "FILE", [&opt](const std::string& v) { return add_keyring(opt, v); },
            "X.509 certificates (PEM or DER) trusted besides the image's own: module\n"
            "signers and the Authenticode CA; or an OpenPGP keyring for PACKAGE.sig\n"
            "(Arch), checked with sqv/gpgv. Repeatable; the content decides.")
      .boolean("--full-image", &opt.full_image,
               "accepted for compatibility: the image is always decompressed and searched")
      .positionals("PACKAGE", &paths, 1, cli::kUnlimited)
      .epilogue(kExit);
  if (auto code = p.parse_or_exit(args)) return *code;
  auto report = inspect_packages(paths, opt);
  if (!report) {
    if (json) {
      nlohmann::json j = {{"error", {{"code", std::string(error_code_name(report.error().code()))},
                                     {"message", report.error().to_string()}}}};
      std::cout << j.dump(2) << "\n";
    }
    std::fprintf(stderr, "kmr inspect: %s\n", report.error().to_string().c_str());
    return cli::kExitError;
  }
  if (json) {
    std::cout << report->json.dump(2) << "\n";
  } else {
    std::cout << report->text;
  }
  return report->ok ? cli::kExitOk : cli::kExitFailed;
}

}  // namespace

KMR_REGISTER_COMMAND(inspect, "inspect", "show what a distro kernel package contains and verify its module hashes",
                     run_inspect);

}  // namespace kmr::distro

// `kmr inspect [--json] PACKAGE...`: what a distro kernel package contains
// and whether its module-hashes proofs verify.

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/kmod/module_sig.h"
#include "rebuilder/base/command.h"
#include "rebuilder/distro/inspect.h"

namespace kmr::distro {
namespace {

constexpr const char* kUsage =
    "usage: kmr inspect [--json] [--full-image] [--nix-key NAME:BASE64]... [--keyring FILE] PACKAGE...\n"
    "\n"
    "Reads distro kernel packages (format detected by content: Arch .pkg.tar.*, NixOS NAR or\n"
    ".narinfo (+ its NAR), SUSE RPM, Debian/Proxmox .deb, Debian .buildinfo) and reports the\n"
    "kernel release, image, modules (compression, trailer types), the module-hashes root and the\n"
    "result of verifying every shipped Merkle proof, every PKCS#7 module signature against the\n"
    "X.509 certificates built into the image (plus --keyring certificates), the image's\n"
    "Authenticode signature, the content root (the module-hashes root over the modules without\n"
    "their signatures), and a summary of the build description.\n"
    "Several packages form one kernel (Arch linux + linux-headers; Nix out + modules + dev).\n"
    "\n"
    "  --json           machine-readable output\n"
    "  --nix-key K      trusted narinfo signing key (repeatable)\n"
    "  --keyring FILE   X.509 certificates (PEM or DER) trusted besides the image's own: module\n"
    "                   signers and the Authenticode CA; or an OpenPGP keyring for PACKAGE.sig\n"
    "                   (Arch), checked with sqv/gpgv. Repeatable; the content decides.\n"
    "  --full-image     accepted for compatibility: the image is always decompressed and searched\n"
    "\n"
    "exit: 0 everything present verifies, 1 a check failed (a module signature or proof, a\n"
    "digest, a package signature), 2 error\n";

int run_inspect(const std::vector<std::string>& args) {
  bool json = false;
  InspectOptions opt;
  std::vector<std::string> paths;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return cli::kExitOk;
    }
    if (a == "--json") {
      json = true;
    } else if (a == "--nix-key" && i + 1 < args.size()) {
      auto k = archive::parse_public_key(args[++i]);
      if (!k) {
        std::fprintf(stderr, "kmr inspect: %s\n", k.error().message().c_str());
        return cli::kExitError;
      }
      opt.nix_keys.push_back(*k);
    } else if (a == "--full-image") {
      opt.full_image = true;
    } else if (a == "--keyring" && i + 1 < args.size()) {
      const std::string file = args[++i];
      auto data = read_file(file, 64 << 20);
      if (!data) {
        std::fprintf(stderr, "kmr inspect: --keyring: %s\n", data.error().to_string().c_str());
        return cli::kExitError;
      }
      if (kmod::looks_like_certificates(*data)) {
        auto certs = kmod::parse_certificate_file(*data, file);
        if (!certs) {
          std::fprintf(stderr, "kmr inspect: --keyring: %s\n", certs.error().to_string().c_str());
          return cli::kExitError;
        }
        for (auto& c : *certs) opt.trusted_certificates.push_back(std::move(c));
      } else {
        opt.keyring = file;
      }
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "kmr inspect: unknown option '%s'\n%s", a.c_str(), kUsage);
      return cli::kExitError;
    } else {
      paths.push_back(a);
    }
  }
  if (paths.empty()) {
    std::fputs(kUsage, stderr);
    return cli::kExitError;
  }
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

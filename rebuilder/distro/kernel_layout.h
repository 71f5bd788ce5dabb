#pragma once

// Kernel layout of distro packages: from the members of one or several
// packages (Arch linux + linux-headers, Nix out + modules + dev, a SUSE RPM,
// a Debian/Proxmox deb) find the kernel release, image, ELF vmlinux, modules
// directory, modules.order and every module with its compression and
// trailer; then check Merkle proofs against the root in the image, PKCS#7
// module signatures against the certificates built into the image, the
// image's Authenticode signature, and compute the content root.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rebuilder/archive/archive_reader.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/kmod/authenticode.h"
#include "rebuilder/kmod/banner.h"
#include "rebuilder/kmod/kernel_image.h"
#include "rebuilder/kmod/merkle.h"
#include "rebuilder/kmod/module_sig.h"
#include "rebuilder/kmod/trailer.h"

namespace kmr::distro {

struct ModuleInfo {
  std::string path;         // member path in its package
  std::string compression;  // zst, xz, gz, none
  kmod::TrailerKind trailer = kmod::TrailerKind::kNone;
  std::uint64_t size = 0;   // decompressed, with trailer
  // Merkle modules: the leaf over the module without its trailer, and the proof.
  std::optional<kmod::MerkleProof> proof;
  Digest256 leaf{};
  std::uint64_t content_length = 0;        // decompressed, without trailer
  // The kernel leaf over the content (trailer removed) at the module's
  // modules.order position; nullopt when not listed there.
  std::optional<Digest256> content_leaf;
  // PKCS#7 modules: "" when the signature verified, else why not.
  std::string signature_failure;
};

struct ImageInfo {
  std::string path;
  std::string kind;  // "bzimage", "elf", "compressed-elf", "other"
  bool payload_is_x86_64_elf = false;
  std::string payload_codec;  // bzImage payload codec
  std::optional<kmod::ImageRoot> root;
  // Certificates built into the (decompressed) image and how they were found
  // ("symbol", "scan", "" when none).
  std::vector<kmod::CertificateInfo> certificates;
  std::string certificates_method;
  // The banner's build identity (decompressed image), when found.
  std::optional<kmod::BuildIdentity> build_identity;
  // The image's Authenticode signature (PE images), checked against the
  // keyring certificates.
  std::optional<kmod::AuthenticodeInfo> authenticode;
  // False when the root was not searched (every module PKCS#7-signed and no
  // full analysis asked for): the payload was decompressed only far enough
  // to check its ELF header.
  bool root_searched = true;
  std::string error;  // why analysis failed, if it did
};

struct ModuleHashesResult {
  kmod::MerkleRoot root;
  std::uint64_t verified = 0;
  std::uint64_t failed = 0;
  bool ok = false;
  std::vector<std::string> problems;  // first few failures, readable
};

struct ModuleSignaturesResult {
  std::uint64_t signed_count = 0;  // PKCS#7-signed modules
  std::uint64_t verified = 0;
  std::uint64_t unsigned_count = 0;
  std::vector<std::pair<std::string, std::string>> failed;  // module, reason
  std::vector<kmod::CertificateInfo> certificates;          // embedded, then keyring
  bool ok = false;
};

struct ContentRoot {
  kmod::MerkleRoot root;
  std::uint64_t count = 0;
};

struct KernelLayout {
  std::string kernel_release;
  std::string modules_dir;  // e.g. usr/lib/modules/6.1.0-56-amd64
  std::optional<ImageInfo> image;
  std::string vmlinux_path;  // ELF vmlinux when shipped
  std::optional<ImageInfo> vmlinux;
  bool has_modules_order = false;
  std::vector<std::string> modules_order;
  std::vector<ModuleInfo> modules;
  std::vector<std::string> warnings;

  std::map<std::string, std::uint64_t> compression_counts() const;
  std::map<std::string, std::uint64_t> trailer_counts() const;
  // Present when any module carries a Merkle proof or the image holds a
  // module-hashes root.
  std::optional<ModuleHashesResult> module_hashes() const;

  // Filled by finish(): nullopt when no module is PKCS#7-signed.
  std::optional<ModuleSignaturesResult> module_signatures;
  // The kernel algorithm's root over the modules listed in modules.order,
  // decompressed and with their trailers removed; nullopt without
  // modules.order or when a listed module is missing (content_root_problem).
  std::optional<ContentRoot> content_root;
  std::string content_root_problem;
};

struct ModulesPath;  // package_layout.h

// Collects the layout from members of any number of packages. The image is
// analysed on a worker thread while the package streams on.
class LayoutCollector {
 public:
  LayoutCollector();
  ~LayoutCollector();
  LayoutCollector(const LayoutCollector&) = delete;
  LayoutCollector& operator=(const LayoutCollector&) = delete;

  // A visitor for archive::read_archive / read_nar / read_rpm / read_deb.
  // `prefix` is prepended to paths (e.g. a Nix output name); `what` names the
  // package in errors.
  archive::Visitor visitor(std::string what);
  // Analyses the images (in parallel) and returns the layout.
  Result<KernelLayout> finish();
  // Kept for the --full-image option: the image is now always decompressed
  // and searched (its certificates are needed to verify module signatures).
  void set_full_image_analysis(bool full);
  // Certificates trusted besides the ones built into the image (a distro
  // CA): module signers and the Authenticode chain. Call before streaming.
  Result<void> add_keyring_certificates(const std::vector<ByteVector>& der);

  // Package metadata members seen (".PKGINFO", ".BUILDINFO", "SOURCE").
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Kernel members (image, vmlinux, modules, modules.order) seen so far.
  std::uint64_t kernel_members() const { return kernel_members_; }

 private:
  Result<void> visit(const std::string& what, const archive::Entry& e, archive::MemberStream& s);
  // The parts of visit(), one per kind of kernel member.
  Result<void> start_image(const std::string& what, const std::string& path, archive::MemberStream& s, bool vmlinux);
  Result<void> read_modules_order(const std::string& what, const std::string& path, const ModulesPath& m,
                                  archive::MemberStream& s);
  Result<void> collect_module(const std::string& what, const archive::Entry& e, const ModulesPath& m,
                              const std::string& compression, archive::MemberStream& s);
  Result<void> finish_modules(KernelLayout& L);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::map<std::string, std::string> metadata_;
  std::uint64_t kernel_members_ = 0;
};

// Analyses a kernel image (bzImage, ELF vmlinux, compressed vmlinux); with
// find_root the module-hashes root is searched and the embedded certificates
// found (full decompression); `trust` checks an Authenticode signature.
ImageInfo analyse_image(const std::string& path, Bytes data, bool find_root = true,
                        const kmod::CertificateSet* trust = nullptr);

}  // namespace kmr::distro

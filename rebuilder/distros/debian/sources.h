#pragma once

// Where a Debian or Proxmox binary package's build inputs live:
// - the .buildinfo, from a URL template (Debian publishes them at
//   https://buildinfos.debian.net/buildinfo-pool/<prefix>/<source>/<source>_<version>_<arch>.buildinfo,
//   <prefix> as in the archive's pool: "lib" + one letter for lib*, else the first letter;
//   <version> the changelog version without epoch, as dpkg-genbuildinfo names the file:
//   the source version, or the binary version of a binNMU);
// - the .dsc and the files it lists: from the same repository's Sources
//   index (`Directory` + `Checksums-Sha256`), each with its sha256 and size.

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/archive/deb822.h"
#include "rebuilder/base/result.h"
#include "rebuilder/distros/common/source_list.h"
#include "rebuilder/distros/common/template.h"

namespace kmr::debian {

// Keys: buildinfo ({source}, {source_c}, {version}, {source_version}, {arch}).
// Debian's default is buildinfos.debian.net; Proxmox publishes no
// .buildinfo, so its default is off ("").
const std::vector<distros::TemplateSpec>& template_specs(std::string_view distro);

// The pool prefix of a source package name: "libc" for libcap2, "l" for linux.
std::string pool_prefix(std::string_view source);

// "1:2.3-4" -> "2.3-4".
std::string strip_epoch(std::string_view version);

struct BinaryRef {
  std::string source;          // source package name
  std::string source_version;  // with epoch, as Sources lists it
  std::string version;         // the binary's version (binNMU "+bN" included), with epoch
  std::string arch;            // the binary's architecture
};

// The version in the .buildinfo's name: the binary version for a binNMU
// (source version + "+bN"), else the source version; without epoch.
std::string buildinfo_version(const BinaryRef& ref);

// The .buildinfo URL and file name for a binary package.
Result<distros::SourceFile> buildinfo_source(const std::string& buildinfo_template, const BinaryRef& ref);

// The paragraph of `source` at `version` in a Sources index; nullptr when absent.
const archive::Deb822Paragraph* find_source(const std::vector<archive::Deb822Paragraph>& sources, std::string_view source,
                                            std::string_view version);

// The .dsc and every file of a Sources paragraph (Checksums-Sha256, at
// <archive_root>/<Directory>/), with sha256 and size. The .dsc must be
// among them. Directory must be a relative path of plain segments.
Result<std::vector<distros::SourceFile>> dsc_files(const archive::Deb822Paragraph& source, const std::string& archive_root);

// The Sources index of each component a Release lists
// ("<component>/source/Sources"), each in its best compression (xz, gz, plain).
std::vector<std::string> sources_index_paths(const std::vector<archive::ReleaseFile>& release_files);

// The paragraphs of a Sources or Packages text whose Package is one of
// `wanted`, as text (an archive's whole index is large; only these get parsed).
std::string paragraphs_of(std::string_view text, const std::set<std::string>& wanted);

// The source (name, version) of a Packages paragraph: "Source: name (version)",
// "Source: name", or the package itself.
BinaryRef binary_ref(const archive::Deb822Paragraph& package);

}  // namespace kmr::debian

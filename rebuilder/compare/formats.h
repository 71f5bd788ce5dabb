#pragma once

#include "rebuilder/compare/comparator.h"

namespace kmr::compare {

// Comparators defined in elf.cc (ELF, kernel modules, bzImage), exposed for
// the registry in formats.cc.
bool recognize_elf(Bytes data, std::string_view name);
bool recognize_module(Bytes data, std::string_view name);
bool recognize_bzimage(Bytes data, std::string_view name);
Result<void> compare_elf(Context& ctx, const Input& a, const Input& b, int depth, Difference& out);
Result<void> compare_module(Context& ctx, const Input& a, const Input& b, int depth, Difference& out);
Result<void> compare_bzimage(Context& ctx, const Input& a, const Input& b, int depth, Difference& out);

// NAR (nar.cc).
bool recognize_nar(Bytes data, std::string_view name);
// Members' content are zero-copy slices of `blob`.
Result<MemberList> list_nar(Context& ctx, const BlobPtr& blob, const std::string& what);

// RPM header tags as text (rpm.cc); the payload is read by libarchive.
bool recognize_rpm(Bytes data, std::string_view name);
Result<std::string> rpm_header_text(Bytes data);

}  // namespace kmr::compare

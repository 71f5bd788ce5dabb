#pragma once

// Test helpers for package layouts: what the registered layouts make of a
// path, and one member handed to a LayoutCollector as a package reader
// would, without an archive.

#include <string>
#include <utility>

#include "rebuilder/archive/archive_reader.h"
#include "rebuilder/base/bytes.h"
#include "rebuilder/distro/kernel_layout.h"
#include "rebuilder/distro/package_layout.h"

namespace kmr::distro::testing {

// "<layout>: image <release>", "<layout>: image", "<layout>: vmlinux",
// "<layout>: metadata", or "" when no registered layout claims `path`.
inline std::string claim(std::string_view path) {
  auto c = classify_member(path);
  if (!c) return "";
  std::string out = std::string(c->layout->name()) + ": ";
  switch (c->member.role) {
    case MemberRole::kImage: out += "image"; break;
    case MemberRole::kVmlinux: out += "vmlinux"; break;
    case MemberRole::kMetadata: out += "metadata"; break;
  }
  if (c->member.release) out += " " + *c->member.release;
  return out;
}

class StringMember final : public archive::MemberStream {
 public:
  explicit StringMember(std::string data) : data_(std::move(data)) {}
  Result<Bytes> next() override {
    if (done_) return Bytes{};
    done_ = true;
    return as_bytes(data_);
  }

 private:
  std::string data_;
  bool done_ = false;
};

// Visits the regular file `path` holding `content`, as package `what`.
inline Result<void> feed(LayoutCollector& collector, const std::string& path, std::string content,
                         const std::string& what = "test.pkg") {
  archive::Entry e;
  e.path = path;
  e.stored_path = path;
  e.size = content.size();
  StringMember member(std::move(content));
  return collector.visitor(what)(e, member);
}

}  // namespace kmr::distro::testing

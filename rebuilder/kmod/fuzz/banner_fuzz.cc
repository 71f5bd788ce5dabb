// libFuzzer target: the kernel banner parser and the banner search in images.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "rebuilder/kmod/banner.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const kmr::Bytes in(data, size);
  auto id = kmr::kmod::parse_banner(kmr::as_string_view(in));
  if (id && (id->release.empty() || id->user.empty() || id->host.empty() || id->compiler.empty() ||
             id->banner.size() > kmr::kmod::kMaxBannerLength)) {
    __builtin_trap();
  }
  auto f = kmr::kmod::find_build_identity(in);
  if (f && f->banner.size() > size) __builtin_trap();
  return 0;
}

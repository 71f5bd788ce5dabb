// kmr image mask [--json] IMAGE [REBUILT_IMAGE]: the byte ranges of a kernel
// image that a build-time signing key changes, and the masked digest; with
// two images, whether they are equal modulo those ranges.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rebuilder/base/command.h"
#include "rebuilder/base/flags.h"
#include "rebuilder/base/file.h"
#include "rebuilder/kmod/image_mask.h"

namespace kmr::kmod {
namespace {

constexpr std::uint64_t kMaxImageFile = 2ull << 30;

int mask_error(bool json, const Error& e) {
  if (json) std::printf("%s\n", nlohmann::json({{"error", e.to_string()}, {"code", cli::kExitError}}).dump().c_str());
  std::fprintf(stderr, "kmr image mask: %s\n", e.to_string().c_str());
  return cli::kExitError;
}

Result<ImageMask> mask_file(const std::string& path) {
  KMR_ASSIGN_OR_RETURN(ByteVector data, read_file(path, kMaxImageFile));
  return mask_image(data, path);
}

void print_text(const std::string& path, const ImageMask& m) {
  std::printf("%s: %s, masked sha256 %s\n", path.c_str(), m.format.c_str(), m.masked_sha256.c_str());
  for (const auto& r : m.ranges) {
    std::printf("  %-12s %-8s offset %llu length %llu  %s\n", std::string(mask_kind_name(r.what)).c_str(), r.in.c_str(),
                static_cast<unsigned long long>(r.offset), static_cast<unsigned long long>(r.length), r.detail.c_str());
  }
}

int run_image_mask(const std::vector<std::string>& argv) {
  bool json = false;
  std::vector<std::string> files;
  cli::FlagParser p("kmr image mask", "[--json] IMAGE [REBUILT_IMAGE]",
                    "Names the exact byte ranges of a kernel image (ELF vmlinux, vmlinux.xz/.gz/.zst,\n"
                    "x86 bzImage, PE) that a build-time signing key changes: the embedded build-time\n"
                    "certificate, the GNU build-id, the Authenticode checksum/directory entry/signature\n"
                    "table, the bzImage CRC32; and the image's digest with them masked. With two images:\n"
                    "whether they are equal outside those ranges.");
  p.boolean("--json", &json,
            "{\"format\",\"masked_sha256\",\"certificate_method\",\"ranges\":[{\"what\",\"offset\",\n"
            "\"length\",\"in\",\"detail\"}]}; two images: {\"shipped\",\"rebuilt\",\"equal\",\"reason\"}")
      .positionals("IMAGE", &files, 1, 2)
      .epilogue("Exit: 0 (equal), 1 not equal, 2 error.");
  if (auto code = p.parse_or_exit(argv)) return *code;
  std::vector<ImageMask> masks;
  for (const auto& f : files) {
    auto m = mask_file(f);
    if (!m) return mask_error(json, m.error());
    masks.push_back(std::move(*m));
  }
  if (masks.size() == 1) {
    if (json) std::printf("%s\n", mask_json(masks[0]).dump().c_str());
    else print_text(files[0], masks[0]);
    return cli::kExitOk;
  }
  const std::string reason = compare_masks(masks[0], masks[1]);
  if (json) {
    std::printf("%s\n", nlohmann::json({{"shipped", mask_json(masks[0])},
                                        {"rebuilt", mask_json(masks[1])},
                                        {"equal", reason.empty()},
                                        {"reason", reason}})
                            .dump()
                            .c_str());
  } else {
    print_text(files[0], masks[0]);
    print_text(files[1], masks[1]);
    std::printf("%s\n", reason.empty() ? "equal outside the masked ranges" : ("not equal: " + reason).c_str());
  }
  return reason.empty() ? cli::kExitOk : cli::kExitFailed;
}

}  // namespace

KMR_REGISTER_COMMAND(kmod_image_mask, "image mask",
                     "name the byte ranges a build-time key changes in a kernel image and compare two images outside them",
                     run_image_mask);

}  // namespace kmr::kmod

#include "rebuilder/kmod/kernel_image.h"

#include <algorithm>
#include <functional>

#include "rebuilder/archive/decompress.h"
#include "rebuilder/base/checked_math.h"
#include "rebuilder/base/file.h"
#include "rebuilder/kmod/bzimage.h"
#include "rebuilder/kmod/elf.h"

namespace kmr::kmod {

namespace {

constexpr int kMaxNesting = 3;

std::optional<ImageRoot> search(Bytes image, const MerkleRoot& expected) {
  for (bool le : {true, false}) {
    const ByteVector needle = root_struct_bytes(expected, le);
    const auto it = std::search(image.begin(), image.end(),
                                std::boyer_moore_horspool_searcher(needle.begin(), needle.end()));
    if (it != image.end()) {
      ImageRoot r;
      r.present = true;
      r.root = expected;
      r.source = "search";
      r.little_endian = le;
      r.offset = static_cast<std::uint64_t>(it - image.begin());
      return r;
    }
  }
  return std::nullopt;
}

Result<ImageRoot> raw_or_search(Bytes image, const ImageOptions& o) {
  if (o.expected) {
    if (auto r = search(image, *o.expected)) return *r;
  }
  return ImageRoot{};
}

Result<ByteVector> inflate(Bytes in, archive::Codec codec, std::uint64_t cap, bool allow_trailing) {
  ByteVector out;
  archive::DecompressOptions opts;
  opts.max_output = cap;
  opts.allow_trailing_data = allow_trailing;
  KMR_TRY(archive::decompress(in, codec, [&](Bytes b) -> Result<void> {
    out.insert(out.end(), b.begin(), b.end());
    return kmr::ok();
  }, opts));
  return out;
}

Result<ImageRoot> find_root(Bytes image, std::string_view what, const ImageOptions& o, int depth) {
  const std::string w(what);
  if (is_elf(image)) {
    KMR_ASSIGN_OR_RETURN(ElfFile elf, ElfFile::parse(image, w));
    const ElfSection* s = elf.find_section(".module_hashes");
    if (s == nullptr) return raw_or_search(image, o);
    if (s->type == kShtNobits || s->size != kRootStructSize) {
      return malformed(w + ": section .module_hashes has size " + std::to_string(s->size) + ", expected 36");
    }
    auto root = parse_root_struct(elf.section_data(*s), elf.little_endian());
    if (!root) return std::move(root).error().with_context(w);
    ImageRoot r;
    r.present = true;
    r.root = *root;
    r.source = "elf-section";
    r.little_endian = elf.little_endian();
    r.offset = s->offset;
    return r;
  }
  if (depth >= kMaxNesting) return raw_or_search(image, o);
  if (is_bzimage(image)) {
    KMR_ASSIGN_OR_RETURN(BzImagePayload p, extract_bzimage_payload(image, w, o.max_decompressed));
    KMR_ASSIGN_OR_RETURN(ImageRoot r, find_root(p.vmlinux, w + " payload", o, depth + 1));
    if (r.present && r.source == "elf-section") r.source = "bzimage-" + std::string(archive::codec_name(p.codec));
    return r;
  }
  // arm64 EFI zboot: "MZ", "zimg", payload offset and size, codec name.
  if (image.size() >= 32 && image[0] == 'M' && image[1] == 'Z' && image[4] == 'z' && image[5] == 'i' && image[6] == 'm' &&
      image[7] == 'g') {
    auto u32 = [&](std::size_t off) {
      return static_cast<std::uint32_t>(image[off]) | (static_cast<std::uint32_t>(image[off + 1]) << 8) |
             (static_cast<std::uint32_t>(image[off + 2]) << 16) | (static_cast<std::uint32_t>(image[off + 3]) << 24);
    };
    const std::uint32_t off = u32(8), size = u32(12);
    if (!range_fits(off, size, image.size())) {
      return malformed(w + ": EFI zboot payload (offset " + std::to_string(off) + ", length " + std::to_string(size) +
                       ") beyond end of file (size " + std::to_string(image.size()) + ")");
    }
    const Bytes payload = image.subspan(off, size);
    const archive::Codec codec = archive::detect_codec(payload);
    if (codec == archive::Codec::kNone) return unsupported(w + ": EFI zboot payload compression not recognised");
    auto inner = inflate(payload, codec, o.max_decompressed, true);
    if (!inner) return std::move(inner).error().with_context(w + ": EFI zboot payload");
    return find_root(*inner, w + " payload", o, depth + 1);
  }
  const archive::Codec codec = archive::detect_codec(image);
  if (codec != archive::Codec::kNone) {
    auto inner = inflate(image, codec, o.max_decompressed, false);
    if (!inner) return std::move(inner).error().with_context(w);
    KMR_ASSIGN_OR_RETURN(ImageRoot r, find_root(*inner, w, o, depth + 1));
    r.compression = std::string(archive::codec_name(codec));
    return r;
  }
  return raw_or_search(image, o);
}

}  // namespace

Result<ImageRoot> root_from_image(Bytes image, std::string_view what, const ImageOptions& options) {
  return find_root(image, what, options, 0);
}

Result<ImageRoot> root_from_image_file(const std::string& path, const ImageOptions& options) {
  KMR_ASSIGN_OR_RETURN(ByteVector data, read_file(path, options.max_decompressed));
  return root_from_image(data, path, options);
}

}  // namespace kmr::kmod

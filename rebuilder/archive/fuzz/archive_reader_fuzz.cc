// Fuzz target: the archive reader in both modes on the same bytes. Strict
// must end in members or an error; lenient must also show what it can
// (member read errors are recorded, not returned). Both whole-input and
// small-chunk sources, as kmr diff and the package readers feed it.
#include <cstddef>
#include <cstdint>

#include "rebuilder/archive/archive_reader.h"

namespace {

void read_with(kmr::Bytes in, kmr::archive::Mode mode, std::size_t chunk, bool threaded_xz) {
  using namespace kmr;
  archive::ReaderOptions o;
  o.name = "fuzz";
  o.mode = mode;
  o.threaded_xz = threaded_xz;
  o.limits.max_member_bytes = 1 << 20;
  o.limits.max_total_bytes = 4 << 20;
  o.limits.max_members = 1000;
  archive::MemoryStream ms(in, chunk);
  (void)archive::read_archive(ms, o, [&](const archive::Entry& e, archive::MemberStream& s) -> Result<void> {
    if (mode == archive::Mode::kStrict) {
      KMR_TRY(s.read_all(1 << 20));
      return ok();
    }
    (void)e.stored_path.size();
    for (;;) {
      auto b = s.next();
      if (!b || b->empty()) break;
    }
    return ok();
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const kmr::Bytes in(data, size);
  read_with(in, kmr::archive::Mode::kStrict, 4096, true);
  read_with(in, kmr::archive::Mode::kLenient, size == 0 ? 1 : size, false);
  read_with(in, kmr::archive::Mode::kLenient, 512, true);
  return 0;
}

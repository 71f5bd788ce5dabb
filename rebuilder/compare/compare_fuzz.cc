// Fuzz target: the whole comparison engine on two halves of the input
// (every format recogniser and comparator sees hostile bytes).
#include <cstddef>
#include <cstdint>

#include "rebuilder/compare/comparator.h"
#include "rebuilder/compare/presenters.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kmr::compare;
  Options opt;
  opt.use_objdump = false;
  opt.limits.max_member_bytes = 64 << 20;
  opt.limits.max_wall_time = std::chrono::seconds(10);
  opt.jobs = 1;
  Context ctx(opt);
  std::size_t half = size / 2;
  Input a{"a", blob_from_vector(kmr::ByteVector(data, data + half)), {}, {}};
  Input b{"b", blob_from_vector(kmr::ByteVector(data + half, data + size)), {}, {}};
  auto d = compare_inputs(ctx, a, b, 0);
  if (d) (void)render_json(*d, std::chrono::milliseconds(0));
  return 0;
}

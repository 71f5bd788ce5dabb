// Fuzz target: RPM lead + signature header + header index checks, and the
// payload path through the archive reader.
#include <cstddef>
#include <cstdint>

#include "rebuilder/archive/rpm.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kmr;
  const Bytes in(data, size);
  if (size > 96) (void)archive::parse_rpm_header(in.subspan(96), "fuzz.rpm");
  (void)archive::parse_rpm_header(in, "fuzz.rpm");
  archive::ReaderOptions o;
  o.name = "fuzz.rpm";
  o.limits.max_member_bytes = 1 << 20;
  o.limits.max_total_bytes = 4 << 20;
  archive::MemoryStream ms(in);
  archive::Visitor v = [](const archive::Entry&, archive::MemberStream&) -> Result<void> { return ok(); };
  (void)archive::read_rpm(ms, o, &v);
  return 0;
}

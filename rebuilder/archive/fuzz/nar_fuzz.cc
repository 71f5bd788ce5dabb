// Fuzz target: the NAR parser (canonical-form checks, limits) and nix32.
#include <cstddef>
#include <cstdint>

#include "rebuilder/archive/nar.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kmr;
  archive::ReaderOptions o;
  o.name = "fuzz.nar";
  o.limits.max_member_bytes = 1 << 20;
  o.limits.max_total_bytes = 4 << 20;
  o.limits.max_members = 10000;
  (void)archive::read_nar_memory(Bytes(data, size), o, [](const archive::Entry&, archive::MemberStream& s) -> Result<void> {
    KMR_ASSIGN_OR_RETURN(auto c, s.read_all(1 << 20));
    (void)c;
    return ok();
  });
  (void)archive::nix32_decode(std::string_view(reinterpret_cast<const char*>(data), size), 32);
  return 0;
}

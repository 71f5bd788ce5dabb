// NAR members through //rebuilder/archive:nar (canonical NAR only; anything
// else is reported by the caller as a binary comparison with the reason).
#include "rebuilder/archive/nar.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/compare/formats.h"

namespace kmr::compare {

bool recognize_nar(Bytes d, std::string_view) { return archive::looks_like_nar(d); }

Result<MemberList> list_nar(Context& ctx, const BlobPtr& blob, const std::string& what) {
  archive::ReaderOptions opt;
  opt.limits = ctx.options().limits;
  opt.name = what;
  MemberList list;
  auto r = archive::read_nar_memory(blob->bytes(), opt, [&](const archive::Entry& e, archive::MemberStream& ms) -> Result<void> {
    if (ctx.timed_out()) return Error(ErrorCode::kTimeout, kTimeoutComment);
    Member m;
    m.path = e.path.empty() ? "." : e.path;
    m.mode = e.mode;
    m.size = e.size;
    switch (e.type) {
      case archive::EntryType::kFile: m.type = MemberType::kFile; break;
      case archive::EntryType::kDirectory: m.type = MemberType::kDirectory; break;
      case archive::EntryType::kSymlink: m.type = MemberType::kSymlink; break;
      case archive::EntryType::kHardlink: m.type = MemberType::kHardlink; break;
    }
    m.link = e.link_target;
    if (m.type == MemberType::kFile) {
      KMR_ASSIGN_OR_RETURN(ByteVector data, ms.read_all(ctx.options().limits.max_member_bytes));
      m.sha256 = to_hex(sha256(Bytes(data.data(), data.size())));
      m.size = data.size();
      m.content = blob_from_vector(std::move(data));
    }
    list.members.push_back(std::move(m));
    return ok();
  });
  if (!r) {
    if (list.members.empty()) return std::move(r).error();
    list.comments.push_back("NAR reading stopped after " + std::to_string(list.members.size()) +
                            " members: " + r.error().to_string());
  }
  return list;
}

}  // namespace kmr::compare

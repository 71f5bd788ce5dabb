#include "rebuilder/archive/deb.h"

#include <cstring>

namespace kmr::archive {

bool looks_like_ar(Bytes data) { return data.size() >= 8 && std::memcmp(data.data(), "!<arch>\n", 8) == 0; }

namespace {
bool member_is(const std::string& path, std::string_view stem) {
  if (path.rfind(stem, 0) != 0) return false;
  const std::string_view rest = std::string_view(path).substr(stem.size());
  return rest.empty() || rest == ".gz" || rest == ".xz" || rest == ".zst" || rest == ".bz2" || rest == ".lzma";
}
}  // namespace

Result<DebPackage> read_deb(InputStream& in, const ReaderOptions& options, const Visitor* data_visitor) {
  DebPackage deb;
  ReaderOptions outer = options;
  outer.format = Format::kAr;
  int index = 0;
  bool have_control = false;
  KMR_ASSIGN_OR_RETURN(ArchiveStats st, read_archive(in, outer, [&](const Entry& e, MemberStream& s) -> Result<void> {
    const int i = index++;
    if (i == 0) {
      if (e.path != "debian-binary") return malformed(options.name + ": first member is '" + e.path + "', not debian-binary");
      KMR_ASSIGN_OR_RETURN(ByteVector v, s.read_all(64));
      std::string text(v.begin(), v.end());
      if (text.rfind("2.", 0) != 0 || text.back() != '\n') {
        return unsupported(options.name + ": debian-binary is not '2.x'");
      }
      text.pop_back();
      deb.format_version = text;
      return ok();
    }
    if (!e.path.empty() && e.path[0] == '_') return ok();  // _gpgbuilder etc.
    if (member_is(e.path, "control.tar")) {
      if (have_control) return malformed(options.name + ": second control member");
      have_control = true;
      deb.control_member = e.path;
      ReaderOptions o = options;
      o.name = options.name + ": " + e.path;
      o.format = Format::kTar;
      o.limits.max_member_bytes = 64 << 20;
      bool found = false;
      KMR_TRY(read_archive(s, o, [&](const Entry& ce, MemberStream& cs) -> Result<void> {
        if (ce.path != "control" || ce.type != EntryType::kFile) return ok();
        KMR_ASSIGN_OR_RETURN(ByteVector c, cs.read_all(4 << 20));
        KMR_ASSIGN_OR_RETURN(auto paras, parse_deb822(as_string_view(c), o.name + ": control"));
        if (paras.size() != 1) return malformed(o.name + ": control: expected one paragraph");
        deb.control = std::move(paras[0]);
        found = true;
        return ok();
      }));
      if (!found) return malformed(o.name + ": no control file");
      return ok();
    }
    if (member_is(e.path, "data.tar")) {
      if (!have_control) return malformed(options.name + ": data member before control member");
      if (!deb.data_member.empty()) return malformed(options.name + ": second data member");
      deb.data_member = e.path;
      ReaderOptions o = options;
      o.name = options.name + ": " + e.path;
      o.format = Format::kTar;
      static const Visitor kNone = [](const Entry&, MemberStream&) -> Result<void> { return ok(); };
      KMR_ASSIGN_OR_RETURN(deb.data_stats, read_archive(s, o, data_visitor ? *data_visitor : kNone));
      return ok();
    }
    return malformed(options.name + ": unexpected member '" + e.path + "'");
  }));
  (void)st;
  if (deb.format_version.empty()) return malformed(options.name + ": empty ar archive");
  if (!have_control) return malformed(options.name + ": no control.tar member");
  if (deb.data_member.empty()) return malformed(options.name + ": no data.tar member");
  return deb;
}

}  // namespace kmr::archive

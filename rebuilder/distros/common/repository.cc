#include "rebuilder/distros/common/repository.h"

#include <algorithm>

#include "rebuilder/archive/openpgp.h"
#include "rebuilder/base/bytes.h"
#include "rebuilder/base/file.h"

namespace kmr::distros {

Result<void> verify_detached_data(const std::string& keyring, const std::string& what, std::string_view data,
                                  std::string_view sig) {
  KMR_ASSIGN_OR_RETURN(TempDir tmp, TempDir::create("kmr-repo"));
  KMR_TRY(write_file_atomic(tmp.path() + "/data", as_bytes(data)));
  KMR_TRY(write_file_atomic(tmp.path() + "/data.sig", as_bytes(sig)));
  KMR_ASSIGN_OR_RETURN(archive::PgpResult v, archive::verify_detached(keyring, tmp.path() + "/data.sig", tmp.path() + "/data"));
  if (!v.valid) return Error(ErrorCode::kVerificationFailed, what + ": repository signature does not verify: " + v.output);
  return ok();
}

bool lower_hex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string url_dir(const std::string& url) { return url.substr(0, url.rfind('/') + 1); }

std::string with_slash(const std::string& url) { return url.empty() || url.back() == '/' ? url : url + "/"; }

}  // namespace kmr::distros

#include "rebuilder/archive/openpgp.h"

#include <chrono>

#include "rebuilder/base/subprocess.h"

namespace kmr::archive {

namespace {
Result<PgpResult> run_verifier(const std::string& tool, const std::vector<std::string>& argv) {
  SubprocessOptions o;
  o.timeout = std::chrono::seconds(60);
  o.output_cap = 1 << 20;
  o.merge_stderr = true;
  KMR_ASSIGN_OR_RETURN(SubprocessResult r, run_subprocess(argv, o));
  if (r.timed_out || r.signaled) return io_error(tool + ": " + r.describe());
  PgpResult out;
  out.verifier = tool;
  out.valid = r.exit_code == 0;
  out.output = r.out;
  return out;
}
}  // namespace

Result<PgpResult> verify_detached(const std::string& keyring_path, const std::string& sig_path,
                                  const std::string& data_path) {
  if (have_program("sqv")) {
    return run_verifier("sqv", {"sqv", sig_path, data_path, "--keyring", keyring_path});
  }
  if (have_program("gpgv")) {
    return run_verifier("gpgv", {"gpgv", "--keyring", keyring_path, sig_path, data_path});
  }
  return not_found("no OpenPGP verifier (sqv or gpgv) installed");
}

Result<PgpResult> verify_clearsigned(const std::string& keyring_path, const std::string& path) {
  if (!have_program("gpgv")) return not_found("gpgv not installed");
  return run_verifier("gpgv", {"gpgv", "--keyring", keyring_path, path});
}

}  // namespace kmr::archive

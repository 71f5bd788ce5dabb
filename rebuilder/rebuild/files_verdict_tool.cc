// Test tool: the files tier of shipped packages against rebuilt ones, with
// the shipped module signature check and the image masks, as kmr rebuild
// reports them (without building). Used on real kernel packages built twice.
//   files_verdict_tool SHIPPED... --rebuilt REBUILT...
// Prints {"files","differing","signatures"... ,"masked","mask_notes"}; exit 0,
// or 2 when a package cannot be read.
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "rebuilder/rebuild/verdict.h"

int main(int argc, char** argv) {
  using namespace kmr::build;
  std::vector<std::string> shipped, rebuilt;
  bool after = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--rebuilt") {
      after = true;
    } else {
      (after ? rebuilt : shipped).push_back(a);
    }
  }
  if (shipped.empty() || rebuilt.empty()) {
    std::fprintf(stderr, "usage: files_verdict_tool SHIPPED... --rebuilt REBUILT...\n");
    return 2;
  }
  std::vector<Artifact> s, r;
  for (const auto* list : {&shipped, &rebuilt}) {
    for (const auto& f : *list) {
      auto a = read_artifact(f);
      if (!a) {
        std::fprintf(stderr, "%s\n", a.error().to_string().c_str());
        return 2;
      }
      (list == &shipped ? s : r).push_back(std::move(*a));
    }
  }
  std::vector<const Artifact*> sp, rp;
  for (const auto& a : s) sp.push_back(&a);
  for (const auto& a : r) rp.push_back(&a);
  FilesReport files = files_verdict(sp, rp);
  const std::string before = std::string(files_tier_name(files.tier));
  const SignatureCheck sig = require_verified_signatures(files, sp);
  nlohmann::json j;
  j["files"] = files_tier_name(files.tier);
  j["files_before_signature_check"] = before;
  j["differing"] = files.differing;
  add_content_root_json(j, true, content_root_verdict(sp, rp, std::nullopt), sig);
  add_masked_json(j, files);
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

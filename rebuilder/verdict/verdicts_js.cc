// Writes the verdict vocabulary and the one reproducibility rule as an ES
// module (javascript_module()) to stdout: the web UI's tests load exactly
// the text kmrd serves at /ui/verdicts.js.
#include <cstdio>

#include "rebuilder/verdict/rule.h"

int main() {
  const std::string js = kmr::verdict::javascript_module();
  return std::fwrite(js.data(), 1, js.size(), stdout) == js.size() && std::fflush(stdout) == 0 ? 0 : 1;
}

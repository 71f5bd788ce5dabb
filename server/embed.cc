// Build tool: turns files into a C++ source defining an array of EmbeddedFile.
// Usage: embed OUT.cc SYMBOL STRIP_PREFIX FILE...
// Each file is stored under its path with STRIP_PREFIX removed.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: embed OUT.cc SYMBOL STRIP_PREFIX FILE...\n");
    return 2;
  }
  std::ofstream out(argv[1], std::ios::binary);
  const std::string symbol = argv[2];
  const std::string prefix = argv[3];
  out << "#include \"server/embedded.h\"\n\nnamespace kmr::server {\n\n";
  out << "const EmbeddedFile " << symbol << "[] = {\n";
  int count = 0;
  for (int i = 4; i < argc; ++i) {
    std::string path = argv[i];
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "embed: cannot read %s\n", path.c_str());
      return 2;
    }
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string name = path;
    auto pos = name.find(prefix);
    if (!prefix.empty() && pos != std::string::npos) name = name.substr(pos + prefix.size());
    out << "  {\"" << name << "\", std::string_view(\"";
    static const char* hex = "0123456789abcdef";
    for (unsigned char c : data) {
      out << "\\x" << hex[c >> 4] << hex[c & 15];
    }
    out << "\", " << data.size() << ")},\n";
    ++count;
  }
  out << "  {\"\", std::string_view()},\n};\n";
  out << "const std::size_t " << symbol << "Count = " << count << ";\n\n}  // namespace kmr::server\n";
  return out ? 0 : 2;
}

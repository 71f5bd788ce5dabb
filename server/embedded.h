#pragma once

#include <cstddef>
#include <string_view>

namespace kmr::server {

// A file embedded at build time by //server:embed (see BUILD.bazel genrules).
struct EmbeddedFile {
  std::string_view path;
  std::string_view data;
};

// schema/migrations/*.up.sql, sorted by name (NNNN_name.up.sql).
extern const EmbeddedFile kMigrations[];
extern const std::size_t kMigrationsCount;

// schema/openapi.json
extern const EmbeddedFile kOpenApi[];
extern const std::size_t kOpenApiCount;

}  // namespace kmr::server

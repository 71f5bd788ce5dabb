#pragma once

// kmrd's request and response are rebuilder/net's socket-free types (shared with
// the attestation service's routes): the Beast layer converts to and from them,
// so every handler is a pure function testable without a network. Both of kmrd's
// APIs answer errors with net::json_error's one shape.

#include "rebuilder/net/http_types.h"

namespace kmr::server {

using net::HttpRequest;
using net::HttpResponse;
using net::internal_error_response;
using net::json_error;

}  // namespace kmr::server

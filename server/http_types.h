#pragma once

// kmrd's request and response are rebuilder/net's socket-free types (shared with
// the attestation service's routes): the Beast layer converts to and from them,
// so every handler is a pure function testable without a network.

#include "rebuilder/net/http_types.h"

namespace kmr::server {

using net::HttpRequest;
using net::HttpResponse;

}  // namespace kmr::server

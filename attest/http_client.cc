#include "attest/http_client.h"

#include "rebuilder/net/http_client.h"
#include "rebuilder/net/url.h"

namespace kmr::attest {

std::string resolve_url(const std::string& base, const std::string& ref) {
  std::string dir = base;
  while (!dir.empty() && dir.back() == '/') dir.pop_back();
  return net::resolve_url_string(dir + "/", ref).value_or(ref);
}

Result<HttpGetResult> http_get(const std::string& url, std::chrono::milliseconds timeout, std::size_t max_body) {
  KMR_ASSIGN_OR_RETURN(net::HttpClient client, net::HttpClient::create(net::options_with_deadline(timeout)));
  KMR_ASSIGN_OR_RETURN(net::Response r, client.request(net::Request{"GET", url}, max_body));
  HttpGetResult out;
  out.status = r.status;
  out.content_type = r.header("content-type");
  out.body = std::move(r.body);
  return out;
}

}  // namespace kmr::attest

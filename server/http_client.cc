#include "server/http_client.h"

#include <algorithm>

#include "rebuilder/base/text.h"
#include "rebuilder/net/http_client.h"
#include "rebuilder/net/url.h"

namespace kmr::server {

namespace {

Result<net::HttpClient> client_for(std::chrono::milliseconds timeout) {
  return net::HttpClient::create(net::options_with_deadline(timeout));
}

}  // namespace

Result<ClientResponse> http_request(const std::string& method, const std::string& url,
                                    const std::vector<std::pair<std::string, std::string>>& headers,
                                    const std::string& body, std::chrono::milliseconds timeout,
                                    std::uint64_t max_body) {
  KMR_ASSIGN_OR_RETURN(net::HttpClient client, client_for(timeout));
  net::Request req{method, url, headers, body};
  bool has_type = std::any_of(headers.begin(), headers.end(), [](const auto& h) {
    return ascii_lower(h.first) == "content-type";
  });
  if ((method == "POST" || method == "PUT") && !has_type) req.headers.emplace_back("Content-Type", "application/json");
  KMR_ASSIGN_OR_RETURN(net::Response res, client.request(req, max_body));
  ClientResponse out;
  out.status = res.status;
  out.content_type = res.header("content-type");
  for (auto& [name, value] : res.headers) {
    out.headers.emplace_back(ascii_lower(name), std::move(value));
  }
  out.body = std::move(res.body);
  return out;
}

Result<std::string> file_url_path(const std::string& url) { return net::file_url_path(url); }

std::string resolve_relative(const std::string& base, const std::string& ref) { return net::resolve_url_or_keep(base, ref); }

Result<std::string> fetch_url(const std::string& url, std::chrono::milliseconds timeout, std::uint64_t max_body) {
  return net::fetch_url(url, timeout, max_body);
}

Result<Digest256> fetch_url_to_file(const std::string& url, const std::string& path, std::chrono::milliseconds timeout,
                                    std::uint64_t max_body) {
  KMR_ASSIGN_OR_RETURN(net::HttpClient client, client_for(timeout));
  KMR_ASSIGN_OR_RETURN(net::Download d, client.download(url, path, net::DownloadOptions{max_body}));
  return d.sha256;
}

}  // namespace kmr::server

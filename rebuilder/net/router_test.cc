#include "rebuilder/net/router.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace kmr::net {
namespace {

HttpRequest request(std::string method, std::string target) {
  HttpRequest r;
  r.method = std::move(method);
  r.target = std::move(target);
  return r;
}

std::string error_code(const HttpResponse& r) { return nlohmann::json::parse(r.body)["error"]["code"]; }

HttpResponse text(std::string body) {
  HttpResponse r;
  r.body = std::move(body);
  return r;
}

TEST(RouterTest, FirstMatchInOrderWithLabelsAndRest) {
  Router router;
  router.exact("/a", "/a", [](const RouteRequest&) { return text("exact"); })
      .prefix("/a/", "/a/*", [](const RouteRequest& r) { return text("prefix " + std::string(r.rest)); })
      .match([](std::string_view p) { return p.size() > 5; }, "", [](const RouteRequest&) { return text("long"); })
      .prefix("/", "/any", [](const RouteRequest& r) { return text("any " + r.path); });
  EXPECT_EQ(router.handle(request("GET", "/a"))->body, "exact");
  EXPECT_EQ(router.handle(request("GET", "/a"))->route, "/a");
  EXPECT_EQ(router.handle(request("GET", "/a/b/c"))->body, "prefix b/c");
  EXPECT_EQ(router.handle(request("GET", "/a/b/c"))->route, "/a/*");
  auto unlabelled = router.handle(request("GET", "/long-path"));
  EXPECT_EQ(unlabelled->body, "long");
  EXPECT_EQ(unlabelled->route, "other");  // an empty label leaves the handler's
  EXPECT_EQ(router.handle(request("GET", "/b?x=1"))->body, "any /b");
}

TEST(RouterTest, UnmatchedIsNullopt) {
  Router router;
  router.exact("/a", "/a", [](const RouteRequest&) { return text("a"); });
  EXPECT_FALSE(router.handle(request("GET", "/b")).has_value());
  EXPECT_FALSE(router.handle(request("GET", "/a/")).has_value());
}

TEST(RouterTest, GetRoutesRefuseOtherMethodsAnyRoutesSeeThem) {
  Router router;
  router.exact("/get", "/get", [](const RouteRequest&) { return text("got"); })
      .exact("/any", "/any", [](const RouteRequest& r) { return text(r.http.method); }, Router::Methods::kAny);
  EXPECT_EQ(router.handle(request("HEAD", "/get"))->body, "got");  // the HTTP layer drops the body
  auto post = router.handle(request("POST", "/get"));
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(error_code(*post), "method_not_allowed");
  EXPECT_EQ(nlohmann::json::parse(post->body)["error"]["message"], "use GET for /get");
  EXPECT_EQ(router.handle(request("DELETE", "/any"))->body, "DELETE");
}

TEST(RouterTest, HostileTargetsAreRefusedBeforeRouting) {
  Router router;
  int called = 0;
  router.prefix("/", "/", [&](const RouteRequest&) {
    ++called;
    return text("");
  });
  struct Case {
    std::string target, code;
  } cases[] = {
      {"", "bad_target"},
      {"relative", "bad_target"},
      {"http://host/x", "bad_target"},
      {"/" + std::string(kMaxTarget, 'a'), "bad_target"},
      {"/a/../b", "bad_path"},
      {"/a//b", "bad_path"},
      {"/a\\b", "bad_path"},
      {"/a%2fb", "bad_path"},
      {"/a b", "bad_path"},
      {std::string("/a\0b", 4), "bad_path"},
      {"/a?x=%zz", "bad_query"},
      {"/a?x=%0", "bad_query"},
      {"/a?x=%00", "bad_query"},
      {"/a?%=1", "bad_query"},
  };
  for (const auto& c : cases) {
    auto r = router.handle(request("GET", c.target));
    ASSERT_TRUE(r.has_value()) << c.target;
    EXPECT_EQ(r->status, 400) << c.target;
    EXPECT_EQ(error_code(*r), c.code) << c.target;
  }
  EXPECT_EQ(called, 0);
}

TEST(RouterTest, QueryIsDecodedAndFirstParamWins) {
  auto parsed = parse_target("/p?a=1&b=x%20y+z&&a=2&flag&=v");
  auto* t = std::get_if<Target>(&parsed);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->path, "/p");
  EXPECT_EQ(t->query.count("a"), 2u);
  EXPECT_EQ(*first_param(t->query, "a"), "1");
  EXPECT_EQ(*first_param(t->query, "b"), "x y z");
  EXPECT_EQ(*first_param(t->query, "flag"), "");
  EXPECT_EQ(*first_param(t->query, ""), "v");
  EXPECT_EQ(first_param(t->query, "c"), nullptr);
  EXPECT_EQ(url_decode("a+b", false), "a+b");
  EXPECT_EQ(url_decode("%41%4a", true), "AJ");
}

TEST(RouterTest, ErrorShapeAndEtags) {
  auto e = json_error(404, "not_found", "no such thing");
  EXPECT_EQ(e.status, 404);
  EXPECT_EQ(e.body, R"({"error":{"code":"not_found","message":"no such thing"}})");
  EXPECT_EQ(e.content_type, "application/json");
  // A message echoing request bytes: invalid UTF-8 becomes U+FFFD, never an exception.
  auto echoed = json_error(400, "bad_query", "no \xFF here");
  EXPECT_EQ(echoed.body, "{\"error\":{\"code\":\"bad_query\",\"message\":\"no \xEF\xBF\xBD here\"}}");
  auto busy = internal_error_response(Error(ErrorCode::kDbBusy, "SELECT x FROM y"), "test");
  EXPECT_EQ(busy.status, 503);
  EXPECT_EQ(busy.body.find("SELECT"), std::string::npos);
  auto internal = internal_error_response(io_error("/secret/path: EIO"), "test");
  EXPECT_EQ(internal.status, 500);
  EXPECT_EQ(internal.body.find("/secret"), std::string::npos);
  EXPECT_TRUE(etag_matches("\"abc\"", "\"abc\""));
  EXPECT_TRUE(etag_matches("\"x\", \"abc\"", "\"abc\""));
  EXPECT_TRUE(etag_matches("*", "\"abc\""));
  EXPECT_FALSE(etag_matches("", "\"abc\""));
  EXPECT_FALSE(etag_matches("\"abd\"", "\"abc\""));
}

}  // namespace
}  // namespace kmr::net

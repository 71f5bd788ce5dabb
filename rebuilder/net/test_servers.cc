#include "rebuilder/net/test_servers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "rebuilder/base/file.h"

namespace kmr::net::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

Result<std::pair<int, std::uint16_t>> listen_local() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return io_error(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 16) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int e = errno;
    ::close(fd);
    return io_error(std::string("listen: ") + std::strerror(e));
  }
  return std::make_pair(fd, ntohs(addr.sin_port));
}

int connect_to(const std::string& host, const std::string& port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return -1;
  int fd = -1;
  for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(res);
  return fd;
}

void send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Waits for `fd` to be readable; false on stop, timeout or error.
bool wait_readable(int fd, int stop_fd, milliseconds timeout) {
  pollfd fds[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
  int r = ::poll(fds, 2, static_cast<int>(timeout.count()));
  return r > 0 && fds[1].revents == 0 && fds[0].revents != 0;
}

// Reads a request head, and a Content-Length body when `with_body`; what
// follows the head is left in `rest` when `with_body` is false.
std::string read_head(int fd, int stop_fd, bool with_body, std::string* rest = nullptr) {
  std::string data;
  char buf[16384];
  std::size_t need = std::string::npos;
  while (data.size() < (1 << 20)) {
    auto end = data.find("\r\n\r\n");
    if (end != std::string::npos && need == std::string::npos) {
      need = end + 4;
      if (with_body) {
        std::string lower = data.substr(0, end);
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
        auto cl = lower.find("\r\ncontent-length:");
        if (cl != std::string::npos) need += std::strtoull(lower.c_str() + cl + 17, nullptr, 10);
      }
    }
    if (need != std::string::npos && data.size() >= need) break;
    if (!wait_readable(fd, stop_fd, milliseconds(10000))) break;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    data.append(buf, static_cast<std::size_t>(n));
  }
  if (rest != nullptr && need != std::string::npos && data.size() > need) {
    *rest = data.substr(need);
    data.resize(need);
  }
  return data;
}

// Lets the peer read everything before the socket goes (no RST).
void close_gently(int fd) {
  ::shutdown(fd, SHUT_WR);
  char buf[4096];
  auto until = Clock::now() + milliseconds(500);
  while (Clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    if (::recv(fd, buf, sizeof buf, 0) <= 0) break;
  }
  ::close(fd);
}

// Copies both ways until both sides are closed, or stop.
void pump(int a, int b, int stop_fd) {
  bool a_open = true;
  bool b_open = true;
  char buf[65536];
  while (a_open || b_open) {
    pollfd fds[3] = {{a, static_cast<short>(a_open ? POLLIN : 0), 0}, {b, static_cast<short>(b_open ? POLLIN : 0), 0}, {stop_fd, POLLIN, 0}};
    if (::poll(fds, 3, 30000) <= 0 || fds[2].revents != 0) return;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents == 0) continue;
      int from = i == 0 ? a : b;
      int to = i == 0 ? b : a;
      ssize_t n = ::recv(from, buf, sizeof buf, 0);
      if (n <= 0) {
        ::shutdown(to, SHUT_WR);
        (i == 0 ? a_open : b_open) = false;
        continue;
      }
      send_all(to, std::string_view(buf, static_cast<std::size_t>(n)));
    }
  }
}

// "host:port" or "[v6]:port".
std::pair<std::string, std::string> split_host_port(const std::string& authority) {
  if (authority.starts_with("[")) {
    auto close = authority.find(']');
    if (close == std::string::npos) return {"", ""};
    return {authority.substr(1, close - 1), close + 2 <= authority.size() ? authority.substr(close + 2) : "80"};
  }
  auto colon = authority.rfind(':');
  if (colon == std::string::npos) return {authority, "80"};
  return {authority.substr(0, colon), authority.substr(colon + 1)};
}

}  // namespace

Result<std::uint16_t> free_port() {
  KMR_ASSIGN_OR_RETURN(auto l, listen_local());
  ::close(l.first);
  return l.second;
}

bool wait_for_port(std::uint16_t port, milliseconds timeout) {
  auto until = Clock::now() + timeout;
  while (Clock::now() < until) {
    int fd = connect_to("127.0.0.1", std::to_string(port));
    if (fd >= 0) {
      ::close(fd);
      return true;
    }
    ::usleep(50000);
  }
  return false;
}

// --- Nginx ---------------------------------------------------------------

Result<std::unique_ptr<Nginx>> Nginx::start(const std::string& dir, const std::string& http_block,
                                            const std::vector<std::uint16_t>& ports) {
  for (const char* sub : {"/tmp", "/logs"}) ::mkdir((dir + sub).c_str(), 0755);
  std::ostringstream conf;
  if (::geteuid() == 0) conf << "user root;\n";  // workers read the test's files
  conf << "worker_processes 1;\n"
       << "pid " << dir << "/nginx.pid;\n"
       << "error_log " << dir << "/error.log info;\n"
       << "events { worker_connections 64; }\n"
       << "http {\n"
       << "  access_log " << dir << "/logs/access.log;\n"
       << "  client_body_temp_path " << dir << "/tmp/body;\n"
       << "  proxy_temp_path " << dir << "/tmp/proxy;\n"
       << "  fastcgi_temp_path " << dir << "/tmp/fastcgi;\n"
       << "  uwsgi_temp_path " << dir << "/tmp/uwsgi;\n"
       << "  scgi_temp_path " << dir << "/tmp/scgi;\n"
       << http_block << "\n}\n";
  std::string conf_path = dir + "/nginx.conf";
  KMR_TRY(write_file_atomic(conf_path, as_bytes(conf.str())));
  std::string prefix = dir + "/";
  std::string error_log = dir + "/error.log";
  std::string out_log = dir + "/stderr.log";
  pid_t pid = ::fork();
  if (pid < 0) return io_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::setpgid(0, 0);
    int out = ::open(out_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out >= 0) {
      ::dup2(out, 1);
      ::dup2(out, 2);
    }
    ::execlp("nginx", "nginx", "-p", prefix.c_str(), "-c", conf_path.c_str(), "-e", error_log.c_str(), "-g", "daemon off;",
             static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::unique_ptr<Nginx> nginx(new Nginx(pid, dir));
  for (std::uint16_t port : ports) {
    auto until = Clock::now() + milliseconds(15000);
    bool up = false;
    while (!up && Clock::now() < until) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        nginx->pid_ = -1;
        std::string out = read_text_file(out_log, 1 << 16).value_or("");
        return io_error("nginx exited at start: " + out + nginx->error_log());
      }
      up = wait_for_port(port, milliseconds(100));
    }
    if (!up) return io_error("nginx does not listen on port " + std::to_string(port) + ": " + nginx->error_log());
  }
  return nginx;
}

Nginx::~Nginx() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  auto until = Clock::now() + milliseconds(5000);
  int status = 0;
  while (Clock::now() < until) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) return;
    ::usleep(20000);
  }
  ::kill(-pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
}

std::string Nginx::error_log() const {
  auto text = read_text_file(dir_ + "/error.log", 1 << 20).value_or("");
  return text.size() > 4000 ? text.substr(text.size() - 4000) : text;
}

// --- LoopbackServer ---------------------------------------------------------

Result<void> LoopbackServer::start_listening() {
  KMR_ASSIGN_OR_RETURN(auto l, listen_local());
  listen_fd_ = l.first;
  port_ = l.second;
  if (::pipe2(stop_pipe_, O_CLOEXEC) != 0) return io_error("pipe");
  thread_ = std::thread([this] { serve(); });
  return ok();
}

void LoopbackServer::stop() {
  if (stop_pipe_[1] >= 0 && thread_.joinable()) {
    (void)!::write(stop_pipe_[1], "x", 1);
    thread_.join();
  }
}

LoopbackServer::~LoopbackServer() {
  stop();
  for (int fd : {listen_fd_, stop_pipe_[0], stop_pipe_[1]}) {
    if (fd >= 0) ::close(fd);
  }
}

void LoopbackServer::serve() {
  for (;;) {
    if (!wait_readable(listen_fd_, stop_pipe_[0], milliseconds(3600 * 1000))) return;
    int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c >= 0) on_connection(c);
  }
}

// --- ScriptedServer --------------------------------------------------------

Result<std::unique_ptr<ScriptedServer>> ScriptedServer::start(Handler handler, bool read_request) {
  std::unique_ptr<ScriptedServer> s(new ScriptedServer(std::move(handler), read_request));
  KMR_TRY(s->start_listening());
  return s;
}

ScriptedServer::~ScriptedServer() {
  stop();
  for (int fd : stalled_) ::close(fd);
}

std::vector<std::string> ScriptedServer::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

void ScriptedServer::on_connection(int c) {
  std::string request = read_request_ ? read_head(c, stop_fd(), true) : std::string();
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(request);
  }
  ScriptedReply reply = handler_(request);
  send_all(c, reply.bytes);
  if (reply.stall) {
    std::lock_guard<std::mutex> lock(mu_);
    stalled_.push_back(c);
    return;
  }
  close_gently(c);
}

// --- TestProxy -------------------------------------------------------------

Result<std::unique_ptr<TestProxy>> TestProxy::start(std::vector<std::uint16_t> deny_ports) {
  std::unique_ptr<TestProxy> p(new TestProxy(std::move(deny_ports)));
  KMR_TRY(p->start_listening());
  return p;
}

TestProxy::~TestProxy() { stop(); }

std::vector<std::string> TestProxy::request_lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_;
}

void TestProxy::on_connection(int client) {
  std::string rest;
  std::string head = read_head(client, stop_fd(), false, &rest);
  std::string line = head.substr(0, head.find("\r\n"));
  {
    std::lock_guard<std::mutex> lock(mu_);
    lines_.push_back(line);
  }
  std::istringstream words(line);
  std::string method, target, version;
  words >> method >> target >> version;
  std::string authority;
  std::string forward;
  if (method == "CONNECT") {
    authority = target;
  } else if (target.starts_with("http://")) {
    auto slash = target.find('/', 7);
    authority = target.substr(7, slash == std::string::npos ? std::string::npos : slash - 7);
    std::string path = slash == std::string::npos ? "/" : target.substr(slash);
    forward = method + " " + path + " " + version + head.substr(line.size()) + rest;
  } else {
    send_all(client, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    close_gently(client);
    return;
  }
  auto [host, port] = split_host_port(authority);
  bool denied = std::find(deny_.begin(), deny_.end(), static_cast<std::uint16_t>(std::atoi(port.c_str()))) != deny_.end();
  int upstream = denied ? -1 : connect_to(host, port);
  if (upstream < 0) {
    send_all(client, denied ? "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
                            : "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
    close_gently(client);
    return;
  }
  if (method == "CONNECT") {
    send_all(client, "HTTP/1.1 200 Connection established\r\n\r\n");
    forward = rest;
  }
  send_all(upstream, forward);
  pump(client, upstream, stop_fd());
  ::close(upstream);
  ::close(client);
}

}  // namespace kmr::net::testing

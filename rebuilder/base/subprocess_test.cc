#include "rebuilder/base/subprocess.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>

#include "rebuilder/base/file.h"
#include "rebuilder/base/require.h"

namespace kmr {
namespace {

using namespace std::chrono_literals;

TEST(Subprocess, CapturesOutputAndExitCode) {
  auto r = run_subprocess({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_FALSE(r->success());
  EXPECT_EQ(r->describe(), "exit 3");
}

TEST(Subprocess, FeedsStdin) {
  SubprocessOptions o;
  o.stdin_data = std::string(200000, 'x');
  auto r = run_subprocess({"wc", "-c"}, o);
  ASSERT_TRUE(r);
  EXPECT_EQ(std::stoul(r->out), 200000u);
}

TEST(Subprocess, MissingProgramIsAnError) {
  auto r = run_subprocess({"/nonexistent/program"});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("cannot run /nonexistent/program"), std::string::npos);
}

TEST(Subprocess, TimeoutKillsWholeProcessGroup) {
  auto dir = TempDir::create();
  ASSERT_TRUE(dir);
  const std::string pidfile = dir->path() + "/grandchild.pid";
  SubprocessOptions o;
  o.timeout = 300ms;
  o.kill_grace = 200ms;
  // The grandchild ignores SIGTERM and would outlive a naive kill(pid).
  auto r = run_subprocess(
      {"sh", "-c", "sh -c 'trap \"\" TERM; echo $$ > " + pidfile + "; sleep 30' & sleep 30"}, o);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->timed_out);
  EXPECT_FALSE(r->success());
  EXPECT_LT(r->elapsed, 5s);
  std::ifstream in(pidfile);
  pid_t gc = 0;
  in >> gc;
  ASSERT_GT(gc, 0);
  // Give the kernel a moment to reap; the process must be gone.
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = ::kill(gc, 0) != 0;
    if (!gone) {
      std::ifstream stat("/proc/" + std::to_string(gc) + "/stat");
      std::string s;
      std::getline(stat, s);
      gone = s.find(") Z") != std::string::npos;  // zombie awaiting init
    }
    if (!gone) ::usleep(20000);
  }
  EXPECT_TRUE(gone) << "grandchild " << gc << " survived the timeout";
}

TEST(Subprocess, OutputCapKeepsHeadAndTail) {
  SubprocessOptions o;
  o.output_cap = 100;
  auto r = run_subprocess({"sh", "-c", "echo HEAD; seq 1 100000; echo TAIL"}, o);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->out_truncated);
  EXPECT_EQ(r->out.rfind("HEAD\n", 0), 0u);
  EXPECT_NE(r->out.find("bytes truncated"), std::string::npos);
  EXPECT_EQ(r->out.substr(r->out.size() - 5), "TAIL\n");
  EXPECT_LT(r->out.size(), 200u);
}

TEST(CappedBuffer, ExactCapIsNotTruncated) {
  CappedBuffer b(4);
  b.append("abcd", 4);
  EXPECT_FALSE(b.truncated());
  EXPECT_EQ(b.take(), "abcd");
}

// Descriptors the caller holds open without O_CLOEXEC (as a server's
// listening socket or a leaked file would be) never reach the child.
TEST(Subprocess, ClosesEveryInheritedDescriptor) {
  const int leaked = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC
  int p[2];
  ASSERT_EQ(::pipe(p), 0);  // no O_CLOEXEC either
  ASSERT_GE(leaked, 0);
  auto r = run_subprocess({"ls", "/proc/self/fd"});
  ::close(leaked);
  ::close(p[0]);
  ::close(p[1]);
  ASSERT_TRUE(r) << r.error().to_string();
  // 0-2 and the directory ls itself opens to list the descriptors.
  EXPECT_EQ(r->out, "0\n1\n2\n3\n");
}

TEST(Subprocess, PassesOnlyTheNamedDescriptors) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ASSERT_EQ(::write(p[1], "hello", 5), 5);
  ::close(p[1]);
  const int other = ::open("/dev/null", O_RDONLY);
  SubprocessOptions o;
  o.pass_fds = {p[0]};
  auto r = run_subprocess({"sh", "-c", "cat <&3; echo; ls /proc/self/fd | tr '\\n' ' '"}, o);
  ::close(p[0]);
  ::close(other);
  ASSERT_TRUE(r) << r.error().to_string();
  // 3 is the passed pipe (still open in sh, so ls inherits it), 4 the
  // directory ls opens; the other descriptor is not there.
  EXPECT_EQ(r->out, "hello\n0 1 2 3 4 ");
}

TEST(Subprocess, DropsToAnotherUserWithoutCapabilities) {
  if (::geteuid() != 0) KMR_SKIP_OR_FAIL("changing the uid needs root");
  SubprocessOptions o;
  o.run_as = SubprocessOptions::Credentials{65534, 65534};
  auto r = run_subprocess({"sh", "-c", "id -u; id -g; id -G; grep -E '^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status"}, o);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->out,
            "65534\n65534\n65534\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
            "CapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n");
}

TEST(Subprocess, WatchdogKillsWithItsReason) {
  SubprocessOptions o;
  int calls = 0;
  bool killed = false;
  o.watchdog_interval = 50ms;
  o.watchdog = [&] { return ++calls >= 3 ? std::string("disk limit exceeded") : std::string(); };
  o.on_kill = [&] { killed = true; };
  auto r = run_subprocess({"sleep", "30"}, o);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->success());
  EXPECT_EQ(r->killed_reason, "disk limit exceeded");
  EXPECT_EQ(r->describe(), "disk limit exceeded");
  EXPECT_TRUE(killed);
  EXPECT_LT(r->elapsed, 5s);
}

TEST(Subprocess, CgroupJoinFailureIsAnError) {
  SubprocessOptions o;
  o.join_cgroup_procs = {"/nonexistent/cgroup.procs"};
  auto r = run_subprocess({"true"}, o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "cannot run true: joining the cgroup: No such file or directory");
}

TEST(Subprocess, HaveProgram) {
  EXPECT_TRUE(have_program("sh"));
  EXPECT_FALSE(have_program("kmr-surely-not-a-program"));
}

}  // namespace
}  // namespace kmr

#include "rebuilder/base/subprocess.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <string>

#include "rebuilder/base/file.h"

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

TEST(Subprocess, HaveProgram) {
  EXPECT_TRUE(have_program("sh"));
  EXPECT_FALSE(have_program("kmr-surely-not-a-program"));
}

}  // namespace
}  // namespace kmr

#include "rebuilder/buildenv/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

namespace kmr::build {
namespace {

#if defined(__x86_64__)
constexpr unsigned kArch = AUDIT_ARCH_X86_64;
constexpr unsigned kX32Bit = 0x40000000u;  // __X32_SYSCALL_BIT
#elif defined(__aarch64__)
constexpr unsigned kArch = AUDIT_ARCH_AARCH64;
constexpr unsigned kX32Bit = 0;
#else
#error "sandbox seccomp filter: unsupported architecture"
#endif

struct Denied {
  const char* name;
  long nr;
};

#define KMR_SYS(n) {#n, SYS_##n}
const Denied kDenied[] = {
    KMR_SYS(keyctl), KMR_SYS(add_key), KMR_SYS(request_key), KMR_SYS(ptrace), KMR_SYS(process_vm_readv),
    KMR_SYS(process_vm_writev), KMR_SYS(kexec_load), KMR_SYS(kexec_file_load), KMR_SYS(init_module),
    KMR_SYS(finit_module), KMR_SYS(delete_module), KMR_SYS(bpf), KMR_SYS(perf_event_open), KMR_SYS(mount),
    KMR_SYS(umount2), KMR_SYS(pivot_root), KMR_SYS(chroot), KMR_SYS(setns), KMR_SYS(swapon), KMR_SYS(swapoff),
    KMR_SYS(reboot), KMR_SYS(settimeofday), KMR_SYS(clock_settime), KMR_SYS(adjtimex), KMR_SYS(clock_adjtime),
    KMR_SYS(syslog), KMR_SYS(acct), KMR_SYS(quotactl), KMR_SYS(userfaultfd), KMR_SYS(open_by_handle_at),
    KMR_SYS(vhangup), KMR_SYS(fsopen), KMR_SYS(fsconfig), KMR_SYS(fsmount), KMR_SYS(fspick),
    KMR_SYS(move_mount), KMR_SYS(open_tree), KMR_SYS(io_uring_setup), KMR_SYS(io_uring_enter),
    KMR_SYS(io_uring_register),
#ifdef SYS_mount_setattr
    KMR_SYS(mount_setattr),
#endif
#ifdef SYS_quotactl_fd
    KMR_SYS(quotactl_fd),
#endif
#if defined(__x86_64__)
    KMR_SYS(iopl), KMR_SYS(ioperm), KMR_SYS(uselib),
#endif
};
#undef KMR_SYS

constexpr unsigned kRetAllow = SECCOMP_RET_ALLOW;
constexpr unsigned kRetEperm = SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA);
constexpr unsigned kRetEnosys = SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA);
constexpr unsigned kNrOff = offsetof(seccomp_data, nr);
constexpr unsigned kArchOff = offsetof(seccomp_data, arch);
// Low 32 bits of an argument (little-endian layout of the u64).
constexpr unsigned arg_lo(int i) { return offsetof(seccomp_data, args) + 8u * static_cast<unsigned>(i); }

sock_filter stmt(unsigned short code, unsigned k) { return BPF_STMT(code, k); }
sock_filter jump(unsigned short code, unsigned k, unsigned char jt, unsigned char jf) {
  return BPF_JUMP(code, k, jt, jf);
}

// nr == `nr` and (arg `arg` & `mask`) != 0 -> EPERM, else allow. A holds nr.
void deny_flag(std::vector<sock_filter>& p, long nr, int arg, unsigned mask) {
  p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(nr), 0, 4));
  p.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, arg_lo(arg)));
  p.push_back(jump(BPF_JMP | BPF_JSET | BPF_K, mask, 0, 1));
  p.push_back(stmt(BPF_RET | BPF_K, kRetEperm));
  p.push_back(stmt(BPF_RET | BPF_K, kRetAllow));
}

// nr == `nr` and arg `arg` is one of `values` -> EPERM (or allow when
// `allow_listed`), else the opposite. A holds nr.
void match_values(std::vector<sock_filter>& p, long nr, int arg, const std::vector<unsigned>& values, bool allow_listed) {
  const auto n = static_cast<unsigned char>(values.size());
  p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(nr), 0, static_cast<unsigned char>(n + 3)));
  p.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, arg_lo(arg)));
  for (unsigned char i = 0; i < n; ++i) {
    p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, values[i], static_cast<unsigned char>(n - i), 0));
  }
  p.push_back(stmt(BPF_RET | BPF_K, allow_listed ? kRetEperm : kRetAllow));  // not listed
  p.push_back(stmt(BPF_RET | BPF_K, allow_listed ? kRetAllow : kRetEperm));  // listed
}

}  // namespace

std::vector<std::string> sandbox_denied_syscalls() {
  std::vector<std::string> out;
  for (const auto& d : kDenied) out.push_back(d.name);
  return out;
}

std::vector<sock_filter> sandbox_seccomp_program() {
  std::vector<sock_filter> p;
  p.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, kArchOff));
  p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0));
  p.push_back(stmt(BPF_RET | BPF_K, kRetEnosys));
  p.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, kNrOff));
  if (kX32Bit) {
    p.push_back(jump(BPF_JMP | BPF_JGE | BPF_K, kX32Bit, 0, 1));
    p.push_back(stmt(BPF_RET | BPF_K, kRetEnosys));
  }
  for (const auto& d : kDenied) {
    p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(d.nr), 0, 1));
    p.push_back(stmt(BPF_RET | BPF_K, kRetEperm));
  }
  p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(SYS_clone3), 0, 1));
  p.push_back(stmt(BPF_RET | BPF_K, kRetEnosys));
  deny_flag(p, SYS_clone, 0, CLONE_NEWUSER);
  deny_flag(p, SYS_unshare, 0, CLONE_NEWUSER);
  match_values(p, SYS_personality, 0, {0x0000u, 0x0008u, 0xffffffffu}, true);
  match_values(p, SYS_ioctl, 1, {static_cast<unsigned>(TIOCSTI), static_cast<unsigned>(TIOCLINUX)}, false);
  p.push_back(stmt(BPF_RET | BPF_K, kRetAllow));
  return p;
}

Result<int> sandbox_seccomp_fd() {
  const auto prog = sandbox_seccomp_program();
  const int fd = ::memfd_create("kmr-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return io_error(std::string("memfd_create: ") + std::strerror(errno));
  const auto* bytes = reinterpret_cast<const char*>(prog.data());
  std::size_t left = prog.size() * sizeof(sock_filter);
  while (left > 0) {
    const ssize_t w = ::write(fd, bytes, left);
    if (w <= 0) {
      const int e = errno;
      ::close(fd);
      return io_error(std::string("writing the seccomp program: ") + std::strerror(e));
    }
    bytes += w;
    left -= static_cast<std::size_t>(w);
  }
  ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  if (::lseek(fd, 0, SEEK_SET) != 0) {
    ::close(fd);
    return io_error(std::string("lseek: ") + std::strerror(errno));
  }
  return fd;
}

}  // namespace kmr::build

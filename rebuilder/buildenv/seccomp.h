#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

#include "rebuilder/base/result.h"

namespace kmr::build {

// The seccomp filter every sandboxed build runs under (bwrap --seccomp).
// Denied with EPERM: kernel keyrings (keyctl, add_key, request_key), ptrace
// and process_vm_*, kexec, module loading, bpf, perf_event_open, every mount
// call (mount, umount2, pivot_root, chroot, fsopen & co, open_tree,
// move_mount, mount_setattr), setns, swap, reboot, clock and time setting,
// syslog, acct, quotactl, userfaultfd, open_by_handle_at, io_uring, iopl/ioperm,
// uselib, vhangup; clone and unshare with CLONE_NEWUSER; personality other
// than PER_LINUX / PER_LINUX32 / query; ioctl TIOCSTI and TIOCLINUX.
// clone3 returns ENOSYS (its flags are out of the filter's reach; libc falls
// back to clone). Any other ABI than the native one (x86: i386 and x32)
// gets ENOSYS.
std::vector<sock_filter> sandbox_seccomp_program();

// Names of the syscalls denied outright (for the README and tests).
std::vector<std::string> sandbox_denied_syscalls();

// A sealed memory file holding the program, positioned at 0, for bwrap's
// --seccomp FD. The caller closes it.
Result<int> sandbox_seccomp_fd();

}  // namespace kmr::build

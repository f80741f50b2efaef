#define _GNU_SOURCE
#include "CTarsSpawn.h"

extern char **environ;

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <stdint.h>
#include <unistd.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

/// The kernel's struct sigaction (x86-64 and arm64 layout), for SYS_rt_sigaction.
struct kernel_sigaction {
  void *handler;
  unsigned long flags;
  void *restorer;
  unsigned long mask;
};

static const char *const steps[] = {
    "reset signals", "setpgid", "dup2 stdin", "dup2 stdout", "dup2 stderr", "chdir", "setgroups", "setgid",
    "setuid", "drop capabilities", "no_new_privs", "exec", "setsid",
};

/// Reports the failing step and errno to the parent through the error pipe, then exits.
static void child_fail(int fd, int step) {
  int report[2] = {step, errno};
  ssize_t ignored = write(fd, report, sizeof(report));
  (void)ignored;
  _exit(127);
}

#ifndef __NR_close_range
#define __NR_close_range 436
#endif

/// close_range (Linux 5.9+) around `keep`; nonzero when the kernel lacks it.
static int close_fds_except(int keep) {
  if (keep > 3 && syscall(__NR_close_range, 3u, (unsigned)(keep - 1), 0u) != 0) return -1;
  return (int)syscall(__NR_close_range, (unsigned)(keep + 1), ~0u, 0u);
}

static int is_kept(const ctars_spawn_options *o, int cap) {
  for (int i = 0; i < o->keep_caps_count; i++)
    if (o->keep_caps[i] == cap) return 1;
  return 0;
}

pid_t ctars_spawn(const ctars_spawn_options *o, const char **failed_step) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    *failed_step = "pipe";
    return -errno;
  }

  // Capability state is built before fork: libcap allocates, and the child must not.
  cap_t caps = NULL;
  int last_cap = -1;
  if (o->drop_caps) {
    caps = cap_init();
    if (caps == NULL) {
      int e = errno;
      close(pipefd[0]);
      close(pipefd[1]);
      *failed_step = "cap_init";
      return -e;
    }
    if (o->keep_caps_count > 0) {
      cap_value_t values[64];
      int n = 0;
      for (int i = 0; i < o->keep_caps_count && n < 64; i++) values[n++] = (cap_value_t)o->keep_caps[i];
      cap_set_flag(caps, CAP_PERMITTED, n, values, CAP_SET);
      cap_set_flag(caps, CAP_EFFECTIVE, n, values, CAP_SET);
      cap_set_flag(caps, CAP_INHERITABLE, n, values, CAP_SET);
    }
    last_cap = (int)cap_max_bits() - 1;
  }

  // The raw clone below skips glibc's fork housekeeping, so its child must not call what takes
  // glibc's or libcap's locks: no identity or capability changes together with a namespace.
  if (o->new_pid_namespace && (o->set_ids || o->drop_caps)) {
    if (caps) cap_free(caps);
    close(pipefd[0]);
    close(pipefd[1]);
    *failed_step = "options (a new PID namespace cannot be combined with set_ids or drop_caps)";
    return -EINVAL;
  }
  // A new PID namespace: the child is its PID 1 (clone with fork's semantics; the child, like
  // fork's, only makes async-signal-safe calls before exec).
  pid_t pid = o->new_pid_namespace ? (pid_t)syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, NULL)
                                   : fork();
  if (pid < 0) {
    int e = errno;
    if (caps) cap_free(caps);
    close(pipefd[0]);
    close(pipefd[1]);
    *failed_step = o->new_pid_namespace ? "clone(CLONE_NEWPID)" : "fork";
    return -e;
  }

  if (pid == 0) {
    int err = pipefd[1];
    // 1. A clean signal state: nothing blocked, nothing ignored or caught.
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0) child_fail(err, 0);
    // Through the raw system call: glibc's sigaction refuses the real-time signals it reserves
    // (32, 33), and a parent may have left those ignored too.
    for (int s = 1; s <= 64; s++) {
      if (s == SIGKILL || s == SIGSTOP) continue;
      struct kernel_sigaction dfl = {0};
      syscall(SYS_rt_sigaction, s, &dfl, NULL, sizeof(dfl.mask));
    }
    // 2. Its own session (away from the parent's terminal and its Ctrl-C), or its own process
    //    group, so signals can reach everything it starts.
    if (o->new_session && setsid() < 0) child_fail(err, 12);
    if (!o->new_session && o->new_process_group && setpgid(0, 0) != 0) child_fail(err, 1);
    if (o->new_process_group && o->foreground && isatty(0)) {
      signal(SIGTTOU, SIG_IGN);
      tcsetpgrp(0, getpid());
      signal(SIGTTOU, SIG_DFL);
    }
    // 3. Standard descriptors.
    if (o->stdin_fd >= 0 && dup2(o->stdin_fd, 0) < 0) child_fail(err, 2);
    if (o->stdout_fd >= 0 && dup2(o->stdout_fd, 1) < 0) child_fail(err, 3);
    if (o->stderr_fd >= 0 && dup2(o->stderr_fd, 2) < 0) child_fail(err, 4);
    // 4. Working directory.
    if (o->cwd && chdir(o->cwd) != 0) child_fail(err, 5);
    // 5. The bounding set shrinks while we are still root: dropping from it needs CAP_SETPCAP in
    //    the effective set, which the uid change below clears.
    if (o->drop_caps) {
      for (int c = 0; c <= last_cap; c++) {
        if (!is_kept(o, c) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL) child_fail(err, 9);
      }
    }
    // 6. Identity; the permitted set survives the uid change only with KEEPCAPS.
    if (o->set_ids) {
      if (o->drop_caps) prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
      gid_t groups[1] = {o->gid};
      if (setgroups(1, groups) != 0) child_fail(err, 6);
      if (setgid(o->gid) != 0) child_fail(err, 7);
      if (setuid(o->uid) != 0) child_fail(err, 8);
    }
    // 7. The process sets, then ambient so a non-root server keeps what it was given across
    //    exec.
    if (o->drop_caps) {
      if (cap_set_proc(caps) != 0) child_fail(err, 9);
      prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
      for (int i = 0; i < o->keep_caps_count; i++) prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, o->keep_caps[i], 0, 0);
    }
    // 8. No privilege gained through exec (setuid binaries, file capabilities).
    if (o->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(err, 10);
    // 9. Nothing of ours leaks into the server: every descriptor above 2 closes except the
    //    error pipe (itself close-on-exec).
    if (close_fds_except(err) != 0) {
      long max = sysconf(_SC_OPEN_MAX);
      if (max < 0 || max > 65536) max = 65536;
      for (int fd = 3; fd < max; fd++)
        if (fd != err) close(fd);
    }
    if (o->search_path && !o->envp) {
      execvp(o->path, o->argv);
    } else {
      execve(o->path, o->argv, o->envp ? o->envp : environ);
    }
    child_fail(err, 11);
  }

  // Parent: the error pipe closes on a successful exec, or carries the failed step.
  if (caps) cap_free(caps);
  close(pipefd[1]);
  int report[2];
  ssize_t n;
  do {
    n = read(pipefd[0], report, sizeof(report));
  } while (n < 0 && errno == EINTR);
  close(pipefd[0]);
  if (n == (ssize_t)sizeof(report)) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    int step = report[0];
    *failed_step = (step >= 0 && step < (int)(sizeof(steps) / sizeof(steps[0]))) ? steps[step] : "start";
    return -report[1];
  }
  return pid;
}

int ctars_capability_from_name(const char *name) {
  cap_value_t value;
  char buffer[64];
  if (strncasecmp(name, "cap_", 4) != 0) {
    snprintf(buffer, sizeof(buffer), "cap_%s", name);
    name = buffer;
  }
  char lower[64];
  size_t i = 0;
  for (; name[i] && i < sizeof(lower) - 1; i++) lower[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
  lower[i] = 0;
  if (cap_from_name(lower, &value) != 0) return -1;
  return (int)value;
}


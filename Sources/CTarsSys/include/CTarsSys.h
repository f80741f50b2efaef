// Linux calls the Glibc module does not expose (epoll, eventfd) or that Swift cannot call
// directly (variadic functions), wrapped as small functions. This header must not define
// _GNU_SOURCE: it would change system structs (fd_set) and clash with Swift's Glibc module, so
// the GNU-only calls (accept4) live in shim.c.
#ifndef CTARSSYS_H
#define CTARSSYS_H


#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum {
  CTARS_EPOLLIN = EPOLLIN,
  CTARS_EPOLLOUT = EPOLLOUT,
  CTARS_EPOLLERR = EPOLLERR,
  CTARS_EPOLLHUP = EPOLLHUP,
  CTARS_EPOLLRDHUP = EPOLLRDHUP,
};

/// epoll_ctl with the fd itself as the event's data (struct epoll_event is packed on x86-64,
/// which Swift does not import reliably).
static inline int ctars_epoll_ctl(int epfd, int op, int fd, uint32_t events) {
  struct epoll_event ev;
  ev.events = events;
  ev.data.u64 = 0;
  ev.data.fd = fd;
  return epoll_ctl(epfd, op, fd, &ev);
}

/// epoll_wait that unpacks the ready events into two plain arrays.
static inline int ctars_epoll_wait(int epfd, int *fds, uint32_t *events, int max, int timeout_ms) {
  struct epoll_event evs[64];
  if (max > 64) max = 64;
  int n = epoll_wait(epfd, evs, max, timeout_ms);
  for (int i = 0; i < n; i++) {
    fds[i] = evs[i].data.fd;
    events[i] = evs[i].events;
  }
  return n;
}

static inline int ctars_set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0) return -1;
  return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static inline int ctars_errno(void) { return errno; }

/// Blocks `count` signals for this thread (and every thread created later, which inherits the
/// mask) and returns a non-blocking, close-on-exec signalfd that reports them, or -1.
static inline int ctars_block_signals_to_fd(const int *signals, int count) {
  sigset_t set;
  sigemptyset(&set);
  for (int i = 0; i < count; i++) sigaddset(&set, signals[i]);
  if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) return -1;
  return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/// Reads one pending signal from a signalfd: its number, or 0 when none is pending.
static inline int ctars_read_signal(int fd) {
  struct signalfd_siginfo info;
  ssize_t n = read(fd, &info, sizeof(info));
  return n == (ssize_t)sizeof(info) ? (int)info.ssi_signo : 0;
}

/// Whether a signal is synchronous — raised by the faulting instruction or by abort-like
/// traps of the process itself. An init must keep these fatal to itself (as tini does): blocking
/// one and faulting would hang or loop, and forwarding it would blame the child.
static inline int ctars_is_synchronous_signal(int sig) {
  return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGTRAP || sig == SIGSYS;
}

/// What an init does with signals, set up before any thread exists (threads inherit the mask):
/// blocks every signal a process may catch except the synchronous ones — 1 to 64, 32 and 33
/// included — and returns a non-blocking, close-on-exec signalfd that reports them, or -1.
/// glibc's sigfillset/sigprocmask silently leave out 32 and 33 (its own SIGCANCEL and SIGSETXID),
/// which would keep their default action — death — so the mask is built bit by bit and set with
/// the raw rt_sigprocmask. Nothing is left that could kill or stop tarsnode behind its back.
static inline int ctars_block_all_signals_to_fd(void) {
  sigset_t set;
  memset(&set, 0, sizeof(set));
  unsigned long bits = 0;
  for (int sig = 1; sig <= 64; sig++)
    if (sig != SIGKILL && sig != SIGSTOP && !ctars_is_synchronous_signal(sig)) bits |= 1UL << (sig - 1);
  memcpy(&set, &bits, sizeof(bits));
  if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &set, NULL, sizeof(bits)) != 0) return -1;
  return (int)syscall(SYS_signalfd4, -1, &set, sizeof(bits), SFD_NONBLOCK | SFD_CLOEXEC);
}

/// Reads one pending signal from a signalfd: its number, or 0 when none is pending. Sets
/// `*own` when the signal is tarsnode's business, not the child's: a SIGPIPE or SIGXFSZ caused by
/// one of its own writes (the kernel names the writer as the sender), or 32/33 — the C library's
/// SIGCANCEL and SIGSETXID: a glibc child without a handler for them would die of one, and one
/// with a handler ignores any it did not send itself, so an init does not pass them on (tini
/// neither). They are blocked only so they cannot kill tarsnode.
static inline int ctars_read_signal_from(int fd, int *own) {
  struct signalfd_siginfo info;
  ssize_t n = read(fd, &info, sizeof(info));
  if (n != (ssize_t)sizeof(info)) return 0;
  int sig = (int)info.ssi_signo;
  *own = sig == 32 || sig == 33 ||
         ((sig == SIGPIPE || sig == SIGXFSZ) && info.ssi_code == SI_USER && (pid_t)info.ssi_pid == getpid());
  return sig;
}

/// Makes this process adopt orphaned descendants (what PID 1 does) when it is not PID 1.
static inline int ctars_set_child_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }


/// pipe2 with O_CLOEXEC.
int ctars_pipe_cloexec(int fds[2]);

/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC.
int ctars_accept4(int fd, struct sockaddr *addr, socklen_t *len);

#endif

// Timing helper for the PID 1 benchmarks (built by pid1.py with the system C compiler):
//   probe launch FILE CMD...   write CLOCK_MONOTONIC ns to FILE, then exec CMD
//   probe start FILE           write the time it started to FILE, then wait forever
//   probe term FILE READY      on SIGTERM write the time to FILE and exit 0; READY marks it armed
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *out;

static void stamp(const char *path) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  char buf[64];
  int n = snprintf(buf, sizeof buf, "%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    if (write(fd, buf, n) < 0) {}
    close(fd);
  }
}

static void on_term(int sig) {
  (void)sig;
  stamp(out);
  _exit(0);
}

int main(int argc, char **argv) {
  if (argc >= 4 && strcmp(argv[1], "launch") == 0) {
    stamp(argv[2]);
    execvp(argv[3], argv + 3);
    return 127;
  }
  if (argc == 3 && strcmp(argv[1], "start") == 0) {
    stamp(argv[2]);
    for (;;) pause();
  }
  if (argc == 4 && strcmp(argv[1], "term") == 0) {
    out = argv[2];
    signal(SIGTERM, on_term);
    stamp(argv[3]);
    for (;;) pause();
  }
  fprintf(stderr, "usage: probe launch FILE CMD... | start FILE | term FILE READY\n");
  return 2;
}

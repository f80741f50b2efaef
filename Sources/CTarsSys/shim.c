#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "CTarsSys.h"

int ctars_accept4(int fd, struct sockaddr *addr, socklen_t *len) {
  return accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int ctars_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

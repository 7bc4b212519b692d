/*
 * stubdm-pty: the one thing Node cannot do for -serial pty (openpty needs
 * ioctls Node does not expose). Opens a pseudo-terminal pair, puts the
 * slave in raw mode, prints the slave's path and a newline on stdout, then
 * relays bytes: stdin -> master (what the guest sent), master -> stdout
 * (what a user typed on the slave). Exits when stdin closes (stubdm gone).
 *
 * Output to the master is non-blocking: with nobody reading the slave and
 * its buffer full, bytes are dropped, as a serial line with no listener
 * loses them. The slave stays open here so the master never reads EIO
 * while no client is attached.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int main(void) {
  int m = posix_openpt(O_RDWR | O_NOCTTY);
  if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0) {
    fprintf(stderr, "stubdm-pty: cannot open a pty: %s\n", strerror(errno));
    return 1;
  }
  const char *name = ptsname(m);
  if (!name) {
    fprintf(stderr, "stubdm-pty: ptsname: %s\n", strerror(errno));
    return 1;
  }
  int s = open(name, O_RDWR | O_NOCTTY);
  if (s < 0) {
    fprintf(stderr, "stubdm-pty: open %s: %s\n", name, strerror(errno));
    return 1;
  }
  struct termios t;
  if (tcgetattr(s, &t) == 0) {
    cfmakeraw(&t);
    tcsetattr(s, TCSAFLUSH, &t);
  }
  fcntl(m, F_SETFL, fcntl(m, F_GETFL) | O_NONBLOCK);
  char line[4096];
  int n = snprintf(line, sizeof line, "%s\n", name);
  if (write_all(1, line, (size_t)n) < 0) return 1;

  char buf[4096];
  struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = m, .events = POLLIN}};
  for (;;) {
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (p[0].revents) {
      ssize_t r = read(0, buf, sizeof buf);
      if (r == 0) return 0;
      if (r < 0 && errno != EINTR && errno != EAGAIN) return 1;
      for (ssize_t off = 0; r > 0 && off < r;) {
        ssize_t w = write(m, buf + off, (size_t)(r - off));
        if (w < 0) break; /* EAGAIN: nobody reads the slave, drop */
        off += w;
      }
    }
    if (p[1].revents) {
      ssize_t r = read(m, buf, sizeof buf);
      if (r > 0 && write_all(1, buf, (size_t)r) < 0) return 0;
    }
  }
}

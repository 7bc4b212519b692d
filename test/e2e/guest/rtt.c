/*
 * e2e-rtt: the guest's view of one ioreq round trip (issues #10, #13).
 * Reads COM1's scratch register (0x3ff, SCR: no side effect, served by the
 * device model under every DM here: Xen itself emulates no UART for HVM) N
 * times from user space with iopl(3), timing each read with
 * clock_gettime(CLOCK_MONOTONIC). Each read is one exit, one ioreq to the
 * device model, its answer and the vCPU's resumption: what every register
 * access of the IDE and e1000 drivers pays, so a device model whose round
 * trip is slower loses disk and ping time in proportion.
 * Prints one line: `E2E boot pio_rtt_us=<median> pio_rtt_p90_us=<p90> pio_rtt_min_us=<min> pio_rtt_n=<n>`.
 * Hand-written C for the busybox initramfs (static, no runtime), as abuse.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/io.h>
#include <time.h>

#define N_MAX 4000
static double us[N_MAX];

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 500;
  if (n < 10 || n > N_MAX) n = 500;
  if (iopl(3) != 0) {
    perror("e2e-rtt: iopl");
    return 1;
  }
  outb(0x5a, 0x3ff);
  int bad = 0;
  for (int i = 0; i < n; i++) {
    double t0 = now_us();
    unsigned char v = inb(0x3ff);
    us[i] = now_us() - t0;
    if (v != 0x5a) bad++;
  }
  qsort(us, n, sizeof us[0], cmp);
  printf("E2E boot pio_rtt_us=%.0f pio_rtt_p90_us=%.0f pio_rtt_min_us=%.0f pio_rtt_n=%d%s\n", us[n / 2], us[n * 9 / 10], us[0], n,
         bad ? " pio_rtt_scr=bad" : "");
  return 0;
}

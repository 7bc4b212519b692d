/*
 * stubdm-kill-guest <domid> [crash|poweroff|reboot]: run by the stub domain's
 * /init when stubdm has died, so the guest is shut down (and xl applies its
 * on_crash action) instead of hanging on ioreqs nobody serves.
 *
 * C rather than node: this runs exactly when things went wrong, often because
 * the stub domain ran out of memory (stubdm OOM-killed). A second node needs
 * ~50 MiB and 10-30 s to start in a 128 MiB stub domain under emulation; this
 * needs a few hundred KiB and milliseconds. stubdm's own shutdown path (S5,
 * reset) is Board.shutdown -> the host's Power, xendevicemodel_shutdown in
 * src/xen/host.ts.
 *
 * link: -lxendevicemodel
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xendevicemodel.h>
#include <xen/sched.h> /* SHUTDOWN_* */

static const struct {
  const char *name;
  unsigned int reason;
} reasons[] = {
  {"crash", SHUTDOWN_crash},
  {"poweroff", SHUTDOWN_poweroff},
  {"reboot", SHUTDOWN_reboot},
};

static int usage(void) {
  fprintf(stderr, "usage: stubdm-kill-guest <domid> [crash|poweroff|reboot]\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) return usage();
  char *end;
  errno = 0;
  unsigned long domid = strtoul(argv[1], &end, 10);
  /* DOMID_FIRST_RESERVED = 0x7ff0: anything above is not a guest */
  if (errno || end == argv[1] || *end || argv[1][0] == '-' || domid >= 0x7ff0) return usage();
  const char *name = argc == 3 ? argv[2] : "crash";
  unsigned int reason = ~0u;
  for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
    if (strcmp(name, reasons[i].name) == 0) reason = reasons[i].reason;
  if (reason == ~0u) return usage();

  xendevicemodel_handle *dm = xendevicemodel_open(NULL, 0);
  if (!dm) {
    fprintf(stderr, "stubdm-kill-guest: xendevicemodel_open failed: %s (is this a Xen domain with privcmd?)\n",
            strerror(errno));
    return 1;
  }
  int rc = xendevicemodel_shutdown(dm, (domid_t)domid, reason);
  int err = errno;
  xendevicemodel_close(dm);
  if (rc) {
    fprintf(stderr, "stubdm-kill-guest: shutting guest %lu down (%s) failed: %s\n", domid, name, strerror(err));
    return 1;
  }
  fprintf(stderr, "stubdm-kill-guest: guest %lu shut down (%s)\n", domid, name);
  return 0;
}

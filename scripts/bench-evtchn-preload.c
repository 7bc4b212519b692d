/*
 * LD_PRELOAD shim for scripts/bench-evtchn.ts: IOCTL_EVTCHN_NOTIFY on any fd
 * answers 0. The benchmark's FIFO stands for /dev/xen/evtchn (read gives the
 * ports written into it, write unmasks), but a FIFO answers every ioctl with
 * ENOTTY, which would put the device model's failure path (a rate-limited
 * warning) into every round trip. The syscall is still made, so its cost
 * stays in the figure; only its answer is replaced. Nothing else changes.
 *
 * stubdm_bench_collect() toggles callgrind's collection, so that under
 * `valgrind --tool=callgrind --collect-atstart=no` the benchmark counts the
 * instructions of its measured round trips only (BENCH_CALLGRIND; a no-op
 * outside valgrind or without its header).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#endif

/* _IOC(_IOC_NONE, 'E', 4, sizeof(struct ioctl_evtchn_notify)), include/uapi/xen/evtchn.h */
#define EVTCHN_NOTIFY 0x00044504UL

int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    long r = syscall(SYS_ioctl, fd, req, arg);
    return req == EVTCHN_NOTIFY ? 0 : (int)r;
}

void stubdm_bench_collect(void)
{
#ifdef CALLGRIND_TOGGLE_COLLECT
    CALLGRIND_TOGGLE_COLLECT;
#endif
}

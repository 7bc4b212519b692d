/*
 * fdwatch: wake JavaScript when a file descriptor becomes readable or
 * writable, and move network frames through a tap fd.
 *
 * Node has no way to poll an arbitrary character device (the Xen event
 * channel device, the xenstore fd, /dev/net/tun), so this addon puts the fd
 * into libuv's loop with uv_poll_t and calls a JS function when it is
 * readable and/or writable (the events asked for). The callback runs on the
 * main thread, between other events, never re-entrantly. uv_poll is
 * level-triggered: if the callback leaves events pending it runs again on
 * the next loop turn. libuv allows one uv_poll per fd, so one watcher
 * serves both directions and setEvents() changes what it waits for.
 *
 * readable(fd) is poll() with a zero timeout, so a caller can drain a burst
 * (xenevtchn.h: poll() must precede every xenevtchn_pending()).
 *
 * Tap frames (src/net/tap.ts). Node's fs cannot do this well: fs.read on a
 * non-blocking fd throws an exception (with a stack trace) for every EAGAIN,
 * i.e. once per wake-up; the async fs calls go through the libuv thread
 * pool (a thread hop per frame, and a blocking read would hold one of its 4
 * threads); and neither does readv/writev, which the virtio-net header in
 * front of each frame needs without copying. Here one read(v)/write(v) per
 * frame goes straight into/out of a caller's Uint8Array: no allocation per
 * frame, and errors come back as -errno numbers, not exceptions.
 *
 * Event channels (src/xen/host.ts). Every ioreq costs an event-channel read
 * (which port fired), an unmask and a notify; under TCG each syscall is tens
 * of microseconds and each koffi call into libxenevtchn adds its own glue.
 * evtchnWatch() does the read and the unmask here, before JS runs: one
 * read() takes every pending port at once (the kernel's ring hands out as
 * many as fit), one write() unmasks all of them but the held one (the
 * buffered-ioreq port, which the ioreq server unmasks itself once its ring
 * is empty), and JS is called only when a port came. This is QEMU's order
 * (cpu_get_ioreq: xenevtchn_pending, then xenevtchn_unmask, then the slot).
 * The device's ABI (Linux drivers/xen/evtchn.c, include/uapi/xen/evtchn.h):
 * read() returns pending ports as uint32s and masks them, write() of
 * uint32 ports unmasks them, IOCTL_EVTCHN_NOTIFY signals one.
 * The ports go into a Uint32Array queue shared with JS: q[0] is the number of
 * ports in q[1..] JS has not finished with (JS sets it back to 0 when it has
 * taken them all); new ports are appended after them, as many as fit. The
 * addon keeps the queue's data pointer from evtchnWatch() on (it holds a
 * reference to the array, whose backing store then never moves), so a
 * wake-up asks N-API nothing before it reads.
 *
 * The answers go back the same way: during the callback JS appends each
 * port to notify to a second Uint32Array (a[0] ports at a[7..]) instead of
 * calling evtchnNotify() (one N-API crossing per ioreq fewer), and once the
 * callback has returned the addon makes the IOCTL_EVTCHN_NOTIFYs, in order,
 * before libuv goes back to epoll. napi_make_callback has drained the
 * microtask queue by then, so what a request completed in that turn (a disk
 * read the page cache held, its interrupt) is done before the vCPU runs
 * again, as it would be had the answer waited for it. A failed notify is
 * counted in a[1], its errno and port in a[2] and a[3], and the callback is
 * called once more at once with status 1 (EVTCHN_NOTIFY_FAILED) so JS can
 * say so: a vCPU whose notify failed waits for an answer that will not
 * come. stop() first makes the notifies still queued (a watch paused from
 * inside the callback), so no answered vCPU is left waiting.
 *
 * Waiting in place. A vCPU's register accesses come in bursts (an IDE
 * command is ~30 of them, each waiting for our answer), and where the
 * device model's domain shares a pCPU with the guest (the one pCPU under
 * TCG; any busy host) the guest runs again only once the device model's
 * vCPU blocks or is preempted: Xen's credit2 lets a running vCPU keep its
 * pCPU for up to sched_ratelimit_us (1 ms) against the vCPU our notify woke.
 * Going back through libuv (the rest of the poll phase, check, closing,
 * timers) before epoll blocks is that much later; on Xen the guest then saw
 * twice QEMU's round trip (docs/benchmark.md, pio_rtt). So after the
 * notifies the addon blocks at once in ppoll() on the event-channel fd and
 * on libuv's own epoll fd (uv_backend_fd: readable when anything libuv
 * watches is), for at most answers[EA_WAIT_US] microseconds and never past
 * libuv's next timer (uv_backend_timeout, which is 0, i.e. no wait, when
 * immediates, pending callbacks or closing handles are due, and while an fd
 * watch the callback started is not in epoll yet: libuv src/unix/core.c,
 * uv__io_start queues it and only the next poll phase makes the epoll_ctl,
 * so its fd could not end the wait). When the next
 * port comes first it is read, unmasked and handed to JS right there, its
 * answers notified, and the wait starts again; anything else ready, a
 * timeout, or EVTCHN_IN_PLACE_MAX rounds in a row return to libuv, so other
 * fds and timers wait at most that. answers[EA_WAITS] counts the waits and
 * answers[EA_IN_PLACE] those a port ended (uint32, wrapping); a zero
 * answers[EA_WAIT_US] turns waiting off.
 *
 * JS API:
 *   const w = watch(fd, (status, events) => {...}, events?);
 *        // events: 1 readable (default), 2 writable, 3 both; the callback gets
 *        // status 0 and the events that are ready, or a negative libuv error
 *   w.setEvents(mask);                        // 0 pauses the watch (fd stays registered)
 *   w.stop();                                 // idempotent
 *   readable(fd) -> boolean
 *   setNonblock(fd)                           // O_NONBLOCK, so evtchnFill never waits
 *   const w = evtchnWatch(fd, q, holdPort, answers, (status) => {...});  // stop()/setEvents() as watch
 *        // called with no argument when ports came (q[0] of them), with a negative libuv or
 *        // errno when the device broke, with 1 after a notify of the answers failed
 *   evtchnAnswerHeader                        // 7: words of answers before its ports (count, failed, errno, port, wait_us, waits, in_place)
 *   evtchnFill(fd, q, holdPort) -> ports read now (0: none pending) or -errno
 *   evtchnUnmask(fd, port) -> 0 or -errno
 *   evtchnNotify(fd, port) -> 0 or -errno
 *   setLoopIdleTime(on) -> 0, or -ENOSYS (a libuv this does not know)
 *        // libuv's idle-time accounting on the loop (Node turns it on): off, a loop
 *        // that goes idle polls once instead of twice (see js_set_loop_idle_time)
 *   willNeed(fd, offset, len) -> 0 or -errno   // posix_fadvise(POSIX_FADV_WILLNEED): start reading
 *        // [offset, offset + len) into the page cache in the background (src/block/file.ts read-ahead)
 *   readNowait(fd, offset, count, view0, view1, ...) -> bytes read, or -errno
 *        // preadv2(RWF_NOWAIT) into the first `count` views (Uint8Arrays, at most READ_NOWAIT_VIEWS,
 *        // passed as arguments: src/block/native.ts spreads an array): what the page cache has at
 *        // once, or -EAGAIN when it has none of it, without waiting for a disk (src/block/file.ts:
 *        // a cached read needs no thread-pool hop)
 *   tapOpen(ifname, vnetHdr) -> { fd, ifname, vnetHdrLen }   // throws Error with .code = errno name
 *   tapRead(fd, buf, vnetHdrLen) -> frame length, or -errno (-EAGAIN: nothing queued)
 *   tapWrite(fd, buf, len, vnetHdrLen, flags, gsoType, hdrLen, gsoSize, csumStart, csumOffset)
 *        -> bytes of the frame written, or -errno
 */
#define _GNU_SOURCE /* ppoll */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <poll.h>
#include <time.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

typedef struct {
    uv_poll_t poll;       /* first: the uv handle pointer is the struct pointer */
    napi_env env;
    napi_ref callback;    /* the JS function */
    napi_ref self;        /* strong while started: the wrapper must outlive the handle */
    napi_async_context async;
    int started;          /* not closed: the handle exists (it may be paused) */
    int events;           /* UV_READABLE | UV_WRITABLE being waited for; 0 = paused */
    int in_callback;      /* inside napi_make_callback: the async context is in use */
    int destroy_async;    /* stop() ran inside the callback: destroy the context after it */
    int close_done;       /* uv_close finished: memory no longer used by libuv */
    int wrapper_gone;     /* JS wrapper finalized: memory no longer used by JS */
    int evtchn_fd;        /* -1: a plain watch; else an event-channel watch of this fd */
    int64_t hold;         /* event channel port left masked (-1: none) */
    napi_ref queue;       /* the shared Uint32Array (event-channel watch) */
    uint32_t *q;          /* its data (held by `queue`: never moves) */
    size_t qlen;
    napi_ref answers;     /* the ports JS answered in the callback (event-channel watch) */
    uint32_t *a;          /* its data (held by `answers`) */
    size_t alen;
} watcher_t;

/* The answers array (see the file comment): count, failed notifies, errno and port of the last failure, the ports. */
#define EA_COUNT 0
#define EA_FAILED 1
#define EA_ERRNO 2
#define EA_PORT 3
#define EA_WAIT_US 4  /* set by JS: longest wait in place for the next port (0: off) */
#define EA_WAITS 5    /* waits in place made */
#define EA_IN_PLACE 6 /* of them, ended by a port (served without a libuv turn) */
#define EA_PORTS 7
/* Longest wait in place whatever JS asks (libuv's loop time is stale inside a callback). */
#define EVTCHN_WAIT_MAX_US 20000
/* Callbacks in one libuv turn before the other fds and timers get theirs. */
#define EVTCHN_IN_PLACE_MAX 64
/* Callback status after a failed notify of the answers. */
#define EVTCHN_NOTIFY_FAILED 1

/* Ports taken per read(): more than any guest's vCPUs plus the buffered port. */
#define EVTCHN_BATCH_MAX 1024

/* include/uapi/xen/evtchn.h (a stable kernel ABI; defined here so no Xen headers are needed) */
struct stubdm_evtchn_notify {
    unsigned int port;
};
#define STUBDM_IOCTL_EVTCHN_NOTIFY _IOC(_IOC_NONE, 'E', 4, sizeof(struct stubdm_evtchn_notify))

static napi_value int_result(napi_env env, int32_t v);
static void throw_errno(napi_env env, int err, const char *what, const char *ifname);
static int get_u8array(napi_env env, napi_value v, uint8_t **data, size_t *len);

static int notify_port(int fd, uint32_t port)
{
    struct stubdm_evtchn_notify n = { port };
    return ioctl(fd, STUBDM_IOCTL_EVTCHN_NOTIFY, &n) < 0 ? -errno : 0;
}

/* Notify the ports JS answered (a[EA_COUNT] of them); returns how many notifies failed. */
static int flush_answers(watcher_t *w)
{
    uint32_t *a = w->a;
    uint32_t n = a[EA_COUNT];
    int failed = 0;
    if (n > w->alen - EA_PORTS)
        n = (uint32_t)(w->alen - EA_PORTS); /* JS broke the count: what fits */
    for (uint32_t i = 0; i < n; i++) {
        int r = notify_port(w->evtchn_fd, a[EA_PORTS + i]);
        if (r < 0) {
            a[EA_FAILED]++;
            a[EA_ERRNO] = (uint32_t)-r;
            a[EA_PORT] = a[EA_PORTS + i];
            failed++;
        }
    }
    a[EA_COUNT] = 0;
    return failed;
}

/* Unmask ports (a failed unmask leaves the port masked; the caller can do nothing better). */
static void write_ports(int fd, const uint32_t *p, size_t k)
{
    ssize_t wr;
    do
        wr = write(fd, p, k * sizeof(uint32_t));
    while (wr < 0 && errno == EINTR);
}

/*
 * Read every pending port into q (after the q[0] already there), then unmask
 * the ones read except `hold` with one write. Returns the ports read, or
 * -errno (0 when none is pending: the fd is non-blocking).
 */
static int evtchn_fill(int fd, uint32_t *q, size_t qlen, int64_t hold)
{
    uint32_t unmask[64];
    size_t have = q[0], room, k = 0;
    ssize_t r;
    if (qlen < 2 || have > qlen - 1)
        return -EINVAL; /* JS broke the queue: take nothing */
    room = qlen - 1 - have;
    if (room > EVTCHN_BATCH_MAX)
        room = EVTCHN_BATCH_MAX;
    if (room == 0)
        return 0;
    do
        r = read(fd, q + 1 + have, room * sizeof(uint32_t));
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return errno == EAGAIN ? 0 : -errno;
    size_t n = (size_t)r / sizeof(uint32_t);
    q[0] = (uint32_t)(have + n);
    for (size_t i = 0; i < n; i++) {
        uint32_t p = q[1 + have + i];
        if ((int64_t)p == hold)
            continue;
        unmask[k++] = p;
        if (k == sizeof(unmask) / sizeof(unmask[0])) {
            write_ports(fd, unmask, k);
            k = 0;
        }
    }
    if (k > 0)
        write_ports(fd, unmask, k);
    return (int)n;
}

#define CHECK(env, call)                                                 \
    do {                                                                 \
        if ((call) != napi_ok) {                                         \
            napi_throw_error((env), NULL, "fdwatch: " #call " failed");  \
            return NULL;                                                 \
        }                                                                \
    } while (0)

static void maybe_free(watcher_t *w)
{
    if (w->close_done && w->wrapper_gone)
        free(w);
}

static void on_close(uv_handle_t *h)
{
    watcher_t *w = (watcher_t *)h;
    w->close_done = 1;
    maybe_free(w);
}

static void finalize(napi_env env, void *data, void *hint)
{
    (void)env;
    (void)hint;
    watcher_t *w = data;
    w->wrapper_gone = 1;
    maybe_free(w);
}

static int get_u32array(napi_env env, napi_value v, uint32_t **data, size_t *len)
{
    napi_typedarray_type type;
    void *p;
    if (napi_get_typedarray_info(env, v, &type, len, &p, NULL, NULL) != napi_ok || type != napi_uint32_array)
        return -1;
    *data = p;
    return 0;
}

/* Call the watcher's JS function with argc int32 arguments (inside a handle scope). */
static void call_js(watcher_t *w, size_t argc, const int32_t *iargs)
{
    napi_env env = w->env;
    napi_value fn, recv, args[2], result;
    if (napi_get_reference_value(env, w->callback, &fn) != napi_ok || fn == NULL || napi_get_global(env, &recv) != napi_ok)
        return;
    for (size_t i = 0; i < argc; i++)
        if (napi_create_int32(env, iargs[i], &args[i]) != napi_ok)
            return;
    /* napi_make_callback drains microtasks and keeps async hooks right; its receiver must be an object. */
    w->in_callback = 1;
    napi_status st = napi_make_callback(env, w->async, recv, fn, argc, args, &result);
    w->in_callback = 0;
    if (w->destroy_async) {
        w->destroy_async = 0;
        napi_async_destroy(env, w->async);
    }
    if (st == napi_pending_exception) {
        napi_value err;
        if (napi_get_and_clear_last_exception(env, &err) == napi_ok)
            napi_fatal_exception(env, err); /* -> process 'uncaughtException' */
    }
}

/*
 * After the answers: block until the next port, anything else libuv
 * watches, libuv's next timer or answers[EA_WAIT_US] (the file comment says
 * why). 1 when ports came and are in the queue (read and unmasked), else 0:
 * back to libuv (which also reports a broken fd).
 */
static int wait_in_place(watcher_t *w)
{
    uv_loop_t *loop = w->poll.loop;
    uint32_t us;
    int ms, n;
    struct pollfd p[2];
    struct timespec ts;

    if (!w->started || !(w->events & UV_READABLE) || w->q[0] != 0)
        return 0; /* stopped or paused in the callback, or ports JS left (level-triggered: the next turn) */
    us = w->a[EA_WAIT_US];
    if (us > EVTCHN_WAIT_MAX_US)
        us = EVTCHN_WAIT_MAX_US;
    ms = uv_backend_timeout(loop);
    if (ms >= 0 && (uint64_t)ms * 1000 < us)
        us = (uint32_t)ms * 1000;
    if (us == 0)
        return 0;
    p[0].fd = w->evtchn_fd;
    p[0].events = POLLIN;
    p[0].revents = 0;
    p[1].fd = uv_backend_fd(loop);
    p[1].events = POLLIN;
    p[1].revents = 0;
    ts.tv_sec = us / 1000000;
    ts.tv_nsec = (long)(us % 1000000) * 1000;
    w->a[EA_WAITS]++;
    /* A signal (EINTR) ends the wait too: libuv's signal pipe wants its turn. */
    if (ppoll(p, p[1].fd >= 0 ? 2 : 1, &ts, NULL) <= 0 || p[0].revents != POLLIN)
        return 0; /* timeout, a signal, or the fd broke: libuv's turn */
    n = evtchn_fill(w->evtchn_fd, w->q, w->qlen, w->hold);
    if (n <= 0 || w->q[0] == 0)
        return 0;
    w->a[EA_IN_PLACE]++;
    return 1;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    watcher_t *w = (watcher_t *)h;
    napi_handle_scope scope;
    int32_t args[2];

    if (w->evtchn_fd < 0) {
        if (napi_open_handle_scope(w->env, &scope) != napi_ok)
            return;
        args[0] = status;
        args[1] = status < 0 ? 0 : events & (UV_READABLE | UV_WRITABLE);
        call_js(w, 2, args);
        napi_close_handle_scope(w->env, scope);
        return;
    }
    /* Event channel: the pending ports first; JS only when one came (or the device broke). */
    if (status >= 0) {
        int n = evtchn_fill(w->evtchn_fd, w->q, w->qlen, w->hold);
        if (n < 0)
            status = n;
        else if (w->q[0] == 0)
            return; /* nothing came (spurious wake-up): JS need not run */
    }
    for (int round = 1;; round++) {
        int answered = 0;
        if (napi_open_handle_scope(w->env, &scope) != napi_ok)
            return;
        args[0] = status;
        call_js(w, status < 0 ? 1 : 0, args);
        /* The answers, unless stop() ran in the callback (it made them already). */
        if (w->started && w->a[EA_COUNT] > 0) {
            answered = 1;
            if (flush_answers(w) > 0 && w->started) {
                args[0] = EVTCHN_NOTIFY_FAILED;
                call_js(w, 1, args);
            }
        }
        napi_close_handle_scope(w->env, scope);
        /* Only a vCPU we answered is about to come back. */
        if (status < 0 || !answered || round >= EVTCHN_IN_PLACE_MAX || !wait_in_place(w))
            return;
    }
}

static void stop_watcher(napi_env env, watcher_t *w)
{
    if (!w->started)
        return;
    if (w->a != NULL && w->a[EA_COUNT] > 0)
        flush_answers(w); /* answered in a callback that then paused the watch: the fd is still open */
    w->started = 0;
    w->events = 0;
    uv_poll_stop(&w->poll);
    uv_close((uv_handle_t *)&w->poll, on_close);
    napi_delete_reference(env, w->callback);
    if (w->queue != NULL) {
        napi_delete_reference(env, w->queue);
        w->queue = NULL;
        w->q = NULL;
    }
    if (w->answers != NULL) {
        napi_delete_reference(env, w->answers);
        w->answers = NULL;
        w->a = NULL;
    }
    if (w->in_callback)
        w->destroy_async = 1; /* on_poll still holds it */
    else
        napi_async_destroy(env, w->async);
    napi_reference_unref(env, w->self, NULL);
}

static napi_value js_stop(napi_env env, napi_callback_info info)
{
    napi_value thisv;
    watcher_t *w;
    CHECK(env, napi_get_cb_info(env, info, NULL, NULL, &thisv, NULL));
    CHECK(env, napi_unwrap(env, thisv, (void **)&w));
    stop_watcher(env, w);
    return NULL;
}

static napi_value js_set_events(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1], thisv;
    watcher_t *w;
    int32_t mask;
    int err;
    CHECK(env, napi_get_cb_info(env, info, &argc, argv, &thisv, NULL));
    CHECK(env, napi_unwrap(env, thisv, (void **)&w));
    if (argc < 1 || napi_get_value_int32(env, argv[0], &mask) != napi_ok || (mask & ~(UV_READABLE | UV_WRITABLE)) != 0) {
        napi_throw_type_error(env, NULL, "fdwatch: setEvents(mask): mask must be 0-3 (1 readable, 2 writable)");
        return NULL;
    }
    if (!w->started || mask == w->events)
        return NULL; /* stopped watchers stay stopped */
    /* uv_poll_start on an active handle only changes the events. */
    err = mask == 0 ? uv_poll_stop(&w->poll) : uv_poll_start(&w->poll, mask, on_poll);
    if (err != 0) {
        napi_throw_error(env, uv_err_name(err), uv_strerror(err));
        return NULL;
    }
    w->events = mask;
    return NULL;
}

/* A watcher of fd calling `cb`; for an event-channel watch, `queue` and `answers` are the shared Uint32Arrays (checked). */
static napi_value make_watcher(napi_env env, int32_t fd, napi_value cb, int32_t events, napi_value queue, napi_value answers, int64_t hold)
{
    napi_value obj, stopfn, setfn, name;
    uv_loop_t *loop;
    int err;

    CHECK(env, napi_get_uv_event_loop(env, &loop));

    watcher_t *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        napi_throw_error(env, NULL, "fdwatch: out of memory");
        return NULL;
    }
    w->env = env;
    w->close_done = 1; /* no uv handle yet */
    w->evtchn_fd = queue != NULL ? fd : -1;
    w->hold = hold;
    if (queue != NULL && (get_u32array(env, queue, &w->q, &w->qlen) != 0 || get_u32array(env, answers, &w->a, &w->alen) != 0)) {
        free(w);
        napi_throw_type_error(env, NULL, "fdwatch: evtchnWatch: queue and answers must be Uint32Arrays");
        return NULL;
    }
    /* From here the JS object owns w: its finalizer frees it once libuv is done. */
    CHECK(env, napi_create_object(env, &obj));
    if (napi_wrap(env, obj, w, finalize, NULL, NULL) != napi_ok) {
        free(w);
        napi_throw_error(env, NULL, "fdwatch: napi_wrap failed");
        return NULL;
    }
    CHECK(env, napi_create_function(env, "stop", NAPI_AUTO_LENGTH, js_stop, NULL, &stopfn));
    CHECK(env, napi_set_named_property(env, obj, "stop", stopfn));
    CHECK(env, napi_create_function(env, "setEvents", NAPI_AUTO_LENGTH, js_set_events, NULL, &setfn));
    CHECK(env, napi_set_named_property(env, obj, "setEvents", setfn));
    CHECK(env, napi_create_string_utf8(env, "fdwatch", NAPI_AUTO_LENGTH, &name));

    err = uv_poll_init(loop, &w->poll, fd);
    if (err == 0) {
        w->close_done = 0;
        err = uv_poll_start(&w->poll, events, on_poll);
        if (err != 0)
            uv_close((uv_handle_t *)&w->poll, on_close);
    }
    if (err != 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "fdwatch: cannot watch fd %d: %s", fd, uv_strerror(err));
        napi_throw_error(env, uv_err_name(err), msg);
        return NULL;
    }
    if (napi_create_reference(env, cb, 1, &w->callback) != napi_ok ||
        napi_create_reference(env, obj, 1, &w->self) != napi_ok ||
        (queue != NULL && napi_create_reference(env, queue, 1, &w->queue) != napi_ok) ||
        (answers != NULL && napi_create_reference(env, answers, 1, &w->answers) != napi_ok) ||
        napi_async_init(env, NULL, name, &w->async) != napi_ok) {
        uv_close((uv_handle_t *)&w->poll, on_close);
        napi_throw_error(env, NULL, "fdwatch: cannot create references");
        return NULL;
    }
    w->started = 1;
    w->events = events;
    return obj;
}

static napi_value js_watch(napi_env env, napi_callback_info info)
{
    size_t argc = 3;
    napi_value argv[3];
    napi_valuetype t;
    int32_t fd, events = UV_READABLE;

    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
        napi_throw_type_error(env, NULL, "fdwatch.watch(fd, callback): fd must be a non-negative integer");
        return NULL;
    }
    CHECK(env, napi_typeof(env, argv[1], &t));
    if (t != napi_function) {
        napi_throw_type_error(env, NULL, "fdwatch.watch(fd, callback): callback must be a function");
        return NULL;
    }
    if (argc >= 3) {
        CHECK(env, napi_typeof(env, argv[2], &t));
        if (t != napi_undefined &&
            (napi_get_value_int32(env, argv[2], &events) != napi_ok || events < 1 || events > (UV_READABLE | UV_WRITABLE))) {
            napi_throw_type_error(env, NULL, "fdwatch.watch(fd, callback, events): events must be 1 (readable), 2 (writable) or 3");
            return NULL;
        }
    }
    return make_watcher(env, fd, argv[1], events, NULL, NULL, -1);
}

/* ------------------------------------------------------- event channels */

/* (fd, Uint32Array q, holdPort) from argv; returns 0 or throws. */
static int evtchn_args(napi_env env, napi_value *argv, size_t argc, int32_t *fd, uint32_t **q, size_t *qlen, int64_t *hold, const char *usage)
{
    if (argc < 3 || napi_get_value_int32(env, argv[0], fd) != napi_ok || *fd < 0 || get_u32array(env, argv[1], q, qlen) != 0 ||
        *qlen < 2 || napi_get_value_int64(env, argv[2], hold) != napi_ok) {
        napi_throw_type_error(env, NULL, usage);
        return -1;
    }
    return 0;
}

static napi_value js_evtchn_watch(napi_env env, napi_callback_info info)
{
    size_t argc = 5, qlen, alen;
    napi_value argv[5];
    napi_valuetype t;
    int32_t fd;
    uint32_t *q, *a;
    int64_t hold;
    static const char usage[] =
        "fdwatch.evtchnWatch(fd, Uint32Array queue (2+ entries), holdPort, Uint32Array answers (8+ entries), callback)";

    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (evtchn_args(env, argv, argc, &fd, &q, &qlen, &hold, usage) != 0)
        return NULL;
    if (argc < 5 || get_u32array(env, argv[3], &a, &alen) != 0 || alen < EA_PORTS + 1 ||
        napi_typeof(env, argv[4], &t) != napi_ok || t != napi_function) {
        napi_throw_type_error(env, NULL, usage);
        return NULL;
    }
    return make_watcher(env, fd, argv[4], UV_READABLE, argv[1], argv[3], hold);
}

static napi_value js_evtchn_fill(napi_env env, napi_callback_info info)
{
    size_t argc = 3, qlen;
    napi_value argv[3];
    int32_t fd;
    uint32_t *q;
    int64_t hold;

    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok ||
        evtchn_args(env, argv, argc, &fd, &q, &qlen, &hold, "fdwatch.evtchnFill(fd, Uint32Array queue (2+ entries), holdPort)") != 0)
        return NULL;
    return int_result(env, evtchn_fill(fd, q, qlen, hold));
}

/* (fd, port) -> 0 or -errno */
static int fd_port_args(napi_env env, napi_callback_info info, int32_t *fd, uint32_t *port, const char *usage)
{
    size_t argc = 2;
    napi_value argv[2];
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
        napi_get_value_int32(env, argv[0], fd) != napi_ok || napi_get_value_uint32(env, argv[1], port) != napi_ok) {
        napi_throw_type_error(env, NULL, usage);
        return -1;
    }
    return 0;
}

static napi_value js_evtchn_unmask(napi_env env, napi_callback_info info)
{
    int32_t fd;
    uint32_t port;
    ssize_t r;
    if (fd_port_args(env, info, &fd, &port, "fdwatch.evtchnUnmask(fd, port)") != 0)
        return NULL;
    do
        r = write(fd, &port, sizeof(port));
    while (r < 0 && errno == EINTR);
    return int_result(env, r < 0 ? -errno : 0);
}

static napi_value js_evtchn_notify(napi_env env, napi_callback_info info)
{
    int32_t fd;
    uint32_t port;
    if (fd_port_args(env, info, &fd, &port, "fdwatch.evtchnNotify(fd, port)") != 0)
        return NULL;
    return int_result(env, notify_port(fd, port));
}

static napi_value js_will_need(napi_env env, napi_callback_info info)
{
    size_t argc = 3;
    napi_value argv[3];
    int32_t fd;
    int64_t off, len;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
        napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int64(env, argv[1], &off) != napi_ok ||
        napi_get_value_int64(env, argv[2], &len) != napi_ok || off < 0 || len < 0) {
        napi_throw_type_error(env, NULL, "fdwatch.willNeed(fd, offset >= 0, len >= 0)");
        return NULL;
    }
    /* posix_fadvise returns the error number itself (it does not set errno). */
    return int_result(env, -posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_WILLNEED));
}

/* Views per readNowait: src/devices/ide/bmdma.ts VIEWS_PER_REQUEST. */
#define READ_NOWAIT_VIEWS 256
#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008 /* include/uapi/linux/fs.h, Linux 4.14 for buffered reads */
#endif

/*
 * preadv2 with RWF_NOWAIT (Linux 4.14+ for the page cache): the kernel copies
 * what is cached and returns at once instead of starting I/O and sleeping on
 * it (it may start read-ahead for the rest). A short count means only the
 * first bytes were cached; -EAGAIN that the first were not. Called through the
 * raw syscall so that a C library without the preadv2 wrapper still loads this
 * addon; on 64-bit the offset is the low word (the kernel's pos_from_hilo).
 * A kernel without it says -ENOSYS, -EINVAL or -EOPNOTSUPP, and JS stops asking.
 * The views are arguments rather than one array: reading an array's element
 * through N-API is a full property lookup (about 300 instructions a view,
 * 128 views in a 512 KiB request), an argument is already a value.
 */
static napi_value js_read_nowait(napi_env env, napi_callback_info info)
{
    size_t argc = 3 + READ_NOWAIT_VIEWS;
    napi_value argv[3 + READ_NOWAIT_VIEWS];
    int32_t fd;
    uint32_t count;
    int64_t off;
    struct iovec iov[READ_NOWAIT_VIEWS];
    long r;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
        napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int64(env, argv[1], &off) != napi_ok ||
        napi_get_value_uint32(env, argv[2], &count) != napi_ok || fd < 0 || off < 0 || count > READ_NOWAIT_VIEWS ||
        count > argc - 3) {
        napi_throw_type_error(env, NULL, "fdwatch.readNowait(fd, offset >= 0, count <= 256, ...count Uint8Array views)");
        return NULL;
    }
    for (uint32_t i = 0; i < count; i++) {
        uint8_t *data;
        size_t len;
        if (get_u8array(env, argv[3 + i], &data, &len) != 0) {
            napi_throw_type_error(env, NULL, "fdwatch.readNowait: each of the first `count` views must be a Uint8Array");
            return NULL;
        }
        iov[i].iov_base = data;
        iov[i].iov_len = len;
    }
    do
        r = syscall(SYS_preadv2, fd, iov, (unsigned long)count, (unsigned long)off, 0UL, RWF_NOWAIT);
    while (r < 0 && errno == EINTR);
    return int_result(env, r < 0 ? -errno : (int32_t)(r > INT32_MAX ? INT32_MAX : r));
}

/*
 * Node configures its loop with UV_METRICS_IDLE_TIME (src/node.cc, before
 * the main instance runs) for performance.eventLoopUtilization() and
 * nodeTiming.idleTime. libuv then polls twice whenever the loop would block:
 * epoll_pwait with a zero timeout first, and with the real one when nothing
 * was ready (src/unix/linux.c uv__io_poll, `reset_timeout`), so that it can
 * time the wait alone. The device model goes idle after every answer, and
 * the zero-timeout poll finds nothing (the vCPU has not exited again yet):
 * one syscall more per ioreq, for a figure only the disk trace reads. libuv
 * has no call that turns the option off; it is bit UV_METRICS_IDLE_TIME of
 * the first field (`unsigned int flags`) of the loop's internal fields
 * (src/uv-common.h struct uv__loop_internal_fields_s, set by
 * src/unix/loop.c uv__loop_configure), where it has been since libuv 1.39
 * added both; another major version is refused with -ENOSYS. On again is
 * libuv's own uv_loop_configure. Not on a hot path: the Xen host's start.
 */
static napi_value js_set_loop_idle_time(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    bool on;
    uv_loop_t *loop;
    unsigned int v = uv_version();
    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 1 || napi_get_value_bool(env, argv[0], &on) != napi_ok) {
        napi_throw_type_error(env, NULL, "fdwatch.setLoopIdleTime(on: boolean)");
        return NULL;
    }
    CHECK(env, napi_get_uv_event_loop(env, &loop));
    if (v < 0x012700 || v >= 0x020000 || loop->internal_fields == NULL)
        return int_result(env, -ENOSYS);
    if (on)
        return int_result(env, uv_loop_configure(loop, UV_METRICS_IDLE_TIME));
    *(unsigned int *)loop->internal_fields &= ~(unsigned int)UV_METRICS_IDLE_TIME;
    return int_result(env, 0);
}

static napi_value js_set_nonblock(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    int32_t fd;
    int fl;
    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
        napi_throw_type_error(env, NULL, "fdwatch.setNonblock(fd)");
        return NULL;
    }
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        throw_errno(env, errno, "fcntl(O_NONBLOCK) on", "fd");
        return NULL;
    }
    return NULL;
}

static napi_value js_readable(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1], result;
    int32_t fd;
    struct pollfd p;

    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
        napi_throw_type_error(env, NULL, "fdwatch.readable(fd): fd must be an integer");
        return NULL;
    }
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    /* Errors and hang-ups count as readable: the read that follows reports them. */
    int n = poll(&p, 1, 0);
    CHECK(env, napi_get_boolean(env, n > 0 && (p.revents & (POLLIN | POLLERR | POLLHUP)) != 0, &result));
    return result;
}

/* ------------------------------------------------------------------ tap */

/* -errno as a JS number (small integers need no allocation). */
static napi_value int_result(napi_env env, int32_t v)
{
    napi_value r;
    if (napi_create_int32(env, v, &r) != napi_ok)
        return NULL;
    return r;
}

static int get_u8array(napi_env env, napi_value v, uint8_t **data, size_t *len)
{
    napi_typedarray_type type;
    void *p;
    if (napi_get_typedarray_info(env, v, &type, len, &p, NULL, NULL) != napi_ok || type != napi_uint8_array)
        return -1;
    *data = p;
    return 0;
}

static void throw_errno(napi_env env, int err, const char *what, const char *ifname)
{
    char msg[200];
    /* strerror_r of glibc may return a static string instead of filling buf */
    snprintf(msg, sizeof(msg), "%s %s: %s", what, ifname, strerror(err));
    const char *code = err == ENOENT ? "ENOENT" : err == EPERM ? "EPERM" : err == EACCES ? "EACCES"
                     : err == EBUSY ? "EBUSY" : err == EINVAL ? "EINVAL" : err == ENODEV ? "ENODEV"
                     : err == ENXIO ? "ENXIO" : "EIO";
    napi_throw_error(env, code, msg);
}

/*
 * tapOpen(ifname, vnetHdr): open /dev/net/tun non-blocking and attach to (or
 * create) tap `ifname` ("" = the kernel picks tapN) with IFF_TAP|IFF_NO_PI.
 * With vnetHdr, and if the kernel has it, IFF_VNET_HDR too: every frame then
 * carries a struct virtio_net_hdr (10 bytes) in front, through which a sent
 * frame's pending checksum and TCP segmentation go to the host kernel; the
 * kernel is told to send us only whole frames with their checksums done
 * (TUNSETOFFLOAD 0), since an emulated NIC cannot receive 64 KiB segments.
 */
static napi_value js_tap_open(napi_env env, napi_callback_info info)
{
    size_t argc = 2, namelen;
    napi_value argv[2], obj, v;
    char name[IFNAMSIZ + 1];
    bool want_vnet = false;
    struct ifreq ifr;
    unsigned int features = 0;
    int fd, hdrlen = 0;

    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof(name), &namelen) != napi_ok ||
        namelen >= IFNAMSIZ) {
        napi_throw_type_error(env, NULL, "fdwatch.tapOpen(ifname, vnetHdr): ifname must be a string of at most 15 bytes");
        return NULL;
    }
    if (argc >= 2)
        CHECK(env, napi_get_value_bool(env, argv[1], &want_vnet));

    fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        throw_errno(env, errno, "open /dev/net/tun for", namelen ? name : "a tap");
        return NULL;
    }
    if (want_vnet && (ioctl(fd, TUNGETFEATURES, &features) != 0 || !(features & IFF_VNET_HDR)))
        want_vnet = false;
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, name, namelen);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (want_vnet ? IFF_VNET_HDR : 0);
    if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
        int e = errno;
        close(fd);
        throw_errno(env, e, "TUNSETIFF", namelen ? name : "(new tap)");
        return NULL;
    }
    if (want_vnet) {
        int sz = sizeof(struct virtio_net_hdr);
        if (ioctl(fd, TUNSETVNETHDRSZ, &sz) == 0 && ioctl(fd, TUNSETOFFLOAD, 0UL) == 0) {
            hdrlen = sz;
        } else {
            /* Cannot set it up: go back to plain frames. */
            memset(&ifr, 0, sizeof(ifr));
            memcpy(ifr.ifr_name, name, namelen);
            close(fd);
            fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
            if (fd < 0) {
                throw_errno(env, errno, "open /dev/net/tun for", name);
                return NULL;
            }
            ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
            if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
                int e = errno;
                close(fd);
                throw_errno(env, e, "TUNSETIFF", name);
                return NULL;
            }
        }
    }
    /* ifr_name now holds the name the kernel used (tapN when we gave none). */
    ifr.ifr_name[IFNAMSIZ - 1] = 0;
    CHECK(env, napi_create_object(env, &obj));
    CHECK(env, napi_create_int32(env, fd, &v));
    CHECK(env, napi_set_named_property(env, obj, "fd", v));
    CHECK(env, napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &v));
    CHECK(env, napi_set_named_property(env, obj, "ifname", v));
    CHECK(env, napi_create_int32(env, hdrlen, &v));
    CHECK(env, napi_set_named_property(env, obj, "vnetHdrLen", v));
    return obj;
}

/*
 * tapRead(fd, buf, vnetHdrLen): one read of one frame into buf (the virtio
 * header, if any, into a scratch area). Returns the frame's length, which is
 * larger than buf when the kernel had to truncate it (the caller drops it),
 * or -errno.
 */
static napi_value js_tap_read(napi_env env, napi_callback_info info)
{
    size_t argc = 3, len;
    napi_value argv[3];
    int32_t fd, hdrlen;
    uint8_t *data;
    struct virtio_net_hdr hdr;
    struct iovec iov[2];
    ssize_t n;

    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
        napi_get_value_int32(env, argv[0], &fd) != napi_ok || get_u8array(env, argv[1], &data, &len) != 0 ||
        napi_get_value_int32(env, argv[2], &hdrlen) != napi_ok || (hdrlen != 0 && hdrlen != (int32_t)sizeof(hdr))) {
        napi_throw_type_error(env, NULL, "fdwatch.tapRead(fd, Uint8Array, vnetHdrLen 0|10)");
        return NULL;
    }
    iov[0].iov_base = &hdr;
    iov[0].iov_len = (size_t)hdrlen;
    iov[1].iov_base = data;
    iov[1].iov_len = len;
    do
        n = hdrlen ? readv(fd, iov, 2) : read(fd, data, len);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return int_result(env, -errno);
    if (n < hdrlen)
        return int_result(env, -EIO);
    return int_result(env, (int32_t)(n - hdrlen));
}

/*
 * tapWrite(fd, buf, len, vnetHdrLen, flags, gsoType, hdrLen, gsoSize,
 * csumStart, csumOffset): one write of buf[0, len) with, when vnetHdrLen is
 * 10, a virtio header made of the other arguments in front. Returns the
 * frame bytes written or -errno (-EAGAIN: the socket is full).
 */
static napi_value js_tap_write(napi_env env, napi_callback_info info)
{
    size_t argc = 10, buflen;
    napi_value argv[10];
    int32_t a[10];
    uint8_t *data;
    struct virtio_net_hdr hdr;
    struct iovec iov[2];
    ssize_t n;
    int bad = napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 ||
              get_u8array(env, argv[1], &data, &buflen) != 0;
    for (size_t i = 0; !bad && i < argc && i < 10; i++)
        if (i != 1 && napi_get_value_int32(env, argv[i], &a[i]) != napi_ok)
            bad = 1;
    for (size_t i = argc; !bad && i < 10; i++)
        a[i] = 0;
    if (bad || a[2] < 0 || (size_t)a[2] > buflen || (a[3] != 0 && a[3] != (int32_t)sizeof(hdr))) {
        napi_throw_type_error(env, NULL, "fdwatch.tapWrite(fd, Uint8Array, len, vnetHdrLen 0|10, ...)");
        return NULL;
    }
    memset(&hdr, 0, sizeof(hdr));
    hdr.flags = (uint8_t)a[4];
    hdr.gso_type = (uint8_t)a[5];
    hdr.hdr_len = (uint16_t)a[6];
    hdr.gso_size = (uint16_t)a[7];
    hdr.csum_start = (uint16_t)a[8];
    hdr.csum_offset = (uint16_t)a[9];
    iov[0].iov_base = &hdr;
    iov[0].iov_len = (size_t)a[3];
    iov[1].iov_base = data;
    iov[1].iov_len = (size_t)a[2];
    do
        n = a[3] ? writev(a[0], iov, 2) : write(a[0], data, (size_t)a[2]);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return int_result(env, -errno);
    return int_result(env, (int32_t)(n < a[3] ? 0 : n - a[3]));
}

NAPI_MODULE_INIT()
{
    napi_value fn;
    if (napi_create_function(env, "watch", NAPI_AUTO_LENGTH, js_watch, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "watch", fn) != napi_ok ||
        napi_create_function(env, "readable", NAPI_AUTO_LENGTH, js_readable, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "readable", fn) != napi_ok ||
        napi_create_function(env, "willNeed", NAPI_AUTO_LENGTH, js_will_need, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "willNeed", fn) != napi_ok ||
        napi_create_function(env, "readNowait", NAPI_AUTO_LENGTH, js_read_nowait, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "readNowait", fn) != napi_ok ||
        napi_create_function(env, "setLoopIdleTime", NAPI_AUTO_LENGTH, js_set_loop_idle_time, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "setLoopIdleTime", fn) != napi_ok ||
        napi_create_function(env, "setNonblock", NAPI_AUTO_LENGTH, js_set_nonblock, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "setNonblock", fn) != napi_ok ||
        napi_create_function(env, "evtchnWatch", NAPI_AUTO_LENGTH, js_evtchn_watch, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "evtchnWatch", fn) != napi_ok ||
        napi_create_function(env, "evtchnFill", NAPI_AUTO_LENGTH, js_evtchn_fill, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "evtchnFill", fn) != napi_ok ||
        napi_create_function(env, "evtchnUnmask", NAPI_AUTO_LENGTH, js_evtchn_unmask, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "evtchnUnmask", fn) != napi_ok ||
        napi_create_function(env, "evtchnNotify", NAPI_AUTO_LENGTH, js_evtchn_notify, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "evtchnNotify", fn) != napi_ok ||
        napi_create_uint32(env, EA_PORTS, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "evtchnAnswerHeader", fn) != napi_ok ||
        napi_create_function(env, "tapOpen", NAPI_AUTO_LENGTH, js_tap_open, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "tapOpen", fn) != napi_ok ||
        napi_create_function(env, "tapRead", NAPI_AUTO_LENGTH, js_tap_read, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "tapRead", fn) != napi_ok ||
        napi_create_function(env, "tapWrite", NAPI_AUTO_LENGTH, js_tap_write, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "tapWrite", fn) != napi_ok)
        return NULL;
    return exports;
}

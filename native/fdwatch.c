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
 * JS API:
 *   const w = watch(fd, (status, events) => {...}, events?);
 *        // events: 1 readable (default), 2 writable, 3 both; the callback gets
 *        // status 0 and the events that are ready, or a negative libuv error
 *   w.setEvents(mask);                        // 0 pauses the watch (fd stays registered)
 *   w.stop();                                 // idempotent
 *   readable(fd) -> boolean
 *   tapOpen(ifname, vnetHdr) -> { fd, ifname, vnetHdrLen }   // throws Error with .code = errno name
 *   tapRead(fd, buf, vnetHdrLen) -> frame length, or -errno (-EAGAIN: nothing queued)
 *   tapWrite(fd, buf, len, vnetHdrLen, flags, gsoType, hdrLen, gsoSize, csumStart, csumOffset)
 *        -> bytes of the frame written, or -errno
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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
} watcher_t;

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

static void on_poll(uv_poll_t *h, int status, int events)
{
    watcher_t *w = (watcher_t *)h;
    napi_env env = w->env;
    napi_handle_scope scope;
    napi_value fn, recv, args[2], result;

    if (napi_open_handle_scope(env, &scope) != napi_ok)
        return;
    if (napi_get_reference_value(env, w->callback, &fn) == napi_ok && fn != NULL &&
        napi_get_global(env, &recv) == napi_ok && napi_create_int32(env, status, &args[0]) == napi_ok &&
        napi_create_int32(env, status < 0 ? 0 : events & (UV_READABLE | UV_WRITABLE), &args[1]) == napi_ok) {
        /* napi_make_callback drains microtasks and keeps async hooks right; its receiver must be an object. */
        w->in_callback = 1;
        napi_status st = napi_make_callback(env, w->async, recv, fn, 2, args, &result);
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
    napi_close_handle_scope(env, scope);
}

static void stop_watcher(napi_env env, watcher_t *w)
{
    if (!w->started)
        return;
    w->started = 0;
    w->events = 0;
    uv_poll_stop(&w->poll);
    uv_close((uv_handle_t *)&w->poll, on_close);
    napi_delete_reference(env, w->callback);
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

static napi_value js_watch(napi_env env, napi_callback_info info)
{
    size_t argc = 3;
    napi_value argv[3], obj, stopfn, setfn, name;
    napi_valuetype t;
    int32_t fd, events = UV_READABLE;
    uv_loop_t *loop;
    int err;

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
    CHECK(env, napi_get_uv_event_loop(env, &loop));

    watcher_t *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        napi_throw_error(env, NULL, "fdwatch: out of memory");
        return NULL;
    }
    w->env = env;
    w->close_done = 1; /* no uv handle yet */
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
    if (napi_create_reference(env, argv[1], 1, &w->callback) != napi_ok ||
        napi_create_reference(env, obj, 1, &w->self) != napi_ok ||
        napi_async_init(env, NULL, name, &w->async) != napi_ok) {
        uv_close((uv_handle_t *)&w->poll, on_close);
        napi_throw_error(env, NULL, "fdwatch: cannot create references");
        return NULL;
    }
    w->started = 1;
    w->events = events;
    return obj;
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
        napi_create_function(env, "tapOpen", NAPI_AUTO_LENGTH, js_tap_open, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "tapOpen", fn) != napi_ok ||
        napi_create_function(env, "tapRead", NAPI_AUTO_LENGTH, js_tap_read, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "tapRead", fn) != napi_ok ||
        napi_create_function(env, "tapWrite", NAPI_AUTO_LENGTH, js_tap_write, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "tapWrite", fn) != napi_ok)
        return NULL;
    return exports;
}

/*
 * unixsock: unix stream sockets that carry file descriptors (SCM_RIGHTS).
 *
 * libxl's QMP `add-fd` sends the file to save into as ancillary data on the
 * first byte of the command (tools/libs/light/libxl_qmp.c,
 * qmp_ev_callback_writable + libxl__sendmsg_fds). Node's net module reads its
 * sockets with read(2), and the kernel closes descriptors that arrive where
 * nobody asked for them, so the QMP server does its socket I/O here instead:
 * plain non-blocking syscalls, and a uv_poll watcher (readable and/or
 * writable) to wake JavaScript. Nothing here blocks.
 *
 * JS API (errors throw an Error whose `code` is the errno name):
 *   listen(path, backlog) -> fd           socket + bind + listen, non-blocking, CLOEXEC
 *   connect(path) -> fd                   (tests) blocking connect, then non-blocking
 *   accept(fd) -> fd | -1                 -1: nothing pending (EAGAIN)
 *   recv(fd, buf, fds[]) -> n             n bytes into buf; 0 EOF; -1 EAGAIN;
 *                                         received descriptors (CLOEXEC) pushed on fds,
 *                                         at most MAX_FDS per call (the kernel closes the rest)
 *   send(fd, buf, off, len, fds?) -> n    -1: would block; fds go with the first byte
 *   close(fd)
 *   setNonblock(fd, on)
 *   makeRaw(fd) -> boolean                a tty: cfmakeraw + tcsetattr (true); else false
 *   accessMode(fd) -> 0|1|2               O_RDONLY / O_WRONLY / O_RDWR (fcntl F_GETFL)
 *   chroot(dir) -> 0 | -errno             chroot(dir) then chdir("/") (-chroot: Node has no
 *                                         chroot, and it is no Xen call, so not koffi in src/xen)
 *   const w = watch(fd, events, cb)       events: 1 readable, 2 writable; cb(status, events)
 *   w.set(events); w.stop()               change the interest set; stop (idempotent)
 */
#define NAPI_VERSION 8
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

/* Descriptors accepted per recvmsg: libxl sends one; more is a confused or hostile peer. */
#define MAX_FDS 8

#define CHECK(env, call)                                                   \
    do {                                                                   \
        if ((call) != napi_ok) {                                           \
            napi_throw_error((env), NULL, "unixsock: " #call " failed");   \
            return NULL;                                                   \
        }                                                                  \
    } while (0)

static napi_value throw_errno(napi_env env, const char *what, int err)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "%s: %s", what, strerror(err));
    const char *code = NULL;
    switch (err) {
    case EBADF: code = "EBADF"; break;
    case ENOENT: code = "ENOENT"; break;
    case EACCES: code = "EACCES"; break;
    case EADDRINUSE: code = "EADDRINUSE"; break;
    case ECONNREFUSED: code = "ECONNREFUSED"; break;
    case ECONNRESET: code = "ECONNRESET"; break;
    case EPIPE: code = "EPIPE"; break;
    case ENOTSOCK: code = "ENOTSOCK"; break;
    case ENAMETOOLONG: code = "ENAMETOOLONG"; break;
    case EMFILE: code = "EMFILE"; break;
    case EINVAL: code = "EINVAL"; break;
    default: code = "EIO"; break;
    }
    napi_throw_error(env, code, msg);
    return NULL;
}

static int get_int(napi_env env, napi_value v, int32_t *out)
{
    return napi_get_value_int32(env, v, out) == napi_ok;
}

static napi_value make_int(napi_env env, int32_t v)
{
    napi_value r;
    if (napi_create_int32(env, v, &r) != napi_ok)
        return NULL;
    return r;
}

/* buf argument: a Uint8Array/Buffer -> pointer + length */
static int get_bytes(napi_env env, napi_value v, uint8_t **p, size_t *len)
{
    napi_typedarray_type t;
    napi_value ab;
    size_t off;
    void *data;
    bool is_ta = false;
    if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta)
        return 0;
    if (napi_get_typedarray_info(env, v, &t, len, &data, &ab, &off) != napi_ok || t != napi_uint8_array)
        return 0;
    *p = data;
    return 1;
}

static int fill_sun(const char *path, struct sockaddr_un *sun)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun->sun_path))
        return -1;
    strcpy(sun->sun_path, path);
    return 0;
}

static napi_value js_listen(napi_env env, napi_callback_info info)
{
    size_t argc = 2;
    napi_value argv[2];
    char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
    size_t plen;
    int32_t backlog = 16;
    struct sockaddr_un sun;

    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 1 || napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &plen) != napi_ok) {
        napi_throw_type_error(env, NULL, "unixsock.listen(path, backlog): path must be a string");
        return NULL;
    }
    if (argc >= 2)
        get_int(env, argv[1], &backlog);
    if (plen >= sizeof(sun.sun_path) || fill_sun(path, &sun) < 0)
        return throw_errno(env, "unixsock.listen: path too long", ENAMETOOLONG);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return throw_errno(env, "unixsock.listen: socket", errno);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, backlog) < 0) {
        int e = errno;
        close(fd);
        return throw_errno(env, "unixsock.listen", e);
    }
    return make_int(env, fd);
}

static napi_value js_connect(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
    size_t plen;
    struct sockaddr_un sun;

    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 1 || napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &plen) != napi_ok) {
        napi_throw_type_error(env, NULL, "unixsock.connect(path): path must be a string");
        return NULL;
    }
    if (plen >= sizeof(sun.sun_path) || fill_sun(path, &sun) < 0)
        return throw_errno(env, "unixsock.connect: path too long", ENAMETOOLONG);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return throw_errno(env, "unixsock.connect: socket", errno);
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int e = errno;
        close(fd);
        return throw_errno(env, "unixsock.connect", e);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return make_int(env, fd);
}

static napi_value js_accept(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    int32_t lfd;
    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 1 || !get_int(env, argv[0], &lfd)) {
        napi_throw_type_error(env, NULL, "unixsock.accept(fd)");
        return NULL;
    }
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
            return make_int(env, fd);
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED)
            return make_int(env, -1);
        return throw_errno(env, "unixsock.accept", errno);
    }
}

static napi_value js_recv(napi_env env, napi_callback_info info)
{
    size_t argc = 3;
    napi_value argv[3];
    int32_t fd;
    uint8_t *buf;
    size_t len;
    bool is_array = false;
    union {
        char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
        struct cmsghdr align;
    } ctl;

    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 3 || !get_int(env, argv[0], &fd) || !get_bytes(env, argv[1], &buf, &len) ||
        napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array) {
        napi_throw_type_error(env, NULL, "unixsock.recv(fd, Uint8Array, fds[])");
        return NULL;
    }
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof(ctl.buf);
    ssize_t n;
    do {
        n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return make_int(env, -1);
        return throw_errno(env, "unixsock.recv", errno);
    }
    uint32_t at;
    CHECK(env, napi_get_array_length(env, argv[2], &at));
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int fds[MAX_FDS];
        if (nfds > MAX_FDS)
            nfds = MAX_FDS;
        memcpy(fds, CMSG_DATA(c), nfds * sizeof(int));
        for (size_t i = 0; i < nfds; i++) {
            napi_value v = make_int(env, fds[i]);
            if (v == NULL || napi_set_element(env, argv[2], at++, v) != napi_ok) {
                /* JS never saw it: do not leak it */
                close(fds[i]);
            }
        }
    }
    return make_int(env, (int32_t)n);
}

static napi_value js_send(napi_env env, napi_callback_info info)
{
    size_t argc = 5;
    napi_value argv[5];
    int32_t fd, off, len;
    uint8_t *buf;
    size_t blen;
    int fds[MAX_FDS];
    uint32_t nfds = 0;
    union {
        char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
        struct cmsghdr align;
    } ctl;

    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 4 || !get_int(env, argv[0], &fd) || !get_bytes(env, argv[1], &buf, &blen) || !get_int(env, argv[2], &off) ||
        !get_int(env, argv[3], &len) || off < 0 || len < 0 || (size_t)off + (size_t)len > blen) {
        napi_throw_type_error(env, NULL, "unixsock.send(fd, Uint8Array, off, len, fds?)");
        return NULL;
    }
    if (argc >= 5) {
        bool is_array = false;
        if (napi_is_array(env, argv[4], &is_array) == napi_ok && is_array) {
            CHECK(env, napi_get_array_length(env, argv[4], &nfds));
            if (nfds > MAX_FDS) {
                napi_throw_range_error(env, NULL, "unixsock.send: too many descriptors");
                return NULL;
            }
            for (uint32_t i = 0; i < nfds; i++) {
                napi_value v;
                CHECK(env, napi_get_element(env, argv[4], i, &v));
                if (!get_int(env, v, &fds[i])) {
                    napi_throw_type_error(env, NULL, "unixsock.send: descriptors must be integers");
                    return NULL;
                }
            }
        }
    }
    struct iovec iov = { .iov_base = buf + off, .iov_len = (size_t)len };
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (nfds > 0) {
        memset(ctl.buf, 0, sizeof(ctl.buf));
        msg.msg_control = ctl.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    ssize_t n;
    do {
        n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return make_int(env, -1);
        return throw_errno(env, "unixsock.send", errno);
    }
    return make_int(env, (int32_t)n);
}

static napi_value js_close(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    int32_t fd;
    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 1 || !get_int(env, argv[0], &fd) || fd < 0) {
        napi_throw_type_error(env, NULL, "unixsock.close(fd)");
        return NULL;
    }
    if (close(fd) < 0 && errno != EINTR)
        return throw_errno(env, "unixsock.close", errno);
    return NULL;
}

static napi_value js_set_nonblock(napi_env env, napi_callback_info info)
{
    size_t argc = 2;
    napi_value argv[2];
    int32_t fd;
    bool on = true;
    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 1 || !get_int(env, argv[0], &fd)) {
        napi_throw_type_error(env, NULL, "unixsock.setNonblock(fd, on)");
        return NULL;
    }
    if (argc >= 2)
        napi_get_value_bool(env, argv[1], &on);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK)) < 0)
        return throw_errno(env, "unixsock.setNonblock", errno);
    return NULL;
}

static napi_value js_make_raw(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1], result;
    int32_t fd;
    struct termios t;
    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 1 || !get_int(env, argv[0], &fd)) {
        napi_throw_type_error(env, NULL, "unixsock.makeRaw(fd)");
        return NULL;
    }
    if (tcgetattr(fd, &t) < 0) {
        if (errno == ENOTTY || errno == EINVAL) {
            CHECK(env, napi_get_boolean(env, false, &result));
            return result;
        }
        return throw_errno(env, "unixsock.makeRaw: tcgetattr", errno);
    }
    cfmakeraw(&t);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(fd, TCSANOW, &t) < 0)
        return throw_errno(env, "unixsock.makeRaw: tcsetattr", errno);
    CHECK(env, napi_get_boolean(env, true, &result));
    return result;
}

static napi_value js_access_mode(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    int32_t fd;
    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 1 || !get_int(env, argv[0], &fd)) {
        napi_throw_type_error(env, NULL, "unixsock.accessMode(fd)");
        return NULL;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return throw_errno(env, "unixsock.accessMode", errno);
    return make_int(env, fl & O_ACCMODE);
}

/*
 * -chroot: the working directory moves inside too, or "." would still reach
 * the old root. Returns -errno instead of throwing: the caller words the
 * operator's line.
 */
static napi_value js_chroot(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    char dir[4096];
    size_t len;
    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 1 || napi_get_value_string_utf8(env, argv[0], dir, sizeof(dir), &len) != napi_ok) {
        napi_throw_type_error(env, NULL, "unixsock.chroot(dir): dir must be a string");
        return NULL;
    }
    if (len == 0)
        return make_int(env, -ENOENT);
    if (len >= sizeof(dir) - 1)
        return make_int(env, -ENAMETOOLONG);
    if (chroot(dir) < 0)
        return make_int(env, -errno);
    if (chdir("/") < 0)
        return make_int(env, -errno);
    return make_int(env, 0);
}

/* ---- watch: uv_poll with a changeable interest set (as native/fdwatch.c, plus writable) ---- */

typedef struct {
    uv_poll_t poll; /* first: the uv handle pointer is the struct pointer */
    napi_env env;
    napi_ref callback;
    napi_ref self;
    napi_async_context async;
    int started;
    int in_callback;
    int destroy_async;
    int close_done;
    int wrapper_gone;
} watcher_t;

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
    int mask = (events & UV_READABLE ? 1 : 0) | (events & UV_WRITABLE ? 2 : 0);

    if (napi_open_handle_scope(env, &scope) != napi_ok)
        return;
    if (napi_get_reference_value(env, w->callback, &fn) == napi_ok && fn != NULL && napi_get_global(env, &recv) == napi_ok &&
        napi_create_int32(env, status, &args[0]) == napi_ok && napi_create_int32(env, mask, &args[1]) == napi_ok) {
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
                napi_fatal_exception(env, err);
        }
    }
    napi_close_handle_scope(env, scope);
}

static int uv_events(int mask)
{
    return (mask & 1 ? UV_READABLE : 0) | (mask & 2 ? UV_WRITABLE : 0);
}

static void stop_watcher(napi_env env, watcher_t *w)
{
    if (!w->started)
        return;
    w->started = 0;
    uv_poll_stop(&w->poll);
    uv_close((uv_handle_t *)&w->poll, on_close);
    napi_delete_reference(env, w->callback);
    if (w->in_callback)
        w->destroy_async = 1;
    else
        napi_async_destroy(env, w->async);
    napi_reference_unref(env, w->self, NULL);
}

static napi_value js_w_stop(napi_env env, napi_callback_info info)
{
    napi_value thisv;
    watcher_t *w;
    CHECK(env, napi_get_cb_info(env, info, NULL, NULL, &thisv, NULL));
    CHECK(env, napi_unwrap(env, thisv, (void **)&w));
    stop_watcher(env, w);
    return NULL;
}

static napi_value js_w_set(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1], thisv;
    watcher_t *w;
    int32_t mask;
    CHECK(env, napi_get_cb_info(env, info, &argc, argv, &thisv, NULL));
    CHECK(env, napi_unwrap(env, thisv, (void **)&w));
    if (argc < 1 || !get_int(env, argv[0], &mask) || mask < 0 || mask > 3) {
        napi_throw_type_error(env, NULL, "watcher.set(events): events 0..3");
        return NULL;
    }
    if (!w->started)
        return NULL;
    int err = mask == 0 ? uv_poll_stop(&w->poll) : uv_poll_start(&w->poll, uv_events(mask), on_poll);
    if (err != 0) {
        napi_throw_error(env, uv_err_name(err), uv_strerror(err));
        return NULL;
    }
    return NULL;
}

static napi_value js_watch(napi_env env, napi_callback_info info)
{
    size_t argc = 3;
    napi_value argv[3], obj, fn, name;
    napi_valuetype t;
    int32_t fd, mask;
    uv_loop_t *loop;
    int err;

    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 3 || !get_int(env, argv[0], &fd) || fd < 0 || !get_int(env, argv[1], &mask) || mask < 1 || mask > 3) {
        napi_throw_type_error(env, NULL, "unixsock.watch(fd, events 1..3, callback)");
        return NULL;
    }
    CHECK(env, napi_typeof(env, argv[2], &t));
    if (t != napi_function) {
        napi_throw_type_error(env, NULL, "unixsock.watch: callback must be a function");
        return NULL;
    }
    CHECK(env, napi_get_uv_event_loop(env, &loop));
    watcher_t *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        napi_throw_error(env, NULL, "unixsock: out of memory");
        return NULL;
    }
    w->env = env;
    w->close_done = 1;
    CHECK(env, napi_create_object(env, &obj));
    if (napi_wrap(env, obj, w, finalize, NULL, NULL) != napi_ok) {
        free(w);
        napi_throw_error(env, NULL, "unixsock: napi_wrap failed");
        return NULL;
    }
    CHECK(env, napi_create_function(env, "stop", NAPI_AUTO_LENGTH, js_w_stop, NULL, &fn));
    CHECK(env, napi_set_named_property(env, obj, "stop", fn));
    CHECK(env, napi_create_function(env, "set", NAPI_AUTO_LENGTH, js_w_set, NULL, &fn));
    CHECK(env, napi_set_named_property(env, obj, "set", fn));
    CHECK(env, napi_create_string_utf8(env, "unixsock", NAPI_AUTO_LENGTH, &name));
    err = uv_poll_init(loop, &w->poll, fd);
    if (err == 0) {
        w->close_done = 0;
        err = uv_poll_start(&w->poll, uv_events(mask), on_poll);
        if (err != 0)
            uv_close((uv_handle_t *)&w->poll, on_close);
    }
    if (err != 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "unixsock: cannot watch fd %d: %s", fd, uv_strerror(err));
        napi_throw_error(env, uv_err_name(err), msg);
        return NULL;
    }
    if (napi_create_reference(env, argv[2], 1, &w->callback) != napi_ok || napi_create_reference(env, obj, 1, &w->self) != napi_ok ||
        napi_async_init(env, NULL, name, &w->async) != napi_ok) {
        uv_close((uv_handle_t *)&w->poll, on_close);
        napi_throw_error(env, NULL, "unixsock: cannot create references");
        return NULL;
    }
    w->started = 1;
    return obj;
}

NAPI_MODULE_INIT()
{
    static const struct {
        const char *name;
        napi_callback cb;
    } fns[] = {
        { "listen", js_listen },   { "connect", js_connect },         { "accept", js_accept },
        { "recv", js_recv },       { "send", js_send },               { "close", js_close },
        { "setNonblock", js_set_nonblock }, { "makeRaw", js_make_raw }, { "accessMode", js_access_mode },
        { "watch", js_watch },     { "chroot", js_chroot },
    };
    for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
        napi_value fn;
        if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, NULL, &fn) != napi_ok ||
            napi_set_named_property(env, exports, fns[i].name, fn) != napi_ok)
            return NULL;
    }
    return exports;
}

/*
 * fdwatch: wake JavaScript when a file descriptor becomes readable.
 *
 * Node has no way to poll an arbitrary character device (the Xen event
 * channel device, the xenstore fd), so this addon puts the fd into libuv's
 * loop with uv_poll_t and calls a JS function when it is readable. The
 * callback runs on the main thread, between other events, never
 * re-entrantly. uv_poll is level-triggered: if the callback leaves events
 * pending it runs again on the next loop turn.
 *
 * readable(fd) is poll() with a zero timeout, so a caller can drain a burst
 * (xenevtchn.h: poll() must precede every xenevtchn_pending()).
 *
 * JS API:
 *   const w = watch(fd, (status) => {...});  // status 0, or a negative libuv error
 *   w.stop();                                 // idempotent
 *   readable(fd) -> boolean
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uv_poll_t poll;       /* first: the uv handle pointer is the struct pointer */
    napi_env env;
    napi_ref callback;    /* the JS function */
    napi_ref self;        /* strong while started: the wrapper must outlive the handle */
    napi_async_context async;
    int started;
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
    (void)events;
    watcher_t *w = (watcher_t *)h;
    napi_env env = w->env;
    napi_handle_scope scope;
    napi_value fn, recv, arg, result;

    if (napi_open_handle_scope(env, &scope) != napi_ok)
        return;
    if (napi_get_reference_value(env, w->callback, &fn) == napi_ok && fn != NULL &&
        napi_get_global(env, &recv) == napi_ok && napi_create_int32(env, status, &arg) == napi_ok) {
        /* napi_make_callback drains microtasks and keeps async hooks right; its receiver must be an object. */
        w->in_callback = 1;
        napi_status st = napi_make_callback(env, w->async, recv, fn, 1, &arg, &result);
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

static napi_value js_watch(napi_env env, napi_callback_info info)
{
    size_t argc = 2;
    napi_value argv[2], obj, stopfn, name;
    napi_valuetype t;
    int32_t fd;
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
    CHECK(env, napi_create_string_utf8(env, "fdwatch", NAPI_AUTO_LENGTH, &name));

    err = uv_poll_init(loop, &w->poll, fd);
    if (err == 0) {
        w->close_done = 0;
        err = uv_poll_start(&w->poll, UV_READABLE, on_poll);
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

NAPI_MODULE_INIT()
{
    napi_value fn;
    if (napi_create_function(env, "watch", NAPI_AUTO_LENGTH, js_watch, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "watch", fn) != napi_ok ||
        napi_create_function(env, "readable", NAPI_AUTO_LENGTH, js_readable, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "readable", fn) != napi_ok)
        return NULL;
    return exports;
}

/* The chat consumer's database thread (see worker.h).
 *
 * One thread, one store connection, one FIFO of jobs. The thread takes
 * everything queued at once and runs it in order; a run of consecutive
 * frame jobs becomes one batch: session re-checks first, then the chat
 * messages in one transaction (chat_store_add_messages: one commit, one
 * fsync). A connect job ends a batch, so the history it reads and the
 * broadcasts around it keep their order: a message is either in a joiner's
 * history or delivered to it live, never both, never neither (within one
 * process). Finished jobs go back to the loop in the same order through a
 * uv_async handle. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "worker.h"

#define BATCH_MAX 256 /* messages per transaction */

struct chat_worker {
    chanc_app_t *app;
    chat_store_t *store; /* the thread's own, or the caller's (inline) */
    bool threaded;
    int64_t job_now; /* the running job's clock (worker thread only) */

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    chat_job_t *todo, **todo_tail; /* guarded by mu */
    chat_job_t *done, **done_tail; /* guarded by mu */
    bool stop;                     /* guarded by mu */
    /* Under a test's scheduler: jobs handed over and not yet back (guarded
     * by mu; the thread signals idle_cv when it reaches 0). */
    size_t inflight, batch_n;
    pthread_cond_t idle_cv;
    bool destroying; /* loop thread: results finish now, not queued */
    uv_async_t wake;
    /* Jobs submitted since the loop last went idle (loop thread only),
     * handed over by an idle handle on the next turn, before it polls: one
     * lock and one wakeup for all the handshakes and frames one turn of the
     * loop produced, and bigger batches for the thread. (An idle handle, not
     * a check handle: a check runs only after a poll, which would block
     * when the submit came from outside the loop, as a test's does.) */
    chat_job_t *batch, **batch_tail;
    uv_idle_t flush;
    int closing; /* handles still to close */
};

/* ---- running jobs (worker thread, or the loop thread inline) ------------------ */

static void run_connect(chat_store_t *s, chat_connect_job_t *j) {
    j->session_rc = j->room_rc = j->member_rc = j->history_rc = CHANC_ENOTFOUND;
    if (!j->has_token)
        return;
    j->session_rc = chat_store_session_user_until(s, j->token, &j->user, &j->expires_ms);
    if (j->session_rc < 0 || !j->has_room)
        return;
    j->room_rc = chat_store_get_room(s, j->room_pk, &j->room);
    if (j->room_rc < 0)
        return;
    j->member_rc = chat_store_is_member(s, j->room.id, j->user.id, &j->member);
    if (j->member_rc < 0 || !j->member)
        return;
    j->history_rc = chat_store_history(s, j->room.id, CHAT_HISTORY_LIMIT, &j->history);
}

/* Frame jobs first..last (all CHAT_JOB_FRAME): re-checks, then one commit. */
static void run_frames(chat_worker_t *w, chat_job_t *first, size_t n) {
    chat_store_msg_t batch[BATCH_MAX];
    chat_frame_job_t *owner[BATCH_MAX];
    size_t nb = 0;
    chat_job_t *j = first;
    for (size_t i = 0; i < n; i++, j = j->next) {
        chat_frame_job_t *f = (chat_frame_job_t *)j;
        w->job_now = j->now_ms;
        f->session_ok = true;
        if (f->check_session)
            f->session_ok = chat_store_session_user(w->store, f->token, NULL) != CHANC_ENOTFOUND;
        if (f->session_ok && f->has_message) {
            batch[nb] = f->msg;
            owner[nb++] = f;
        }
    }
    if (!nb)
        return;
    uint64_t t0 = uv_hrtime();
    chat_store_add_messages(w->store, batch, nb);
    uint64_t ns = uv_hrtime() - t0;
    for (size_t i = 0; i < nb; i++) {
        owner[i]->msg.rc = batch[i].rc;
        owner[i]->msg.id = batch[i].id;
        owner[i]->commit_ns = ns;
        owner[i]->first_in_commit = i == 0;
    }
}

/* Run a list of jobs in order. */
static void run_list(chat_worker_t *w, chat_job_t *list) {
    while (list) {
        if (list->kind != CHAT_JOB_FRAME) {
            w->job_now = list->now_ms;
            if (list->kind == CHAT_JOB_CONNECT)
                run_connect(w->store, (chat_connect_job_t *)list);
            else
                ((chat_call_job_t *)list)->run(w->store, (chat_call_job_t *)list);
            list = list->next;
            continue;
        }
        size_t n = 0, msgs = 0;
        chat_job_t *j = list;
        while (j && j->kind == CHAT_JOB_FRAME && msgs < BATCH_MAX) {
            msgs += ((chat_frame_job_t *)j)->has_message;
            n++;
            j = j->next;
        }
        run_frames(w, list, n);
        list = j;
    }
}

static void push_done(chat_worker_t *w, chat_job_t *list, chat_job_t **tail) {
    pthread_mutex_lock(&w->mu);
    *w->done_tail = list;
    w->done_tail = tail;
    pthread_mutex_unlock(&w->mu);
    uv_async_send(&w->wake);
}

static void *worker_main(void *arg) {
    chat_worker_t *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->todo && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->todo)
            break; /* stopping, and everything submitted has run */
        chat_job_t *list = w->todo, **tail = w->todo_tail;
        w->todo = NULL;
        w->todo_tail = &w->todo;
        size_t n = 0;
        for (chat_job_t *j = list; j; j = j->next)
            n++;
        pthread_mutex_unlock(&w->mu);
        run_list(w, list);
        push_done(w, list, tail);
        pthread_mutex_lock(&w->mu);
        w->inflight = w->inflight > n ? w->inflight - n : 0;
        if (!w->inflight)
            pthread_cond_broadcast(&w->idle_cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- back on the loop ------------------------------------------------------------ */

static void finish_job(void *arg) {
    chat_job_t *j = arg;
    chanc_app_t *app = j->worker->app;
    j->done(j);
    chanc_app_release(app);
}

static void run_done(chat_worker_t *w) {
    pthread_mutex_lock(&w->mu);
    chat_job_t *list = w->done;
    w->done = NULL;
    w->done_tail = &w->done;
    pthread_mutex_unlock(&w->mu);
    bool exploring = chanc_app_exploring(w->app) && !w->destroying;
    while (list) {
        chat_job_t *j = list;
        list = j->next;
        if (!exploring || chanc_app_call_soon_ordered(w->app, w, finish_job, j) < 0)
            finish_job(j);
    }
}

static void on_wake(uv_async_t *h) { run_done(h->data); }

/* Hand what the last turn submitted to the thread. */
static void hand_over(chat_worker_t *w) {
    uv_idle_stop(&w->flush);
    if (!w->batch)
        return;
    pthread_mutex_lock(&w->mu);
    *w->todo_tail = w->batch;
    w->todo_tail = w->batch_tail;
    w->inflight += w->batch_n;
    pthread_cond_signal(&w->cv);
    if (chanc_app_exploring(w->app)) {
        /* A test's schedule, not the thread's speed, decides where the
         * results land: wait for them here (tests only), then queue them. */
        while (w->inflight)
            pthread_cond_wait(&w->idle_cv, &w->mu);
        pthread_mutex_unlock(&w->mu);
        run_done(w);
    } else {
        pthread_mutex_unlock(&w->mu);
    }
    w->batch = NULL;
    w->batch_tail = &w->batch;
    w->batch_n = 0;
}

static void on_flush(uv_idle_t *h) { hand_over(h->data); }

/* Both handles closed: w goes. */
static void on_closed(uv_handle_t *h) {
    chat_worker_t *w = h->data;
    if (--w->closing == 0)
        free(w);
}

static void close_handles(chat_worker_t *w) {
    w->closing = 2;
    uv_close((uv_handle_t *)&w->flush, on_closed);
    uv_close((uv_handle_t *)&w->wake, on_closed);
}

static int64_t job_clock(void *ud) { return ((chat_worker_t *)ud)->job_now; }

chat_worker_t *chat_worker_create(chanc_app_t *app, chat_store_t *s, chanc_error_t *err) {
    chat_worker_t *w = calloc(1, sizeof *w);
    if (!w) {
        chanc_error_set(err, CHANC_ENOMEM, "out of memory");
        return NULL;
    }
    w->app = app;
    w->todo_tail = &w->todo;
    w->done_tail = &w->done;
    w->batch_tail = &w->batch;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_cond_init(&w->idle_cv, NULL);
    if (chat_store_is_shareable(s)) {
        /* The thread's store reads "now" from the job, so a test's virtual
         * clock reaches it without crossing threads. */
        const chanc_clock_t clock = {NULL, job_clock, w};
        if (chat_store_open_like(s, &clock, &w->store, err) < 0)
            goto fail;
        w->threaded = true;
    } else {
        w->store = s;
    }
    if (uv_async_init(chanc_app_loop(app), &w->wake, on_wake) != 0) {
        chanc_error_set(err, CHANC_EIO, "uv_async_init failed");
        goto fail;
    }
    w->wake.data = w;
    uv_idle_init(chanc_app_loop(app), &w->flush);
    w->flush.data = w;
    if (w->threaded && pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        chanc_error_set(err, CHANC_EIO, "could not start the database thread");
        chat_store_close(w->store);
        pthread_cond_destroy(&w->cv);
        pthread_cond_destroy(&w->idle_cv);
        pthread_mutex_destroy(&w->mu);
        close_handles(w); /* frees w */
        return NULL;
    }
    return w;
fail:
    if (w->threaded)
        chat_store_close(w->store);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->idle_cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
    return NULL;
}

void chat_worker_submit(chat_worker_t *w, chat_job_t *j) {
    j->next = NULL;
    j->worker = w;
    chanc_app_hold(w->app);
    if (!w->threaded) {
        run_list(w, j);
        push_done(w, j, &j->next);
        return;
    }
    if (!w->batch)
        uv_idle_start(&w->flush, on_flush);
    *w->batch_tail = j;
    w->batch_tail = &j->next;
    w->batch_n++;
}

void chat_worker_destroy(chat_worker_t *w) {
    if (!w)
        return;
    w->destroying = true; /* w goes with its handles: nothing of it may wait in the queue */
    if (w->threaded) {
        hand_over(w); /* what this turn submitted */
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
        chat_store_close(w->store);
    }
    run_done(w); /* what finished but the loop has not seen yet */
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->idle_cv);
    pthread_mutex_destroy(&w->mu);
    close_handles(w);
}

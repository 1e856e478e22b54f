/*
 * link.c — byol-worker's connection to the coordinator: connecting, back-off,
 * heartbeats, signals and worker_net_run (worker/net.h). The jobs and the
 * coordinator's messages are net.c's.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "byol/auth.h"
#include "worker.h"

#define BACKOFF_MIN 0.1         /* seconds */
#define BACKOFF_MAX 10.0
#define STABLE_MS 10000         /* a connection this old resets the back-off */

/* ---- clocks and logs -------------------------------------------------------- */

static void conn_log(void *data, const char *line)
{
	(void)data;
	worker_log("%s", line);
}

uint64_t wn_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t wn_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- connecting ------------------------------------------------------------- */

static void connect_now(worker *w);

static double rand01(worker *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return (double)(w->rng >> 11) / 9007199254740992.0;
}

static void retry_cb(uv_timer_t *t)
{
	connect_now(t->data);
}

static void schedule_retry(worker *w)
{
	if (w->stopping)
		return;
	double d = w->backoff * (0.5 + rand01(w)); /* jitter: 0.5 to 1.5 times */
	if (d > BACKOFF_MAX)
		d = BACKOFF_MAX;
	w->backoff = w->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : w->backoff * 2;
	worker_log("reconnecting to %s in %.1f s", w->addr, d);
	uv_timer_start(&w->retry_timer, retry_cb, (uint64_t)(d * 1000), 0);
}

static void on_close(conn *c, int code, const char *reason)
{
	worker *w = conn_owner(c);
	worker_log("disconnected from %s: %s", w->addr, code ? reason : "closed");
	if (wn_now_ms() - w->opened_ms >= STABLE_MS)
		w->backoff = BACKOFF_MIN;
	w->c = NULL;
	w->open = 0;
	w->gen++;
	w->peer_beats = 0;
	wn_queue_drop(w, "the connection is gone");
	wn_inbox_clear(w);
	if (w->run)
		w->run->online_step = w->run->target_step = -1;
	if (w->stopping)
		wn_maybe_finish(w);
	else
		schedule_retry(w);
}

static void on_connect(conn *c, int status, const char *reason)
{
	worker *w = conn_owner(c);
	if (status < 0) {
		w->c = NULL; /* conn has logged why */
		if (w->stopping)
			wn_maybe_finish(w);
		else
			schedule_retry(w);
		return;
	}
	w->c = c;
	w->open = 1;
	w->shm_said = 0;
	w->gen++;
	w->opened_ms = w->last_rx_ms = wn_now_ms();
	w->peer_beats = 0;
	worker_log("connected to %s (%s) as %s, %d threads", w->addr, conn_name(c), w->name,
		   w->opt.threads);
	Byol__WorkerRegister reg = BYOL__WORKER_REGISTER__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	reg.name = w->name;
	reg.threads = (uint32_t)w->opt.threads;
	reg.version = WORKER_VERSION;
	reg.host = w->host;
	e.msg_case = BYOL__ENVELOPE__MSG_WORKER_REGISTER;
	e.worker_register = &reg;
	wn_send_env(w, &e);
}

/* Starts a connection; returns 0 or the error of a call that failed at once. */
static int try_connect(worker *w, char *err)
{
	conn_config cfg = {0};
	cfg.token = w->token;
	cfg.role = AUTH_ROLE_WORKER;
	cfg.name = w->name;
	cfg.version = WORKER_VERSION;
	cfg.data = w;
	cfg.shm = !w->opt.no_shm;
	cfg.on_message = wn_on_message;
	cfg.on_close = on_close;
	cfg.log = conn_log;
	conn *c = NULL;
	int rc = w->opt.socket_path
			 ? conn_connect_pipe(&w->loop, w->opt.socket_path, &cfg, on_connect, &c, err)
			 : conn_connect_tcp(&w->loop, w->opt.coordinator, &cfg, on_connect, &c, err);
	if (rc == 0)
		w->c = c;
	return rc;
}

static void connect_now(worker *w)
{
	char err[BYOL_ERR_LEN];
	if (w->stopping || w->c)
		return;
	if (try_connect(w, err) < 0) {
		worker_log("cannot connect to %s: %s", w->addr, err);
		schedule_retry(w);
	}
}

/* ---- heartbeats, signals, the end ------------------------------------------- */

static void hb_cb(uv_timer_t *t)
{
	worker *w = t->data;
	if (!w->c || !w->open)
		return;
	if (w->peer_beats && wn_now_ms() - w->last_rx_ms > WORKER_SILENCE_MS) {
		conn_close(w->c, -ETIMEDOUT, "nothing from the coordinator for %d s",
			   WORKER_SILENCE_MS / 1000);
		return;
	}
	Byol__Heartbeat hb = BYOL__HEARTBEAT__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	hb.seq = ++w->hb_seq;
	hb.unix_ms = wn_wall_ms();
	e.msg_case = BYOL__ENVELOPE__MSG_HEARTBEAT;
	e.heartbeat = &hb;
	wn_send_env(w, &e);
}

/* Once stopping, nothing connected and no job running: close the last handles so
 * that uv_run returns. */
void wn_maybe_finish(worker *w)
{
	if (!w->stopping || w->finishing || w->c || w->busy)
		return;
	w->finishing = 1;
	uv_close((uv_handle_t *)&w->sig_term, NULL);
	uv_close((uv_handle_t *)&w->sig_int, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
	worker *w = s->data;
	if (w->stopping) {
		worker_log("%s again: closing at once", strsignal(signum));
		if (w->c)
			conn_close(w->c, -ECANCELED, "the worker is shutting down");
		return;
	}
	w->stopping = 1;
	worker_log("%s: stopping%s", strsignal(signum), w->busy ? " after the current job" : "");
	uv_close((uv_handle_t *)&w->hb_timer, NULL);
	uv_close((uv_handle_t *)&w->retry_timer, NULL);
	wn_queue_drop(w, "stopping");
	wn_inbox_clear(w);
	if (w->c)
		conn_close(w->c, 0, NULL);
	wn_maybe_finish(w);
}

int worker_net_run(const worker_net_options *opt)
{
	worker *w = calloc(1, sizeof(*w));
	char err[BYOL_ERR_LEN];
	int status = 1;
	if (!w) {
		worker_log("out of memory");
		return 1;
	}
	w->opt = *opt;
	if (w->opt.threads < 1)
		w->opt.threads = 1;
	if (!w->opt.heartbeat_ms)
		w->opt.heartbeat_ms = WORKER_HEARTBEAT_MS_DEFAULT;
	w->addr = opt->socket_path ? opt->socket_path : opt->coordinator;
	w->backoff = BACKOFF_MIN;
	w->rng = ((uint64_t)getpid() << 32) ^ (uint64_t)wn_wall_ms() ^ 0x9e3779b97f4a7c15ull;
	if (gethostname(w->host, sizeof(w->host) - 1) < 0)
		snprintf(w->host, sizeof(w->host), "localhost");
	if (opt->name)
		snprintf(w->name, sizeof(w->name), "%s", opt->name);
	else
		snprintf(w->name, sizeof(w->name), "%.40s-%d", w->host, (int)getpid());
	if (auth_init(err) < 0) {
		worker_log("%s", err);
		goto out;
	}
	if (opt->token_file && auth_token_load(opt->token_file, &w->token, NULL, err) < 0) {
		worker_log("%s", err);
		goto out;
	}
	if (uv_loop_init(&w->loop) < 0) {
		worker_log("cannot create the event loop");
		goto out;
	}
	uv_timer_init(&w->loop, &w->hb_timer);
	uv_timer_init(&w->loop, &w->retry_timer);
	uv_signal_init(&w->loop, &w->sig_term);
	uv_signal_init(&w->loop, &w->sig_int);
	w->hb_timer.data = w->retry_timer.data = w->sig_term.data = w->sig_int.data = w;
	uv_signal_start(&w->sig_term, on_signal, SIGTERM);
	uv_signal_start(&w->sig_int, on_signal, SIGINT);
	uv_timer_start(&w->hb_timer, hb_cb, w->opt.heartbeat_ms, w->opt.heartbeat_ms);
	if (try_connect(w, err) < 0) {
		/* refused at once: a malformed address or option, not a missing peer */
		worker_log("%s", err);
		w->stopping = 1;
		uv_close((uv_handle_t *)&w->hb_timer, NULL);
		uv_close((uv_handle_t *)&w->retry_timer, NULL);
		wn_maybe_finish(w);
		uv_run(&w->loop, UV_RUN_DEFAULT);
		uv_loop_close(&w->loop);
		goto out;
	}
	worker_log("%s %s, connecting to %s", WORKER_VERSION, w->name, w->addr);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&w->loop) < 0)
		worker_log("event loop closed with handles still open");
	worker_log("stopped");
	status = 0;
out:
	run_free(w->run);
	auth_token_free(w->token);
	free(w);
	return status;
}

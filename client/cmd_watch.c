/*
 * cmd_watch.c — byolctl watch: a run's progress as byold pushes it.
 *
 * One WatchRequest; byold answers the run's status at once, then pushes it after
 * applied steps (at most every --interval) and at the run's end, and every few
 * seconds while nothing else happens, so the client only ever blocks on the
 * next message: no polling. On a terminal the status is one progress bar
 * redrawn in place (\r and the ANSI clear-line); otherwise one plain line at
 * most every PLAIN_EVERY_S seconds, at each new epoch and at each change of
 * status; with --json one JSON object per update. When byold goes away (an
 * interrupted run continues when it starts again) the watch reconnects for up
 * to --reconnect seconds. cli_watch_run serves `submit --watch`, `resume
 * --watch` and `cancel` too.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"

#define WATCH_SILENCE_MS 30000  /* byold sends at least every 5 s: silence = gone */
#define PLAIN_EVERY_S 2.0
#define BAR_MAX 30
#define BAR_MIN 10
#define TAIL_WIDTH 72                   /* " 120/400 ETA 1:05 epoch 2/10 loss ..." */

typedef struct {
	const cli_watch_opts *o;
	int tty, cols;
	int drawn;                      /* a bar is on the terminal's last line */
	long epochs;                    /* from the run's config; 0 unknown */
	char name[128];
	char experiment[128];
	char status[24];
	uint64_t epoch;
	double last_line;
	uint64_t last_step;             /* of the last plain line */
} watch_view;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int terminal_columns(void)
{
	struct winsize ws;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
		return ws.ws_col;
	const char *c = getenv("COLUMNS");
	int n = c ? atoi(c) : 0;
	return n >= 20 ? n : 80;
}

/* "1:05", "2:03:07", "--:--" */
static void fmt_duration(char *out, size_t n, double s)
{
	if (!(s >= 0) || !isfinite(s) || s > 360000) {
		snprintf(out, n, "--:--");
		return;
	}
	long t = lround(s);
	if (t >= 3600)
		snprintf(out, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(out, n, "%ld:%02ld", t / 60, t % 60);
}

static long config_epochs(const char *config_json)
{
	cJSON *o = config_json && config_json[0] ? cJSON_Parse(config_json) : NULL;
	const cJSON *optim = cJSON_GetObjectItemCaseSensitive(o, "optim");
	const cJSON *ep = cJSON_GetObjectItemCaseSensitive(optim, "epochs");
	long n = cJSON_IsNumber(ep) ? (long)ep->valuedouble : 0;
	cJSON_Delete(o);
	return n;
}

static void add_num_or_null(cJSON *o, const char *key, double v, int ok)
{
	if (ok && isfinite(v))
		cJSON_AddNumberToObject(o, key, v);
	else
		cJSON_AddNullToObject(o, key);
}

static void add_str_or_null(cJSON *o, const char *key, const char *s)
{
	if (s && s[0])
		cJSON_AddStringToObject(o, key, s);
	else
		cJSON_AddNullToObject(o, key);
}

cJSON *cli_status_json(const Byol__RunStatus *s)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "run_id", (double)s->run_id);
	cJSON_AddNumberToObject(o, "experiment_id", (double)s->experiment_id);
	add_str_or_null(o, "experiment", s->experiment);
	cJSON_AddStringToObject(o, "name", s->name ? s->name : "");
	cJSON_AddStringToObject(o, "status", s->status ? s->status : "");
	cJSON_AddNumberToObject(o, "step", (double)s->step);
	cJSON_AddNumberToObject(o, "total_steps", (double)s->total_steps);
	cJSON_AddNumberToObject(o, "epoch", (double)s->epoch);
	add_num_or_null(o, "loss", s->loss, s->step > 0);
	add_num_or_null(o, "collapse", s->collapse, s->step > 0);
	add_num_or_null(o, "lr", s->lr, s->step > 0);
	add_num_or_null(o, "img_per_s", s->img_per_s, s->img_per_s > 0);
	add_num_or_null(o, "eta_s", s->eta_s, s->eta_s >= 0 && s->status &&
			strcmp(s->status, "running") == 0);
	add_num_or_null(o, "knn_accuracy", s->knn_accuracy, s->knn_accuracy > 0);
	add_num_or_null(o, "probe_accuracy", s->probe_accuracy, s->probe_accuracy > 0);
	add_str_or_null(o, "checkpoint", s->checkpoint);
	add_num_or_null(o, "checkpoint_step", (double)s->checkpoint_step,
			s->checkpoint && s->checkpoint[0]);
	cJSON_AddStringToObject(o, "message", s->message ? s->message : "");
	cJSON_AddNumberToObject(o, "seed", (double)s->seed);
	add_num_or_null(o, "created_unix_ms", (double)s->created_unix_ms, s->created_unix_ms > 0);
	add_num_or_null(o, "started_unix_ms", (double)s->started_unix_ms, s->started_unix_ms > 0);
	add_num_or_null(o, "finished_unix_ms", (double)s->finished_unix_ms,
			s->finished_unix_ms > 0);
	cJSON_AddNumberToObject(o, "updated_unix_ms", (double)s->updated_unix_ms);
	return o;
}

int cli_print_json(cJSON *o)
{
	char *txt = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (!txt) {
		fprintf(stderr, "byolctl: out of memory for JSON\n");
		return EX_NO;
	}
	printf("%s\n", txt);
	fflush(stdout);
	free(txt);
	return EX_OK;
}

/* ---- drawing ---- */

static void clear_bar(watch_view *v)
{
	if (v->drawn) {
		fputs("\r\033[K", stdout);
		fflush(stdout);
		v->drawn = 0;
	}
}

/* "epoch 1/2 loss 3.9123 collapse 0.910 lr 0.2000 812 img/s" */
static void figures(char *out, size_t n, const watch_view *v, const Byol__RunStatus *s, int lr)
{
	size_t len = 0;
	if (v->epochs > 0)
		len += (size_t)snprintf(out + len, n - len, "epoch %llu/%ld",
					(unsigned long long)s->epoch, v->epochs);
	else
		len += (size_t)snprintf(out + len, n - len, "epoch %llu",
					(unsigned long long)s->epoch);
	if (s->step > 0 && len < n)
		len += (size_t)snprintf(out + len, n - len, " loss %.4f collapse %.3f", s->loss,
					s->collapse);
	if (lr && s->step > 0 && len < n)
		len += (size_t)snprintf(out + len, n - len, " lr %.4g", s->lr);
	if (s->img_per_s > 0 && len < n)
		snprintf(out + len, n - len, " %.0f img/s", s->img_per_s);
}

static void draw_bar(watch_view *v, const Byol__RunStatus *s)
{
	char line[640], fig[256], eta[32];
	int running = strcmp(s->status, "running") == 0;
	if (!running) {
		snprintf(line, sizeof(line), "run %llu %s: %s at step %llu/%llu%s%s",
			 (unsigned long long)s->run_id, v->name, s->status,
			 (unsigned long long)s->step, (unsigned long long)s->total_steps,
			 strcmp(s->status, "interrupted") == 0 ? " (byold stopped; it continues "
								  "when byold starts again)" : "",
			 strcmp(s->status, "queued") == 0 ? " (waiting for its turn)" : "");
	} else {
		figures(fig, sizeof(fig), v, s, 0);
		if (s->total_steps && s->step >= s->total_steps)
			snprintf(eta, sizeof(eta), "0:00 (final evaluation)");
		else
			fmt_duration(eta, sizeof(eta), s->eta_s);
		char head[160], tail[384];
		snprintf(head, sizeof(head), "run %llu %.24s ", (unsigned long long)s->run_id, v->name);
		snprintf(tail, sizeof(tail), " %llu/%llu ETA %s %s", (unsigned long long)s->step,
			 (unsigned long long)s->total_steps, eta, fig);
		/* the bar's width stays put while the figures change; it keeps
		 * BAR_MIN columns, and the figures at the end give way */
		int room = v->cols - 1 - (int)strlen(head) - TAIL_WIDTH - 2;
		int width = room > BAR_MAX ? BAR_MAX : room < BAR_MIN ? BAR_MIN : room;
		char bar[BAR_MAX + 3] = "";
		if (v->cols - 1 - (int)strlen(head) >= width + 2 + 12) {
			double f = s->total_steps ? (double)s->step / (double)s->total_steps : 0;
			int full = (int)(f * width + 0.5);
			bar[0] = '[';
			for (int i = 0; i < width; i++)
				bar[1 + i] = i < full ? '#' : '-';
			bar[width + 1] = ']';
			bar[width + 2] = '\0';
		}
		snprintf(line, sizeof(line), "%s%s%s", head, bar, tail);
	}
	if ((int)strlen(line) > v->cols - 1)
		line[v->cols - 1] = '\0';
	printf("\r\033[K%s", line);
	fflush(stdout);
	v->drawn = 1;
}

static void plain_line(watch_view *v, const Byol__RunStatus *s)
{
	if (strcmp(s->status, "running") != 0) {
		printf("run %llu %s at step %llu/%llu%s%s\n", (unsigned long long)s->run_id,
		       s->status, (unsigned long long)s->step, (unsigned long long)s->total_steps,
		       s->message && s->message[0] ? ": " : "", s->message ? s->message : "");
	} else {
		char fig[256], eta[32] = "";
		figures(fig, sizeof(fig), v, s, 1);
		if (s->total_steps && s->step >= s->total_steps)
			snprintf(eta, sizeof(eta), " final evaluation");
		else if (s->eta_s >= 0)
			snprintf(eta, sizeof(eta), " eta %.0fs", s->eta_s);
		printf("run %llu step %llu/%llu %s%s\n", (unsigned long long)s->run_id,
		       (unsigned long long)s->step, (unsigned long long)s->total_steps, fig, eta);
	}
	fflush(stdout);
}

static void summary(watch_view *v, const Byol__RunStatus *s)
{
	clear_bar(v);
	if (strcmp(s->status, "completed") == 0) {
		printf("run %llu (%s) completed: %llu steps, loss %.4f", (unsigned long long)s->run_id,
		       v->name, (unsigned long long)s->step, s->loss);
		if (s->knn_accuracy > 0)
			printf(", knn %.4f", s->knn_accuracy);
		if (s->probe_accuracy > 0)
			printf(", probe %.4f", s->probe_accuracy);
		if (s->finished_unix_ms > 0 && s->started_unix_ms > 0) {
			char dur[32];
			fmt_duration(dur, sizeof(dur),
				     (double)(s->finished_unix_ms - s->started_unix_ms) / 1000);
			printf(", %s", dur);
		}
		printf("\n");
	} else {
		printf("run %llu (%s) %s at step %llu/%llu%s%s\n", (unsigned long long)s->run_id,
		       v->name, s->status, (unsigned long long)s->step,
		       (unsigned long long)s->total_steps, s->message && s->message[0] ? ": " : "",
		       s->message ? s->message : "");
	}
	fflush(stdout);
}

/* Shows one status; 1 when it is final. */
static int show_update(watch_view *v, const Byol__RunStatus *s)
{
	if (s->name && s->name[0])
		snprintf(v->name, sizeof(v->name), "%s", s->name);
	if (s->experiment && s->experiment[0])
		snprintf(v->experiment, sizeof(v->experiment), "%s", s->experiment);
	if (s->config_json && s->config_json[0])
		v->epochs = config_epochs(s->config_json);
	int ok, final = cli_status_is_final(s->status, &ok);
	int changed = strcmp(v->status, s->status) != 0 || s->epoch != v->epoch;
	snprintf(v->status, sizeof(v->status), "%s", s->status);
	v->epoch = s->epoch;
	if (v->o->quiet)
		return final;
	if (v->o->json) {
		cJSON *o = cli_status_json(s);
		if (o && v->experiment[0])      /* pushes leave out what the first answer said */
			cJSON_ReplaceItemInObjectCaseSensitive(o, "experiment",
							       cJSON_CreateString(v->experiment));
		if (o && v->epochs > 0)
			cJSON_AddNumberToObject(o, "epochs", (double)v->epochs);
		cli_print_json(o);
		return final;
	}
	if (final) {
		summary(v, s);
		return 1;
	}
	if (v->tty) {
		draw_bar(v, s);
	} else if (changed ||
		   (s->step != v->last_step && now_s() - v->last_line >= PLAIN_EVERY_S)) {
		plain_line(v, s);
		v->last_line = now_s();
		v->last_step = s->step;
	}
	return 0;
}

static int send_watch(rpc *r, uint64_t id, unsigned interval_ms, char *err)
{
	Byol__WatchRequest wq = BYOL__WATCH_REQUEST__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	wq.run_id = id;
	wq.interval_ms = interval_ms;
	e.msg_case = BYOL__ENVELOPE__MSG_WATCH_REQUEST;
	e.watch_request = &wq;
	return rpc_send(r, &e, err);
}

int cli_watch_run(const target *t, rpc **rp, uint64_t id, const cli_watch_opts *o,
		  const Byol__RunStatus **last)
{
	char err[BYOL_ERR_LEN];
	watch_view v = { .o = o, .tty = !o->json && !o->quiet && isatty(STDOUT_FILENO) };
	v.cols = v.tty ? terminal_columns() : 80;
	unsigned interval = o->interval_ms ? o->interval_ms : v.tty ? 200 : 1000;
	int reconnect_s = o->reconnect_s > 0 ? o->reconnect_s : CLI_RECONNECT_S;
	int connected_once = *rp != NULL;
	double away_since = 0;
	if (last)
		*last = NULL;
	for (;;) {
		if (!*rp) {
			int rc = rpc_open(rp, t->tcp, t->sock, t->token, t->name, CLI_CALL_TIMEOUT_MS,
					  err);
			if (rc < 0) {
				*rp = NULL;
				if (cli_unreachable_code(rc) != EX_UNREACHABLE || !connected_once ||
				    now_s() - away_since > reconnect_s) {
					clear_bar(&v);
					fprintf(stderr, "byolctl: %s\n", err);
					return cli_unreachable_code(rc);
				}
				cli_sleep_ms(500);
				continue;
			}
			if (connected_once)
				fprintf(stderr, "byolctl: reconnected to byold at %s\n", rpc_address(*rp));
			connected_once = 1;
		}
		int rc = send_watch(*rp, id, interval, err);
		while (rc == 0) {
			Byol__Envelope *m;
			if ((rc = rpc_recv(*rp, &m, WATCH_SILENCE_MS, err)) < 0)
				break;
			if (m->msg_case == BYOL__ENVELOPE__MSG_ERROR) {
				clear_bar(&v);
				fprintf(stderr, "byolctl: byold: %s\n", m->error->message);
				return EX_NO;
			}
			if (m->msg_case != BYOL__ENVELOPE__MSG_RUN_STATUS || m->run_status->run_id != id)
				continue;
			if (show_update(&v, m->run_status)) {
				int ok;
				cli_status_is_final(m->run_status->status, &ok);
				if (last)
					*last = m->run_status;
				return ok ? EX_OK : EX_NO;
			}
		}
		if (cli_unreachable_code(rc) != EX_UNREACHABLE) {
			clear_bar(&v);
			fprintf(stderr, "byolctl: %s\n", err);
			return EX_NO;
		}
		clear_bar(&v);
		fprintf(stderr, "byolctl: %s; trying to reconnect for %d s\n", err, reconnect_s);
		rpc_close(*rp);
		*rp = NULL;
		away_since = now_s();
	}
}

static int watch_main(const target *t, int argc, char **argv)
{
	cli_watch_opts o = { .json = t->json };
	const char *run = NULL;
	for (int i = 0; i < argc; i++) {
		char *end;
		if (strcmp(argv[i], "--json") == 0) {
			o.json = 1;
		} else if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
			long ms = strtol(argv[++i], &end, 10);
			if (*end || ms < 20 || ms > 60000) {
				fprintf(stderr, "byolctl watch: --interval %s: expected milliseconds "
						"from 20 to 60000\n", argv[i]);
				return EX_USAGE;
			}
			o.interval_ms = (unsigned)ms;
		} else if (strcmp(argv[i], "--reconnect") == 0 && i + 1 < argc) {
			long s = strtol(argv[++i], &end, 10);
			if (*end || s < 1 || s > 86400) {
				fprintf(stderr, "byolctl watch: --reconnect %s: expected seconds from 1 "
						"to 86400\n", argv[i]);
				return EX_USAGE;
			}
			o.reconnect_s = (int)s;
		} else if (!run && argv[i][0] != '-') {
			run = argv[i];
		} else {
			return cli_bad_usage(&cmd_watch, argv[i]);
		}
	}
	uint64_t id;
	if (!run || cli_parse_id(run, &id) < 0) {
		fprintf(stderr, "byolctl watch: expected a run id (a positive integer), got '%s'\n",
			run ? run : "");
		return EX_USAGE;
	}
	rpc *r;
	int ex = cli_connect(t, &r);
	if (ex != EX_OK)
		return ex;
	ex = cli_watch_run(t, &r, id, &o, NULL);
	rpc_close(r);
	return ex;
}

const cli_command cmd_watch = {
	"watch", watch_main, "watch RUN [--json] [--interval MS] [--reconnect S]",
	"Follow a run to its end as byold reports it (no polling).",
	"On a terminal: one progress bar (step/total, epoch, loss, collapse, img/s,\n"
	"ETA) redrawn in place; otherwise one line every 2 s, per epoch and per change\n"
	"of status. Ends when the run does: exit 0 if it completed, 1 if it failed or\n"
	"was cancelled, 3 if byold cannot be reached or stayed away longer than the\n"
	"reconnect time (an interrupted run continues when byold starts again).\n"
	"\n"
	"  --json          one JSON object per update, one per line\n"
	"  --interval MS   at most one update per MS milliseconds (default 200 on a\n"
	"                  terminal, else 1000)\n"
	"  --reconnect S   wait up to S seconds for byold to come back (default 120)\n",
};

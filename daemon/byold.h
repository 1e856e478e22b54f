/*
 * byold.h — the coordinator daemon's own structures, shared by the daemon's files.
 *
 * One loop thread owns everything here; the libuv threadpool only ever touches a
 * run's model and train_state (setup, step_apply_nodes, checkpoint writes), and
 * only while r->busy counts that work as in flight. While an apply is in flight
 * the loop reads nothing of r->st; while a checkpoint write is in flight the
 * loop only reads r->st (to send parameters), and the next apply waits for it.
 *
 * Files: main.c (options, start-up, signals, the cron timer, shutdown), log.c,
 * dconf.c (byold.conf), workers.c (the registry and its messages), run.c (a
 * run's life), coord.c (its steps), ckpt.c (checkpoints), evals.c (evaluation
 * jobs), clients.c (byolctl's requests), history.c + history_keys.c (history
 * and list queries), export.c (checkpoint downloads and metric series),
 * control.c (show, cancel, resume, workers), watch.c (RunStatus pushed to
 * watchers).
 */
#ifndef BYOLD_BYOLD_H
#define BYOLD_BYOLD_H

#include <limits.h>
#include <stdint.h>

#include <uv.h>

#include "byol/config.h"
#include "byol/conn.h"
#include "byol/dconf.h"
#include "byol/model.h"
#include "byol/step.h"
#include "byol/store.h"

#define BYOLD_VERSION "byold 0.1"
#define BYOLD_PATH_LEN 4096

typedef struct byold byold;
typedef struct worker worker;
/* The status message of a running run whose cancel waits for the step
 * boundary. It is in the store, so a daemon killed before the boundary
 * cancels the run at its next start instead of resuming it. */
#define RUN_CANCEL_PENDING "cancel requested"

typedef struct run run;

/* The run's parameter buffer lent to queued writes (conn_send_borrowed). */
typedef struct {
	int writes;                     /* queued writes that hold it */
	int orphaned;                   /* no longer the run's: the last write frees */
	float *online;                  /* this buffer (set when orphaned) */
} params_lease;
typedef struct export_job export_job;
typedef struct watcher watcher;

/* ---- log.c --------------------------------------------------------------- */

/* Log lines go to stderr: "2024-05-01T12:00:00.123Z info: text". Thread-safe
 * (one write per line). */
void dlog_set_level(dlog_level min);

/* A cap on lines a source may write: at most `burst` per window of `window_s`. */
typedef struct {
	double t0;                      /* mono_s: start of the window */
	int n;                          /* lines asked for in it */
} dlog_cap;
/* 1 when one more line fits under the cap. When a window ends with lines
 * refused, first writes "<what>: N more lines were not written in S s". */
int dlog_capped(dlog_cap *cap, int burst, double window_s, const char *what);
void dlog(dlog_level lv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* dlog, and the same line as an event in the store (run_id 0: none). */
void devent(byold *d, int64_t run_id, dlog_level lv, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Monotonic clock in seconds; wall clock in unix milliseconds. */
double mono_s(void);
int64_t wall_ms(void);

/* ---- the daemon ------------------------------------------------------------ */

struct byold {
	uv_loop_t *loop;
	dconf cfg;
	char *token;                    /* NULL: none */
	store *db;
	struct pool *apply_pool;        /* step_apply_nodes' threads */
	conn_server *tcp, *unix_sock;
	uv_timer_t cron;
	uv_signal_t sigterm, sigint;
	int stopping;                   /* a signal came: stop at a step boundary */
	int shut;                       /* servers and handles are closing */
	int64_t started_ms;
	worker *workers;                /* registry, in order of connection */
	dlog_cap churn_cap;             /* "joined" and "left" events */
	run *run;                       /* the active run, or NULL */
	uint64_t next_job_id;
	export_job *exports;            /* export.c: streams in progress */
	watcher *watchers;              /* watch.c: conns watching a run */
	int exit_code;
};

/* main.c: closes the servers, the timer and the signal handles (once); the loop
 * then ends. */
void byold_shutdown(byold *d);

/* ---- workers.c ------------------------------------------------------------- */

typedef enum {
	W_NEW,          /* connected, not registered yet */
	W_IDLE,         /* registered; serves no run */
	W_SETUP,        /* RunSetup sent for run_id; waiting for RunReady */
	W_READY,        /* serves run_id */
} worker_state;

struct worker {
	worker *next, *prev;
	byold *d;
	conn *c;
	char name[CONN_NAME_MAX + 1];
	char host[CONN_NAME_MAX + 1];
	int threads;
	worker_state state;
	int64_t run_id;                 /* the run of the last RunSetup; 0 none */
	int refused;                    /* answered Error to run_id's RunSetup */
	long params_step;               /* last StepParams step sent for run_id; -1 none */
	int shards_out;                 /* shards of the current step assigned, not in */
	int evals;                      /* evaluation jobs assigned, not answered */
	double last_heard;              /* mono_s of its last message */
	uint64_t shards_done;           /* over this connection */
	int64_t unflushed;              /* shards of run_id not yet in the store */
	int congested;                  /* its write queue is over the high water */
	int stalled;                    /* a node of it went to another worker too;
					 * no new work until it answers */
	dlog_cap ignored_cap;           /* worker_ignored's lines */
	double rate_t;                  /* mono_s of its last node result taken */
	double img_per_s;               /* smoothed over its node results; 0 none */
};

void worker_open(byold *d, conn *c);
void worker_message(byold *d, worker *w, Byol__Envelope *e);
void worker_closed(byold *d, worker *w, int code, const char *reason);
/* Sends RunSetup of the active run (which must be set up) to w. */
void worker_send_setup(byold *d, worker *w);
/* Sends StepParams of the active run's current step (target when needed). To a
 * worker whose replica is at the step before, the parameters go out from
 * r->st.online itself, lent to the write (params_lease) instead of copied. */
int worker_send_params(byold *d, worker *w);
/* Before the apply changes r->st.online: if writes still hold it, the run goes
 * on with a copy and the lent buffer is freed by the last of them. -ENOMEM. */
int worker_params_reclaim(run *r);
/* When the run is freed: a buffer still lent becomes the writes' to free. */
void worker_params_release(run *r);
/* Records the shards w served in the store. */
void worker_flush(byold *d, worker *w);
/* An info line about a message of w that is ignored: at most
 * WORKER_IGNORED_BURST a window of WORKER_IGNORED_WINDOW_S per worker, then
 * one line saying how many went unlogged (a peer cannot fill the log). */
void worker_ignored(worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Workers joining and leaving: events (log and store) for at most this many a
 * minute, so that a peer reconnecting in a loop cannot fill the store. */
#define WORKER_CHURN_BURST 300
#define WORKER_CHURN_WINDOW_S 60.0
#define WORKER_IGNORED_BURST 20
#define WORKER_IGNORED_WINDOW_S 10.0
/* 1 when w can take tree nodes of the active run's step. */
int worker_can_step(const byold *d, const worker *w);
/* Heartbeats to every worker; drops the silent ones. */
void workers_cron(byold *d);
const char *worker_state_name(worker_state s);

/* ---- coord.c: the active run ---------------------------------------------- */

typedef enum {
	RUN_SETUP,      /* model, state, checkpoint load in the threadpool */
	RUN_STEP,       /* StepParams out, collecting NodeResults of step k */
	RUN_APPLY,      /* step_apply_nodes of step k in the threadpool */
	RUN_FINAL,      /* all steps applied: final checkpoint and evaluations */
	RUN_DONE,       /* finished (completed / failed); freed once nothing is busy */
} run_phase;

typedef struct {
	int lo, hi;
	worker *w;                      /* NULL: not assigned (yet, or again) */
	worker *backup;                 /* a second worker, when w took too long */
	int done;
	int fresh;                      /* assigned to w, ShardAssign not sent yet */
	int backup_fresh;               /* the same for the backup */
	double t_assigned, t_backup;    /* mono_s when w, the backup got it */
} step_node;

typedef struct eval_job {
	struct eval_job *next;
	uint64_t id;
	long step;
	char kind[8];                   /* "knn" | "probe" */
	int final;                      /* sent again when its worker goes */
	worker *w;                      /* NULL: waiting for a worker */
	uint64_t taken_from;            /* conn id of a worker it was taken from; 0 none */
	double t_sent;
} eval_job;

struct run {
	byold *d;
	int64_t id, experiment_id;
	char name[STORE_NAME_LEN];
	experiment_config cfg;
	char *config_json;              /* the run's canonical config */
	char dir[BYOLD_PATH_LEN];       /* STATE_DIR/runs/<id> */
	run_phase phase;
	int busy;                       /* threadpool jobs in flight on m / st */
	int ready;                      /* set up: m, plan and st are valid */
	int starting;                   /* the first step waits for workers' set-up */
	double t_ready;                 /* mono_s when set up */
	int stop_ckpt_tried;            /* stopping: the last checkpoint was tried */
	store_status status_at_start;

	/* set up in the threadpool */
	model m;
	step_plan plan;
	train_state st;
	int setup_rc;
	char setup_err[BYOL_ERR_LEN];
	char **candidates;              /* checkpoint paths to try, newest first */
	int n_candidates;
	long resumed_step;              /* step of the checkpoint loaded; -1 none */
	char resumed_path[BYOLD_PATH_LEN];
	uv_work_t setup_req;

	/* the step in progress: k steps applied so far (the loop's copy of st.step) */
	long k;
	step_node *nodes;               /* (S) in shard order */
	int n_nodes, nodes_left;
	shard_result *slots;            /* (S) slot lo holds node [lo, hi) */
	int *node_hi;                   /* (S) */
	Byol__Node *nbuf, **nptr;       /* (S) scratch of ShardAssign */
	double t_step0, t_covered, t_sent;
	double node_slowest, node_slowest_prev; /* s: this step's and the last's */
	double stall_reported, last_log;
	int waiting_ckpt;               /* covered while a checkpoint is written */

	/* st.online while StepParams writes send it from where it lies */
	params_lease *lease;            /* NULL until the first such write */

	/* rooms in workers' shared-memory rings that the apply fills with the next
	 * step's parameters, in parallel (conn_shm_reserve) */
	struct param_room {
		uint64_t conn;          /* conn_id of the worker's conn */
		void *room;
	} *rooms;
	int n_rooms, cap_rooms;

	/* step_apply_nodes */
	uv_work_t apply_req;
	int apply_rc;
	char apply_err[BYOL_ERR_LEN];
	step_metrics sm;
	double apply_s;

	/* checkpoints */
	uv_work_t ckpt_req;
	int ckpt_busy;
	long ckpt_saving;               /* step being written */
	char ckpt_tmp[BYOLD_PATH_LEN];  /* its path */
	int ckpt_rc;
	char ckpt_err[BYOL_ERR_LEN];
	char ckpt_sha[65];
	int64_t ckpt_bytes;
	double ckpt_s;
	long ckpt_step;                 /* latest recorded; -1 none */
	char ckpt_path[BYOLD_PATH_LEN];
	struct ckpt_hold *hold;         /* ckpt.c: waiting for the disk or the store */

	/* evaluations */
	eval_job *jobs;
	double final_knn, final_probe;  /* -1 until known */
	char final_note[BYOL_ERR_LEN];  /* a final evaluation that failed */
	int final_started;

	/* the last applied step, for status */
	int have_last;
	step_metrics last;
	double last_img_s;
	double last_knn;                /* -1 none */

	/* timing over this session */
	long n_timed;
	double sum_step_s, sum_wait_s, sum_apply_s, sum_send_s, sum_after_s;

	/* control.c, watch.c */
	int cancelling;                 /* cancelled: stops at the next step boundary */
	double eta_step_s, eta_t;       /* smoothed seconds per step; mono_s of the last */
};

/* run.c: starts the next run (running/interrupted first, oldest first, then
 * queued) when none is active and the daemon is not stopping. */
void coord_kick(byold *d);
/* run.c: marks r failed with the message; r may be freed on return. */
void run_fail(byold *d, run *r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* run.c: begins the first step once the workers being set up have answered. */
void run_maybe_start(byold *d, run *r);
/* run.c: one line of the session's step timing. */
void run_timing(const run *r, char *out, size_t n);
/* coord.c: sends StepParams of step r->k and assigns its tree nodes. */
void coord_begin_step(byold *d, run *r);
/* coord.c: step_apply_nodes in the threadpool (after the checkpoint being
 * written, if any). */
void coord_start_apply(byold *d, run *r);
/* coord.c: forgets the step's assignments. */
void coord_release_nodes(run *r);
/* coord.c: frees a node result slot, giving a gradient that lies in a worker's
 * shared-memory ring back to it. */
void coord_slot_free(shard_result *s);
/* coord.c: the room of w's ring the apply filled with the parameters of step
 * r->k, still good to send as it lies; else NULL. */
void *coord_room_of(const run *r, const worker *w);
/* coord.c: gives back every room reserved for the step (sent or not). */
void coord_rooms_release(run *r);
/* A worker became ready for the active run, or finished its evaluations. */
void coord_worker_free(byold *d, worker *w);
/* A worker is gone or refused the run: its nodes and jobs go to others. */
void coord_worker_lost(byold *d, worker *w);
void coord_node_result(byold *d, worker *w, const Byol__NodeResult *nr);
/* Stall detection, from the cron timer. */
void coord_cron(byold *d);
/* SIGTERM: stop at a step boundary. Calls byold_shutdown when done. */
void coord_stop(byold *d);
/* Progress after a threadpool job of r finished or a final evaluation came. */
void coord_progress(byold *d, run *r);
/* Assigns the nodes of the current step that have no worker. */
void coord_fill(byold *d, run *r);

/* ---- ckpt.c ----------------------------------------------------------------- */

/* Writes r->st at its step in the threadpool, then records it and prunes old
 * ones; coord_progress follows. r->ckpt_busy must be 0. On hold (r->hold), the
 * checkpoint is written when the hold's row is in. */
void ckpt_start(byold *d, run *r);
/* The store refused step m->step's metrics row (err says why): the run holds
 * (r->ckpt_busy) before its next apply until the row is in. */
void ckpt_hold_step(byold *d, run *r, const store_metric *m, const char *err);
/* The checkpoint paths of a run, newest first, into r->candidates. */
int ckpt_candidates(byold *d, run *r, char *err);
/* The setup's part in the threadpool: loads the newest readable candidate. */
void ckpt_restore(run *r);
/* mkdir -p of path with mode 0700 (any thread). */
int make_dirs(const char *path, char *err);

/* ---- evals.c ---------------------------------------------------------------- */

void evals_periodic(byold *d, run *r);
void evals_final(byold *d, run *r);
/* Sends waiting final jobs to free workers. */
void evals_dispatch(byold *d, run *r);
void evals_worker_lost(byold *d, run *r, worker *w);
/* Housekeeping: a job unanswered for eval_timeout_ms is taken from its worker
 * (marked stalled): a final job goes to another worker, a periodic one is
 * dropped. */
void evals_cron(byold *d, run *r);
void evals_result(byold *d, worker *w, const Byol__EvalResult *er);
/* 1 when no job is outstanding or waiting. */
int evals_idle(const run *r);
void evals_free(run *r);

/* ---- clients.c ---------------------------------------------------------- */

void client_message(byold *d, conn *c, Byol__Envelope *e);
/* A client conn is gone / went over its high water / drained (from main.c's
 * conn callbacks). */
void client_closed(byold *d, conn *c, int code, const char *reason);
void client_congested(byold *d, conn *c, int on);

/* A run's RunStatus and the storage its strings point into. */
typedef struct {
	Byol__RunStatus rs;
	store_run row;
	char ckpt[STORE_PATH_LEN];
} run_view;
/* Fills v->rs from v->row, the store and (for the active run) the live state. */
void run_view_fill(byold *d, run_view *v);

/* ---- control.c: byolctl show, cancel, resume, workers ------------------------ */

void control_show(byold *d, conn *c, const Byol__ShowRequest *q);
void control_cancel(byold *d, conn *c, const Byol__CancelRequest *q);
void control_resume(byold *d, conn *c, const Byol__ResumeRequest *q);
void control_workers(byold *d, conn *c);
/* 1 when r stops at the current step boundary: the daemon is stopping, or r
 * was cancelled. */
int run_stopping(const byold *d, const run *r);
/* The status a run stopped at a step boundary ends in: cancelled or interrupted. */
store_status run_stop_status(const run *r);
/* A NodeResult from w: coord_node_result, and w's img/s from its timing. */
void control_node_result(byold *d, worker *w, const Byol__NodeResult *nr);
/* w as WorkerStatus (strings point into w). */
void worker_status_fill(const worker *w, Byol__WorkerStatus *ws);
/* A run's view with its experiment name, config and final metrics (extra,
 * which the view's strings may point into) and the live figures of the active
 * run. Returns 0, -ENOENT or -errno with err; release with run_detail_release. */
typedef struct {
	run_view v;
	char experiment[STORE_NAME_LEN];
} run_detail;
int run_detail_load(byold *d, uint64_t id, run_detail *x, char *err);
void run_detail_release(run_detail *x);

/* ---- watch.c: RunStatus pushed to byolctl watch ---------------------------- */

/* WatchRequest: answers the run's status now; unless the run has ended, c
 * then hears of its steps and its end. */
void watch_start(byold *d, conn *c, const Byol__WatchRequest *q);
/* After each applied step of r: its status to its watchers that are due. */
void watch_step(byold *d, run *r);
/* Run id changed status: its watchers hear the new status now; those of a run
 * that ended are done. */
void watch_run_status(byold *d, int64_t id);
/* From the cron timer: the status to each watcher that heard nothing lately. */
void watch_cron(byold *d);
/* c is gone: its watches end. */
void watch_conn_closed(byold *d, conn *c);
/* Seconds to the end of r's training from its recent step time; -1 unknown. */
double watch_eta_s(const run *r);

/* ---- export.c ------------------------------------------------------------------ */

/* ExportRequest: streams ExportChunk messages to c (or answers Error). */
void export_start(byold *d, conn *c, const Byol__ExportRequest *q);
/* The export streaming to c (if any) stops: c is gone. */
void export_conn_closed(byold *d, conn *c);
/* c went over its high water (on = 1) or drained (0): its export pauses or resumes. */
void export_conn_congested(byold *d, conn *c, int on);
/* MetricsRequest -> MetricsReply | Error. */
void metrics_answer(byold *d, conn *c, const Byol__MetricsRequest *q);

/* ---- history.c: byolctl history and list ---------------------------------------- */

#define HISTORY_DEFAULT_LIMIT 100
#define HISTORY_MAX_LIMIT 10000         /* a larger limit is clamped to this */
#define HISTORY_MAX_TERMS 32

/* A query: where strings, each one or more `key op value` terms joined by
 * `and` (the grammar is at the top of history.c), all ANDed; an order key
 * ("-key" descending; NULL or "" newest first); a limit (0: the default). */
typedef struct {
	const char *const *where;
	int n_where;
	const char *order;
	unsigned limit;
	const char *label;              /* names a where string in messages: "where" */
	int number_where;               /* 1: "where 2: ..."; 0: "filter: ..." */
} history_spec;

typedef struct {
	store_run run;                  /* release with history_rows_free */
	char experiment[STORE_NAME_LEN];
} history_row;

typedef struct history_query history_query;

/* Compiles spec into one parameterised SELECT over runs JOIN experiments.
 * Returns 0 and *out (history_query_free), or -EINVAL with err naming the where
 * string and the column of the offending token ("where 2: 'probe_acc >> 0.8':
 * unknown operator '>>' (...) (column 11)"), or -ENOMEM. */
int history_compile(const history_spec *spec, history_query **out, char *err);
/* The statement's text: fixed fragments and ?N parameters only. */
const char *history_query_sql(const history_query *q);
/* Runs q on the store's connection: *out is a malloc'd array of *n rows
 * (NULL and 0 when none; history_rows_free). Returns 0 or -errno with err. */
int history_query_run(store *s, const history_query *q, history_row **out, int *n, char *err);
void history_query_free(history_query *q);
/* history_compile + history_query_run. */
int history_select(store *s, const history_spec *spec, history_row **out, int *n, char *err);
void history_rows_free(history_row *rows, int n);

/* ---- helpers ------------------------------------------------------------------ */

/* Sends an Error to c (best effort; a failed send is logged). */
void send_error(conn *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif

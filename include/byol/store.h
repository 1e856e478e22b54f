/*
 * store.h — the coordinator's state in one SQLite database (WAL).
 *
 * Everything byold needs to restart lives here: experiments (name, the canonical
 * config JSON with its sweep, the submitted INI text), their runs (status,
 * timestamps, seed, sweep index, the run's own canonical config, final metrics),
 * per-step metrics, evaluation results, checkpoints (path, step, sha256),
 * workers and which runs they served, and an event log.
 *
 * Durability: the database runs in WAL mode with synchronous=NORMAL. A call that
 * returned 0 has committed; its effect survives the byold process being killed
 * at any instant (the WAL is in the OS page cache). A power loss or kernel crash
 * may roll back the last transactions before the next WAL checkpoint, never
 * corrupt the file. store_checkpoint_prune is the exception that commits with
 * synchronous=FULL, because its caller deletes files after it returns.
 *
 * Schema: versioned with PRAGMA user_version and moved forward by a table of
 * migrations in store.c (version 1 = the initial schema, 2 = the indexes of
 * history queries), each applied in its own transaction. A database whose
 * version is newer than this code knows, a file that is not SQLite, or another
 * application's database is refused with a message naming the file. Tables a
 * history query may read directly (store_sqlite): runs(config_json,
 * final_json) with json_extract, and metrics(run_id, step) as the primary key.
 *
 * Errors: every function returns 0 or a negative errno-style code with one line
 * in err (BYOL_ERR_LEN bytes, may be NULL): -ENOSPC disk full, -EBUSY database
 * locked by another process past the busy timeout, -EIO corrupt file or I/O
 * error (naming the database file), -EEXIST a duplicate key, -EINVAL a value
 * the schema refuses or a transition that is not allowed, -ENOENT no such row,
 * -ENOMEM. A failed call changes nothing (multi-row calls are one transaction).
 *
 * Threads: a store is used by one thread at a time (byold's loop thread). Other
 * processes may open the same file concurrently (readers never block writers).
 * Times are unix milliseconds taken from the system clock by the store; 0 means
 * "not yet". Strings passed in are copied; nothing is kept past the call.
 */
#ifndef BYOL_STORE_H
#define BYOL_STORE_H

#include <stdint.h>

#include "byol/error.h"

#define STORE_SCHEMA_VERSION 2   /* the newest schema this code knows */
#define STORE_NAME_LEN 128       /* run, worker and host names, with the NUL */
#define STORE_MSG_LEN 512        /* messages as read back (longer ones are cut) */
#define STORE_PATH_LEN 4096      /* checkpoint paths, with the NUL */
#define STORE_KIND_LEN 16        /* evaluation kinds, with the NUL */

typedef struct store store;

/* Stored as the lower-case text of the name ("queued", ...). Allowed moves:
 * queued -> running | cancelled; running -> completed | failed | cancelled |
 * interrupted; interrupted -> running | cancelled | queued; failed, cancelled
 * -> queued (a resume). Completed is final. */
typedef enum {
	STORE_QUEUED,
	STORE_RUNNING,
	STORE_COMPLETED,
	STORE_FAILED,
	STORE_CANCELLED,
	STORE_INTERRUPTED,
} store_status;

typedef enum { STORE_INFO, STORE_WARN, STORE_ERROR } store_level;

/* "queued", ...; "?" for a value out of range. Static strings. */
const char *store_status_name(store_status st);
/* Parses a status name into *out. Returns 0 or -EINVAL with err. */
int store_status_parse(const char *name, store_status *out, char *err);
/* "info", "warn", "error"; "?" out of range. */
const char *store_level_name(store_level lv);

/* ---- open / close ---- */

/* Opens (creating when missing) the database at path, migrates its schema to
 * STORE_SCHEMA_VERSION and prepares every statement. *out is the new store, or
 * NULL on failure. Returns 0 or -errno with err (-EIO for a file that is not a
 * SQLite database or not byold's; -EPROTO for a schema newer than this code). */
int store_open(store **out, const char *path, char *err);
/* Finalises every statement and closes the database. NULL is a no-op. */
void store_close(store *s);
/* The schema version the open database is at (STORE_SCHEMA_VERSION). */
int store_schema_version(const store *s);
/* The underlying connection, for read-only queries the history module builds
 * with bound parameters. Owned by the store; do not close it. */
struct sqlite3 *store_sqlite(store *s);

/* ---- experiments and runs ---- */

/* One run of a new experiment, in sweep order (sweep_index = array index). */
typedef struct {
	const char *name;         /* "bn-ablation/variant=none,seed=2", < STORE_NAME_LEN bytes */
	const char *config_json;  /* the run's canonical config (a JSON object) */
	const char *config_hash;  /* config_hash() of it: 16 hex digits */
	uint64_t seed;            /* <= INT64_MAX */
	int64_t total_steps;      /* >= 0 */
} store_run_spec;

/* Adds an experiment and its n_runs (>= 1) runs, all queued, in ONE
 * transaction. config_json is the base config's canonical JSON (with its sweep;
 * a JSON object), ini_text the submitted file (may be NULL). *experiment_id
 * receives the new id; run_ids (may be NULL) receives n_runs run ids in sweep
 * order (they are increasing). Returns 0 or -errno with err (-EINVAL for JSON
 * that is not an object, a name too long, a bad hash). */
int store_experiment_add(store *s, const char *name, const char *config_json,
			 const char *ini_text, const store_run_spec *runs, int n_runs,
			 int64_t *experiment_id, int64_t *run_ids, char *err);

typedef struct {
	int64_t id;
	char name[STORE_NAME_LEN];
	int64_t created_ms;
	int n_runs;
	char *config_json;        /* malloc'd; freed by store_experiment_release */
	char *ini_text;           /* malloc'd or NULL; likewise */
} store_experiment;

/* Reads experiment id into *out. Returns 0, -ENOENT or -errno with err. The
 * caller releases *out with store_experiment_release. */
int store_experiment_get(store *s, int64_t id, store_experiment *out, char *err);
/* Frees the strings of e and sets them to NULL. NULL is a no-op. */
void store_experiment_release(store_experiment *e);

typedef struct {
	int64_t id;
	int64_t experiment_id;
	int sweep_index;
	store_status status;
	char name[STORE_NAME_LEN];
	char config_hash[17];
	uint64_t seed;
	int64_t created_ms;
	int64_t started_ms;       /* first move to running; 0 = not yet */
	int64_t finished_ms;      /* move to completed|failed|cancelled; 0 = not yet
				   * (cleared by a move back to queued) */
	int64_t total_steps;
	int64_t step;             /* steps applied so far (last recorded) */
	char message[STORE_MSG_LEN];  /* last status message, "" when none */
	char *config_json;        /* malloc'd; freed by store_run_release */
	char *final_json;         /* malloc'd; NULL until the run is finished */
} store_run;

/* Reads run id into *out. Returns 0, -ENOENT or -errno with err. The caller
 * releases *out with store_run_release (also after a failure: it is safe). */
int store_run_get(store *s, int64_t id, store_run *out, char *err);
/* Frees r's strings and sets them to NULL. NULL is a no-op. */
void store_run_release(store_run *r);
/* Releases n runs and the array itself (from store_run_list). */
void store_runs_free(store_run *runs, int n);

typedef struct {
	int any_status;           /* 1 = every status; 0 = only `status` */
	store_status status;
	int64_t experiment_id;    /* 0 = every experiment */
	int limit;                /* at most this many; 0 = no limit */
} store_run_filter;

/* Runs matching f, newest first (by id), into a malloc'd array *out of *n
 * entries (NULL and 0 when none), freed by store_runs_free. f NULL = all.
 * Returns 0 or -errno with err (then *out is NULL and *n 0). Recovery at
 * start-up is this with status = STORE_RUNNING. */
int store_run_list(store *s, const store_run_filter *f, store_run **out, int *n, char *err);

/* The oldest queued run into *out (release it). Returns 0, -ENOENT when no run
 * is queued, or -errno with err. */
int store_run_next_queued(store *s, store_run *out, char *err);

/* Moves run id to status `to` when the move is allowed (see store_status),
 * stamping started_ms (first move to running) or finished_ms (completed,
 * failed, cancelled; a move to queued clears it). message (may be NULL: keep the old one) is recorded.
 * Returns 0, -ENOENT, -EINVAL naming both statuses, or -errno with err. */
int store_run_set_status(store *s, int64_t id, store_status to, const char *message,
			 char *err);

/* Replaces the status message of run id while it is running (the status stays).
 * Returns 0, -ENOENT when no such run is running, or -errno with err. */
int store_run_note(store *s, int64_t id, const char *message, char *err);

/* Records that run id has applied `step` (>= 0) steps. Returns 0, -ENOENT,
 * -EINVAL or -errno with err. */
int store_run_set_step(store *s, int64_t id, int64_t step, char *err);

/* Finishes run id: moves it to `to` (STORE_COMPLETED, STORE_FAILED or
 * STORE_CANCELLED, from a status that allows it) and stores final_json (a JSON
 * object of final metrics: probe_acc, knn_acc, collapse, final_loss, img_per_s,
 * ...; NULL stores none) with message, in one transaction: on failure the run
 * is unchanged. Returns 0, -ENOENT, -EINVAL (a move not allowed, final_json not
 * a JSON object) or -errno with err. */
int store_run_finish(store *s, int64_t id, store_status to, const char *final_json,
		     const char *message, char *err);

/* ---- per-step metrics ---- */

/* A NaN (a diverged loss) is stored as NULL and reads back as NaN. */
typedef struct {
	int64_t step;
	int epoch;
	double loss, lr, tau, collapse, img_per_s;
	int64_t unix_ms;          /* when the step was applied (set by the caller) */
} store_metric;

/* Records one step of run_id. A row for the same (run_id, step) is replaced
 * (a step re-done after a restart does not double). Returns 0 or -errno with
 * err (-EINVAL for an unknown run). */
int store_metrics_add(store *s, int64_t run_id, const store_metric *m, char *err);
/* The same for n rows in one transaction: all are recorded or none. */
int store_metrics_add_batch(store *s, int64_t run_id, const store_metric *m, int n,
			    char *err);

/* Called per row in step order; a non-zero return stops the walk and is
 * returned by the reading function. m is valid only during the call. */
typedef int (*store_metric_fn)(const store_metric *m, void *ctx);

/* Walks the metrics of run_id with from_step <= step <= to_step (to_step < 0:
 * no upper bound). The callback may call other store functions except
 * store_metrics_read itself (-EBUSY). Returns 0, the callback's non-zero
 * value, or -errno with err (an I/O error may come after some rows). */
int store_metrics_read(store *s, int64_t run_id, int64_t from_step, int64_t to_step,
		       store_metric_fn fn, void *ctx, char *err);
/* Number of metric rows of run_id into *n. */
int store_metrics_count(store *s, int64_t run_id, int64_t *n, char *err);

/* ---- evaluations ---- */

typedef struct {
	int64_t step;
	char kind[STORE_KIND_LEN];  /* "knn" | "probe" */
	double value;               /* accuracy in [0, 1] */
	int64_t unix_ms;
} store_eval;

/* Records an evaluation of run_id at step; kind is "knn" or "probe". The same
 * (run_id, step, kind) is replaced. Returns 0 or -errno with err. */
int store_eval_add(store *s, int64_t run_id, int64_t step, const char *kind, double value,
		   char *err);

typedef int (*store_eval_fn)(const store_eval *e, void *ctx);
/* Walks the evaluations of run_id by step, then kind; as store_metrics_read. */
int store_evals_read(store *s, int64_t run_id, store_eval_fn fn, void *ctx, char *err);

/* ---- checkpoints ---- */

typedef struct {
	int64_t run_id;
	int64_t step;
	char path[STORE_PATH_LEN];
	char sha256[65];          /* 64 lower-case hex digits */
	int64_t bytes;
	int64_t created_ms;
} store_checkpoint;

/* Records a checkpoint file already written, fsynced and renamed into place.
 * The same (run_id, step) is replaced. sha256 is 64 hex digits. Returns 0 or
 * -errno with err (-ENAMETOOLONG for a path of STORE_PATH_LEN bytes or more). */
int store_checkpoint_add(store *s, int64_t run_id, int64_t step, const char *path,
			 const char *sha256, int64_t bytes, char *err);
/* The checkpoint of run_id with the highest step into *out. Returns 0, -ENOENT
 * when it has none, or -errno with err. */
int store_checkpoint_latest(store *s, int64_t run_id, store_checkpoint *out, char *err);
/* Every checkpoint of run_id, newest step first, into a malloc'd array *out of
 * *n (NULL and 0 when none); the caller frees *out. */
int store_checkpoint_list(store *s, int64_t run_id, store_checkpoint **out, int *n,
			  char *err);
/* Keeps the `keep` (>= 0) newest checkpoints of run_id and removes the rows of
 * the others, in one transaction committed durably (synchronous=FULL). Their
 * paths go to *paths, a malloc'd array of *n malloc'd strings (NULL and 0 when
 * nothing was removed), freed by store_paths_free: the caller deletes those
 * files after this returns 0. On failure no row is removed and *paths is NULL. */
int store_checkpoint_prune(store *s, int64_t run_id, int keep, char ***paths, int *n,
			   char *err);
void store_paths_free(char **paths, int n);

/* ---- workers ---- */

typedef struct {
	char name[STORE_NAME_LEN];
	char host[STORE_NAME_LEN];
	int threads;
	int64_t first_seen_ms;
	int64_t last_seen_ms;
	int64_t shards_done;      /* over every run */
} store_worker;

typedef struct {
	char worker[STORE_NAME_LEN];
	int64_t shards;           /* shards of this run the worker computed */
	int64_t first_ms;
	int64_t last_ms;
} store_run_worker;

/* A worker connected or sent a heartbeat: inserts it (first_seen = now) or
 * updates host, threads and last_seen. Returns 0 or -errno with err. */
int store_worker_seen(store *s, const char *name, const char *host, int threads,
		      char *err);
/* Worker `name` (seen before) computed `shards` (>= 0) shards of run_id: adds
 * them to its total and to the run's record of who served it, and updates
 * last_seen, in one transaction. Returns 0, -ENOENT (unknown worker), -EINVAL
 * (unknown run) or -errno with err. */
int store_worker_served(store *s, const char *name, int64_t run_id, int64_t shards,
			char *err);
/* Every worker, by name, into a malloc'd array the caller frees. */
int store_worker_list(store *s, store_worker **out, int *n, char *err);
/* The workers that served run_id, by name, into a malloc'd array the caller
 * frees. */
int store_run_workers(store *s, int64_t run_id, store_run_worker **out, int *n, char *err);

/* ---- events ---- */

typedef struct {
	int64_t id;               /* increasing */
	int64_t unix_ms;
	int64_t run_id;           /* 0 = not about one run */
	store_level level;
	char message[STORE_MSG_LEN];
} store_event;

/* Appends an event (run_id 0 = none); *id (may be NULL) receives its id.
 * Returns 0 or -errno with err. */
int store_event_add(store *s, int64_t run_id, store_level level, const char *message,
		    int64_t *id, char *err);

typedef struct {
	int64_t run_id;           /* 0 = every event */
	int64_t after_id;         /* only events with id > after_id (tailing) */
	int limit;                /* 0 = no limit */
	int newest_first;         /* 1 = by id descending (the last `limit`) */
} store_event_filter;

/* Events matching f (NULL = all, oldest first) into a malloc'd array *out of
 * *n the caller frees. Returns 0 or -errno with err. */
int store_event_list(store *s, const store_event_filter *f, store_event **out, int *n,
		     char *err);

#endif

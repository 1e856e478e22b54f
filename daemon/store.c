/*
 * store.c — byold's SQLite store: schema migrations, prepared statements, and
 * one small function per operation. Every statement is prepared once in
 * store_open and reused (reset + clear_bindings after each use); values are
 * always bound, never spliced into SQL text. This file holds the schema, the
 * statement table, the shared helpers, open/close, experiments and runs;
 * store_log.c holds metrics, evaluations, checkpoints, workers and events, and
 * store_internal.h what the two share.
 */
#include "byol/store.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_internal.h"

#define APPLICATION_ID 0x62796f6c /* "byol" */
#define BUSY_TIMEOUT_MS 5000

/* ---- schema: migrations[i] takes user_version i to i + 1 ---- */

static const char *const migrations[] = {
	/* 1: the initial schema. Large columns come last in each row. */
	"CREATE TABLE experiments ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" name TEXT NOT NULL CONSTRAINT name_length CHECK (length(name) BETWEEN 1 AND 127),"
	" created_ms INTEGER NOT NULL,"
	" n_runs INTEGER NOT NULL CONSTRAINT n_runs_positive CHECK (n_runs >= 1),"
	" config_json TEXT NOT NULL CONSTRAINT config_json_is_object"
	"  CHECK (CASE WHEN json_valid(config_json) THEN json_type(config_json) = 'object' ELSE 0 END),"
	" ini_text TEXT);"
	"CREATE TABLE runs ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,"
	" sweep_index INTEGER NOT NULL CHECK (sweep_index >= 0),"
	" status TEXT NOT NULL CONSTRAINT status_known CHECK (status IN"
	"  ('queued','running','completed','failed','cancelled','interrupted')),"
	" name TEXT NOT NULL CONSTRAINT name_length CHECK (length(name) BETWEEN 1 AND 127),"
	" config_hash TEXT NOT NULL CONSTRAINT config_hash_hex"
	"  CHECK (length(config_hash) = 16 AND config_hash NOT GLOB '*[^0-9a-f]*'),"
	" seed INTEGER NOT NULL CHECK (seed >= 0),"
	" created_ms INTEGER NOT NULL,"
	" started_ms INTEGER,"
	" finished_ms INTEGER,"
	" total_steps INTEGER NOT NULL CONSTRAINT total_steps_nonnegative CHECK (total_steps >= 0),"
	" step INTEGER NOT NULL DEFAULT 0 CONSTRAINT step_nonnegative CHECK (step >= 0),"
	" message TEXT,"
	" final_json TEXT CONSTRAINT final_json_is_object CHECK (final_json IS NULL OR"
	"  CASE WHEN json_valid(final_json) THEN json_type(final_json) = 'object' ELSE 0 END),"
	" config_json TEXT NOT NULL CONSTRAINT config_json_is_object"
	"  CHECK (CASE WHEN json_valid(config_json) THEN json_type(config_json) = 'object' ELSE 0 END),"
	" UNIQUE (experiment_id, sweep_index));"
	"CREATE INDEX runs_by_status ON runs(status, id);"
	"CREATE TABLE metrics ("
	" run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	" step INTEGER NOT NULL CONSTRAINT step_nonnegative CHECK (step >= 0),"
	" epoch INTEGER NOT NULL,"
	" loss REAL, lr REAL, tau REAL, collapse REAL, img_per_s REAL,"
	" unix_ms INTEGER NOT NULL,"
	" PRIMARY KEY (run_id, step)) WITHOUT ROWID;"
	"CREATE TABLE evals ("
	" run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	" step INTEGER NOT NULL CONSTRAINT step_nonnegative CHECK (step >= 0),"
	" kind TEXT NOT NULL CONSTRAINT kind_known CHECK (kind IN ('knn','probe')),"
	" value REAL,"
	" unix_ms INTEGER NOT NULL,"
	" PRIMARY KEY (run_id, step, kind)) WITHOUT ROWID;"
	"CREATE TABLE checkpoints ("
	" run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	" step INTEGER NOT NULL CONSTRAINT step_nonnegative CHECK (step >= 0),"
	" sha256 TEXT NOT NULL CONSTRAINT sha256_hex"
	"  CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),"
	" bytes INTEGER NOT NULL CHECK (bytes >= 0),"
	" created_ms INTEGER NOT NULL,"
	" path TEXT NOT NULL CONSTRAINT path_nonempty CHECK (length(path) >= 1),"
	" PRIMARY KEY (run_id, step)) WITHOUT ROWID;"
	"CREATE TABLE workers ("
	" name TEXT PRIMARY KEY CONSTRAINT name_length CHECK (length(name) BETWEEN 1 AND 127),"
	" host TEXT NOT NULL CONSTRAINT host_length CHECK (length(host) <= 127),"
	" threads INTEGER NOT NULL CONSTRAINT threads_nonnegative CHECK (threads >= 0),"
	" first_seen_ms INTEGER NOT NULL,"
	" last_seen_ms INTEGER NOT NULL,"
	" shards_done INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
	"CREATE TABLE run_workers ("
	" run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	" worker TEXT NOT NULL REFERENCES workers(name),"
	" shards INTEGER NOT NULL,"
	" first_ms INTEGER NOT NULL,"
	" last_ms INTEGER NOT NULL,"
	" PRIMARY KEY (run_id, worker)) WITHOUT ROWID;"
	"CREATE INDEX run_workers_by_worker ON run_workers(worker);"
	"CREATE TABLE events ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" unix_ms INTEGER NOT NULL,"
	" run_id INTEGER REFERENCES runs(id) ON DELETE CASCADE,"
	" level TEXT NOT NULL CONSTRAINT level_known CHECK (level IN ('info','warn','error')),"
	" message TEXT NOT NULL);"
	"CREATE INDEX events_by_run ON events(run_id, id);"
	"PRAGMA application_id = 1652125548;", /* APPLICATION_ID */
	/* 2: for history queries (daemon/history.c): experiments by name, runs by
	 * the time they finished */
	"CREATE INDEX IF NOT EXISTS experiments_by_name ON experiments(name);"
	"CREATE INDEX IF NOT EXISTS runs_by_finished ON runs(finished_ms);",
};
#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))
_Static_assert(N_MIGRATIONS == STORE_SCHEMA_VERSION, "one migration per schema version");

/* ---- statements ---- */

#define RUN_COLS                                                                     \
	"id, experiment_id, sweep_index, status, name, config_hash, seed, created_ms, " \
	"started_ms, finished_ms, total_steps, step, message, config_json, final_json "
#define MET_COLS "step, epoch, loss, lr, tau, collapse, img_per_s, unix_ms "
#define CK_COLS "run_id, step, path, sha256, bytes, created_ms "
#define EV_COLS "id, unix_ms, run_id, level, message "

static const char *const sql[N_ST] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SYNC_FULL] = "PRAGMA synchronous = FULL",
	[ST_SYNC_NORMAL] = "PRAGMA synchronous = NORMAL",
	[ST_EXP_INSERT] = "INSERT INTO experiments (name, created_ms, n_runs, config_json, ini_text)"
			  " VALUES (?1, ?2, ?3, ?4, ?5)",
	[ST_EXP_GET] = "SELECT id, name, created_ms, n_runs, config_json, ini_text"
		       " FROM experiments WHERE id = ?1",
	[ST_RUN_INSERT] = "INSERT INTO runs (experiment_id, sweep_index, status, name, config_hash,"
			  " seed, created_ms, total_steps, config_json)"
			  " VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6, ?7, ?8)",
	[ST_RUN_GET] = "SELECT " RUN_COLS "FROM runs WHERE id = ?1",
	[ST_RUN_LIST] = "SELECT " RUN_COLS "FROM runs ORDER BY id DESC LIMIT ?3",
	[ST_RUN_LIST_S] = "SELECT " RUN_COLS "FROM runs WHERE status = ?1 ORDER BY id DESC LIMIT ?3",
	[ST_RUN_LIST_E] = "SELECT " RUN_COLS "FROM runs WHERE experiment_id = ?2"
			  " ORDER BY id DESC LIMIT ?3",
	[ST_RUN_LIST_ES] = "SELECT " RUN_COLS "FROM runs WHERE status = ?1 AND experiment_id = ?2"
			   " ORDER BY id DESC LIMIT ?3",
	[ST_RUN_NEXT] = "SELECT " RUN_COLS "FROM runs WHERE status = 'queued' ORDER BY id LIMIT 1",
	[ST_RUN_STATUS] = "SELECT status FROM runs WHERE id = ?1",
	/* ?1 id, ?2 new status, ?3 now, ?4 message or NULL, ?5 set final_json?, ?6 final_json */
	[ST_RUN_MOVE] = "UPDATE runs SET status = ?2,"
			" started_ms = CASE WHEN ?2 = 'running' THEN coalesce(started_ms, ?3)"
			"  ELSE started_ms END,"
			" finished_ms = CASE WHEN ?2 IN ('completed','failed','cancelled') THEN ?3"
			"  WHEN ?2 = 'queued' THEN NULL ELSE finished_ms END,"
			" message = coalesce(?4, message),"
			" final_json = CASE WHEN ?5 THEN ?6 ELSE final_json END"
			" WHERE id = ?1",
	[ST_RUN_STEP] = "UPDATE runs SET step = ?2 WHERE id = ?1",
	[ST_RUN_NOTE] = "UPDATE runs SET message = ?2 WHERE id = ?1 AND status = 'running'",
	[ST_MET_PUT] = "INSERT INTO metrics (run_id, " MET_COLS ")"
		       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
		       " ON CONFLICT (run_id, step) DO UPDATE SET epoch = excluded.epoch,"
		       " loss = excluded.loss, lr = excluded.lr, tau = excluded.tau,"
		       " collapse = excluded.collapse, img_per_s = excluded.img_per_s,"
		       " unix_ms = excluded.unix_ms",
	[ST_MET_READ] = "SELECT " MET_COLS "FROM metrics WHERE run_id = ?1 AND step >= ?2"
			" AND step <= ?3 ORDER BY step",
	[ST_MET_COUNT] = "SELECT count(*) FROM metrics WHERE run_id = ?1",
	[ST_EVAL_PUT] = "INSERT INTO evals (run_id, step, kind, value, unix_ms)"
			" VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (run_id, step, kind)"
			" DO UPDATE SET value = excluded.value, unix_ms = excluded.unix_ms",
	[ST_EVAL_READ] = "SELECT step, kind, value, unix_ms FROM evals WHERE run_id = ?1"
			 " ORDER BY step, kind",
	[ST_CK_PUT] = "INSERT INTO checkpoints (" CK_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
		      " ON CONFLICT (run_id, step) DO UPDATE SET path = excluded.path,"
		      " sha256 = excluded.sha256, bytes = excluded.bytes,"
		      " created_ms = excluded.created_ms",
	[ST_CK_LIST] = "SELECT " CK_COLS "FROM checkpoints WHERE run_id = ?1"
		       " ORDER BY step DESC LIMIT ?2",
	[ST_CK_OLD] = "SELECT path FROM checkpoints WHERE run_id = ?1 AND step NOT IN"
		      " (SELECT step FROM checkpoints WHERE run_id = ?1 ORDER BY step DESC LIMIT ?2)"
		      " ORDER BY step",
	[ST_CK_DELETE] = "DELETE FROM checkpoints WHERE run_id = ?1 AND step NOT IN"
			 " (SELECT step FROM checkpoints WHERE run_id = ?1 ORDER BY step DESC LIMIT ?2)",
	[ST_WK_SEEN] = "INSERT INTO workers (name, host, threads, first_seen_ms, last_seen_ms)"
		       " VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (name) DO UPDATE SET"
		       " host = excluded.host, threads = excluded.threads,"
		       " last_seen_ms = excluded.last_seen_ms",
	[ST_WK_SERVED] = "UPDATE workers SET shards_done = shards_done + ?2, last_seen_ms = ?3"
			 " WHERE name = ?1",
	[ST_RW_PUT] = "INSERT INTO run_workers (run_id, worker, shards, first_ms, last_ms)"
		      " VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (run_id, worker) DO UPDATE SET"
		      " shards = shards + excluded.shards, last_ms = excluded.last_ms",
	[ST_WK_LIST] = "SELECT name, host, threads, first_seen_ms, last_seen_ms, shards_done"
		       " FROM workers ORDER BY name",
	[ST_RW_LIST] = "SELECT worker, shards, first_ms, last_ms FROM run_workers"
		       " WHERE run_id = ?1 ORDER BY worker",
	[ST_EV_PUT] = "INSERT INTO events (unix_ms, run_id, level, message) VALUES (?1, ?2, ?3, ?4)",
	[ST_EV_ALL] = "SELECT " EV_COLS "FROM events WHERE id > ?2 ORDER BY id LIMIT ?3",
	[ST_EV_ALL_DESC] = "SELECT " EV_COLS "FROM events WHERE id > ?2 ORDER BY id DESC LIMIT ?3",
	[ST_EV_RUN] = "SELECT " EV_COLS "FROM events WHERE run_id = ?1 AND id > ?2"
		      " ORDER BY id LIMIT ?3",
	[ST_EV_RUN_DESC] = "SELECT " EV_COLS "FROM events WHERE run_id = ?1 AND id > ?2"
			   " ORDER BY id DESC LIMIT ?3",
};

static const char *const status_names[] = {
	[STORE_QUEUED] = "queued", [STORE_RUNNING] = "running",
	[STORE_COMPLETED] = "completed", [STORE_FAILED] = "failed",
	[STORE_CANCELLED] = "cancelled", [STORE_INTERRUPTED] = "interrupted",
};
#define N_STATUS ((int)(sizeof(status_names) / sizeof(status_names[0])))
static const char *const level_names[] = { "info", "warn", "error" };

const char *store_status_name(store_status st)
{
	return (int)st >= 0 && (int)st < N_STATUS ? status_names[st] : "?";
}

int store_status_parse(const char *name, store_status *out, char *err)
{
	for (int i = 0; name && i < N_STATUS; i++)
		if (strcmp(name, status_names[i]) == 0) {
			*out = (store_status)i;
			return 0;
		}
	return byol_err(err, -EINVAL, "unknown run status '%s' (queued, running, completed, "
			"failed, cancelled, interrupted)", name ? name : "(null)");
}

const char *store_level_name(store_level lv)
{
	return (int)lv >= 0 && (int)lv < 3 ? level_names[lv] : "?";
}

int store_transition_ok(store_status from, store_status to)
{
	switch (from) {
	case STORE_QUEUED:
		return to == STORE_RUNNING || to == STORE_CANCELLED;
	case STORE_RUNNING:
		return to == STORE_COMPLETED || to == STORE_FAILED || to == STORE_CANCELLED ||
		       to == STORE_INTERRUPTED;
	case STORE_INTERRUPTED:
		return to == STORE_RUNNING || to == STORE_CANCELLED || to == STORE_QUEUED;
	case STORE_FAILED:
	case STORE_CANCELLED:
		return to == STORE_QUEUED;      /* resumed */
	default:
		return 0;
	}
}

/* ---- helpers ---- */

int64_t store_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* SQLite result code -> negative errno. */
static int map_rc(sqlite3 *db, int rc)
{
	int sys = db ? sqlite3_system_errno(db) : 0;
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CONSTRAINT:
		return rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE
			       ? -EEXIST : -EINVAL;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
		return -EINVAL;
	case SQLITE_CANTOPEN:
		return sys > 0 ? -sys : -EIO;
	case SQLITE_IOERR:
		return sys == ENOSPC ? -ENOSPC : -EIO;
	default: /* SQLITE_CORRUPT, SQLITE_NOTADB, SQLITE_ERROR, ... */
		return -EIO;
	}
}

/* Names what the current call does, for the messages of store_fail(). */
void store_op(store *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->op, sizeof(s->op), fmt, ap);
	va_end(ap);
}

/* "<db path>: <op>: <SQLite's message>" into err; returns the mapped code.
 * Call it before anything else runs on the connection (the message is its). */
int store_fail(store *s, int rc, char *err)
{
	int code = map_rc(s->db, rc), prim = rc & 0xff;
	const char *msg = sqlite3_errmsg(s->db);
	if (prim == SQLITE_CORRUPT || prim == SQLITE_NOTADB)
		return byol_err(err, code, "%s: %s: the database file is damaged (%s)", s->path,
				s->op, msg);
	return byol_err(err, code, "%s: %s: %s", s->path, s->op, msg);
}

void store_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Steps statement id (bound by the caller) to its end and resets it. */
int store_exec(store *s, int id, char *err)
{
	int rc = sqlite3_step(s->st[id]), code = 0;
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		code = store_fail(s, rc, err);
	store_done(s->st[id]);
	return code;
}

int store_begin(store *s, char *err)
{
	return store_exec(s, ST_BEGIN, err);
}

int store_commit(store *s, char *err)
{
	return store_exec(s, ST_COMMIT, err);
}

/* Ends a failed transaction, if SQLite has not already rolled it back. */
void store_rollback(store *s)
{
	if (!sqlite3_get_autocommit(s->db)) {
		sqlite3_step(s->st[ST_ROLLBACK]);
		sqlite3_reset(s->st[ST_ROLLBACK]);
	}
}

void store_copy_col(char *dst, size_t n, sqlite3_stmt *st, int col)
{
	const char *t = (const char *)sqlite3_column_text(st, col);
	snprintf(dst, n, "%s", t ? t : "");
}

/* malloc'd copy of a text column (NULL for NULL); *oom set when out of memory */
char *store_dup_col(sqlite3_stmt *st, int col, int *oom)
{
	const char *t = (const char *)sqlite3_column_text(st, col);
	if (!t)
		return NULL;
	char *d = strdup(t);
	if (!d)
		*oom = 1;
	return d;
}

/* Steps st (bound by the caller) to its end, turning each row into an element
 * of el bytes with row() (0 or -ENOMEM) in a malloc'd array *out of *n. On
 * failure every element is released (release may be NULL) and *out is NULL. */
int store_collect(store *s, sqlite3_stmt *st, size_t el, int (*row)(sqlite3_stmt *, void *),
		  void (*release)(void *), void **out, int *n, char *err)
{
	char *arr = NULL;
	int cap = 0, cnt = 0, rc, code = 0;
	*out = NULL;
	*n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			int nc = cap ? cap * 2 : 16;
			char *p = realloc(arr, (size_t)nc * el);
			if (!p) {
				code = byol_err(err, -ENOMEM, "%s: %s: out of memory", s->path, s->op);
				break;
			}
			arr = p;
			cap = nc;
		}
		memset(arr + (size_t)cnt * el, 0, el);
		if (row(st, arr + (size_t)cnt * el) < 0) {
			code = byol_err(err, -ENOMEM, "%s: %s: out of memory", s->path, s->op);
			break;
		}
		cnt++;
	}
	if (!code && rc != SQLITE_DONE)
		code = store_fail(s, rc, err);
	store_done(st);
	if (code) {
		for (int i = 0; release && i < cnt; i++)
			release(arr + (size_t)i * el);
		free(arr);
		return code;
	}
	*out = arr;
	*n = cnt;
	return 0;
}

int store_name_ok(const char *name, const char *what, int allow_empty, char *err)
{
	if (!name || (!allow_empty && !*name))
		return byol_err(err, -EINVAL, "%s is empty", what);
	if (strlen(name) >= STORE_NAME_LEN)
		return byol_err(err, -EINVAL, "%s '%.40s...' is longer than %d bytes", what, name,
				STORE_NAME_LEN - 1);
	return 0;
}

/* A read statement that is already walking (its callback called us again). */
int store_reentered(store *s, int id, char *err)
{
	if (!sqlite3_stmt_busy(s->st[id]))
		return 0;
	return byol_err(err, -EBUSY, "%s: %s: called from its own callback", s->path, s->op);
}

int store_hex_ok(const char *h, size_t len)
{
	if (!h || strlen(h) != len)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
			return 0;
	return 1;
}

/* ---- open / close ---- */

static int pragma_int(store *s, const char *q, int *out, char *err)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, q, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*out = sqlite3_column_int(st, 0);
			rc = SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK) {
		int code;
		if ((rc & 0xff) == SQLITE_NOTADB)
			code = byol_err(err, -EIO, "%s: not a SQLite database (%s)", s->path,
					sqlite3_errmsg(s->db));
		else {
			store_op(s, "%s", q);
			code = store_fail(s, rc, err);
		}
		sqlite3_finalize(st);
		return code;
	}
	sqlite3_finalize(st);
	return 0;
}

static int migrate(store *s, char *err)
{
	for (int v = s->version; v < N_MIGRATIONS; v++) {
		int rc, cur = 0;
		char *msg = NULL, set[64];
		store_op(s, "migrate the schema to version %d", v + 1);
		if ((rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK)
			return store_fail(s, rc, err);
		/* another process may have migrated while we waited for the lock */
		if ((rc = pragma_int(s, "PRAGMA user_version", &cur, err)) < 0) {
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return rc;
		}
		if (cur > v) {
			sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
			if (cur > STORE_SCHEMA_VERSION)
				return byol_err(err, -EPROTO, "%s: schema version %d is newer than "
						"this byold knows (%d)", s->path, cur,
						STORE_SCHEMA_VERSION);
			s->version = cur;
			v = cur - 1;
			continue;
		}
		/* an integer from this file, not text from anyone */
		snprintf(set, sizeof(set), "PRAGMA user_version = %d", v + 1);
		rc = sqlite3_exec(s->db, migrations[v], NULL, NULL, &msg);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(s->db, set, NULL, NULL, &msg);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, &msg);
		if (rc != SQLITE_OK) {
			int code = byol_err(err, map_rc(s->db, rc),
					    "%s: migrating the schema to version %d: %s", s->path,
					    v + 1, msg ? msg : sqlite3_errstr(rc));
			sqlite3_free(msg);
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return code;
		}
		s->version = v + 1;
	}
	return 0;
}

int store_open(store **out, const char *path, char *err)
{
	*out = NULL;
	store *s = calloc(1, sizeof(*s));
	if (!s || !(s->path = strdup(path))) {
		free(s);
		return byol_err(err, -ENOMEM, "%s: out of memory", path);
	}
	int rc, code, app = 0, tables = 0;
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				   SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE, NULL);
	if (rc != SQLITE_OK) {
		store_op(s, "open");
		code = s->db ? store_fail(s, rc, err)
			     : byol_err(err, -ENOMEM, "%s: out of memory", path);
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);

	/* look before changing anything: is this SQLite, is it ours, how new */
	if ((code = pragma_int(s, "PRAGMA user_version", &s->version, err)) < 0 ||
	    (code = pragma_int(s, "PRAGMA application_id", &app, err)) < 0 ||
	    (code = pragma_int(s, "SELECT count(*) FROM sqlite_schema", &tables, err)) < 0)
		goto fail;
	if (app != 0 && app != APPLICATION_ID) {
		code = byol_err(err, -EIO, "%s: not a byold database (application_id 0x%08x)",
				path, (unsigned)app);
		goto fail;
	}
	if (s->version == 0 && tables > 0) {
		code = byol_err(err, -EIO, "%s: not a byold database (it has %d tables and no "
				"schema version)", path, tables);
		goto fail;
	}
	if (s->version > STORE_SCHEMA_VERSION) {
		code = byol_err(err, -EPROTO, "%s: schema version %d is newer than this byold "
				"knows (%d); use a newer byold", path, s->version,
				STORE_SCHEMA_VERSION);
		goto fail;
	}
	char *msg = NULL;
	sqlite3_stmt *jm = NULL;
	rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &jm, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(jm)) == SQLITE_ROW) {
		const char *mode = (const char *)sqlite3_column_text(jm, 0);
		rc = mode && strcmp(mode, "wal") == 0 ? SQLITE_OK : SQLITE_CANTOPEN;
		if (rc != SQLITE_OK) {
			code = byol_err(err, -EIO, "%s: cannot use WAL mode (journal_mode is %s)",
					path, mode ? mode : "?");
			sqlite3_finalize(jm);
			goto fail;
		}
	}
	if (rc != SQLITE_OK) {
		store_op(s, "set WAL mode");
		code = store_fail(s, rc, err);
		sqlite3_finalize(jm);
		goto fail;
	}
	sqlite3_finalize(jm);
	rc = sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
				 " PRAGMA journal_size_limit = 67108864;", NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		code = byol_err(err, map_rc(s->db, rc), "%s: %s", path, msg);
		sqlite3_free(msg);
		goto fail;
	}
	if ((code = migrate(s, err)) < 0)
		goto fail;
	for (int i = 0; i < N_ST; i++) {
		rc = sqlite3_prepare_v3(s->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
		if (rc != SQLITE_OK) {
			store_op(s, "prepare statement %d", i);
			code = store_fail(s, rc, err);
			goto fail;
		}
	}
	*out = s;
	return 0;
fail:
	store_close(s);
	return code;
}

void store_close(store *s)
{
	if (!s)
		return;
	for (int i = 0; i < N_ST; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close(s->db);
	free(s->path);
	free(s);
}

int store_schema_version(const store *s)
{
	return s->version;
}

struct sqlite3 *store_sqlite(store *s)
{
	return s->db;
}

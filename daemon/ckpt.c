/*
 * ckpt.c — a run's checkpoints, and the hold that keeps a run from getting
 * ahead of what is on disk.
 *
 * A checkpoint is written in the threadpool (checkpoint_save: temp file,
 * fsync, rename, directory fsync; the temp file is removed when any of it
 * fails), only then recorded in the store, then the oldest beyond
 * checkpoint.keep are pruned (rows first, durably, then the files, in the
 * threadpool). A file written but not recorded is deleted again (unless a row
 * names it): no file outlives its row, and a full disk is not filled further.
 *
 * When the disk or the store fails (a full disk above all):
 * - a periodic checkpoint that fails is an error (log line and run event) and
 *   the run goes on: the previous checkpoint stays as it is, and the next
 *   periodic one tries again;
 * - the final checkpoint that fails, or a step's metrics row that the store
 *   refuses (coord.c calls ckpt_hold_step), puts the run on hold: its next
 *   apply, or its completion, waits while every heartbeat the row is tried
 *   again and then the checkpoint written again, until both are in. The first
 *   failure is an error, a reminder follows every minute, the recovery is an
 *   event. A stop or a cancel ends the hold; a step whose row is still missing
 *   then gets no checkpoint, so the run resumes before it and records it.
 * At set-up the newest checkpoint that loads is used, and temp files left by a
 * crash are removed.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "byol/checkpoint.h"
#include "byold.h"

#define HOLD_REMIND_S 60.0
#define TMP_SUFFIX ".safetensors.tmp"

typedef struct ckpt_hold ckpt_hold;

struct ckpt_hold {
	uv_timer_t timer;
	run *r;
	int row;                        /* m waits for the store */
	store_metric m;
	long row_k;                     /* the runs.step that goes with it */
	int ckpt;                       /* a checkpoint of step r->k is wanted */
	int writing;                    /* a checkpoint write is in flight */
	int failures;
	double since, reminded;         /* mono_s of the first failure, of the last line */
	char err[2 * BYOLD_PATH_LEN];   /* the last failure */
};

int make_dirs(const char *path, char *err)
{
	char p[BYOLD_PATH_LEN];
	if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p))
		return byol_err(err, -ENAMETOOLONG, "%s: path too long", path);
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			int e = errno;
			return byol_err(err, -e, "mkdir %s: %s", p, strerror(e));
		}
		*s = c;
		if (!c)
			break;
	}
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		return byol_err(err, -ENOTDIR, "%s: not a directory", path);
	return 0;
}

int ckpt_candidates(byold *d, run *r, char *err)
{
	store_checkpoint *list;
	int n, rc = store_checkpoint_list(d->db, r->id, &list, &n, err);
	if (rc < 0)
		return rc;
	if (n && !(r->candidates = calloc((size_t)n, sizeof(char *)))) {
		free(list);
		return byol_err(err, -ENOMEM, "out of memory");
	}
	for (int i = 0; i < n; i++)
		if ((r->candidates[r->n_candidates] = strdup(list[i].path)))
			r->n_candidates++;
	free(list);
	return 0;
}

/* Temp files of writes that a crash interrupted (never a checkpoint). */
static void remove_leftovers(run *r)
{
	DIR *dir = opendir(r->dir);
	if (!dir)
		return;
	size_t ns = strlen(TMP_SUFFIX);
	struct dirent *e;
	while ((e = readdir(dir))) {
		size_t n = strlen(e->d_name);
		if (n <= ns || strcmp(e->d_name + n - ns, TMP_SUFFIX) != 0)
			continue;
		char path[BYOLD_PATH_LEN + 256];
		snprintf(path, sizeof(path), "%s/%s", r->dir, e->d_name);
		if (unlink(path) < 0)
			dlog(DLOG_WARN, "run %lld: cannot delete the leftover %s: %s",
			     (long long)r->id, path, strerror(errno));
		else
			dlog(DLOG_WARN, "run %lld: deleted %s, left by an interrupted checkpoint "
			     "write", (long long)r->id, path);
	}
	closedir(dir);
}

void ckpt_restore(run *r)
{
	char err[BYOL_ERR_LEN];
	remove_leftovers(r);
	for (int i = 0; i < r->n_candidates; i++) {
		if (checkpoint_load(r->candidates[i], &r->m, &r->st, err) == 0) {
			r->resumed_step = r->st.step;
			snprintf(r->resumed_path, sizeof(r->resumed_path), "%s", r->candidates[i]);
			return;
		}
		dlog(DLOG_WARN, "run %lld: cannot resume from %s: %s", (long long)r->id,
		     r->candidates[i], err);
	}
}

/* ---- deleting pruned files ---- */

typedef struct {
	uv_work_t req;
	char **paths;
	int n;
} unlink_job;

static void unlink_work(uv_work_t *req)
{
	unlink_job *j = req->data;
	for (int i = 0; i < j->n; i++)
		if (unlink(j->paths[i]) < 0 && errno != ENOENT)
			dlog(DLOG_WARN, "cannot delete %s: %s", j->paths[i], strerror(errno));
		else
			dlog(DLOG_DEBUG, "deleted %s", j->paths[i]);
}

static void unlink_done(uv_work_t *req, int status)
{
	unlink_job *j = req->data;
	(void)status;
	store_paths_free(j->paths, j->n);
	free(j);
}

static void prune(byold *d, run *r)
{
	char err[BYOL_ERR_LEN];
	char **paths;
	int n;
	int keep = r->cfg.keep > 0 ? r->cfg.keep : 1;
	if (store_checkpoint_prune(d->db, r->id, keep, &paths, &n, err) < 0) {
		dlog(DLOG_WARN, "store: run %lld: %s", (long long)r->id, err);
		return;
	}
	if (!n)
		return;
	unlink_job *j = calloc(1, sizeof(*j));
	if (!j) {
		store_paths_free(paths, n);
		return;
	}
	j->paths = paths;
	j->n = n;
	j->req.data = j;
	uv_queue_work(d->loop, &j->req, unlink_work, unlink_done);
}

/* A file written but not recorded: deleted unless a row names its path (a
 * step written again after a resume). Appends what was done to why. */
static void discard_unrecorded(byold *d, run *r, const char *path, char *why, size_t n)
{
	char err[BYOL_ERR_LEN];
	store_checkpoint *list;
	int count, named = 0;
	size_t len = strlen(why);
	if (store_checkpoint_list(d->db, r->id, &list, &count, err) < 0) {
		snprintf(why + len, n - len, "; the file is kept (cannot tell whether a row names "
			 "it: %s)", err);
		return;
	}
	for (int i = 0; i < count; i++)
		named |= strcmp(list[i].path, path) == 0;
	free(list);
	if (named)
		snprintf(why + len, n - len, "; the file is kept: an earlier row names it");
	else if (unlink(path) < 0 && errno != ENOENT)
		snprintf(why + len, n - len, "; cannot delete the file: %s", strerror(errno));
	else
		snprintf(why + len, n - len, "; the file is deleted");
}

/* ---- the hold ---- */

static void write_start(byold *d, run *r);

static void hold_closed(uv_handle_t *h)
{
	free(h->data);
}

/* Ends the hold (no write may be in flight), after a recovery or not (a stop);
 * the caller calls coord_progress. */
static void hold_end(byold *d, run *r, int recovered)
{
	ckpt_hold *h = r->hold;
	if (recovered && h->failures)
		devent(d, r->id, DLOG_INFO, "run %lld: on disk again after %.0f s and %d failed "
		       "attempts (the last: %s); the run goes on from step %ld", (long long)r->id,
		       mono_s() - h->since, h->failures, h->err, r->k);
	uv_timer_stop(&h->timer);
	uv_close((uv_handle_t *)&h->timer, hold_closed);
	r->hold = NULL;
	r->ckpt_busy = 0;
	r->busy--;
}

/* One more failure while on hold: an error line for the first one and for a
 * new reason, a reminder every minute, the rest at debug level. */
static void hold_report(byold *d, run *r, ckpt_hold *h, const char *what, const char *err)
{
	double now = mono_s();
	int fresh = h->failures == 0 || strcmp(err, h->err) != 0;
	h->failures++;
	snprintf(h->err, sizeof(h->err), "%s", err);
	if (fresh) {
		devent(d, r->id, DLOG_ERROR, "run %lld: %s: %s; the run waits, trying again every "
		       "%.1f s", (long long)r->id, what, err, d->cfg.heartbeat_ms / 1000.0);
		h->reminded = now;
	} else if (now - h->reminded >= HOLD_REMIND_S) {
		dlog(DLOG_WARN, "run %lld: still waiting after %.0f s (%d attempts): %s: %s",
		     (long long)r->id, now - h->since, h->failures, what, err);
		h->reminded = now;
	} else {
		dlog(DLOG_DEBUG, "run %lld: %s: %s", (long long)r->id, what, err);
	}
}

/* Records the held metrics row: 0, or -1 (reported) while the store refuses. */
static int hold_row(byold *d, run *r, ckpt_hold *h)
{
	char err[BYOL_ERR_LEN], what[128];
	if (store_metrics_add(d->db, r->id, &h->m, err) < 0 ||
	    store_run_set_step(d->db, r->id, h->row_k, err) < 0) {
		snprintf(what, sizeof(what), "the metrics of step %ld cannot be recorded",
			 (long)h->m.step);
		hold_report(d, r, h, what, err);
		return -1;
	}
	h->row = 0;
	return 0;
}

/* 0 (with why) when the run's directory has less room than its latest
 * checkpoint took: a write would only fill the disk again. 1 otherwise, or
 * when that cannot be told. */
static int room_for_checkpoint(const run *r, char *why, size_t n)
{
	struct stat st;
	struct statvfs fs;
	if (r->ckpt_step < 0 || stat(r->ckpt_path, &st) < 0 || statvfs(r->dir, &fs) < 0 ||
	    (uint64_t)fs.f_bavail * fs.f_frsize >= (uint64_t)st.st_size)
		return 1;
	snprintf(why, n, "%.*s: less free space than the %lld bytes of the last checkpoint",
		 BYOLD_PATH_LEN - 128, r->dir, (long long)st.st_size);
	return 0;
}

static void hold_tick(uv_timer_t *t)
{
	ckpt_hold *h = t->data;
	run *r = h->r;
	byold *d = r->d;
	if (h->writing)
		return;
	if (run_stopping(d, r) || r->phase == RUN_DONE) {
		if (h->row && hold_row(d, r, h) < 0) {
			/* no checkpoint past a step without its row: the run does it again */
			r->stop_ckpt_tried = 1;
			dlog(DLOG_ERROR, "run %lld: stops without the metrics of step %ld; the run "
			     "will compute that step again", (long long)r->id, (long)h->m.step);
		}
		hold_end(d, r, 0);
		coord_progress(d, r);
		return;
	}
	if (h->row && hold_row(d, r, h) < 0)
		return;
	if (h->ckpt) {
		char why[BYOLD_PATH_LEN], what[64];
		if (!room_for_checkpoint(r, why, sizeof(why))) {
			snprintf(what, sizeof(what), "the checkpoint at step %ld waits for space", r->k);
			hold_report(d, r, h, what, why);
			return;
		}
		h->ckpt = 0;
		write_start(d, r);
		return;
	}
	hold_end(d, r, 1);
	coord_progress(d, r);
}

/* The run's hold, begun if there is none; NULL when out of memory. */
static ckpt_hold *hold_get(byold *d, run *r)
{
	if (r->hold)
		return r->hold;
	ckpt_hold *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->r = r;
	h->since = mono_s();
	uv_timer_init(d->loop, &h->timer);
	h->timer.data = h;
	uint64_t ms = (uint64_t)d->cfg.heartbeat_ms;
	uv_timer_start(&h->timer, hold_tick, ms, ms);
	r->hold = h;
	r->ckpt_busy = 1;
	r->busy++;
	return h;
}

void ckpt_hold_step(byold *d, run *r, const store_metric *m, const char *err)
{
	ckpt_hold *h = hold_get(d, r);
	char what[128];
	if (!h) {
		dlog(DLOG_ERROR, "store: run %lld step %ld: %s (out of memory to wait: the row "
		     "is lost)", (long long)r->id, (long)m->step, err);
		return;
	}
	h->row = 1;
	h->m = *m;
	h->row_k = r->k;
	snprintf(what, sizeof(what), "the metrics of step %ld cannot be recorded", (long)m->step);
	hold_report(d, r, h, what, err);
}

/* ---- writing ---- */

static void save_work(uv_work_t *req)
{
	run *r = req->data;
	double t0 = mono_s();
	r->ckpt_bytes = 0;
	/* the run's directory again, should it have been removed */
	if ((r->ckpt_rc = make_dirs(r->dir, r->ckpt_err)) < 0)
		return;
	r->ckpt_rc = checkpoint_save(r->ckpt_tmp, &r->m, &r->st, r->ckpt_sha, r->ckpt_err);
	struct stat st;
	if (r->ckpt_rc == 0 && stat(r->ckpt_tmp, &st) == 0)
		r->ckpt_bytes = (int64_t)st.st_size;
	r->ckpt_s = mono_s() - t0;
}

/* What stays after a failed checkpoint, into out. */
static void kept_note(const run *r, char *out, size_t n)
{
	if (r->ckpt_step >= 0)
		snprintf(out, n, "the checkpoint of step %ld stays (%s)", r->ckpt_step, r->ckpt_path);
	else
		snprintf(out, n, "the run has no earlier checkpoint");
}

static void save_done(uv_work_t *req, int status)
{
	run *r = req->data;
	byold *d = r->d;
	ckpt_hold *h = r->hold;
	char err[BYOL_ERR_LEN], why[BYOLD_PATH_LEN + 2 * BYOL_ERR_LEN], kept[BYOLD_PATH_LEN + 64];
	(void)status;
	r->busy--;
	if (h)
		h->writing = 0;
	why[0] = '\0';
	if (r->ckpt_rc < 0) {
		snprintf(why, sizeof(why), "%s", r->ckpt_err);
		/* renamed, then the directory's fsync failed: in place but unrecorded */
		if (access(r->ckpt_tmp, F_OK) == 0)
			discard_unrecorded(d, r, r->ckpt_tmp, why, sizeof(why));
	} else if (store_checkpoint_add(d->db, r->id, r->ckpt_saving, r->ckpt_tmp, r->ckpt_sha,
					r->ckpt_bytes, err) < 0) {
		snprintf(why, sizeof(why), "%s written but not recorded: %s", r->ckpt_tmp, err);
		discard_unrecorded(d, r, r->ckpt_tmp, why, sizeof(why));
	}
	if (why[0]) {
		int final = r->ckpt_saving == r->plan.total_steps;
		if (!h && final && !run_stopping(d, r))
			h = hold_get(d, r);
		kept_note(r, kept, sizeof(kept));
		if (h) {
			char what[64];
			size_t n = strlen(why);
			snprintf(what, sizeof(what), "the checkpoint at step %ld failed", r->ckpt_saving);
			snprintf(why + n, sizeof(why) - n, "; %s", kept);
			hold_report(d, r, h, what, why);
			h->ckpt = 1;
		} else {
			int last = final || run_stopping(d, r);
			devent(d, r->id, DLOG_ERROR, "run %lld: the checkpoint at step %ld failed: %s; "
			       "%s%s", (long long)r->id, r->ckpt_saving, why, kept,
			       last ? "" : "; the run goes on and the next checkpoint tries again");
		}
	} else {
		r->ckpt_step = r->ckpt_saving;
		snprintf(r->ckpt_path, sizeof(r->ckpt_path), "%s", r->ckpt_tmp);
		dlog(DLOG_INFO, "run %lld: checkpoint at step %ld: %s (%.1f MiB in %.2f s)",
		     (long long)r->id, r->ckpt_step, r->ckpt_path,
		     (double)r->ckpt_bytes / (1 << 20), r->ckpt_s);
		prune(d, r);
		if (h && !h->row && !h->ckpt)
			hold_end(d, r, 1);
	}
	r->ckpt_busy = r->hold != NULL;
	coord_progress(d, r);
}

static void write_start(byold *d, run *r)
{
	r->ckpt_saving = r->k;
	snprintf(r->ckpt_tmp, sizeof(r->ckpt_tmp), "%.*s/step-%ld.safetensors",
		 BYOLD_PATH_LEN - 64, r->dir, r->k);
	r->ckpt_busy = 1;
	r->busy++;
	if (r->hold)
		r->hold->writing = 1;
	r->ckpt_req.data = r;
	uv_queue_work(d->loop, &r->ckpt_req, save_work, save_done);
}

void ckpt_start(byold *d, run *r)
{
	if (r->hold) {
		r->hold->ckpt = 1; /* written once the held row is in */
		return;
	}
	if (r->ckpt_busy)
		return;
	write_start(d, r);
}

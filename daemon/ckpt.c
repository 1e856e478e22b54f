/*
 * ckpt.c — a run's checkpoints: written in the threadpool (checkpoint_save:
 * temp file, fsync, rename, directory fsync), only then recorded in the store,
 * then the oldest beyond checkpoint.keep pruned (rows first, durably, then the
 * files, in the threadpool). At set-up the newest checkpoint that loads is used.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "byol/checkpoint.h"
#include "byold.h"

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

void ckpt_restore(run *r)
{
	char err[BYOL_ERR_LEN];
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

/* ---- writing ---- */

static void save_work(uv_work_t *req)
{
	run *r = req->data;
	double t0 = mono_s();
	r->ckpt_rc = checkpoint_save(r->ckpt_tmp, &r->m, &r->st, r->ckpt_sha, r->ckpt_err);
	r->ckpt_bytes = 0;
	struct stat st;
	if (r->ckpt_rc == 0 && stat(r->ckpt_tmp, &st) == 0)
		r->ckpt_bytes = (int64_t)st.st_size;
	r->ckpt_s = mono_s() - t0;
}

static void save_done(uv_work_t *req, int status)
{
	run *r = req->data;
	byold *d = r->d;
	char err[BYOL_ERR_LEN];
	(void)status;
	r->busy--;
	r->ckpt_busy = 0;
	if (r->ckpt_rc < 0) {
		devent(d, r->id, DLOG_ERROR, "run %lld: checkpoint at step %ld failed: %s",
		       (long long)r->id, r->ckpt_saving, r->ckpt_err);
	} else if (store_checkpoint_add(d->db, r->id, r->ckpt_saving, r->ckpt_tmp, r->ckpt_sha,
					r->ckpt_bytes, err) < 0) {
		devent(d, r->id, DLOG_ERROR, "run %lld: checkpoint %s written but not recorded: %s",
		       (long long)r->id, r->ckpt_tmp, err);
	} else {
		r->ckpt_step = r->ckpt_saving;
		snprintf(r->ckpt_path, sizeof(r->ckpt_path), "%s", r->ckpt_tmp);
		dlog(DLOG_INFO, "run %lld: checkpoint at step %ld: %s (%.1f MiB in %.2f s)",
		     (long long)r->id, r->ckpt_step, r->ckpt_path,
		     (double)r->ckpt_bytes / (1 << 20), r->ckpt_s);
		prune(d, r);
	}
	coord_progress(d, r);
}

void ckpt_start(byold *d, run *r)
{
	if (r->ckpt_busy)
		return;
	r->ckpt_saving = r->k;
	snprintf(r->ckpt_tmp, sizeof(r->ckpt_tmp), "%.*s/step-%ld.safetensors",
		 BYOLD_PATH_LEN - 64, r->dir, r->k);
	r->ckpt_busy = 1;
	r->busy++;
	r->ckpt_req.data = r;
	uv_queue_work(d->loop, &r->ckpt_req, save_work, save_done);
}

/*
 * export.c — what byolctl downloads: ExportRequest streams a checkpoint (as
 * stored, or its encoder alone) as ExportChunk messages; MetricsRequest answers
 * a run's per-step metrics and evaluations (byolctl plot).
 *
 * An export is a job that moves through libuv threadpool work items while the
 * loop thread only packs and sends: prepare (for the encoder: build the model
 * from the run's config, load the checkpoint, write the encoder-only file into
 * STATE_DIR/export/; then open the file to send), one read per chunk (pread into
 * the job's one buffer, sha256 updated over it), and cleanup (close, delete the
 * temp file). The file is never whole in memory. The next chunk is read only
 * while the conn's write queue is under its high water (on_high_water pauses
 * the job, on_drain resumes it), so a slow client holds at most that much in
 * the daemon. A client that goes away stops its job at the next step; jobs are
 * found by their conn in d->exports.
 */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "byol/checkpoint.h"
#include "byold.h"

#define CHUNK_DEFAULT ((size_t)1 << 20)
#define CHUNK_MIN ((size_t)4 << 10)
#define CHUNK_MAX ((size_t)4 << 20)
#define EXPORT_DIR "export"             /* under the state directory */

typedef enum { WHAT_ENCODER, WHAT_ALL } export_what;
typedef enum { X_PREPARE, X_STREAM, X_END } export_phase;

struct export_job {
	export_job *next;
	byold *d;
	conn *c;                        /* NULL once the client is gone */
	uint64_t conn_id;               /* for log lines after that */
	int64_t run_id, step;
	export_what what;
	export_phase phase;
	char *config_json;              /* the run's (for the encoder) */
	char ckpt[STORE_PATH_LEN];      /* the stored checkpoint */
	char want_sha[65];              /* its recorded sha256 */
	char dir[BYOLD_PATH_LEN];       /* STATE_DIR/export */
	char tmp[BYOLD_PATH_LEN];       /* the encoder file of this export; "" none */
	int fd;
	uint64_t total, offset;
	size_t chunk;
	uint8_t *buf;                   /* (chunk) */
	size_t got;                     /* bytes in buf from the last read */
	crypto_hash_sha256_state hs;
	uint8_t sha[32];
	int busy;                       /* a work item in flight */
	int congested;                  /* the conn is over its high water */
	int rc;
	char err[BYOL_ERR_LEN];
	double t0;
	uv_work_t req;
};

static const char *what_name(export_what w)
{
	return w == WHAT_ALL ? "all" : "encoder";
}

/* ---- the encoder file, in the threadpool ---- */

/* Image height, width and channels of the train set in dir, from its idx header. */
static int image_shape(const char *dir, int *h, int *w, int *c, char *err)
{
	char path[BYOLD_PATH_LEN];
	snprintf(path, sizeof(path), "%.*s/train-images-idx3-ubyte.gz", BYOLD_PATH_LEN - 40, dir);
	if (access(path, R_OK) < 0)
		snprintf(path, sizeof(path), "%.*s/train-images-idx3-ubyte", BYOLD_PATH_LEN - 40,
			 dir);
	gzFile f = gzopen(path, "rb");
	if (!f)
		return byol_err(err, -ENOENT, "the run's data.dir %s: no readable "
				"train-images-idx3-ubyte[.gz] (needed for the model's input shape)", dir);
	unsigned char b[20];
	int got = gzread(f, b, sizeof(b));
	gzclose(f);
	int nd = got >= 4 ? b[3] : 0;
	if (got < 4 + 4 * nd || b[0] || b[1] || b[2] != 8 || (nd != 3 && nd != 4))
		return byol_err(err, -EINVAL, "%s: not an idx file of unsigned-byte images", path);
	uint32_t dim[4];
	for (int i = 0; i < nd; i++)
		dim[i] = (uint32_t)b[4 + 4 * i] << 24 | (uint32_t)b[5 + 4 * i] << 16 |
			 (uint32_t)b[6 + 4 * i] << 8 | b[7 + 4 * i];
	if (!dim[1] || !dim[2] || dim[1] > 65536 || dim[2] > 65536 ||
	    (nd == 4 && (!dim[3] || dim[3] > 4096)))
		return byol_err(err, -EINVAL, "%s: implausible image shape", path);
	*h = (int)dim[1];
	*w = (int)dim[2];
	*c = nd == 4 ? (int)dim[3] : 1;
	return 0;
}

typedef struct {
	experiment_config cfg;
	model m;
	train_state st;
} encoder_work;

static int write_encoder(export_job *j, char *err)
{
	char why[BYOL_ERR_LEN];
	int h = 0, w = 0, ch = 0, rc;
	encoder_work *x = calloc(1, sizeof(*x));
	if (!x)
		return byol_err(err, -ENOMEM, "out of memory");
	if ((rc = config_from_json(&x->cfg, j->config_json, why)) < 0)
		byol_err(err, rc, "run %lld's stored config: %s", (long long)j->run_id, why);
	else if ((rc = image_shape(x->cfg.data_dir, &h, &w, &ch, err)) < 0 ||
		 (rc = model_build(&x->m, &x->cfg, h, w, ch, err)) < 0 ||
		 (rc = train_state_alloc(&x->st, &x->m, err)) < 0 ||
		 (rc = checkpoint_load(j->ckpt, &x->m, &x->st, err)) < 0 ||
		 (rc = make_dirs(j->dir, err)) < 0)
		;
	else
		rc = checkpoint_export_encoder(j->tmp, &x->m, &x->st, err);
	train_state_free(&x->st);
	model_free(&x->m);
	free(x);
	return rc;
}

/* Deletes the export files a previous byold process left behind (named
 * export-<pid>-...; this process's own are its live jobs'). */
static void remove_stale(const char *dir)
{
	DIR *dp = opendir(dir);
	if (!dp)
		return;
	char mine[32];
	snprintf(mine, sizeof(mine), "export-%ld-", (long)getpid());
	struct dirent *de;
	while ((de = readdir(dp))) {
		if (strncmp(de->d_name, "export-", 7) != 0 ||
		    strncmp(de->d_name, mine, strlen(mine)) == 0)
			continue;
		char p[BYOLD_PATH_LEN];
		if (snprintf(p, sizeof(p), "%s/%s", dir, de->d_name) < (int)sizeof(p) &&
		    unlink(p) == 0)
			dlog(DLOG_INFO, "deleted the stale export file %s", p);
	}
	closedir(dp);
}

/* ---- the job's steps ---- */

static void prepare_work(uv_work_t *req)
{
	export_job *j = req->data;
	const char *src = j->ckpt;
	if (j->what == WHAT_ENCODER) {
		remove_stale(j->dir);
		if ((j->rc = write_encoder(j, j->err)) < 0)
			return;
		src = j->tmp;
	}
	j->fd = open(src, O_RDONLY | O_CLOEXEC);
	if (j->fd < 0) {
		int e = errno;
		j->rc = e == ENOENT && j->what == WHAT_ALL
				? byol_err(j->err, -ENOENT, "the checkpoint %s of run %lld is gone "
					   "(pruned since): export again", src, (long long)j->run_id)
				: byol_err(j->err, -e, "%s: %s", src, strerror(e));
		return;
	}
	struct stat sb;
	if (fstat(j->fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		j->rc = byol_err(j->err, -EIO, "%s: not a regular file", src);
		return;
	}
	j->total = (uint64_t)sb.st_size;
	crypto_hash_sha256_init(&j->hs);
}

/* Reads the chunk at j->offset into j->buf and hashes it; the last one also
 * finishes the hash and, for a stored file, checks it against the record. */
static void read_work(uv_work_t *req)
{
	export_job *j = req->data;
	size_t n = j->total - j->offset < j->chunk ? (size_t)(j->total - j->offset) : j->chunk;
	size_t got = 0;
	while (got < n) {
		ssize_t k = pread(j->fd, j->buf + got, n - got, (off_t)(j->offset + got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			j->rc = byol_err(j->err, -EIO, "%s: %s at byte %llu of %llu",
					 j->what == WHAT_ENCODER ? j->tmp : j->ckpt,
					 k < 0 ? strerror(errno) : "the file ended",
					 (unsigned long long)(j->offset + got),
					 (unsigned long long)j->total);
			return;
		}
		got += (size_t)k;
	}
	j->got = got;
	crypto_hash_sha256_update(&j->hs, j->buf, got);
	if (j->offset + got < j->total)
		return;
	crypto_hash_sha256_final(&j->hs, j->sha);
	if (j->what == WHAT_ALL && j->want_sha[0]) {
		char hex[65];
		sodium_bin2hex(hex, sizeof(hex), j->sha, sizeof(j->sha));
		if (strcmp(hex, j->want_sha) != 0)
			j->rc = byol_err(j->err, -EIO, "%s: sha256 %s differs from the %s recorded "
					 "when it was written: the file is damaged", j->ckpt, hex,
					 j->want_sha);
	}
}

static void cleanup_work(uv_work_t *req)
{
	export_job *j = req->data;
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
	if (j->tmp[0] && unlink(j->tmp) < 0 && errno != ENOENT)
		dlog(DLOG_WARN, "cannot delete %s: %s", j->tmp, strerror(errno));
}

static void job_free(export_job *j)
{
	free(j->config_json);
	free(j->buf);
	free(j);
}

static void cleanup_done(uv_work_t *req, int status)
{
	(void)status;
	job_free(req->data);
}

static void queue(export_job *j, uv_work_cb work, uv_after_work_cb done)
{
	j->busy = 1;
	j->req.data = j;
	uv_queue_work(j->d->loop, &j->req, work, done);
}

/* Takes j off the list and frees it after closing its file in the threadpool. */
static void end(export_job *j)
{
	for (export_job **p = &j->d->exports; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			break;
		}
	j->phase = X_END;
	j->c = NULL;
	queue(j, cleanup_work, cleanup_done);
}

static void fail(export_job *j)
{
	dlog(DLOG_INFO, "conn %llu: export of run %lld failed: %s",
	     (unsigned long long)j->conn_id, (long long)j->run_id, j->err);
	if (j->c)
		send_error(j->c, j->rc, "%s", j->err);
	end(j);
}

static void read_done(uv_work_t *req, int status);

static void pump(export_job *j)
{
	if (!j->c) {
		end(j);
		return;
	}
	if (!j->congested)
		queue(j, read_work, read_done);
}

static void read_done(uv_work_t *req, int status)
{
	export_job *j = req->data;
	char err[BYOL_ERR_LEN];
	(void)status;
	j->busy = 0;
	if (!j->c) {
		end(j);
		return;
	}
	if (j->rc < 0) {
		fail(j);
		return;
	}
	int last = j->offset + j->got == j->total;
	Byol__ExportChunk ch = BYOL__EXPORT_CHUNK__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	ch.offset = j->offset;
	ch.data.data = j->buf;
	ch.data.len = j->got;
	ch.total_bytes = j->total;
	ch.last = last;
	ch.step = (uint64_t)j->step;
	if (last) {
		ch.sha256.data = j->sha;
		ch.sha256.len = sizeof(j->sha);
	}
	e.msg_case = BYOL__ENVELOPE__MSG_EXPORT_CHUNK;
	e.export_chunk = &ch;
	int rc = conn_send(j->c, &e, err);
	if (rc < 0) {
		if (rc != -EPIPE)
			conn_close(j->c, rc, "cannot send an export chunk: %s", err);
		end(j);
		return;
	}
	j->offset += j->got;
	if (last) {
		double s = mono_s() - j->t0;
		dlog(DLOG_INFO, "conn %llu %s: exported run %lld step %lld (%s, %.2f MiB) in %.2f s",
		     (unsigned long long)j->conn_id, conn_peer(j->c), (long long)j->run_id,
		     (long long)j->step, what_name(j->what), (double)j->total / (1 << 20), s);
		end(j);
		return;
	}
	pump(j);
}

static void prepare_done(uv_work_t *req, int status)
{
	export_job *j = req->data;
	(void)status;
	j->busy = 0;
	if (!j->c) {
		end(j);
		return;
	}
	if (j->rc < 0) {
		fail(j);
		return;
	}
	j->phase = X_STREAM;
	pump(j);
}

/* ---- the loop's side: requests and conn events ---- */

static export_job *job_of(byold *d, const conn *c)
{
	for (export_job *j = d->exports; j; j = j->next)
		if (j->c == c)
			return j;
	return NULL;
}

/* The checkpoint of run id at step (0: the latest) into *ck; Error sent when
 * there is none. */
static int find_checkpoint(byold *d, conn *c, int64_t id, int64_t step, store_checkpoint *ck)
{
	char err[BYOL_ERR_LEN];
	store_checkpoint *list;
	int n;
	int rc = store_checkpoint_list(d->db, id, &list, &n, err);
	if (rc < 0) {
		send_error(c, rc, "%s", err);
		return rc;
	}
	for (int i = 0; i < n; i++)
		if (step == 0 || list[i].step == step) {
			*ck = list[i];
			free(list);
			return 0;
		}
	if (n == 0) {
		send_error(c, -ENOENT, "run %lld has no checkpoint yet", (long long)id);
	} else {
		char have[256] = "";
		size_t len = 0;
		for (int i = n - 1; i >= 0 && len + 24 < sizeof(have); i--)
			len += (size_t)snprintf(have + len, sizeof(have) - len, "%s%lld",
						len ? ", " : "", (long long)list[i].step);
		send_error(c, -ENOENT, "run %lld has no checkpoint at step %lld (it has steps %s)",
			   (long long)id, (long long)step, have);
	}
	free(list);
	return -ENOENT;
}

void export_start(byold *d, conn *c, const Byol__ExportRequest *q)
{
	char err[BYOL_ERR_LEN];
	export_what what;
	if (sodium_init() < 0) {
		send_error(c, -EIO, "libsodium cannot be initialised");
		return;
	}
	if (!q->what || !q->what[0] || strcmp(q->what, "encoder") == 0)
		what = WHAT_ENCODER;
	else if (strcmp(q->what, "all") == 0)
		what = WHAT_ALL;
	else {
		send_error(c, -EINVAL, "export: what '%.40s' is neither 'encoder' nor 'all'", q->what);
		return;
	}
	if (job_of(d, c)) {
		send_error(c, -EBUSY, "an export is already streaming on this connection");
		return;
	}
	if (q->run_id == 0 || q->run_id > INT64_MAX || q->step > INT64_MAX) {
		send_error(c, -ENOENT, "no run %llu", (unsigned long long)q->run_id);
		return;
	}
	store_run row;
	int rc = store_run_get(d->db, (int64_t)q->run_id, &row, err);
	if (rc < 0) {
		if (rc == -ENOENT)
			send_error(c, rc, "no run %llu", (unsigned long long)q->run_id);
		else
			send_error(c, rc, "%s", err);
		store_run_release(&row);
		return;
	}
	store_checkpoint ck;
	export_job *j = NULL;
	if (find_checkpoint(d, c, row.id, (int64_t)q->step, &ck) < 0)
		goto out;
	size_t chunk = q->chunk_bytes ? q->chunk_bytes : CHUNK_DEFAULT;
	chunk = chunk < CHUNK_MIN ? CHUNK_MIN : chunk > CHUNK_MAX ? CHUNK_MAX : chunk;
	j = calloc(1, sizeof(*j));
	if (!j || !(j->buf = malloc(chunk)) ||
	    (what == WHAT_ENCODER && !(j->config_json = strdup(row.config_json)))) {
		send_error(c, -ENOMEM, "out of memory for an export");
		if (j)
			job_free(j);
		goto out;
	}
	j->d = d;
	j->c = c;
	j->conn_id = conn_id(c);
	j->run_id = row.id;
	j->step = ck.step;
	j->what = what;
	j->phase = X_PREPARE;
	j->fd = -1;
	j->chunk = chunk;
	j->t0 = mono_s();
	snprintf(j->ckpt, sizeof(j->ckpt), "%s", ck.path);
	snprintf(j->want_sha, sizeof(j->want_sha), "%s", ck.sha256);
	snprintf(j->dir, sizeof(j->dir), "%.*s/" EXPORT_DIR, BYOLD_PATH_LEN - 16, d->cfg.state_dir);
	if (what == WHAT_ENCODER)
		snprintf(j->tmp, sizeof(j->tmp), "%.*s/export-%ld-%llu.safetensors",
			 BYOLD_PATH_LEN - 64, j->dir, (long)getpid(), (unsigned long long)j->conn_id);
	j->next = d->exports;
	d->exports = j;
	dlog(DLOG_DEBUG, "conn %llu %s: export of run %lld step %lld (%s) begins",
	     (unsigned long long)j->conn_id, conn_peer(c), (long long)j->run_id,
	     (long long)j->step, what_name(what));
	queue(j, prepare_work, prepare_done);
out:
	store_run_release(&row);
}

void export_conn_closed(byold *d, conn *c)
{
	export_job *j = job_of(d, c);
	if (!j)
		return;
	dlog(DLOG_INFO, "conn %llu: the client went away during the export of run %lld "
	     "(%llu of %llu bytes sent)", (unsigned long long)j->conn_id, (long long)j->run_id,
	     (unsigned long long)j->offset, (unsigned long long)j->total);
	j->c = NULL;
	if (!j->busy)
		end(j);
}

void export_conn_congested(byold *d, conn *c, int on)
{
	export_job *j = job_of(d, c);
	if (!j)
		return;
	j->congested = on;
	if (!on && !j->busy && j->phase == X_STREAM)
		pump(j);
}

/* ---- MetricsRequest ---- */

typedef struct {
	store_metric *rows;
	size_t n, cap;
	Byol__EvalInfo *ev;
	char (*kinds)[STORE_KIND_LEN];
	size_t n_ev, cap_ev;
} metrics_ctx;

static int collect_metric(const store_metric *m, void *ctx)
{
	metrics_ctx *x = ctx;
	if (x->n == x->cap) {
		size_t cap = x->cap ? 2 * x->cap : 1024;
		store_metric *p = realloc(x->rows, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		x->rows = p;
		x->cap = cap;
	}
	x->rows[x->n++] = *m;
	return 0;
}

static int collect_eval(const store_eval *e, void *ctx)
{
	metrics_ctx *x = ctx;
	if (x->n_ev == x->cap_ev) {
		size_t cap = x->cap_ev ? 2 * x->cap_ev : 64;
		Byol__EvalInfo *p = realloc(x->ev, cap * sizeof(*p));
		char (*k)[STORE_KIND_LEN] = realloc(x->kinds, cap * sizeof(*k));
		if (p)
			x->ev = p;
		if (k)
			x->kinds = k;
		if (!p || !k)
			return -ENOMEM;
		x->cap_ev = cap;
	}
	Byol__EvalInfo init = BYOL__EVAL_INFO__INIT;
	Byol__EvalInfo *o = &x->ev[x->n_ev];
	*o = init;
	o->step = (uint64_t)(e->step > 0 ? e->step : 0);
	snprintf(x->kinds[x->n_ev], STORE_KIND_LEN, "%s", e->kind);
	o->value = e->value;
	x->n_ev++;
	return 0;
}

/* Row i of m kept out of n when thinning evenly (first and last included). */
static size_t thinned_index(size_t i, size_t m, size_t n)
{
	if (m == 1)
		return n - 1;
	return (size_t)((double)i * (double)(n - 1) / (double)(m - 1) + 0.5);
}

static uint64_t steps_per_epoch(const store_run *row)
{
	char err[BYOL_ERR_LEN];
	experiment_config *cfg = calloc(1, sizeof(*cfg));
	uint64_t spe = 0;
	if (cfg && row->config_json && config_from_json(cfg, row->config_json, err) == 0 &&
	    cfg->epochs > 0 && row->total_steps > 0)
		spe = (uint64_t)row->total_steps / (uint64_t)cfg->epochs;
	free(cfg);
	return spe;
}

void metrics_answer(byold *d, conn *c, const Byol__MetricsRequest *q)
{
	char err[BYOL_ERR_LEN];
	metrics_ctx x = {0};
	Byol__MetricPoint *pts = NULL, **pp = NULL;
	Byol__EvalInfo **ep = NULL;
	store_run row;
	memset(&row, 0, sizeof(row));
	int rc = q->run_id == 0 || q->run_id > INT64_MAX
			 ? -ENOENT : store_run_get(d->db, (int64_t)q->run_id, &row, err);
	if (rc < 0) {
		if (rc == -ENOENT)
			send_error(c, rc, "no run %llu", (unsigned long long)q->run_id);
		else
			send_error(c, rc, "%s", err);
		store_run_release(&row);
		return;
	}
	int64_t from = q->from_step > INT64_MAX ? INT64_MAX : (int64_t)q->from_step;
	int64_t to = q->to_step == 0 ? -1 : q->to_step > INT64_MAX ? INT64_MAX
								    : (int64_t)q->to_step;
	if ((rc = store_metrics_read(d->db, row.id, from, to, collect_metric, &x, err)) < 0 ||
	    (rc = store_evals_read(d->db, row.id, collect_eval, &x, err)) < 0) {
		send_error(c, rc, "run %lld: %s", (long long)row.id,
			   rc == -ENOMEM ? "out of memory for its metrics" : err);
		goto out;
	}
	size_t m = q->max_points && x.n > q->max_points ? q->max_points : x.n;
	pts = calloc(m ? m : 1, sizeof(*pts));
	pp = calloc(m ? m : 1, sizeof(*pp));
	ep = calloc(x.n_ev ? x.n_ev : 1, sizeof(*ep));
	if (!pts || !pp || !ep) {
		send_error(c, -ENOMEM, "out of memory for %zu metric rows", m);
		goto out;
	}
	for (size_t i = 0; i < m; i++) {
		const store_metric *s = &x.rows[m == x.n ? i : thinned_index(i, m, x.n)];
		Byol__MetricPoint init = BYOL__METRIC_POINT__INIT;
		pts[i] = init;
		pts[i].step = (uint64_t)(s->step > 0 ? s->step : 0);
		pts[i].epoch = (uint64_t)(s->epoch > 0 ? s->epoch : 0);
		pts[i].loss = s->loss;
		pts[i].lr = s->lr;
		pts[i].tau = s->tau;
		pts[i].collapse = s->collapse;
		pts[i].img_per_s = s->img_per_s;
		pts[i].unix_ms = s->unix_ms;
		pp[i] = &pts[i];
	}
	for (size_t i = 0; i < x.n_ev; i++) {
		x.ev[i].kind = x.kinds[i];
		ep[i] = &x.ev[i];
	}
	Byol__MetricsReply mr = BYOL__METRICS_REPLY__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	mr.run_id = (uint64_t)row.id;
	mr.n_points = m;
	mr.points = pp;
	mr.n_evals = x.n_ev;
	mr.evals = ep;
	mr.steps_per_epoch = steps_per_epoch(&row);
	mr.total_steps = (uint64_t)(row.total_steps > 0 ? row.total_steps : 0);
	e.msg_case = BYOL__ENVELOPE__MSG_METRICS_REPLY;
	e.metrics_reply = &mr;
	rc = conn_send(c, &e, err);
	if (rc == -EMSGSIZE)
		send_error(c, rc, "run %lld: %zu metric rows do not fit in one frame: ask for at "
			   "most a few hundred thousand points (max_points)", (long long)row.id, m);
	else if (rc < 0 && rc != -EPIPE)
		conn_close(c, rc, "cannot answer: %s", err);
out:
	free(pts);
	free(pp);
	free(ep);
	free(x.rows);
	free(x.ev);
	free(x.kinds);
	store_run_release(&row);
}

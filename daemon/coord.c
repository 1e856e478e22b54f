/*
 * coord.c — the steps of the active run, and the workers that come and go
 * while it steps (run.c has the rest of a run's life).
 *
 * One run is active at a time (d->run). Its life: RUN_SETUP (the threadpool
 * loads the train set for its size, builds the model and the state and loads
 * the newest readable checkpoint) -> RUN_STEP (StepParams of step k to every
 * worker that can take a step, the tree nodes assigned, NodeResults collected
 * into slot lo) -> RUN_APPLY (step_apply_nodes in the threadpool) -> RUN_STEP of
 * k + 1 ... -> RUN_FINAL (the last checkpoint and the final evaluations) ->
 * RUN_DONE. A checkpoint is written while the next step's shards are computed;
 * that step's apply waits for it (both read the state; only the apply writes it).
 *
 * Dimension legend: S shards of the step, P parameters (m.L.total).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byol/pool.h"
#include "byold.h"

#define PROGRESS_EVERY_S 10.0

/* ---- a step ---- */

void coord_slot_free(shard_result *s)
{
	conn_tensor_free(s->grad);
	s->grad = NULL;
	shard_result_free(s);
}

void coord_release_nodes(run *r)
{
	for (int i = 0; i < r->n_nodes; i++) {
		step_node *n = &r->nodes[i];
		if (n->w && !n->done)
			n->w->shards_out -= n->hi - n->lo;
		if (n->backup && !n->done)
			n->backup->shards_out -= n->hi - n->lo;
		n->w = n->backup = NULL;
		n->fresh = n->backup_fresh = 0;
	}
	r->n_nodes = r->nodes_left = 0;
}

/* Sends a ShardAssign to every worker with fresh nodes. */
static void send_fresh(byold *d, run *r)
{
	char err[BYOL_ERR_LEN];
	for (worker *w = d->workers; w; w = w->next) {
		size_t n = 0;
		for (int i = 0; i < r->n_nodes; i++) {
			step_node *x = &r->nodes[i];
			if (x->fresh && x->w == w)
				x->fresh = 0;
			else if (x->backup_fresh && x->backup == w)
				x->backup_fresh = 0;
			else
				continue;
			Byol__Node init = BYOL__NODE__INIT;
			r->nbuf[n] = init;
			r->nbuf[n].lo = (uint32_t)x->lo;
			r->nbuf[n].hi = (uint32_t)x->hi;
			r->nptr[n] = &r->nbuf[n];
			n++;
		}
		if (!n)
			continue;
		Byol__ShardAssign sa = BYOL__SHARD_ASSIGN__INIT;
		Byol__Envelope e = BYOL__ENVELOPE__INIT;
		sa.run_id = (uint64_t)r->id;
		sa.step = (uint64_t)r->k;
		sa.n_node = n;
		sa.node = r->nptr;
		e.msg_case = BYOL__ENVELOPE__MSG_SHARD_ASSIGN;
		e.shard_assign = &sa;
		int rc = conn_send(w->c, &e, err);
		if (rc < 0 && rc != -EPIPE)
			conn_close(w->c, rc, "cannot send ShardAssign: %s", err);
		/* a closing conn: its on_close gives the nodes to others */
	}
}

static void assign(step_node *x, worker *w)
{
	x->w = w;
	x->fresh = 1;
	x->backup = NULL;
	x->backup_fresh = 0;
	x->t_assigned = mono_s();
	w->shards_out += x->hi - x->lo;
}

void coord_fill(byold *d, run *r)
{
	if (r != d->run || r->phase != RUN_STEP || d->stopping)
		return;
	for (int i = 0; i < r->n_nodes; i++) {
		step_node *x = &r->nodes[i];
		while (!x->done && !x->w) {
			worker *best = NULL;
			for (worker *w = d->workers; w; w = w->next)
				if (worker_can_step(d, w) && (!best || w->shards_out < best->shards_out))
					best = w;
			if (!best)
				goto send;
			if (best->params_step != r->k && worker_send_params(d, best) < 0)
				continue;       /* that conn is closing now: pick again */
			assign(x, best);
		}
	}
send:
	send_fresh(d, r);
}

void coord_begin_step(byold *d, run *r)
{
	int S = r->plan.shards;
	r->phase = RUN_STEP;
	r->t_step0 = mono_s();
	r->stall_reported = 0;
	r->waiting_ckpt = 0;
	r->node_slowest_prev = r->node_slowest;
	r->node_slowest = 0;
	int W = 0;
	for (worker *w = d->workers; w; w = w->next)
		W += worker_can_step(d, w);
	int want = W < 1 ? 1 : W > S ? S : W;
	/* cut [0, S) into tree nodes: split the largest until there are `want` */
	r->nodes[0] = (step_node){ .lo = 0, .hi = S };
	r->n_nodes = 1;
	while (r->n_nodes < want) {
		int best = -1;
		for (int i = 0; i < r->n_nodes; i++) {
			int len = r->nodes[i].hi - r->nodes[i].lo;
			if (len >= 2 && (best < 0 || len > r->nodes[best].hi - r->nodes[best].lo))
				best = i;
		}
		if (best < 0)
			break;
		int lo = r->nodes[best].lo, hi = r->nodes[best].hi, mid = step_tree_mid(lo, hi);
		memmove(&r->nodes[best + 2], &r->nodes[best + 1],
			(size_t)(r->n_nodes - best - 1) * sizeof(step_node));
		r->nodes[best] = (step_node){ .lo = lo, .hi = mid };
		r->nodes[best + 1] = (step_node){ .lo = mid, .hi = hi };
		r->n_nodes++;
	}
	r->nodes_left = r->n_nodes;
	/* slots are kept from step to step; free those no node starts at */
	int next = 0;
	for (int i = 0; i < r->n_nodes; i++)
		r->node_hi[r->nodes[i].lo] = r->nodes[i].hi;
	for (int j = 0; j < S; j++) {
		if (next < r->n_nodes && r->nodes[next].lo == j) {
			next++;
			continue;
		}
		if (r->slots[j].grad)
			coord_slot_free(&r->slots[j]);
	}
	/* the parameters to every worker that can step; the nodes in order */
	int i = 0;
	for (worker *w = d->workers; w; w = w->next) {
		if (!worker_can_step(d, w) || worker_send_params(d, w) < 0)
			continue;
		if (i < r->n_nodes)
			assign(&r->nodes[i++], w);
	}
	coord_rooms_release(r);         /* sent, or no longer of use */
	send_fresh(d, r);
	if (i < r->n_nodes)
		coord_fill(d, r);
	r->t_sent = mono_s();
}

/* Rooms in the rings of the workers that will take the next step's parameters
 * as they lie (they have this step's), for the apply to fill in parallel: the
 * copies then leave byold's loop thread, where they ran one after the other. */
static void rooms_reserve(byold *d, run *r)
{
	size_t bytes = r->m.L.total * sizeof(float);
	r->n_rooms = 0;
	if (r->k + 1 >= r->plan.total_steps)
		return;
	for (worker *w = d->workers; w; w = w->next) {
		if (!worker_can_step(d, w) || w->params_step != r->k)
			continue;
		if (r->n_rooms == r->cap_rooms) {
			int cap = r->cap_rooms ? 2 * r->cap_rooms : 8;
			struct param_room *p = realloc(r->rooms, (size_t)cap * sizeof(*p));
			if (!p)
				return;
			r->rooms = p;
			r->cap_rooms = cap;
		}
		void *room = conn_shm_reserve(w->c, bytes);
		if (room)
			r->rooms[r->n_rooms++] = (struct param_room){ conn_id(w->c), room };
	}
}

void *coord_room_of(const run *r, const worker *w)
{
	size_t bytes = r->m.L.total * sizeof(float);
	for (int i = 0; i < r->n_rooms; i++)
		if (r->rooms[i].conn == conn_id(w->c))
			return conn_shm_room_ok(w->c, r->rooms[i].room, bytes) ? r->rooms[i].room
									       : NULL;
	return NULL;
}

void coord_rooms_release(run *r)
{
	for (int i = 0; i < r->n_rooms; i++)
		conn_shm_release(r->rooms[i].room);
	r->n_rooms = 0;
}

static void fill_room(void *arg, int thread, int task)
{
	run *r = arg;
	(void)thread;
	memcpy(r->rooms[task].room, r->st.online, r->m.L.total * sizeof(float));
}

static void apply_work(uv_work_t *req);
static void apply_done(uv_work_t *req, int status);

void coord_start_apply(byold *d, run *r)
{
	if (r->ckpt_busy) {
		r->waiting_ckpt = 1;
		return;
	}
	r->waiting_ckpt = 0;
	if (worker_params_reclaim(r) < 0) {
		run_fail(d, r, "out of memory for a copy of the %zu parameters", r->m.L.total);
		return;
	}
	r->phase = RUN_APPLY;
	rooms_reserve(d, r);
	r->busy++;
	r->apply_req.data = r;
	uv_queue_work(d->loop, &r->apply_req, apply_work, apply_done);
}

void coord_node_result(byold *d, worker *w, const Byol__NodeResult *nr)
{
	run *r = d->run;
	w->stalled = 0;                 /* it answers again, whatever it answers */
	if (!r || (int64_t)nr->run_id != r->id) {
		worker_ignored(w, "NodeResult of run %llu, which is not active: ignored",
			       (unsigned long long)nr->run_id);
		return;
	}
	if (run_stopping(d, r)) {
		dlog(DLOG_DEBUG, "worker %s: NodeResult of an abandoned step: ignored", w->name);
		return;
	}
	if (r->phase != RUN_STEP || r->starting || nr->step != (uint64_t)r->k) {
		worker_ignored(w, "NodeResult of run %lld step %llu, not the step in progress: "
				  "ignored", (long long)r->id, (unsigned long long)nr->step);
		return;
	}
	step_node *x = NULL;
	for (int i = 0; i < r->n_nodes; i++)
		if (r->nodes[i].lo == (int)nr->lo && r->nodes[i].hi == (int)nr->hi &&
		    nr->lo < nr->hi)
			x = &r->nodes[i];
	if (!x || (x->w != w && x->backup != w)) {
		conn_close(w->c, -EPROTO, "NodeResult [%u, %u) of step %ld: not a node assigned "
			   "to this worker", nr->lo, nr->hi, r->k);
		return;
	}
	if (x->done) {
		worker_ignored(w, "NodeResult [%u, %u) of step %ld, which the other worker "
				  "answered first: ignored", nr->lo, nr->hi, r->k);
		return;
	}
	size_t P = r->m.L.total, NB = r->m.bn_layout.total;
	uint32_t n_want = (uint32_t)(x->hi - x->lo) * (uint32_t)r->plan.shard;
	if (nr->grad.len != P * sizeof(float) || nr->bn_stats.len != NB * sizeof(float) ||
	    nr->n != n_want) {
		conn_close(w->c, -EPROTO, "NodeResult [%u, %u) of step %ld: grad %zu bytes, bn_stats "
			   "%zu bytes, n %u; expected %zu, %zu, %u", nr->lo, nr->hi, r->k,
			   nr->grad.len, nr->bn_stats.len, nr->n, P * sizeof(float),
			   NB * sizeof(float), n_want);
		return;
	}
	shard_result *s = &r->slots[x->lo];
	float *taken = conn_take(w->c, nr->grad.data, nr->grad.len);
	if (!taken || (!s->bn_stats && shard_result_alloc(s, &r->m) < 0)) {
		conn_tensor_free(taken);
		run_fail(d, r, "out of memory for a node result of %zu floats", P);
		return;
	}
	conn_tensor_free(s->grad);
	s->grad = taken;
	if (NB)
		memcpy(s->bn_stats, nr->bn_stats.data, nr->bn_stats.len);
	s->loss = nr->loss;
	s->collapse = nr->collapse;
	s->n = (int)nr->n;
	x->done = 1;
	double took = mono_s() - (w == x->backup ? x->t_backup : x->t_assigned);
	if (took > r->node_slowest && !x->backup)
		r->node_slowest = took;         /* a backed-up node does not set the next limit */
	if (x->backup) {
		/* the other one's copy of the node no longer counts */
		worker *other = x->w == w ? x->backup : x->w;
		other->shards_out -= x->hi - x->lo;
		if (w == x->backup)
			devent(d, r->id, DLOG_INFO, "run %lld step %ld: worker %s answered [%d, %d) "
			       "first, after %.1f s", (long long)r->id, r->k, w->name, x->lo,
			       x->hi, took);
	}
	w->shards_out -= x->hi - x->lo;
	w->shards_done += (uint64_t)(x->hi - x->lo);
	w->unflushed += x->hi - x->lo;
	if (--r->nodes_left == 0) {
		r->t_covered = mono_s();
		coord_start_apply(d, r);
	} else if (w->shards_out == 0) {
		coord_fill(d, r);
	}
}

static void apply_work(uv_work_t *req)
{
	run *r = req->data;
	double t0 = mono_s();
	r->apply_rc = step_apply_nodes(&r->m, &r->plan, &r->st, r->slots, r->node_hi, &r->sm,
				       r->apply_err);
	if (r->apply_rc == 0 && r->n_rooms)
		pool_run(r->st.pool, fill_room, r, r->n_rooms);
	r->apply_s = mono_s() - t0;
}

static void log_progress(run *r, double img_s)
{
	dlog(DLOG_INFO, "run %lld step %ld/%ld epoch %ld loss %.4f collapse %.3f lr %.4f tau %.5f "
	     "%.0f img/s", (long long)r->id, r->k, r->plan.total_steps,
	     (r->k - 1) / r->plan.steps_per_epoch + 1, r->sm.loss, r->sm.collapse, r->sm.lr,
	     r->sm.tau, img_s);
}

static void apply_done(uv_work_t *req, int status)
{
	run *r = req->data;
	byold *d = r->d;
	char err[BYOL_ERR_LEN];
	(void)status;
	r->busy--;
	if (r->apply_rc < 0 || r->k + 1 >= r->plan.total_steps || run_stopping(d, r))
		coord_rooms_release(r);  /* no next step here */
	if (r->apply_rc < 0) {
		run_fail(d, r, "%s", r->apply_err);
		return;
	}
	double t = mono_s();
	long k = r->k++;
	double wall = t - r->t_step0;
	double img_s = wall > 0 ? r->plan.batch / wall : 0;
	r->last = r->sm;
	r->have_last = 1;
	r->last_img_s = img_s;
	store_metric m = {
		.step = k, .epoch = (int)(k / r->plan.steps_per_epoch), .loss = r->sm.loss,
		.lr = r->sm.lr, .tau = r->sm.tau, .collapse = r->sm.collapse, .img_per_s = img_s,
		.unix_ms = wall_ms(),
	};
	if (store_metrics_add(d->db, r->id, &m, err) < 0 ||
	    store_run_set_step(d->db, r->id, r->k, err) < 0)
		ckpt_hold_step(d, r, &m, err);
	watch_step(d, r);
	double after = mono_s() - t;
	r->n_timed++;
	r->sum_step_s += wall + after;
	r->sum_wait_s += r->t_covered - r->t_sent;
	r->sum_send_s += r->t_sent - r->t_step0;
	r->sum_apply_s += r->apply_s;
	r->sum_after_s += after + (t - r->t_covered - r->apply_s);
	/* bench/cluster.sh reads this line: the step's wall time is send + wait +
	 * apply + the threadpool's queueing; store (the bookkeeping after the
	 * apply) comes on top of it, before the next step begins */
	dlog(DLOG_DEBUG, "run %lld step %ld: %.1f ms (send %.1f, wait %.1f, apply %.1f, store "
	     "%.1f) loss %.5f", (long long)r->id, k, 1e3 * wall, 1e3 * (r->t_sent - r->t_step0),
	     1e3 * (r->t_covered - r->t_sent), 1e3 * r->apply_s, 1e3 * after, r->sm.loss);
	if (t - r->last_log >= PROGRESS_EVERY_S || r->k == r->plan.total_steps) {
		log_progress(r, img_s);
		r->last_log = t;
	}
	if (run_stopping(d, r)) {
		coord_progress(d, r);
		return;
	}
	if (r->k % r->cfg.every_steps == 0 || r->k == r->plan.total_steps)
		ckpt_start(d, r);
	long knn_every = r->cfg.knn_every_epochs > 0
				 ? lround(r->cfg.knn_every_epochs * (double)r->plan.steps_per_epoch)
				 : 0;
	if (knn_every > 0 && r->k % knn_every == 0 && r->k < r->plan.total_steps)
		evals_periodic(d, r);
	if (r->k < r->plan.total_steps) {
		coord_begin_step(d, r);
		return;
	}
	char tl[512];
	run_timing(r, tl, sizeof(tl));
	devent(d, r->id, DLOG_INFO, "run %lld: %ld steps applied; %s", (long long)r->id, r->k, tl);
	r->phase = RUN_FINAL;
	evals_final(d, r);
	coord_progress(d, r);
}

/* ---- workers coming and going ---- */

void coord_worker_free(byold *d, worker *w)
{
	run *r = d->run;
	(void)w;
	if (!r || !r->ready)
		return;
	run_maybe_start(d, r);
	coord_fill(d, r);
	evals_dispatch(d, r);
}

void coord_worker_lost(byold *d, worker *w)
{
	run *r = d->run;
	if (!r)
		return;
	int lost = 0;
	for (int i = 0; i < r->n_nodes; i++) {
		step_node *x = &r->nodes[i];
		if (x->backup == w) {
			x->backup = NULL;
			x->backup_fresh = 0;
			continue;
		}
		if (x->w != w)
			continue;
		if (x->backup) {
			/* the backup carries on alone */
			x->w = x->backup;
			x->fresh = x->backup_fresh;
			x->t_assigned = x->t_backup;
			x->backup = NULL;
			x->backup_fresh = 0;
			continue;
		}
		if (!x->done) {
			lost += x->hi - x->lo;
			x->fresh = 0;
		}
		x->w = NULL;
	}
	w->shards_out = 0;
	evals_worker_lost(d, r, w);
	if (r->ready)
		run_maybe_start(d, r);
	if (lost)
		devent(d, r->id, DLOG_WARN, "run %lld step %ld: %d shards of worker %s go to "
		       "other workers", (long long)r->id, r->k, lost, w->name);
	coord_fill(d, r);
	evals_dispatch(d, r);
	coord_progress(d, r);
}

/* Seconds a node may take before it goes to a second worker too. */
static double node_deadline(const byold *d, const run *r)
{
	if (d->cfg.node_timeout_ms > 0)
		return d->cfg.node_timeout_ms / 1000.0;
	if (r->node_slowest_prev <= 0)
		return 60.0;
	double t = 10 * r->node_slowest_prev;
	return t < 10.0 ? 10.0 : t;
}

/* A node over its deadline goes to the least loaded other worker as well. Its
 * result is the same bytes whoever computes it, so the first one in counts;
 * the slow worker takes no new work until it answers (a worker whose compute
 * hangs while its heartbeats go on would otherwise hold the run forever). */
static void back_up_slow_nodes(byold *d, run *r, double now)
{
	double limit = node_deadline(d, r);
	int any = 0;
	for (int i = 0; i < r->n_nodes; i++) {
		step_node *x = &r->nodes[i];
		if (x->done || !x->w || x->backup || now - x->t_assigned < limit)
			continue;
		worker *best = NULL;
		for (worker *w = d->workers; w; w = w->next)
			if (w != x->w && worker_can_step(d, w) &&
			    (!best || w->shards_out < best->shards_out))
				best = w;
		if (!best || (best->params_step != r->k && worker_send_params(d, best) < 0))
			continue;
		x->backup = best;
		x->backup_fresh = 1;
		x->t_backup = now;
		best->shards_out += x->hi - x->lo;
		x->w->stalled = 1;
		any = 1;
		devent(d, r->id, DLOG_WARN, "run %lld step %ld: worker %s has not answered [%d, %d) "
		       "in %.1f s (limit %.1f s): worker %s computes it too", (long long)r->id,
		       r->k, x->w->name, x->lo, x->hi, now - x->t_assigned, limit, best->name);
	}
	if (any)
		send_fresh(d, r);
}

void coord_cron(byold *d)
{
	run *r = d->run;
	if (r && r->ready) {
		run_maybe_start(d, r);
		evals_cron(d, r);
	}
	if (!r || r->phase != RUN_STEP || r->starting || run_stopping(d, r))
		return;
	double now = mono_s(), stall = d->cfg.stall_ms / 1000.0;
	back_up_slow_nodes(d, r, now);
	if (now - r->t_step0 < stall || now - r->stall_reported < stall)
		return;
	r->stall_reported = now;
	char what[1024] = "";
	size_t len = 0;
	int unassigned = 0;
	for (int i = 0; i < r->n_nodes && len < sizeof(what) - 80; i++) {
		step_node *x = &r->nodes[i];
		if (x->done)
			continue;
		if (!x->w)
			unassigned++;
		else
			len += (size_t)snprintf(what + len, sizeof(what) - len, " [%d, %d) on %s;",
						x->lo, x->hi, x->w->name);
	}
	int ready = 0, refused = 0;
	for (worker *w = d->workers; w; w = w->next) {
		ready += worker_can_step(d, w);
		refused += w->refused && w->run_id == r->id;
	}
	dlog(DLOG_WARN, "run %lld step %ld has taken %.0f s:%s %d nodes without a worker; %d "
	     "workers can take shards, %d refused the run", (long long)r->id, r->k,
	     now - r->t_step0, what, unassigned, ready, refused);
}


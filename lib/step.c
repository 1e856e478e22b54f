/*
 * step.c — the worker half (shard gradient) and the coordinator half (apply) of
 * a training step.
 *
 * Dimension legend: n samples in the shard, D in_dim of an image, P projection dim.
 */
#include "byol/step.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "byol/error.h"
#include "byol/loss.h"
#include "byol/optim.h"
#include "byol/pool.h"
#include "byol/rng.h"

#define BN_MOMENTUM 0.1f

int step_plan_make(step_plan *plan, const experiment_config *cfg, long n_train, char *err)
{
	memset(plan, 0, sizeof(*plan));
	if (cfg->shard_size <= 0 || cfg->batch_size % cfg->shard_size)
		return byol_err(err, -EINVAL, "[data] batch_size %d is not a multiple of shard_size %d",
				cfg->batch_size, cfg->shard_size);
	if (n_train < cfg->batch_size)
		return byol_err(err, -EINVAL,
				"[data] batch_size %d is larger than the train set (%ld images)",
				cfg->batch_size, n_train);
	plan->n_train = n_train;
	plan->batch = cfg->batch_size;
	plan->shard = cfg->shard_size;
	plan->shards = cfg->batch_size / cfg->shard_size;
	plan->steps_per_epoch = n_train / cfg->batch_size;
	plan->total_steps = plan->steps_per_epoch * cfg->epochs;
	plan->warmup_steps = (long)lround(cfg->warmup_epochs * (double)plan->steps_per_epoch);
	plan->base_lr = cfg->lr * (float)cfg->batch_size / 256.0f;
	return 0;
}

/* ---- the worker half ---- */

struct step_workspace {
	model_pass *online[2], *target[2];
	float *x[2];            /* (n, D) the two views */
	float *dout[2];         /* (n, P) loss gradient w.r.t. each view's head output */
	float *bn[2];           /* (bn_layout.total) each view's BN statistics */
	float *scratch;         /* NT-Xent */
	uint32_t *perm;         /* (n_train) permutation of perm_epoch */
	long perm_epoch;
	uint32_t *idx;          /* (n) */
};

step_workspace *step_workspace_new(const model *m, const step_plan *plan)
{
	step_workspace *ws = calloc(1, sizeof(*ws));
	if (!ws)
		return NULL;
	int n = plan->shard;
	ws->perm_epoch = -1;
	int simclr = m->cfg.method == METHOD_SIMCLR;
	for (int v = 0; v < 2; v++) {
		ws->online[v] = model_pass_new(m, n, 1);
		if (!ws->online[v])
			goto fail;
		if (m->cfg.method == METHOD_BYOL && !(ws->target[v] = model_pass_new(m, n, 0)))
			goto fail;
		ws->x[v] = malloc((size_t)n * (size_t)m->in_dim * sizeof(float));
		ws->dout[v] = malloc((size_t)n * (size_t)m->proj_dim * sizeof(float));
		ws->bn[v] = malloc((m->bn_layout.total + 1) * sizeof(float));
		if (!ws->x[v] || !ws->dout[v] || !ws->bn[v])
			goto fail;
	}
	if (simclr && !(ws->scratch = malloc((size_t)loss_ntxent_scratch(n, m->proj_dim) *
					     sizeof(float))))
		goto fail;
	ws->perm = malloc((size_t)plan->n_train * sizeof(uint32_t));
	ws->idx = malloc((size_t)n * sizeof(uint32_t));
	if (!ws->perm || !ws->idx)
		goto fail;
	return ws;
fail:
	step_workspace_free(ws);
	return NULL;
}

void step_workspace_free(step_workspace *ws)
{
	if (!ws)
		return;
	for (int v = 0; v < 2; v++) {
		model_pass_free(ws->online[v]);
		model_pass_free(ws->target[v]);
		free(ws->x[v]);
		free(ws->dout[v]);
		free(ws->bn[v]);
	}
	free(ws->scratch);
	free(ws->perm);
	free(ws->idx);
	free(ws);
}

void step_shard_indices(step_workspace *ws, const step_plan *plan, uint64_t seed, long k,
			int j, uint32_t *idx)
{
	long epoch = k / plan->steps_per_epoch;
	long within = k % plan->steps_per_epoch;
	if (ws->perm_epoch != epoch) {
		rng_permutation(ws->perm, (uint32_t)plan->n_train, seed, (uint32_t)epoch);
		ws->perm_epoch = epoch;
	}
	const uint32_t *src = ws->perm + within * plan->batch + (long)j * plan->shard;
	memcpy(idx, src, (size_t)plan->shard * sizeof(uint32_t));
}

/* x (n, D) = view `view` of the images idx[0..n-1] at `epoch`. */
static void augment_batch(const model *m, const dataset *train, const uint32_t *idx, int n,
			  long epoch, int view, float *x)
{
	const experiment_config *c = &m->cfg;
	augment_params ap = {
		.crop_min = c->crop_scale[0], .crop_max = c->crop_scale[1],
		.ratio_min = c->crop_ratio[0], .ratio_max = c->crop_ratio[1],
		.flip = c->flip, .jitter = c->jitter, .blur = c->blur, .solarize = c->solarize,
	};
	size_t D = (size_t)m->in_dim;
	for (int i = 0; i < n; i++)
		augment_view(x + (size_t)i * D, train->pixels + idx[i] * D, train->h, train->w,
			     train->c, &ap, c->seed, (uint32_t)epoch, idx[i], (uint32_t)view,
			     train->mean, train->std);
}

void step_shard_gradient(const model *m, step_workspace *ws, const step_plan *plan,
			 const dataset *train, const float *online, const float *target,
			 long k, int j, shard_result *out)
{
	int n = plan->shard;
	int P = m->proj_dim;
	step_shard_indices(ws, plan, m->cfg.seed, k, j, ws->idx);
	for (int v = 0; v < 2; v++)
		augment_batch(m, train, ws->idx, n, k / plan->steps_per_epoch, v, ws->x[v]);
	memset(out->grad, 0, m->L.total * sizeof(float));
	for (int v = 0; v < 2; v++)
		memset(ws->dout[v], 0, (size_t)n * (size_t)P * sizeof(float));

	const float *head[2], *z[2];
	int upto = m->pred_end;
	for (int v = 0; v < 2; v++) {
		head[v] = model_forward(m, ws->online[v], online, NULL, ws->x[v], n, upto, 1);
		z[v] = model_output(ws->online[v], m->proj_end - 1);
	}
	double loss;
	switch (m->cfg.method) {
	case METHOD_BYOL: {
		const float *zt[2];
		for (int v = 0; v < 2; v++)
			zt[v] = model_forward(m, ws->target[v], target, NULL, ws->x[v], n,
					      m->proj_end, 1);
		loss = loss_cosine(ws->dout[0], head[0], zt[1], n, P) +
		       loss_cosine(ws->dout[1], head[1], zt[0], n, P);
		break;
	}
	case METHOD_SIMSIAM:
		loss = loss_cosine(ws->dout[0], head[0], z[1], n, P) +
		       loss_cosine(ws->dout[1], head[1], z[0], n, P);
		break;
	default: /* METHOD_SIMCLR: the head is the projection */
		loss = loss_ntxent(ws->dout[0], ws->dout[1], z[0], z[1], n, P,
				   m->cfg.temperature, ws->scratch);
		break;
	}
	out->collapse = loss_collapse(z[0], n, P);
	for (int v = 0; v < 2; v++) {
		model_bn_stats(m, ws->online[v], ws->bn[v]);
		model_backward(m, ws->online[v], online, out->grad, ws->dout[v], n, upto);
	}
	for (size_t i = 0; i < m->bn_layout.total; i++)
		out->bn_stats[i] = 0.5f * (ws->bn[0][i] + ws->bn[1][i]);
	out->loss = loss;
	out->n = n;
}

int shard_result_alloc(shard_result *r, const model *m)
{
	memset(r, 0, sizeof(*r));
	r->grad = calloc(m->L.total, sizeof(float));
	r->bn_stats = calloc(m->bn_layout.total + 1, sizeof(float));
	if (!r->grad || !r->bn_stats) {
		shard_result_free(r);
		return -ENOMEM;
	}
	return 0;
}

void shard_result_free(shard_result *r)
{
	free(r->grad);
	free(r->bn_stats);
	memset(r, 0, sizeof(*r));
}

/* ---- the coordinator half ---- */

/* The data-dependent init on one global batch: the first B images of epoch 0, view 0. */
static int init_from_first_batch(const model *m, const step_plan *plan, const dataset *train,
				 float *online, char *err)
{
	int r = -ENOMEM;
	uint32_t *perm = malloc((size_t)plan->n_train * sizeof(uint32_t));
	float *x = malloc((size_t)plan->batch * (size_t)m->in_dim * sizeof(float));
	if (perm && x) {
		rng_permutation(perm, (uint32_t)plan->n_train, m->cfg.seed, 0);
		augment_batch(m, train, perm, plan->batch, 0, 0, x);
		r = model_init_modified(m, online, x, plan->batch, err);
	} else {
		byol_err(err, r, "out of memory for the init batch");
	}
	free(perm);
	free(x);
	return r;
}

int train_state_alloc(train_state *st, const model *m, char *err)
{
	memset(st, 0, sizeof(*st));
	size_t P = m->L.total, NB = m->bn_layout.total + 1;
	st->online = malloc(P * sizeof(float));
	st->m = calloc(P, sizeof(float));
	st->grad_sum = malloc(P * sizeof(float));
	st->bn_running = calloc(NB, sizeof(float));
	st->bn_sum = malloc(NB * sizeof(float));
	st->bad = calloc((size_t)m->L.n, sizeof(int));
	if (m->cfg.optim == OPT_ADAMW)
		st->v = calloc(P, sizeof(float));
	if (m->cfg.method == METHOD_BYOL)
		st->target = malloc(m->n_target * sizeof(float));
	if (!st->online || !st->m || !st->grad_sum || !st->bn_running || !st->bn_sum || !st->bad ||
	    (m->cfg.optim == OPT_ADAMW && !st->v) ||
	    (m->cfg.method == METHOD_BYOL && !st->target)) {
		train_state_free(st);
		return byol_err(err, -ENOMEM, "out of memory for the training state");
	}
	/* running variances start at 1 */
	for (int i = 0; i < m->bn_layout.n; i++)
		if (strstr(m->bn_layout.t[i].name, "running_var"))
			for (size_t j = 0; j < m->bn_layout.t[i].count; j++)
				st->bn_running[m->bn_layout.t[i].offset + j] = 1.0f;
	return 0;
}

int train_state_init_params(train_state *st, const model *m, const step_plan *plan,
			    const dataset *train, char *err)
{
	model_init_default(m, st->online, m->cfg.seed);
	if (m->cfg.init == INIT_MODIFIED) {
		int r = init_from_first_batch(m, plan, train, st->online, err);
		if (r < 0)
			return r;
	}
	if (st->target)
		memcpy(st->target, st->online, m->n_target * sizeof(float));
	return 0;
}

int train_state_init(train_state *st, const model *m, const step_plan *plan,
		     const dataset *train, char *err)
{
	int r = train_state_alloc(st, m, err);
	if (r == 0 && (r = train_state_init_params(st, m, plan, train, err)) < 0)
		train_state_free(st);
	return r;
}

void train_state_free(train_state *st)
{
	free(st->online);
	free(st->target);
	free(st->m);
	free(st->v);
	free(st->bn_running);
	free(st->grad_sum);
	free(st->bn_sum);
	free(st->bad);
	memset(st, 0, sizeof(*st));
}

static optim_config optim_from(const experiment_config *c)
{
	optim_config o = {
		.kind = c->optim == OPT_LARS ? OPTIM_LARS : c->optim == OPT_SGD ? OPTIM_SGD
										: OPTIM_ADAMW,
		.weight_decay = c->weight_decay,
		.momentum = c->momentum,
		.lars_eta = c->lars_eta,
		.beta1 = c->momentum, .beta2 = 0.999f, .eps = 1e-8f,
	};
	return o;
}

/* ---- the reduction tree ---- */

/* Shard results are summed over a fixed binary tree on the shard indices: node
 * [lo, hi) (hi - lo >= 2) has children [lo, mid) and [mid, hi), the left one the
 * largest power of two below hi - lo. Floating-point addition is not
 * associative; a fixed tree makes the sum the same bytes whatever node results a
 * worker pre-reduced, so a worker holding an aligned block of shards can send one
 * gradient for all of them. */
int step_tree_mid(int lo, int hi)
{
	int len = hi - lo, left = 1;
	while (left * 2 < len)
		left *= 2;
	return lo + left;
}

int step_tree_is_node(int S, int lo, int hi)
{
	int a = 0, b = S;
	if (lo < 0 || hi > S || lo >= hi)
		return 0;
	while (!(a == lo && b == hi)) {
		if (b - a < 2)
			return 0;
		int mid = step_tree_mid(a, b);
		if (hi <= mid)
			b = mid;
		else if (lo >= mid)
			a = mid;
		else
			return 0;
	}
	return 1;
}

static int nodes_valid(int S, const int *node_hi)
{
	for (int pos = 0; pos < S; pos = node_hi[pos])
		if (!step_tree_is_node(S, pos, node_hi[pos]))
			return 0;
	return 1;
}

static void add_into(float *restrict dst, const float *restrict src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] += src[i];
}

static void scale_by(float *restrict dst, float s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] *= s;
}

/* slots[lo].grad[b, b+n) = the sum of node [lo, hi) over that range, from the
 * node results present (node_hi[x] = end of the node held in slots[x]; NULL:
 * every slot holds a leaf). */
static void tree_sum_range(shard_result *slots, const int *node_hi, int lo, int hi, size_t b,
			   size_t n)
{
	if (node_hi ? node_hi[lo] == hi : hi - lo == 1)
		return;
	int mid = step_tree_mid(lo, hi);
	tree_sum_range(slots, node_hi, lo, mid, b, n);
	tree_sum_range(slots, node_hi, mid, hi, b, n);
	add_into(slots[lo].grad + b, slots[mid].grad + b, n);
}

/* The same for the small parts: BN statistics, loss, collapse, samples. */
static void tree_sum_small(shard_result *slots, const int *node_hi, int lo, int hi, size_t nb)
{
	if (node_hi ? node_hi[lo] == hi : hi - lo == 1)
		return;
	int mid = step_tree_mid(lo, hi);
	tree_sum_small(slots, node_hi, lo, mid, nb);
	tree_sum_small(slots, node_hi, mid, hi, nb);
	add_into(slots[lo].bn_stats, slots[mid].bn_stats, nb);
	slots[lo].loss += slots[mid].loss;
	slots[lo].collapse += slots[mid].collapse;
	slots[lo].n += slots[mid].n;
}

void step_reduce_node(const model *m, shard_result *leaves, int lo, int hi)
{
	tree_sum_range(leaves, NULL, lo, hi, 0, m->L.total);
	tree_sum_small(leaves, NULL, lo, hi, m->bn_layout.total);
}

/* ---- step_apply, tensor by tensor (in parallel when the state has a pool) ---- */

typedef struct {
	const model *m;
	train_state *st;
	shard_result *slots;
	const int *node_hi;
	int S;
	float scale, lr, tau;
	optim_config oc;
	int *bad;               /* per tensor: the summed gradient is not finite */
} apply_ctx;

#define SUM_BLOCK 2048

/* grad_sum = tree sum / n over tensor t, a cache block at a time. */
static void sum_tensor(void *arg, int thread, int t)
{
	apply_ctx *c = arg;
	const param_tensor *T = &c->m->L.t[t];
	float *dst = c->st->grad_sum;
	int finite = 1;
	for (size_t b = T->offset; b < T->offset + T->count; b += SUM_BLOCK) {
		size_t n = T->offset + T->count - b < SUM_BLOCK ? T->offset + T->count - b : SUM_BLOCK;
		tree_sum_range(c->slots, c->node_hi, 0, c->S, b, n);
		memcpy(dst + b, c->slots[0].grad + b, n * sizeof(float));
		scale_by(dst + b, c->scale, n);
		finite &= optim_all_finite(dst + b, n);
	}
	c->bad[t] = !finite;
}

static void update_tensor(void *arg, int thread, int t)
{
	apply_ctx *c = arg;
	const param_tensor *T = &c->m->L.t[t];
	train_state *st = c->st;
	optim_tensor_step(&c->oc, T, st->online, st->grad_sum, st->m, st->v, c->lr, st->step);
	if (st->target && T->offset < c->m->n_target)
		ema_update(st->target + T->offset, st->online + T->offset, (long)T->count, c->tau);
}

static void run_tasks(pool *p, pool_fn fn, void *arg, int n)
{
	if (p) {
		pool_run(p, fn, arg, n);
		return;
	}
	for (int i = 0; i < n; i++)
		fn(arg, 0, i);
}

int step_apply_nodes(const model *m, const step_plan *plan, train_state *st,
		     shard_result *slots, const int *node_hi, step_metrics *out, char *err)
{
	int S = plan->shards;
	size_t NB = m->bn_layout.total;
	if (!nodes_valid(S, node_hi))
		return byol_err(err, -EINVAL, "step %ld: the shard results do not cover the %d "
					      "shards with nodes of the reduction tree", st->step, S);
	tree_sum_small(slots, node_hi, 0, S, NB);
	long n = slots[0].n;
	double loss = slots[0].loss, collapse = slots[0].collapse;
	if (n <= 0)
		return byol_err(err, -EINVAL, "step %ld: no samples in %d shards", st->step, S);
	apply_ctx c = {
		.m = m, .st = st, .slots = slots, .node_hi = node_hi, .S = S,
		.scale = 1.0f / (float)n,
		.lr = optim_lr_at(plan->base_lr, st->step, plan->warmup_steps, plan->total_steps),
		.tau = st->target ? ema_tau_at(m->cfg.tau_base, st->step, plan->total_steps) : 0,
		.oc = optim_from(&m->cfg),
		.bad = st->bad,
	};
	int rc = optim_check(&c.oc, c.lr, st->step, st->v);
	if (rc < 0)
		return byol_err(err, rc, "step %ld: bad optimizer settings", st->step);
	run_tasks(st->pool, sum_tensor, &c, m->L.n);
	for (int t = 0; t < m->L.n; t++)
		if (c.bad[t])
			return byol_err(err, -EINVAL, "step %ld: the gradient of %s is not finite "
						      "(loss %g)", st->step, m->L.t[t].name,
					loss / (double)n);
	run_tasks(st->pool, update_tensor, &c, m->L.n);
	/* BN running statistics: the shard mean of the batch statistics */
	float inv_s = 1.0f / (float)S;
	for (size_t i = 0; i < NB; i++)
		st->bn_running[i] = (1.0f - BN_MOMENTUM) * st->bn_running[i] +
				    BN_MOMENTUM * (slots[0].bn_stats[i] * inv_s);
	if (out) {
		out->step = st->step;
		out->loss = loss / (double)n;
		out->lr = c.lr;
		out->tau = c.tau;
		out->collapse = collapse / S;
	}
	st->step++;
	return 0;
}

int step_apply(const model *m, const step_plan *plan, train_state *st,
	       shard_result *results, int S, step_metrics *out, char *err)
{
	if (S != plan->shards)
		return byol_err(err, -EINVAL, "step %ld: %d shard results for %d shards", st->step,
				S, plan->shards);
	int *node_hi = malloc((size_t)S * sizeof(int));
	if (!node_hi)
		return byol_err(err, -ENOMEM, "out of memory");
	for (int j = 0; j < S; j++)
		node_hi[j] = j + 1;
	int r = step_apply_nodes(m, plan, st, results, node_hi, out, err);
	free(node_hi);
	return r;
}

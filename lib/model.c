/*
 * model.c — building the op list and running it forward and backward.
 *
 * Dimension legend: B samples, R = B * h * w rows of an op, C channels/features.
 */
#include "byol/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byol/error.h"
#include "byol/nn.h"
#include "byol/rng.h"

static const char *module_names[3] = {"encoder", "projector", "predictor"};

struct model_pass {
	int B, with_grad, n_ops;
	const float *x;         /* input of the last forward (not owned) */
	int last_B, last_upto, last_train;
	float **out;            /* per op (B, h_out, w_out, C_out) */
	float **dout;           /* per op, same shape; NULL without grad */
	float **mean, **rstd, **var;    /* norm ops */
	float **cols;           /* conv ops: im2col (B*ho*wo, 9*in_c) */
	float **what, **wmean, **wrstd; /* ws linear/conv: the standardised weight */
	float *dcols;           /* conv scratch, the largest cols */
	float *dwhat;           /* ws scratch, the largest weight */
};

/* ---- building ---- */

typedef struct {
	model *m;
	int h, w, c;            /* current activation shape */
	int module;
	char *err;
} builder;

static model_op *push_op(builder *b, op_kind kind)
{
	model *m = b->m;
	model_op *ops = realloc(m->ops, (size_t)(m->n_ops + 1) * sizeof(*ops));
	if (!ops)
		return NULL;
	m->ops = ops;
	model_op *o = &ops[m->n_ops++];
	memset(o, 0, sizeof(*o));
	o->kind = kind;
	o->module = b->module;
	o->in_c = o->out_c = b->c;
	o->h = o->ho = b->h;
	o->w = o->wo = b->w;
	o->p_w = o->p_b = o->bn_slot = -1;
	return o;
}

static int add_param(builder *b, int op_index, const char *what, int ndim, const int *shape,
		     int no_decay)
{
	char name[PARAM_NAME_LEN];
	snprintf(name, sizeof(name), "%s.%d.%s", module_names[b->module], op_index, what);
	int r = param_layout_add(&b->m->L, name, ndim, shape, no_decay);
	if (r < 0)
		byol_err(b->err, r, "model: cannot add parameter %s", name);
	return r;
}

static int largest_divisor_at_most(int c, int g)
{
	if (g > c)
		g = c;
	while (g > 1 && c % g)
		g--;
	return g < 1 ? 1 : g;
}

static int add_norm(builder *b, norm_kind norm)
{
	model *m = b->m;
	int idx = m->n_ops;
	model_op *o = push_op(b, OP_NORM);
	if (!o)
		return -ENOMEM;
	o->norm = norm;
	o->groups = norm == NORM_LN ? 1
		  : norm == NORM_BN ? 0
		  : largest_divisor_at_most(b->c, m->cfg.gn_groups);
	int shape[1] = {b->c};
	int r = add_param(b, idx, "gamma", 1, shape, 1);
	if (r < 0)
		return r;
	m->ops[idx].p_w = r;
	if ((r = add_param(b, idx, "beta", 1, shape, 1)) < 0)
		return r;
	m->ops[idx].p_b = r;
	if (norm == NORM_BN) {
		char name[PARAM_NAME_LEN];
		snprintf(name, sizeof(name), "%s.%d.running_mean", module_names[b->module], idx);
		if ((r = param_layout_add(&m->bn_layout, name, 1, shape, 1)) < 0)
			return r;
		m->ops[idx].bn_slot = r;
		snprintf(name, sizeof(name), "%s.%d.running_var", module_names[b->module], idx);
		if ((r = param_layout_add(&m->bn_layout, name, 1, shape, 1)) < 0)
			return r;
	}
	return 0;
}

/* A linear (stride 0) or 3x3 conv layer to `out` channels, then, unless `last`,
 * the norm and a ReLU. */
static int add_layer(builder *b, int out, int stride, norm_kind norm, int last)
{
	model *m = b->m;
	int idx = m->n_ops;
	int conv = stride > 0;
	model_op *o = push_op(b, conv ? OP_CONV : OP_LINEAR);
	if (!o)
		return -ENOMEM;
	o->out_c = out;
	o->stride = stride;
	if (conv) {
		o->ho = nn_conv_out(b->h, stride);
		o->wo = nn_conv_out(b->w, stride);
	}
	o->ws = !last && norm == NORM_GN_WS;
	int has_bias = last || norm == NORM_NONE;
	int in = b->c;
	int r;
	if (conv) {
		int shape[4] = {out, 3, 3, in};
		r = add_param(b, idx, "weight", 4, shape, 0);
	} else {
		int shape[2] = {out, in};
		r = add_param(b, idx, "weight", 2, shape, 0);
	}
	if (r < 0)
		return r;
	m->ops[idx].p_w = r;
	if (has_bias) {
		int shape[1] = {out};
		if ((r = add_param(b, idx, "bias", 1, shape, 1)) < 0)
			return r;
		m->ops[idx].p_b = r;
	}
	b->c = out;
	b->h = m->ops[idx].ho;
	b->w = m->ops[idx].wo;
	if (last)
		return 0;
	if (norm != NORM_NONE && (r = add_norm(b, norm)) < 0)
		return r;
	if (!push_op(b, OP_RELU))
		return -ENOMEM;
	return 0;
}

static int build_encoder(builder *b)
{
	const experiment_config *c = &b->m->cfg;
	int r;
	if (c->encoder == ENCODER_MLP) {
		/* an MLP sees the flattened image */
		b->c = b->h * b->w * b->c;
		b->h = b->w = 1;
		for (int i = 0; i < c->n_encoder_widths; i++)
			if ((r = add_layer(b, c->encoder_widths[i], 0, c->encoder_norm, 0)) < 0)
				return r;
		return 0;
	}
	for (int i = 0; i < c->n_encoder_widths; i++)
		if ((r = add_layer(b, c->encoder_widths[i], c->cnn_strides[i], c->encoder_norm, 0)) < 0)
			return r;
	model_op *o = push_op(b, OP_POOL);
	if (!o)
		return -ENOMEM;
	o->ho = o->wo = 1;
	b->h = b->w = 1;
	return 0;
}

int model_build(model *m, const experiment_config *cfg, int h, int w, int c, char *err)
{
	memset(m, 0, sizeof(*m));
	m->cfg = *cfg;
	m->in_h = h;
	m->in_w = w;
	m->in_c = c;
	m->in_dim = h * w * c;
	builder b = {.m = m, .h = h, .w = w, .c = c, .module = 0, .err = err};
	int r;
	if ((r = build_encoder(&b)) < 0)
		goto fail;
	m->enc_end = m->n_ops;
	m->rep_dim = b.c;
	b.module = 1;
	if ((r = add_layer(&b, cfg->proj_hidden, 0, cfg->projector_norm, 0)) < 0 ||
	    (r = add_layer(&b, cfg->proj_dim, 0, cfg->projector_norm, 1)) < 0)
		goto fail;
	m->proj_end = m->n_ops;
	m->proj_dim = cfg->proj_dim;
	m->n_target = m->L.total;
	if (cfg->method != METHOD_SIMCLR) {
		b.module = 2;
		if ((r = add_layer(&b, cfg->pred_hidden, 0, cfg->predictor_norm, 0)) < 0 ||
		    (r = add_layer(&b, cfg->proj_dim, 0, cfg->predictor_norm, 1)) < 0)
			goto fail;
	}
	m->pred_end = m->n_ops;
	return 0;
fail:
	if (err && !*err)
		byol_err(err, r, "model: cannot build the network (%s)", strerror(-r));
	model_free(m);
	return r;
}

void model_free(model *m)
{
	param_layout_free(&m->L);
	param_layout_free(&m->bn_layout);
	free(m->ops);
	memset(m, 0, sizeof(*m));
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

void model_init_default(const model *m, float *params, uint64_t seed)
{
	for (int i = 0; i < m->L.n; i++) {
		const param_tensor *t = &m->L.t[i];
		float *p = params + t->offset;
		if (ends_with(t->name, ".weight")) {
			size_t fan_in = t->count / (size_t)t->shape[0];
			float std = sqrtf(2.0f / (float)fan_in);
			rng_stream s;
			rng_stream_init(&s, seed, 0, (uint32_t)i, RNG_INIT);
			for (size_t j = 0; j < t->count; j++)
				p[j] = std * rng_normal(&s);
		} else {
			float v = ends_with(t->name, ".gamma") ? 1.0f : 0.0f;
			for (size_t j = 0; j < t->count; j++)
				p[j] = v;
		}
	}
}

/* ---- passes ---- */

static size_t op_rows(const model_op *o, int B) { return (size_t)B * o->ho * o->wo; }
static size_t op_in_rows(const model_op *o, int B) { return (size_t)B * o->h * o->w; }
static size_t op_fan(const model_op *o) { return (size_t)o->in_c * (o->kind == OP_CONV ? 9 : 1); }

model_pass *model_pass_new(const model *m, int B, int with_grad)
{
	model_pass *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	int n = m->n_ops;
	p->B = B;
	p->with_grad = with_grad;
	p->n_ops = n;
	float ***arrays[] = {&p->out, &p->dout, &p->mean, &p->rstd, &p->var,
			     &p->cols, &p->what, &p->wmean, &p->wrstd};
	for (size_t i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++)
		if (!(*arrays[i] = calloc((size_t)n, sizeof(float *))))
			goto fail;
	size_t max_cols = 0, max_w = 0;
	for (int i = 0; i < n; i++) {
		const model_op *o = &m->ops[i];
		size_t outn = op_rows(o, B) * (size_t)o->out_c;
		if (!(p->out[i] = malloc(outn * sizeof(float))))
			goto fail;
		if (with_grad && !(p->dout[i] = malloc(outn * sizeof(float))))
			goto fail;
		if (o->kind == OP_NORM) {
			size_t s = o->norm == NORM_BN ? (size_t)o->out_c : (size_t)B * o->groups;
			if (!(p->mean[i] = malloc(s * sizeof(float))) ||
			    !(p->rstd[i] = malloc(s * sizeof(float))) ||
			    !(p->var[i] = malloc(s * sizeof(float))))
				goto fail;
		}
		if (o->kind == OP_CONV) {
			size_t s = op_rows(o, B) * 9 * (size_t)o->in_c;
			if (!(p->cols[i] = malloc(s * sizeof(float))))
				goto fail;
			if (s > max_cols)
				max_cols = s;
		}
		if (o->ws) {
			size_t s = (size_t)o->out_c * op_fan(o);
			if (!(p->what[i] = malloc(s * sizeof(float))) ||
			    !(p->wmean[i] = malloc((size_t)o->out_c * sizeof(float))) ||
			    !(p->wrstd[i] = malloc((size_t)o->out_c * sizeof(float))))
				goto fail;
			if (s > max_w)
				max_w = s;
		}
	}
	if (with_grad && max_cols && !(p->dcols = malloc(max_cols * sizeof(float))))
		goto fail;
	if (with_grad && max_w && !(p->dwhat = malloc(max_w * sizeof(float))))
		goto fail;
	return p;
fail:
	model_pass_free(p);
	return NULL;
}

void model_pass_free(model_pass *p)
{
	if (!p)
		return;
	float **arrays[] = {p->out, p->dout, p->mean, p->rstd, p->var,
			    p->cols, p->what, p->wmean, p->wrstd};
	for (size_t a = 0; a < sizeof(arrays) / sizeof(arrays[0]); a++) {
		if (!arrays[a])
			continue;
		for (int i = 0; i < p->n_ops; i++)
			free(arrays[a][i]);
		free(arrays[a]);
	}
	free(p->dcols);
	free(p->dwhat);
	free(p);
}

static const float *op_input(const model_pass *p, int i)
{
	return i == 0 ? p->x : p->out[i - 1];
}

/* The weight the op multiplies by: the parameter, or its standardised copy. */
static const float *op_weight(const model *m, model_pass *p, const float *params, int i,
			      int refresh)
{
	const model_op *o = &m->ops[i];
	const float *w = params + m->L.t[o->p_w].offset;
	if (!o->ws)
		return w;
	if (refresh)
		nn_wstd_forward(p->what[i], p->wmean[i], p->wrstd[i], w, o->out_c, (int)op_fan(o));
	return p->what[i];
}

static void forward_op(const model *m, model_pass *p, const float *params,
		       const float *bn_running, int i, int B, int train)
{
	const model_op *o = &m->ops[i];
	const float *in = op_input(p, i);
	float *out = p->out[i];
	const float *pw = o->p_w >= 0 ? params + m->L.t[o->p_w].offset : NULL;
	const float *pb = o->p_b >= 0 ? params + m->L.t[o->p_b].offset : NULL;
	size_t R = op_in_rows(o, B);
	switch (o->kind) {
	case OP_LINEAR:
		nn_linear_forward(out, in, op_weight(m, p, params, i, 1), pb, (int)R, o->in_c,
				  o->out_c);
		break;
	case OP_CONV:
		nn_conv3x3_forward(out, p->cols[i], in, op_weight(m, p, params, i, 1), pb, B,
				   o->h, o->w, o->in_c, o->out_c, o->stride);
		break;
	case OP_NORM:
		if (o->norm != NORM_BN)
			nn_groupnorm_forward(out, p->mean[i], p->rstd[i], in, pw, pb, B, o->h * o->w,
					     o->in_c, o->groups);
		else if (train)
			nn_batchnorm_forward(out, p->mean[i], p->rstd[i], p->var[i], in, pw, pb,
					     (int)R, o->in_c);
		else {
			const float *rm = bn_running + m->bn_layout.t[o->bn_slot].offset;
			const float *rv = bn_running + m->bn_layout.t[o->bn_slot + 1].offset;
			nn_batchnorm_infer(out, in, rm, rv, pw, pb, (int)R, o->in_c);
		}
		break;
	case OP_RELU:
		nn_relu_forward(out, in, (long)(R * (size_t)o->in_c));
		break;
	case OP_POOL:
		nn_avgpool_forward(out, in, B, o->h * o->w, o->in_c);
		break;
	}
}

const float *model_forward(const model *m, model_pass *p, const float *params,
			   const float *bn_running, const float *x, int B, int upto, int train)
{
	p->x = x;
	p->last_B = B;
	p->last_upto = upto;
	p->last_train = train;
	for (int i = 0; i < upto; i++)
		forward_op(m, p, params, bn_running, i, B, train);
	return p->out[upto - 1];
}

const float *model_output(const model_pass *p, int i)
{
	return p->out[i];
}

static void backward_op(const model *m, model_pass *p, const float *params, float *grad,
			int i, int B)
{
	const model_op *o = &m->ops[i];
	const float *in = op_input(p, i);
	const float *d = p->dout[i];
	float *din = i > 0 ? p->dout[i - 1] : NULL;
	float *gw = o->p_w >= 0 ? grad + m->L.t[o->p_w].offset : NULL;
	float *gb = o->p_b >= 0 ? grad + m->L.t[o->p_b].offset : NULL;
	const float *pw = o->p_w >= 0 ? params + m->L.t[o->p_w].offset : NULL;
	size_t R = op_in_rows(o, B);
	int fan = (int)op_fan(o);
	switch (o->kind) {
	case OP_LINEAR:
	case OP_CONV: {
		const float *w = op_weight(m, p, params, i, 0);
		float *dw = gw;
		if (o->ws) {
			dw = p->dwhat;
			memset(dw, 0, (size_t)o->out_c * (size_t)fan * sizeof(float));
		}
		if (o->kind == OP_LINEAR)
			nn_linear_backward(din, dw, gb, d, in, w, (int)R, o->in_c, o->out_c);
		else
			nn_conv3x3_backward(din, dw, gb, p->dcols, d, p->cols[i], w, B, o->h, o->w,
					    o->in_c, o->out_c, o->stride);
		if (o->ws)
			nn_wstd_backward(gw, p->dwhat, p->what[i], p->wrstd[i], o->out_c, fan);
		break;
	}
	case OP_NORM:
		if (o->norm == NORM_BN)
			nn_batchnorm_backward(din, gw, gb, d, in, p->mean[i], p->rstd[i], pw, (int)R,
					      o->in_c);
		else
			nn_groupnorm_backward(din, gw, gb, d, in, p->mean[i], p->rstd[i], pw, B,
					      o->h * o->w, o->in_c, o->groups);
		break;
	case OP_RELU:
		if (din)
			nn_relu_backward(din, d, p->out[i], (long)(R * (size_t)o->in_c));
		break;
	case OP_POOL:
		if (din)
			nn_avgpool_backward(din, d, B, o->h * o->w, o->in_c);
		break;
	}
}

void model_backward(const model *m, model_pass *p, const float *params, float *grad,
		    const float *dout, int B, int upto)
{
	for (int i = 0; i < upto - 1; i++)
		memset(p->dout[i], 0, op_rows(&m->ops[i], B) * (size_t)m->ops[i].out_c * sizeof(float));
	const model_op *last = &m->ops[upto - 1];
	memcpy(p->dout[upto - 1], dout, op_rows(last, B) * (size_t)last->out_c * sizeof(float));
	for (int i = upto - 1; i >= 0; i--)
		backward_op(m, p, params, grad, i, B);
}

void model_bn_stats(const model *m, const model_pass *p, float *stats)
{
	for (int i = 0; i < p->last_upto; i++) {
		const model_op *o = &m->ops[i];
		if (o->kind != OP_NORM || o->norm != NORM_BN)
			continue;
		size_t C = (size_t)o->in_c;
		memcpy(stats + m->bn_layout.t[o->bn_slot].offset, p->mean[i], C * sizeof(float));
		memcpy(stats + m->bn_layout.t[o->bn_slot + 1].offset, p->var[i], C * sizeof(float));
	}
}

int model_init_modified(const model *m, float *params, const float *x, int B, char *err)
{
	model_pass *p = model_pass_new(m, B, 0);
	if (!p)
		return byol_err(err, -ENOMEM, "model: out of memory for the data-dependent init");
	p->x = x;
	for (int i = 0; i < m->pred_end; i++) {
		const model_op *o = &m->ops[i];
		forward_op(m, p, params, NULL, i, B, 1);
		if (o->kind != OP_LINEAR && o->kind != OP_CONV)
			continue;
		/* per output unit mean and variance of the pre-activations, in double */
		size_t R = op_rows(o, B);
		int C = o->out_c;
		float *w = params + m->L.t[o->p_w].offset;
		float *b = o->p_b >= 0 ? params + m->L.t[o->p_b].offset : NULL;
		size_t fan = op_fan(o);
		for (int c = 0; c < C; c++) {
			double s = 0, ss = 0;
			for (size_t r = 0; r < R; r++) {
				double v = p->out[i][r * (size_t)C + (size_t)c];
				s += v;
				ss += v * v;
			}
			double mean = s / (double)R;
			double var = ss / (double)R - mean * mean;
			double scale = 1.0 / sqrt((var > 0 ? var : 0) + 1e-5);
			if (!o->ws)
				for (size_t j = 0; j < fan; j++)
					w[(size_t)c * fan + j] = (float)(w[(size_t)c * fan + j] * scale);
			if (b)
				b[c] = (float)((b[c] - mean) * (o->ws ? 1.0 : scale));
		}
		forward_op(m, p, params, NULL, i, B, 1);
	}
	model_pass_free(p);
	return 0;
}

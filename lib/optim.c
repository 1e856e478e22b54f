/*
 * optim.c — LARS, SGD with momentum, AdamW; warmup + cosine learning rate; the
 * BYOL target-decay schedule and the EMA update.
 *
 * Dimension legend: P = layout->total, the floats of the whole parameter buffer;
 * n = the floats of one tensor.
 *
 * Every optimizer walks the layout's tensors in index order. Norms are summed in
 * double in element order, so the result is bit-for-bit the same on every
 * machine that runs the same binary.
 */
#include "byol/optim.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>

/* Checks before anything is modified: one bad value rejects the whole step. */
static int all_finite(const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return 0;
	return 1;
}

/* LARS / SGD over one tensor: w, m (n); g (n). */
static void momentum_tensor(const optim_config *c, float *w, const float *g, float *m,
			    size_t n, int decay, int lars, float lr)
{
	const float wd = decay ? c->weight_decay : 0.0f;
	float scale = 1.0f;
	if (lars && decay) {
		double wn = 0.0, gn = 0.0;
		for (size_t i = 0; i < n; i++) {
			float gi = g[i] + wd * w[i];
			wn += (double)w[i] * w[i];
			gn += (double)gi * gi;
		}
		wn = sqrt(wn);
		gn = sqrt(gn);
		if (wn > 0.0 && gn > 0.0)
			scale = (float)(c->lars_eta * wn / gn);
	}
	for (size_t i = 0; i < n; i++) {
		float gi = (g[i] + wd * w[i]) * scale;
		m[i] = c->momentum * m[i] + gi;
		w[i] -= lr * m[i];
	}
}

/* AdamW over one tensor: w, m, v (n); g (n). bc1, bc2 are 1 - beta^(step + 1). */
static void adamw_tensor(const optim_config *c, float *w, const float *g, float *m,
			 float *v, size_t n, int decay, float lr, double bc1, double bc2)
{
	const float wd = decay ? c->weight_decay : 0.0f;
	for (size_t i = 0; i < n; i++) {
		m[i] = c->beta1 * m[i] + (1.0f - c->beta1) * g[i];
		v[i] = c->beta2 * v[i] + (1.0f - c->beta2) * g[i] * g[i];
		double mhat = m[i] / bc1, vhat = v[i] / bc2;
		double upd = mhat / (sqrt(vhat) + c->eps) + (double)wd * w[i];
		w[i] = (float)(w[i] - lr * upd);
	}
}

int optim_step(const optim_config *c, const param_layout *L, float *params,
	       const float *grad, float *m, float *v, float lr, long step)
{
	if (c->kind != OPTIM_LARS && c->kind != OPTIM_SGD && c->kind != OPTIM_ADAMW)
		return -EINVAL;
	if (c->kind == OPTIM_ADAMW && !v)
		return -EINVAL;
	if (!isfinite(lr) || step < 0)
		return -EINVAL;
	if (!all_finite(grad, L->total) || !all_finite(params, L->total))
		return -EINVAL;

	double bc1 = 1.0, bc2 = 1.0;
	if (c->kind == OPTIM_ADAMW) {
		bc1 = 1.0 - pow(c->beta1, (double)step + 1.0);
		bc2 = 1.0 - pow(c->beta2, (double)step + 1.0);
	}
	for (int t = 0; t < L->n; t++) {
		const param_tensor *T = &L->t[t];
		size_t o = T->offset;
		int decay = !T->no_decay;
		if (c->kind == OPTIM_ADAMW)
			adamw_tensor(c, params + o, grad + o, m + o, v + o, T->count, decay, lr,
				     bc1, bc2);
		else
			momentum_tensor(c, params + o, grad + o, m + o, T->count, decay,
					c->kind == OPTIM_LARS, lr);
	}
	return 0;
}

float optim_lr_at(float base, long step, long warmup, long total)
{
	if (step < 0)
		step = 0;
	if (step < warmup)
		return (float)((double)base * (double)(step + 1) / (double)warmup);
	if (step >= total)
		return 0.0f;
	double progress = (double)(step - warmup) / (double)(total - warmup);
	return (float)((double)base * 0.5 * (1.0 + cos(M_PI * progress)));
}

float ema_tau_at(float tau_base, long step, long total)
{
	if (total <= 0)
		return tau_base;
	if (step < 0)
		step = 0;
	if (step > total)
		step = total;
	double c = cos(M_PI * (double)step / (double)total);
	return (float)(1.0 - (1.0 - (double)tau_base) * (c + 1.0) / 2.0);
}

void ema_update(float *target, const float *online, long n, float tau)
{
	const float keep = tau, take = 1.0f - tau;
	for (long i = 0; i < n; i++)
		target[i] = keep * target[i] + take * online[i];
}

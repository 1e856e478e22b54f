/*
 * eval.c — linear probe and weighted kNN over frozen features.
 *
 * Dimension legend:
 *   NTR, NTE  train / test samples
 *   D         feature dimension
 *   K         classes
 *   NB        rows of one minibatch (probe) or one test block (kNN)
 *   KN        neighbours voting in the kNN classifier
 *
 * Neither evaluation copies the (NTR, D) train features: the probe standardises
 * each minibatch as it gathers it, the kNN scales the raw dot products by the
 * train rows' inverse norms. Memory beyond the inputs is O(NB * NTR) for the kNN
 * and O(NB * D + D * K) for the probe.
 */
#include "byol/eval.h"

#include "byol/error.h"
#include "byol/rng.h"

#include <cblas.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_STD_FLOOR 1e-6
#define KNN_BLOCK 128
#define KNN_NORM_EPS 1e-12

probe_config probe_defaults(void)
{
	probe_config c = {
		.epochs = 30,
		.batch = 256,
		.lr = 1e-3f,
		.weight_decay = 1e-5f,
		.seed = 0,
	};
	return c;
}

static int check_inputs(const float *x, const uint8_t *y, long n, int D, int K,
			const char *what, char *err)
{
	if (n < 1)
		return byol_err(err, -EINVAL, "%s: no samples", what);
	for (long i = 0; i < n; i++)
		if (y[i] >= K)
			return byol_err(err, -EINVAL, "%s: label %d of sample %ld not in [0, %d)",
					what, y[i], i, K);
	/* A NaN or an infinity anywhere makes the double sum non-finite. */
	double s = 0.0;
	for (long i = 0; i < n * D; i++)
		s += x[i];
	if (!isfinite(s))
		return byol_err(err, -EINVAL, "%s: features are not all finite", what);
	return 0;
}

/* ---------------------------------------------------------------- linear probe */

typedef struct {
	int D, K;
	const float *mu;   // (D) train mean
	const float *rs;   // (D) 1 / max(train std, floor)
	float *w;          // (K, D)
	float *b;          // (K)
	float *xb;         // (NB, D) standardised rows of the minibatch
	float *lt;         // (K, NB) logits, transposed; then their gradient
} probe_net;

/* Gathers rows idx[0..nb) (or rows 0..nb of x when idx is NULL), standardises
 * them into xb and computes lt = w . xb^T + b. x (*, D). */
static void probe_forward(probe_net *p, const float *x, const uint32_t *idx, int nb)
{
	const int D = p->D, K = p->K;
	const float *restrict mu = p->mu, *restrict rs = p->rs;
	for (int r = 0; r < nb; r++) {
		const float *restrict xr = x + (size_t)(idx ? idx[r] : (uint32_t)r) * D; // (D)
		float *restrict o = p->xb + (size_t)r * D;                               // (D)
		for (int d = 0; d < D; d++)
			o[d] = (xr[d] - mu[d]) * rs[d];
	}
	for (int k = 0; k < K; k++)
		for (int r = 0; r < nb; r++)
			p->lt[(size_t)k * nb + r] = p->b[k];
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, K, nb, D, 1.0f, p->w, D, p->xb,
		    D, 1.0f, p->lt, nb);
}

/* Turns the logits lt (K, nb) into the gradient of the batch's mean
 * cross-entropy with respect to them, (softmax - onehot) / nb, in place; db (K)
 * receives its row sums. y (nb) the labels. */
static void probe_softmax_grad(float *lt, float *db, const uint8_t *train_labels,
			       const uint32_t *idx, int nb, int K)
{
	memset(db, 0, (size_t)K * sizeof(float));
	for (int r = 0; r < nb; r++) {
		double mx = -INFINITY, sum = 0.0;
		for (int k = 0; k < K; k++)
			mx = fmax(mx, lt[(size_t)k * nb + r]);
		for (int k = 0; k < K; k++)
			sum += exp(lt[(size_t)k * nb + r] - mx);
		int y = train_labels[idx[r]];
		for (int k = 0; k < K; k++) {
			float *l = &lt[(size_t)k * nb + r];
			double pk = exp(*l - mx) / sum;
			*l = (float)((pk - (k == y)) / nb);
			db[k] += *l;
		}
	}
}

/* Train mean and inverse std per dimension, in double, over x (n, D). */
static int probe_standardiser(float *mu, float *rs, const float *x, int n, int D)
{
	double *s = calloc((size_t)2 * D, sizeof(double)); // (D) sums, (D) sq. dev.
	if (!s)
		return -ENOMEM;
	double *q = s + D;
	for (int i = 0; i < n; i++)
		for (int d = 0; d < D; d++)
			s[d] += x[(size_t)i * D + d];
	for (int d = 0; d < D; d++)
		s[d] /= n;
	for (int i = 0; i < n; i++)
		for (int d = 0; d < D; d++) {
			double e = x[(size_t)i * D + d] - s[d];
			q[d] += e * e;
		}
	for (int d = 0; d < D; d++) {
		double sd = sqrt(q[d] / n);
		mu[d] = (float)s[d];
		rs[d] = (float)(1.0 / (sd > PROBE_STD_FLOOR ? sd : PROBE_STD_FLOOR));
	}
	free(s);
	return 0;
}

/* One Adam update of x (n) with gradient g (n); bc1, bc2 the bias corrections. */
static void adam_update(float *x, const float *g, float *m, float *v, size_t n, float lr,
			double bc1, double bc2)
{
	const float b1 = 0.9f, b2 = 0.999f;
	for (size_t i = 0; i < n; i++) {
		m[i] = b1 * m[i] + (1.0f - b1) * g[i];
		v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
		x[i] -= (float)(lr * (m[i] / bc1) / (sqrt(v[i] / bc2) + 1e-8));
	}
}

/* Fraction of the test rows x (n, D) whose largest logit is their label. */
static double probe_accuracy(probe_net *p, const float *x, const uint8_t *y, int n, int NB)
{
	long right = 0;
	for (int start = 0; start < n; start += NB) {
		int nb = n - start < NB ? n - start : NB;
		probe_forward(p, x + (size_t)start * p->D, NULL, nb);
		for (int r = 0; r < nb; r++) {
			int best = 0; /* the lowest class on a tie */
			for (int k = 1; k < p->K; k++)
				if (p->lt[(size_t)k * nb + r] > p->lt[(size_t)best * nb + r])
					best = k;
			right += best == y[start + r];
		}
	}
	return (double)right / n;
}

int eval_probe(double *acc, const float *train, const uint8_t *train_labels, int ntr,
	       const float *test, const uint8_t *test_labels, int nte, int D, int K,
	       const probe_config *c, char *err)
{
	if (D < 1 || K < 2 || K > 256)
		return byol_err(err, -EINVAL, "probe: bad dimensions D=%d K=%d", D, K);
	if (c->epochs < 1 || c->batch < 1 || !(c->lr > 0.0f) || !isfinite(c->lr) ||
	    !(c->weight_decay >= 0.0f) || !isfinite(c->weight_decay))
		return byol_err(err, -EINVAL, "probe: bad config (epochs %d, batch %d, lr %g, "
				"weight decay %g)", c->epochs, c->batch, (double)c->lr,
				(double)c->weight_decay);
	int rc = check_inputs(train, train_labels, ntr, D, K, "probe train set", err);
	if (!rc)
		rc = check_inputs(test, test_labels, nte, D, K, "probe test set", err);
	if (rc)
		return rc;

	const int NB = c->batch < ntr ? c->batch : ntr;
	const size_t DK = (size_t)D * K;
	/* One allocation: mu, rs (D); w, dw, mw, vw (K, D); b, db, mb, vb (K);
	 * xb (NB, D); lt (K, NB). */
	size_t nf = 2 * (size_t)D + 4 * DK + 4 * (size_t)K + (size_t)NB * D + (size_t)NB * K;
	float *buf = calloc(nf, sizeof(float));
	uint32_t *perm = malloc((size_t)ntr * sizeof(uint32_t));
	if (!buf || !perm || probe_standardiser(buf, buf + D, train, ntr, D)) {
		free(buf);
		free(perm);
		return byol_err(err, -ENOMEM, "probe: out of memory (%zu floats)", nf);
	}
	float *w = buf + 2 * (size_t)D, *dw = w + DK, *mw = dw + DK, *vw = mw + DK;
	float *b = vw + DK, *db = b + K, *mb = db + K, *vb = mb + K;
	probe_net net = { D, K, buf, buf + D, w, b, vb + K, vb + K + (size_t)NB * D };

	/* Minibatch Adam on the mean cross-entropy plus wd/2 |w|^2, from w = 0,
	 * learning rate on a cosine from lr to 0 over all steps. */
	const long total = (long)((ntr + NB - 1) / NB) * c->epochs;
	long t = 0;
	for (int e = 0; e < c->epochs; e++) {
		rng_permutation(perm, (uint32_t)ntr, c->seed, (uint32_t)e);
		for (int start = 0; start < ntr; start += NB, t++) {
			int nb = ntr - start < NB ? ntr - start : NB;
			probe_forward(&net, train, perm + start, nb);
			probe_softmax_grad(net.lt, db, train_labels, perm + start, nb, K);
			for (size_t i = 0; i < DK; i++)
				dw[i] = c->weight_decay * w[i];
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, K, D, nb, 1.0f,
				    net.lt, nb, net.xb, D, 1.0f, dw, D);
			float lr = (float)(c->lr * 0.5 * (1.0 + cos(M_PI * (double)t / total)));
			double bc1 = 1.0 - pow(0.9, (double)(t + 1));
			double bc2 = 1.0 - pow(0.999, (double)(t + 1));
			adam_update(w, dw, mw, vw, DK, lr, bc1, bc2);
			adam_update(b, db, mb, vb, (size_t)K, lr, bc1, bc2);
		}
	}
	*acc = probe_accuracy(&net, test, test_labels, nte, NB);
	free(buf);
	free(perm);
	return 0;
}

/* ------------------------------------------------------------------------ kNN */

typedef struct {
	float sim;
	int idx;
} knn_cand;

/* a is a worse neighbour than b: less similar, or as similar and later. */
static int knn_worse(knn_cand a, knn_cand b)
{
	return a.sim < b.sim || (a.sim == b.sim && a.idx > b.idx);
}

/* Restores the heap property (worst candidate at the root) below node i. */
static void knn_sift_down(knn_cand *h, int n, int i)
{
	for (;;) {
		int l = 2 * i + 1, r = l + 1, w = i;
		if (l < n && knn_worse(h[l], h[w]))
			w = l;
		if (r < n && knn_worse(h[r], h[w]))
			w = r;
		if (w == i)
			return;
		knn_cand tmp = h[i];
		h[i] = h[w];
		h[w] = tmp;
		i = w;
	}
}

static void knn_sift_up(knn_cand *h, int i)
{
	while (i > 0) {
		int p = (i - 1) / 2;
		if (!knn_worse(h[i], h[p]))
			return;
		knn_cand tmp = h[i];
		h[i] = h[p];
		h[p] = tmp;
		i = p;
	}
}

/* The KN best of one row of raw dot products dots (NTR), each scaled by the train
 * row's inverse norm invn (NTR), into heap h (KN). Scanning in index order, a
 * later candidate only displaces the root when strictly more similar, so ties go
 * to the lower train index. */
static void knn_select(knn_cand *h, int KN, const float *dots, const float *invn, int ntr)
{
	int n = 0;
	for (int j = 0; j < ntr; j++) {
		float s = dots[j] * invn[j];
		if (n < KN) {
			h[n] = (knn_cand){ s, j };
			knn_sift_up(h, n++);
		} else if (s > h[0].sim) {
			h[0] = (knn_cand){ s, j };
			knn_sift_down(h, KN, 0);
		}
	}
}

/* Class voted for by the KN neighbours in h: weights exp(sim / T), shifted by the
 * best similarity (the argmax does not change, nothing overflows); the lowest
 * class wins a tie. votes (K) scratch. */
static int knn_vote(const knn_cand *h, int KN, const uint8_t *labels, double *votes, int K,
		    double invt)
{
	float best = h[0].sim;
	for (int i = 1; i < KN; i++)
		if (h[i].sim > best)
			best = h[i].sim;
	memset(votes, 0, (size_t)K * sizeof(double));
	for (int i = 0; i < KN; i++)
		votes[labels[h[i].idx]] += exp(((double)h[i].sim - best) * invt);
	int c = 0;
	for (int j = 1; j < K; j++)
		if (votes[j] > votes[c])
			c = j;
	return c;
}

/* 1 / max(|row|, eps) for each row of x (n, D), in double, rounded to float. */
static void inverse_norms(float *invn, const float *x, int n, int D)
{
	for (int i = 0; i < n; i++) {
		double s = 0.0;
		for (int d = 0; d < D; d++)
			s += (double)x[(size_t)i * D + d] * x[(size_t)i * D + d];
		double nrm = sqrt(s);
		invn[i] = (float)(1.0 / (nrm > KNN_NORM_EPS ? nrm : KNN_NORM_EPS));
	}
}

int eval_knn(double *acc, const float *train, const uint8_t *train_labels, int ntr,
	     const float *test, const uint8_t *test_labels, int nte, int D, int K, int k,
	     float temperature, char *err)
{
	if (D < 1 || K < 1 || K > 256 || k < 1)
		return byol_err(err, -EINVAL, "knn: bad dimensions D=%d K=%d k=%d", D, K, k);
	if (!(temperature > 0.0f) || !isfinite(temperature))
		return byol_err(err, -EINVAL, "knn: temperature %g is not positive",
				(double)temperature);
	int rc = check_inputs(train, train_labels, ntr, D, K, "knn train set", err);
	if (!rc)
		rc = check_inputs(test, test_labels, nte, D, K, "knn test set", err);
	if (rc)
		return rc;

	const int KN = k < ntr ? k : ntr;
	const int NB = nte < KNN_BLOCK ? nte : KNN_BLOCK;
	float *invn = malloc((size_t)ntr * sizeof(float));           // (NTR)
	float *tinv = malloc((size_t)NB * sizeof(float));            // (NB)
	float *tb = malloc((size_t)NB * D * sizeof(float));          // (NB, D)
	float *dots = malloc((size_t)NB * ntr * sizeof(float));      // (NB, NTR)
	knn_cand *heap = malloc((size_t)KN * sizeof(knn_cand));      // (KN)
	double *votes = malloc((size_t)K * sizeof(double));          // (K)
	if (!invn || !tinv || !tb || !dots || !heap || !votes) {
		rc = byol_err(err, -ENOMEM, "knn: out of memory (block of %d x %d)", NB, ntr);
		goto out;
	}
	inverse_norms(invn, train, ntr, D);

	long right = 0;
	const double invt = 1.0 / temperature;
	for (int start = 0; start < nte; start += NB) {
		int nb = nte - start < NB ? nte - start : NB;
		inverse_norms(tinv, test + (size_t)start * D, nb, D);
		for (int r = 0; r < nb; r++) {
			const float *x = test + (size_t)(start + r) * D; // (D)
			for (int d = 0; d < D; d++)
				tb[(size_t)r * D + d] = x[d] * tinv[r];
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, ntr, D, 1.0f, tb, D,
			    train, D, 0.0f, dots, ntr);
		for (int r = 0; r < nb; r++) {
			knn_select(heap, KN, dots + (size_t)r * ntr, invn, ntr);
			int c = knn_vote(heap, KN, train_labels, votes, K, invt);
			right += c == test_labels[start + r];
		}
	}
	*acc = (double)right / nte;
	rc = 0;
out:
	free(invn);
	free(tinv);
	free(tb);
	free(dots);
	free(heap);
	free(votes);
	return rc;
}

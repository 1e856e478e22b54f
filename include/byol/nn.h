/*
 * nn.h — the layers, as pairs of functions over flat float buffers.
 *
 * Dimension legend:
 *   B   samples in the batch
 *   N   rows = B * S (S spatial positions per sample; S = 1 for an MLP)
 *   IN, OUT  input / output features of a linear layer
 *   H, W, C  input height, width, channels (activations are NHWC: (B, H, W, C))
 *   HO, WO, OC  output height, width, channels of a convolution
 *   G   groups of a group norm (C % G == 0)
 *   FAN fan-in of one output unit (IN for linear, 9*C for a 3x3 conv)
 *
 * Conventions (llm.c): outputs first, then inputs, then weights, then dimensions.
 * Forward functions overwrite their outputs. Backward functions ACCUMULATE (+=)
 * into every gradient they write, inputs' gradients included; the caller zeroes
 * them once per step. Any gradient pointer may be NULL when it is not wanted.
 * Matmuls are cblas_sgemm. Nothing here allocates: scratch is the caller's
 * (cols, dcols) or a few KiB of stack, so every function is reentrant.
 * Outputs and gradients must not overlap the inputs unless a comment says so.
 *
 * Determinism: every sum runs in a fixed order on the calling thread (only
 * OpenBLAS uses threads), so the same inputs give the same bits on every run.
 * Norm statistics are accumulated in double, two-pass (mean, then squared
 * deviations), and the variance is biased.
 */
#ifndef BYOL_NN_H
#define BYOL_NN_H

#define NN_EPS 1e-5f

/* out (B, OUT) = inp (B, IN) . w(OUT, IN)^T + b(OUT); b may be NULL. */
void nn_linear_forward(float *out, const float *inp, const float *w, const float *b,
		       int B, int IN, int OUT);
/* dinp (B, IN) += dout . w; dw (OUT, IN) += dout^T . inp; db (OUT) += sum_rows dout
 * (summed in double). */
void nn_linear_backward(float *dinp, float *dw, float *db, const float *dout,
			const float *inp, const float *w, int B, int IN, int OUT);

/* Output size of a 3x3 convolution with padding 1 and the given stride:
 * (n - 1) / stride + 1 (n >= 1). */
int nn_conv_out(int n, int stride);

/* 3x3 convolution, padding 1, as im2col + sgemm.
 * inp (B, H, W, C); w (OC, 3, 3, C); b (OC) or NULL; out (B, HO, WO, OC);
 * cols (B*HO*WO, 9*C) is the im2col scratch, kept for the backward pass: row
 * (b, oh, ow) holds the window centred on input pixel (oh*stride, ow*stride) in
 * w's (kh, kw, c) order, zeros outside the image. */
void nn_conv3x3_forward(float *out, float *cols, const float *inp, const float *w,
			const float *b, int B, int H, int W, int C, int OC, int stride);
/* dinp (B, H, W, C) +=, dw (OC, 3, 3, C) +=, db (OC) +=; dout (B, HO, WO, OC);
 * cols as left by the forward pass; dcols (B*HO*WO, 9*C) scratch (overwritten;
 * not touched, and may be NULL, when dinp is NULL). */
void nn_conv3x3_backward(float *dinp, float *dw, float *db, float *dcols,
			 const float *dout, const float *cols, const float *w, int B, int H,
			 int W, int C, int OC, int stride);

/* Batch norm over the N rows of each channel (training mode, biased variance).
 * inp, out (N, C); gamma, beta (C); saves mean, rstd (C) = 1/sqrt(var + NN_EPS);
 * var (C) receives the biased batch variance (for running statistics), or is
 * NULL. In all the norms here gamma NULL means 1 and beta NULL means 0.
 * out = (inp - mean) * rstd * gamma + beta, rstd computed from the float var. */
void nn_batchnorm_forward(float *out, float *mean, float *rstd, float *var,
			  const float *inp, const float *gamma, const float *beta, int N,
			  int C);
/* dinp (N, C) +=, dgamma, dbeta (C) +=; dout, inp (N, C); mean, rstd as saved by
 * the forward pass. */
void nn_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
			   const float *inp, const float *mean, const float *rstd,
			   const float *gamma, int N, int C);
/* Evaluation mode: out = gamma * (inp - run_mean) / sqrt(run_var + NN_EPS) + beta,
 * with the same arithmetic as the forward pass: given the batch's own mean and
 * var it reproduces the training-mode output bit for bit. out may be inp. */
void nn_batchnorm_infer(float *out, const float *inp, const float *run_mean,
			const float *run_var, const float *gamma, const float *beta, int N,
			int C);

/* Group norm per sample over (S positions x C/G channels of a group).
 * inp, out (B, S, C); gamma, beta (C); saves mean, rstd (B, G).
 * Layer norm is G = 1; G = C normalises each channel of each sample. */
void nn_groupnorm_forward(float *out, float *mean, float *rstd, const float *inp,
			  const float *gamma, const float *beta, int B, int S, int C, int G);
/* dinp (B, S, C) +=, dgamma, dbeta (C) += (summed over samples); dout, inp
 * (B, S, C); mean, rstd as saved by the forward pass. */
void nn_groupnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
			   const float *inp, const float *mean, const float *rstd,
			   const float *gamma, int B, int S, int C, int G);

/* Weight standardisation of each output unit's fan-in: what[o] = (w[o] - mean[o])
 * * rstd[o], rstd = 1/sqrt(var + NN_EPS), biased variance. w, what (OUT, FAN);
 * saves mean, rstd (OUT). */
void nn_wstd_forward(float *what, float *mean, float *rstd, const float *w, int OUT,
		     int FAN);
/* dw (OUT, FAN) += d(what)/d(w)^T . dwhat, from what and rstd as saved by the
 * forward pass: dw += rstd * (dwhat - mean(dwhat) - what * mean(dwhat * what))
 * per row. */
void nn_wstd_backward(float *dw, const float *dwhat, const float *what,
		      const float *rstd, int OUT, int FAN);

/* out = max(inp, 0) over n floats (in place allowed); NaN stays NaN. */
void nn_relu_forward(float *out, const float *inp, long n);
/* dinp += dout where out > 0 (out is the forward output). */
void nn_relu_backward(float *dinp, const float *dout, const float *out, long n);

/* Global average pool: inp (B, S, C) -> out (B, C). */
void nn_avgpool_forward(float *out, const float *inp, int B, int S, int C);
/* dinp (B, S, C) += dout (B, C) / S. */
void nn_avgpool_backward(float *dinp, const float *dout, int B, int S, int C);

#endif

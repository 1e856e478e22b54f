/*
 * svg.c — line charts as SVG (client/svg.h): axes with nice ticks, a polyline
 * per series broken at gaps, a legend; dot charts of groups (svg_write_groups).
 */
#include "svg.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "byol/error.h"

#define MARGIN_LEFT 80
#define MARGIN_RIGHT 24
#define MARGIN_TOP 40
#define MARGIN_BOTTOM 60
#define LEGEND_ROW 18

/* Tableau 10: distinct for the colour-blind and in print. */
static const char *const palette[] = {
	"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
	"#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
};
#define N_PALETTE ((int)(sizeof(palette) / sizeof(palette[0])))

/* ---- axes ---- */

/* 1, 2 or 5 times a power of ten, near range / target. */
static double nice_step(double range, int target)
{
	double rough = range / target;
	double mag = pow(10, floor(log10(rough)));
	double r = rough / mag;
	return (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
}

int svg_axis_linear(svg_axis *a, double lo, double hi, int target)
{
	if (!isfinite(lo) || !isfinite(hi) || lo > hi || !isfinite(hi - lo))
		return -EINVAL;
	if (target < 2)
		target = 2;
	double scale = fmax(fabs(lo), fabs(hi));
	if (hi - lo <= scale * 1e-12) {         /* constant: a range around the value */
		double d = scale > 0 ? scale * 0.1 : 1;
		lo -= d;
		hi += d;
	}
	double step = nice_step(hi - lo, target);
	double i0, i1;
	for (;;) {
		i0 = floor(lo / step + 1e-9);
		i1 = ceil(hi / step - 1e-9);
		if (i1 - i0 + 1 <= SVG_MAX_TICKS)
			break;
		step *= 2;
	}
	a->log = 0;
	a->lo = i0 * step;
	a->hi = i1 * step;
	a->n_ticks = (int)(i1 - i0) + 1;
	for (int i = 0; i < a->n_ticks; i++)
		a->tick[i] = (i0 + i) * step;
	int k = (int)floor(log10(step) + 1e-9);
	a->decimals = k < 0 ? -k : 0;
	return 0;
}

int svg_axis_log(svg_axis *a, double lo, double hi)
{
	if (!(lo > 0) || !isfinite(lo) || !isfinite(hi) || lo > hi)
		return -EINVAL;
	int d0 = (int)floor(log10(lo) + 1e-12), d1 = (int)ceil(log10(hi) - 1e-12);
	if (d1 <= d0)
		d1 = d0 + 1;
	a->log = 1;
	a->decimals = 0;
	a->n_ticks = 0;
	if (d1 - d0 <= 2) {
		static const double mult[] = {1, 2, 5};
		for (int d = d0; d < d1; d++)
			for (int m = 0; m < 3; m++)
				a->tick[a->n_ticks++] = mult[m] * pow(10, d);
	} else {
		int s = (d1 - d0 + 7) / 8;
		d1 = d0 + (d1 - d0 + s - 1) / s * s;
		for (int d = d0; d < d1 && a->n_ticks < SVG_MAX_TICKS - 1; d += s)
			a->tick[a->n_ticks++] = pow(10, d);
	}
	a->tick[a->n_ticks++] = pow(10, d1);
	a->lo = pow(10, d0);
	a->hi = pow(10, d1);
	return 0;
}

double svg_axis_map(const svg_axis *a, double v)
{
	double f = a->log ? (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo))
			  : (v - a->lo) / (a->hi - a->lo);
	return a->px_lo + f * (a->px_hi - a->px_lo);
}

void svg_tick_label(const svg_axis *a, double v, char *buf, size_t n)
{
	double big = fmax(fabs(a->lo), fabs(a->hi));
	if (v == 0)
		snprintf(buf, n, "0");
	else if (a->log || big >= 1e6 || a->decimals > 4)
		snprintf(buf, n, "%g", v);
	else
		snprintf(buf, n, "%.*f", a->decimals, v);
}

/* ---- writing ---- */

static void put_escaped(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&apos;", f); break;
		default:
			/* control characters are not allowed in XML 1.0 */
			fputc((unsigned char)*s < 0x20 ? ' ' : *s, f);
		}
	}
}

static int drawable(const svg_chart *c, double x, double y)
{
	return isfinite(x) && isfinite(y) && (!c->log_y || y > 0);
}

/* The range of the drawable points; 0 when there are none. */
static int data_range(const svg_chart *c, const svg_series *s, int ns, double *x0, double *x1,
		      double *y0, double *y1)
{
	int any = 0;
	*x0 = *y0 = INFINITY;
	*x1 = *y1 = -INFINITY;
	for (int k = 0; k < ns; k++)
		for (size_t i = 0; i < s[k].n; i++) {
			double x = s[k].x[i], y = s[k].y[i];
			if (!drawable(c, x, y))
				continue;
			any = 1;
			*x0 = fmin(*x0, x);
			*x1 = fmax(*x1, x);
			*y0 = fmin(*y0, y);
			*y1 = fmax(*y1, y);
		}
	return any;
}

static void write_axes(FILE *f, const svg_chart *c, const svg_axis *ax, const svg_axis *ay,
		       int H)
{
	char buf[64];
	double left = ax->px_lo, right = ax->px_hi, top = ay->px_hi, bottom = ay->px_lo;
	fprintf(f, "<g class=\"grid\" stroke=\"#e6e6e6\" stroke-width=\"1\">\n");
	for (int i = 0; i < ax->n_ticks; i++) {
		double px = svg_axis_map(ax, ax->tick[i]);
		fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", px, top, px,
			bottom);
	}
	for (int i = 0; i < ay->n_ticks; i++) {
		double py = svg_axis_map(ay, ay->tick[i]);
		fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", left, py, right,
			py);
	}
	fprintf(f, "</g>\n<rect class=\"frame\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
		   "height=\"%.2f\" fill=\"none\" stroke=\"#333333\"/>\n",
		left, top, right - left, bottom - top);
	fprintf(f, "<g class=\"x-axis\" font-size=\"12\" text-anchor=\"middle\">\n");
	for (int i = 0; i < ax->n_ticks; i++) {
		double px = svg_axis_map(ax, ax->tick[i]);
		svg_tick_label(ax, ax->tick[i], buf, sizeof(buf));
		fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#333333\"/>"
			   "<text x=\"%.2f\" y=\"%.2f\">%s</text>\n",
			px, bottom, px, bottom + 5, px, bottom + 19, buf);
	}
	if (c->x_title) {
		fprintf(f, "<text class=\"title\" x=\"%.2f\" y=\"%d\" font-size=\"13\">",
			(left + right) / 2, H - 14);
		put_escaped(f, c->x_title);
		fprintf(f, "</text>\n");
	}
	fprintf(f, "</g>\n<g class=\"y-axis\" font-size=\"12\" text-anchor=\"end\">\n");
	for (int i = 0; i < ay->n_ticks; i++) {
		double py = svg_axis_map(ay, ay->tick[i]);
		svg_tick_label(ay, ay->tick[i], buf, sizeof(buf));
		fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#333333\"/>"
			   "<text x=\"%.2f\" y=\"%.2f\">%s</text>\n",
			left - 5, py, left, py, left - 8, py + 4, buf);
	}
	if (c->y_title) {
		fprintf(f, "<text class=\"title\" text-anchor=\"middle\" font-size=\"13\" "
			   "transform=\"translate(18 %.2f) rotate(-90)\">", (top + bottom) / 2);
		put_escaped(f, c->y_title);
		fprintf(f, "</text>\n");
	}
	fprintf(f, "</g>\n");
}

/* The series' points as polylines broken at gaps; a lone point as a dot. */
static void write_series(FILE *f, const svg_chart *c, const svg_series *s, int k,
			 const svg_axis *ax, const svg_axis *ay)
{
	const char *col = palette[k % N_PALETTE];
	fprintf(f, "<g class=\"series\" data-label=\"");
	put_escaped(f, s->label);
	fprintf(f, "\" stroke=\"%s\" fill=\"none\" stroke-width=\"1.5\" "
		   "stroke-linejoin=\"round\">\n", col);
	size_t i = 0;
	while (i < s->n) {
		if (!drawable(c, s->x[i], s->y[i])) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < s->n && drawable(c, s->x[j], s->y[j]))
			j++;
		if (j - i == 1) {
			fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"2.5\" fill=\"%s\" stroke=\"none\"/>\n",
				svg_axis_map(ax, s->x[i]), svg_axis_map(ay, s->y[i]), col);
		} else {
			fprintf(f, "<polyline points=\"");
			for (size_t p = i; p < j; p++)
				fprintf(f, "%s%.2f,%.2f", p > i ? " " : "", svg_axis_map(ax, s->x[p]),
					svg_axis_map(ay, s->y[p]));
			fprintf(f, "\"/>\n");
		}
		i = j;
	}
	fprintf(f, "</g>\n");
}

/* Drawn points (and segment midpoints) of the series inside the box. */
static long points_in(const svg_chart *c, const svg_series *s, int ns, const svg_axis *ax,
		      const svg_axis *ay, double x, double y, double w, double h)
{
	long n = 0;
	for (int k = 0; k < ns; k++)
		for (size_t i = 0; i < s[k].n; i++) {
			if (!drawable(c, s[k].x[i], s[k].y[i]))
				continue;
			double px = svg_axis_map(ax, s[k].x[i]), py = svg_axis_map(ay, s[k].y[i]);
			n += px >= x && px <= x + w && py >= y && py <= y + h;
			if (i + 1 < s[k].n && drawable(c, s[k].x[i + 1], s[k].y[i + 1])) {
				double mx = (px + svg_axis_map(ax, s[k].x[i + 1])) / 2;
				double my = (py + svg_axis_map(ay, s[k].y[i + 1])) / 2;
				n += mx >= x && mx <= x + w && my >= y && my <= y + h;
			}
		}
	return n;
}

/* The legend in the corner of the plot area that hides the fewest points
 * (top right, top left, bottom right, bottom left, in that order of choice). */
static void write_legend(FILE *f, const svg_chart *c, const svg_series *s, int ns,
			 const svg_axis *ax, const svg_axis *ay)
{
	size_t longest = 1;
	for (int k = 0; k < ns; k++)
		if (s[k].label && strlen(s[k].label) > longest)
			longest = strlen(s[k].label);
	double w = 36 + 7.0 * (double)(longest > 60 ? 60 : longest);
	double h = 8 + LEGEND_ROW * ns;
	double xs[2] = {ax->px_hi - w - 8, ax->px_lo + 8}, ys[2] = {ay->px_hi + 8, ay->px_lo - h - 8};
	double x = xs[0], y = ys[0];
	long best = -1;
	for (int corner = 0; corner < 4; corner++) {
		double cx = xs[corner & 1], cy = ys[corner >> 1];
		long hidden = points_in(c, s, ns, ax, ay, cx, cy, w, h);
		if (best < 0 || hidden < best) {
			best = hidden;
			x = cx;
			y = cy;
		}
	}
	fprintf(f, "<g class=\"legend\" font-size=\"12\">\n<rect x=\"%.2f\" y=\"%.2f\" "
		   "width=\"%.2f\" height=\"%.2f\" fill=\"#ffffff\" fill-opacity=\"0.85\" "
		   "stroke=\"#999999\"/>\n", x, y, w, h);
	for (int k = 0; k < ns; k++) {
		double ry = y + 4 + LEGEND_ROW * k + LEGEND_ROW / 2.0;
		fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
			   "stroke-width=\"2.5\"/><text x=\"%.2f\" y=\"%.2f\">",
			x + 6, ry, x + 26, ry, palette[k % N_PALETTE], x + 32, ry + 4);
		put_escaped(f, s[k].label);
		fprintf(f, "</text>\n");
	}
	fprintf(f, "</g>\n");
}

int svg_write(FILE *f, const svg_chart *c, const svg_series *s, int ns, char *err)
{
	if (ns < 1)
		return byol_err(err, -EINVAL, "a chart needs at least one series");
	for (int k = 0; k < ns; k++)
		if (s[k].n && (!s[k].x || !s[k].y))
			return byol_err(err, -EINVAL, "series %d has no data arrays", k);
	int W = c->width > 0 ? c->width : 800, H = c->height > 0 ? c->height : 480;
	if (W < MARGIN_LEFT + MARGIN_RIGHT + 100 || H < MARGIN_TOP + MARGIN_BOTTOM + 60)
		return byol_err(err, -EINVAL, "a chart of %dx%d pixels is too small", W, H);
	svg_axis ax, ay;
	double x0, x1, y0, y1;
	int any = data_range(c, s, ns, &x0, &x1, &y0, &y1);
	if (!any) {
		x0 = 0;
		x1 = 1;
		y0 = c->log_y ? 1 : 0;
		y1 = c->log_y ? 10 : 1;
	}
	if (svg_axis_linear(&ax, x0, x1, 8) < 0 ||
	    (c->log_y ? svg_axis_log(&ay, y0, y1) : svg_axis_linear(&ay, y0, y1, 6)) < 0)
		return byol_err(err, -EINVAL, "the data's range cannot be drawn");
	ax.px_lo = MARGIN_LEFT;
	ax.px_hi = W - MARGIN_RIGHT;
	ay.px_lo = H - MARGIN_BOTTOM;
	ay.px_hi = MARGIN_TOP;
	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		   "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n"
		   "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", W, H, W, H, W, H);
	if (c->title) {
		fprintf(f, "<text class=\"chart-title\" x=\"%d\" y=\"24\" font-size=\"15\" "
			   "text-anchor=\"middle\">", W / 2);
		put_escaped(f, c->title);
		fprintf(f, "</text>\n");
	}
	write_axes(f, c, &ax, &ay, H);
	if (!any)
		fprintf(f, "<text class=\"no-data\" x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" "
			   "fill=\"#999999\">no data</text>\n",
			(ax.px_lo + ax.px_hi) / 2, (ay.px_lo + ay.px_hi) / 2);
	for (int k = 0; k < ns; k++)
		write_series(f, c, &s[k], k, &ax, &ay);
	write_legend(f, c, s, ns, &ax, &ay);
	fprintf(f, "</svg>\n");
	if (fflush(f) != 0 || ferror(f))
		return byol_err(err, -EIO, "write error");
	return 0;
}

/* Writes through emit(f, ctx) into PATH.tmp, then renames it over path; on
 * any failure the temp file is removed and path is left as it was. */
static int write_atomically(const char *path, int (*emit)(FILE *f, const void *ctx, char *why),
			    const void *ctx, char *err)
{
	char tmp[4096], why[BYOL_ERR_LEN];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return byol_err(err, -ENAMETOOLONG, "%s: path too long", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return byol_err(err, -errno, "%s: %s", tmp, strerror(errno));
	int rc = emit(f, ctx, why);
	if (fclose(f) != 0 && rc == 0)
		rc = byol_err(why, -EIO, "%s", strerror(errno));
	if (rc == 0 && rename(tmp, path) < 0)
		rc = byol_err(why, -errno, "cannot rename to %s: %s", path, strerror(errno));
	if (rc < 0) {
		unlink(tmp);
		return byol_err(err, rc, "%s: %s", path, why);
	}
	return 0;
}

typedef struct {
	const svg_chart *c;
	const svg_series *s;
	int n;
} lines_args;

static int write_lines(FILE *f, const void *ctx, char *why)
{
	const lines_args *x = ctx;
	return svg_write(f, x->c, x->s, x->n, why);
}

int svg_write_file(const char *path, const svg_chart *c, const svg_series *s, int ns,
		   char *err)
{
	lines_args x = { c, s, ns };
	return write_atomically(path, write_lines, &x, err);
}

/* ---- dot charts of groups (svg_write_groups) ---- */

#define GROUP_LABEL_MAX 40      /* characters of a group label drawn */

/* The y grid, frame, ticks and title of a chart whose x axis is categories. */
static void write_y_axis(FILE *f, const svg_chart *c, const svg_axis *ay, double left,
			 double right)
{
	char buf[64];
	double top = ay->px_hi, bottom = ay->px_lo;
	fprintf(f, "<g class=\"grid\" stroke=\"#e6e6e6\" stroke-width=\"1\">\n");
	for (int i = 0; i < ay->n_ticks; i++) {
		double py = svg_axis_map(ay, ay->tick[i]);
		fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", left, py, right,
			py);
	}
	fprintf(f, "</g>\n<rect class=\"frame\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
		   "height=\"%.2f\" fill=\"none\" stroke=\"#333333\"/>\n",
		left, top, right - left, bottom - top);
	fprintf(f, "<g class=\"y-axis\" font-size=\"12\" text-anchor=\"end\">\n");
	for (int i = 0; i < ay->n_ticks; i++) {
		double py = svg_axis_map(ay, ay->tick[i]);
		svg_tick_label(ay, ay->tick[i], buf, sizeof(buf));
		fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#333333\"/>"
			   "<text x=\"%.2f\" y=\"%.2f\">%s</text>\n",
			left - 5, py, left, py, left - 8, py + 4, buf);
	}
	if (c->y_title) {
		fprintf(f, "<text class=\"title\" text-anchor=\"middle\" font-size=\"13\" "
			   "transform=\"translate(18 %.2f) rotate(-90)\">", (top + bottom) / 2);
		put_escaped(f, c->y_title);
		fprintf(f, "</text>\n");
	}
	fprintf(f, "</g>\n");
}

/* Group k: its values as hollow circles spread across the column, the mean as
 * a thick bar, the error bar with caps, the label slanted under the axis. */
static void write_group(FILE *f, const svg_group *g, int k, double cx, double slot,
			const svg_axis *ay)
{
	const char *col = palette[k % N_PALETTE];
	fprintf(f, "<g class=\"group\" data-label=\"");
	put_escaped(f, g->label);
	fprintf(f, "\" stroke=\"%s\" fill=\"none\">\n", col);
	double half = fmin(slot * 0.3, 30);
	if (isfinite(g->mean) && isfinite(g->err) && g->err >= 0) {
		double y0 = svg_axis_map(ay, g->mean - g->err), y1 = svg_axis_map(ay, g->mean + g->err);
		fprintf(f, "<path class=\"error-bar\" stroke-width=\"1.5\" d=\"M%.2f %.2fV%.2f"
			   "M%.2f %.2fH%.2fM%.2f %.2fH%.2f\"/>\n",
			cx, y0, y1, cx - half / 3, y0, cx + half / 3, cx - half / 3, y1, cx + half / 3);
	}
	if (isfinite(g->mean)) {
		double py = svg_axis_map(ay, g->mean);
		fprintf(f, "<line class=\"mean\" stroke-width=\"3\" x1=\"%.2f\" y1=\"%.2f\" "
			   "x2=\"%.2f\" y2=\"%.2f\"/>\n", cx - half, py, cx + half, py);
	}
	double step = g->n > 1 ? fmin(8, 2 * half / (double)(g->n - 1)) : 0;
	for (size_t i = 0; i < g->n; i++) {
		if (!isfinite(g->v[i]))
			continue;
		double px = cx + step * ((double)i - (double)(g->n - 1) / 2);
		fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" stroke-width=\"1.2\"/>\n", px,
			svg_axis_map(ay, g->v[i]));
	}
	char label[4 * GROUP_LABEL_MAX + 4];
	size_t n = 0, chars = 0;
	for (const char *p = g->label ? g->label : ""; *p && chars < GROUP_LABEL_MAX; p++) {
		label[n++] = *p;
		chars += ((unsigned char)p[1] & 0xC0) != 0x80;  /* count whole characters */
	}
	if (chars == GROUP_LABEL_MAX && g->label[n])
		memcpy(label + n, "...", 3), n += 3;
	label[n] = '\0';
	fprintf(f, "<text class=\"label\" stroke=\"none\" fill=\"#333333\" font-size=\"12\" "
		   "text-anchor=\"end\" transform=\"translate(%.2f %.2f) rotate(-30)\">",
		cx + 4, ay->px_lo + 16);
	put_escaped(f, label);
	fprintf(f, "</text>\n</g>\n");
}

int svg_write_groups(FILE *f, const svg_chart *c, const svg_group *g, int ng, char *err)
{
	if (ng < 1)
		return byol_err(err, -EINVAL, "a chart needs at least one group");
	double lo = INFINITY, hi = -INFINITY;
	size_t longest = 1;
	for (int k = 0; k < ng; k++) {
		if (g[k].n && !g[k].v)
			return byol_err(err, -EINVAL, "group %d has no values array", k);
		for (size_t i = 0; i < g[k].n; i++)
			if (isfinite(g[k].v[i]))
				lo = fmin(lo, g[k].v[i]), hi = fmax(hi, g[k].v[i]);
		if (isfinite(g[k].mean)) {
			double e = isfinite(g[k].err) && g[k].err > 0 ? g[k].err : 0;
			lo = fmin(lo, g[k].mean - e);
			hi = fmax(hi, g[k].mean + e);
		}
		size_t len = g[k].label ? strlen(g[k].label) : 0;
		longest = len > longest ? len : longest;
	}
	if (lo > hi)
		lo = 0, hi = 1;         /* nothing to draw: an empty frame */
	if (longest > GROUP_LABEL_MAX + 3)
		longest = GROUP_LABEL_MAX + 3;
	/* the slanted labels need room below the frame */
	int bottom = 30 + (int)(3.5 * (double)longest) + (c->x_title ? 24 : 0);
	int W = c->width > 0 ? c->width : (int)fmax(800, 80 * ng + MARGIN_LEFT + MARGIN_RIGHT);
	int H = c->height > 0 ? c->height : 420 + bottom;
	if (W < MARGIN_LEFT + MARGIN_RIGHT + 100 || H < MARGIN_TOP + bottom + 60)
		return byol_err(err, -EINVAL, "a chart of %dx%d pixels is too small", W, H);
	svg_axis ay;
	if (svg_axis_linear(&ay, lo, hi, 6) < 0)
		return byol_err(err, -EINVAL, "the data's range cannot be drawn");
	ay.px_lo = H - bottom;
	ay.px_hi = MARGIN_TOP;
	double left = MARGIN_LEFT, right = W - MARGIN_RIGHT, slot = (right - left) / ng;
	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		   "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n"
		   "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", W, H, W, H, W, H);
	if (c->title) {
		fprintf(f, "<text class=\"chart-title\" x=\"%d\" y=\"24\" font-size=\"15\" "
			   "text-anchor=\"middle\">", W / 2);
		put_escaped(f, c->title);
		fprintf(f, "</text>\n");
	}
	write_y_axis(f, c, &ay, left, right);
	if (c->x_title) {
		fprintf(f, "<text class=\"title\" x=\"%.2f\" y=\"%d\" font-size=\"13\" "
			   "text-anchor=\"middle\">", (left + right) / 2, H - 12);
		put_escaped(f, c->x_title);
		fprintf(f, "</text>\n");
	}
	for (int k = 0; k < ng; k++)
		write_group(f, &g[k], k, left + slot * (k + 0.5), slot, &ay);
	fprintf(f, "</svg>\n");
	if (fflush(f) != 0 || ferror(f))
		return byol_err(err, -EIO, "write error");
	return 0;
}

typedef struct {
	const svg_chart *c;
	const svg_group *g;
	int n;
} groups_args;

static int write_groups(FILE *f, const void *ctx, char *why)
{
	const groups_args *x = ctx;
	return svg_write_groups(f, x->c, x->g, x->n, why);
}

int svg_write_groups_file(const char *path, const svg_chart *c, const svg_group *g, int ng,
			  char *err)
{
	groups_args x = { c, g, ng };
	return write_atomically(path, write_groups, &x, err);
}

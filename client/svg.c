/*
 * svg.c — line charts as SVG (client/svg.h): axes with nice ticks, a polyline
 * per series broken at gaps, a legend.
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

static void write_legend(FILE *f, const svg_series *s, int ns, const svg_axis *ax,
			 const svg_axis *ay)
{
	size_t longest = 1;
	for (int k = 0; k < ns; k++)
		if (s[k].label && strlen(s[k].label) > longest)
			longest = strlen(s[k].label);
	double w = 36 + 7.0 * (double)(longest > 60 ? 60 : longest);
	double h = 8 + LEGEND_ROW * ns;
	double x = ax->px_hi - w - 8, y = ay->px_hi + 8;
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
	write_legend(f, s, ns, &ax, &ay);
	fprintf(f, "</svg>\n");
	if (fflush(f) != 0 || ferror(f))
		return byol_err(err, -EIO, "write error");
	return 0;
}

int svg_write_file(const char *path, const svg_chart *c, const svg_series *s, int ns,
		   char *err)
{
	char tmp[4096], why[BYOL_ERR_LEN];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return byol_err(err, -ENAMETOOLONG, "%s: path too long", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return byol_err(err, -errno, "%s: %s", tmp, strerror(errno));
	int rc = svg_write(f, c, s, ns, why);
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

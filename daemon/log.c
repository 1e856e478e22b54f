/*
 * log.c — byold's log lines (stderr, which systemd's journal captures) and
 * events (the same line, also kept in the store for `byolctl`).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "byold.h"

static dlog_level min_level = DLOG_INFO;

void dlog_set_level(dlog_level min)
{
	min_level = min;
}

double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void vlog(dlog_level lv, const char *fmt, va_list ap)
{
	if (lv < min_level)
		return;
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %s: ", ts.tv_nsec / 1000000,
		      dconf_level_name(lv));
	if (n < (int)sizeof(line) - 1) {
		int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
		n = m < 0 ? n : n + m;
	}
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

int dlog_capped(dlog_cap *cap, int burst, double window_s, const char *what)
{
	double now = mono_s();
	if (now - cap->t0 >= window_s) {
		if (cap->n > burst)
			dlog(DLOG_WARN, "%s: %d more lines were not written in %.0f s", what,
			     cap->n - burst, now - cap->t0);
		cap->t0 = now;
		cap->n = 0;
	}
	return ++cap->n <= burst;
}

void dlog(dlog_level lv, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(lv, fmt, ap);
	va_end(ap);
}

void devent(byold *d, int64_t run_id, dlog_level lv, const char *fmt, ...)
{
	char msg[STORE_MSG_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dlog(lv, "%s", msg);
	if (!d->db || lv == DLOG_DEBUG)
		return;
	char err[BYOL_ERR_LEN];
	store_level sl = lv == DLOG_ERROR ? STORE_ERROR : lv == DLOG_WARN ? STORE_WARN : STORE_INFO;
	if (store_event_add(d->db, run_id, sl, msg, NULL, err) < 0)
		dlog(DLOG_ERROR, "store: %s", err);
}

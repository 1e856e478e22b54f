/*
 * cli.c — the helpers byolctl's commands share (see cli.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

int cli_unreachable_code(int rc)
{
	return rc == -EACCES || rc == -EPROTO || rc == -ENOMEM ? EX_NO : EX_UNREACHABLE;
}

int cli_connect(const target *t, rpc **out)
{
	char err[BYOL_ERR_LEN];
	int rc = rpc_open(out, t->tcp, t->sock, t->token, t->name, CLI_CALL_TIMEOUT_MS, err);
	if (rc < 0) {
		fprintf(stderr, "byolctl: %s\n", err);
		return rc == -EACCES ? EX_NO : EX_UNREACHABLE;
	}
	return EX_OK;
}

int cli_call(rpc *r, Byol__Envelope *req, Byol__Envelope **rep, int want, int *rc_out)
{
	char err[BYOL_ERR_LEN];
	int rc = rpc_call(r, req, rep, err);
	if (rc_out)
		*rc_out = rc;
	if (rc < 0) {
		fprintf(stderr, "byolctl: %s\n", err);
		return cli_unreachable_code(rc);
	}
	if ((*rep)->msg_case == BYOL__ENVELOPE__MSG_ERROR) {
		fprintf(stderr, "byolctl: byold: %s\n", (*rep)->error->message);
		return EX_NO;
	}
	if ((int)(*rep)->msg_case != want) {
		fprintf(stderr, "byolctl: unexpected answer from byold at %s (message %d)\n",
			rpc_address(r), (int)(*rep)->msg_case);
		return EX_NO;
	}
	return EX_OK;
}

int cli_parse_id(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !*s || s[0] == '-' || s[0] == '+')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end || v == 0 || errno)
		return -1;
	*out = v;
	return 0;
}

int cli_get_status(rpc *r, uint64_t id, Byol__Envelope **rep, const Byol__RunStatus **st,
		   int *rc)
{
	Byol__StatusRequest sr = BYOL__STATUS_REQUEST__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	sr.run_id = id;
	e.msg_case = BYOL__ENVELOPE__MSG_STATUS_REQUEST;
	e.status_request = &sr;
	int ex = cli_call(r, &e, rep, BYOL__ENVELOPE__MSG_STATUS_REPLY, rc);
	if (ex != EX_OK)
		return ex;
	for (size_t i = 0; i < (*rep)->status_reply->n_runs; i++)
		if ((*rep)->status_reply->runs[i]->run_id == id) {
			*st = (*rep)->status_reply->runs[i];
			return EX_OK;
		}
	fprintf(stderr, "byolctl: byold has no run %llu\n", (unsigned long long)id);
	return EX_NO;
}

int cli_status_is_final(const char *s, int *ok)
{
	*ok = strcmp(s, "completed") == 0;
	return *ok || strcmp(s, "failed") == 0 || strcmp(s, "cancelled") == 0;
}

void cli_command_help(const cli_command *c, FILE *f)
{
	fprintf(f, "usage: byolctl [GLOBAL OPTIONS] %s\n\n%s\n", c->synopsis, c->summary);
	if (c->help && c->help[0])
		fprintf(f, "\n%s", c->help);
}

int cli_bad_usage(const cli_command *c, const char *arg)
{
	if (arg)
		fprintf(stderr, "byolctl %s: unexpected argument '%s'\n", c->name, arg);
	fprintf(stderr, "usage: byolctl %s\n", c->synopsis);
	return EX_USAGE;
}

int cli_is_help(const char *a)
{
	return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

void cli_sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

char *cli_read_file(const char *path, char *err)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		byol_err(err, -errno, "%s: %s", path, strerror(errno));
		return NULL;
	}
	char *buf = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			char *nb = realloc(buf, cap = cap * 2 + 8192);
			if (!nb) {
				free(buf);
				fclose(f);
				byol_err(err, -ENOMEM, "%s: out of memory", path);
				return NULL;
			}
			buf = nb;
		}
		size_t got = fread(buf + n, 1, 4096, f);
		n += got;
		if (got < 4096)
			break;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		free(buf);
		byol_err(err, -EIO, "%s: read error", path);
		return NULL;
	}
	buf[n] = 0;
	return buf;
}

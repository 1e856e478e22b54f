/*
 * cmd_export.c — byolctl export: downloads a run's checkpoint (as stored, or its
 * encoder alone) from byold in ExportChunk messages and installs it only when
 * every check passed: each chunk's offset and the total size agree with what
 * came before, the bytes hash to the sha256 of the last chunk, the file parses
 * as safetensors of the kind asked for. It is written to FILE.tmp, fsynced and
 * renamed over FILE; on any failure FILE.tmp is deleted and FILE left as it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "byol/safetensors.h"
#include "cli.h"

/* The file being received. */
typedef struct {
	const char *path;               /* the destination */
	char tmp[PATH_MAX];             /* path.tmp */
	int fd;                         /* -1 until the first chunk */
	uint64_t offset, total, step;
	int chunks, done;
	crypto_hash_sha256_state hs;
	char sha_hex[65];
} sink;

/* The temp file while it exists, for a SIGINT/SIGTERM/SIGHUP that ends the
 * download: removed, then the signal does what it would have done. */
static char pending_tmp[PATH_MAX];

static void on_fatal_signal(int sig)
{
	if (pending_tmp[0])
		unlink(pending_tmp);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void remove_on_signals(const char *tmp)
{
	snprintf(pending_tmp, sizeof(pending_tmp), "%s", tmp);
	signal(SIGINT, on_fatal_signal);
	signal(SIGTERM, on_fatal_signal);
	signal(SIGHUP, on_fatal_signal);
}

static void keep_after_signals(void)
{
	pending_tmp[0] = '\0';
}

static int sink_open(sink *s, const char *path, char *err)
{
	memset(s, 0, sizeof(*s));
	s->path = path;
	s->fd = -1;
	if (snprintf(s->tmp, sizeof(s->tmp), "%s.tmp", path) >= (int)sizeof(s->tmp))
		return byol_err(err, -ENAMETOOLONG, "%s: path too long", path);
	if (sodium_init() < 0)
		return byol_err(err, -EIO, "libsodium cannot be initialised");
	crypto_hash_sha256_init(&s->hs);
	return 0;
}

/* Deletes the temp file (after a failure). */
static void sink_discard(sink *s)
{
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
		unlink(s->tmp);
	}
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Takes one chunk. Returns 0 (s->done after the last one), or -EPROTO / an
 * I/O error with err saying what did not agree. */
static int sink_add(sink *s, const Byol__ExportChunk *ch, char *err)
{
	if (s->done)
		return byol_err(err, -EPROTO, "a chunk after the last one");
	if (s->fd < 0) {
		s->total = ch->total_bytes;
		s->step = ch->step;
		remove_on_signals(s->tmp);
		s->fd = open(s->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (s->fd < 0)
			return byol_err(err, -errno, "%s: %s", s->tmp, strerror(errno));
	}
	if (ch->offset != s->offset)
		return byol_err(err, -EPROTO, "chunk %d starts at byte %llu, expected %llu",
				s->chunks + 1, (unsigned long long)ch->offset,
				(unsigned long long)s->offset);
	if (ch->total_bytes != s->total || ch->step != s->step)
		return byol_err(err, -EPROTO, "chunk %d describes another file (%llu bytes at step "
				"%llu, the first chunk said %llu bytes at step %llu)", s->chunks + 1,
				(unsigned long long)ch->total_bytes, (unsigned long long)ch->step,
				(unsigned long long)s->total, (unsigned long long)s->step);
	if (ch->data.len > s->total - s->offset)
		return byol_err(err, -EPROTO, "chunk %d runs past the end of the file (%llu + %zu "
				"> %llu bytes)", s->chunks + 1, (unsigned long long)s->offset,
				ch->data.len, (unsigned long long)s->total);
	int rc = write_all(s->fd, ch->data.data, ch->data.len);
	if (rc < 0)
		return byol_err(err, rc, "%s: %s", s->tmp, strerror(-rc));
	crypto_hash_sha256_update(&s->hs, ch->data.data, ch->data.len);
	s->offset += ch->data.len;
	s->chunks++;
	if (!ch->last)
		return 0;
	s->done = 1;
	if (s->offset != s->total)
		return byol_err(err, -EPROTO, "the stream ended at byte %llu of %llu",
				(unsigned long long)s->offset, (unsigned long long)s->total);
	uint8_t sha[32];
	crypto_hash_sha256_final(&s->hs, sha);
	sodium_bin2hex(s->sha_hex, sizeof(s->sha_hex), sha, sizeof(sha));
	if (ch->sha256.len != sizeof(sha))
		return byol_err(err, -EPROTO, "the last chunk carries a sha256 of %zu bytes, not 32",
				ch->sha256.len);
	if (sodium_memcmp(sha, ch->sha256.data, sizeof(sha)) != 0) {
		char said[65];
		sodium_bin2hex(said, sizeof(said), ch->sha256.data, sizeof(sha));
		return byol_err(err, -EPROTO, "sha256 mismatch: byold sent %s, the bytes received "
				"hash to %s", said, s->sha_hex);
	}
	return 0;
}

/* fsync of the file, then of its directory. */
static int sync_file(sink *s, char *err)
{
	if (fsync(s->fd) < 0)
		return byol_err(err, -errno, "%s: fsync: %s", s->tmp, strerror(errno));
	int rc = close(s->fd);
	s->fd = -2;             /* closed; the temp file still exists */
	if (rc < 0)
		return byol_err(err, -errno, "%s: close: %s", s->tmp, strerror(errno));
	return 0;
}

static void sync_dir(const char *path)
{
	char copy[PATH_MAX];
	snprintf(copy, sizeof(copy), "%s", path);
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* The downloaded file must be safetensors of the kind asked for. Returns the
 * tensor count, or < 0 with err. */
static int check_safetensors(const char *path, const char *what, char *err)
{
	st_file f;
	char why[BYOL_ERR_LEN];
	int rc = safetensors_read(&f, path, why);
	if (rc < 0)
		return byol_err(err, rc, "the file received is not valid safetensors: %s", why);
	const char *fmt = safetensors_meta(&f, "format");
	const char *want = strcmp(what, "all") == 0 ? "byold-checkpoint-1" : "byold-encoder-1";
	if (!fmt || strcmp(fmt, want) != 0)
		rc = byol_err(err, -EPROTO, "the file received is a '%s', not a '%s'",
			      fmt ? fmt : "safetensors without a format", want);
	for (int i = 0; rc == 0 && strcmp(what, "encoder") == 0 && i < f.nt; i++)
		if (strncmp(f.t[i].name, "encoder.", 8) != 0)
			rc = byol_err(err, -EPROTO, "the encoder file holds tensor '%s'", f.t[i].name);
	if (rc == 0)
		rc = f.nt;
	safetensors_free(&f);
	return rc;
}

static void print_result(int json, const sink *s, uint64_t run, const char *what, int tensors)
{
	if (!json) {
		printf("%s: run %llu step %llu, %s, %llu bytes, %d tensors, sha256 %s\n", s->path,
		       (unsigned long long)run, (unsigned long long)s->step, what,
		       (unsigned long long)s->total, tensors, s->sha_hex);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON_AddStringToObject(o, "path", s->path);
	cJSON_AddNumberToObject(o, "run_id", (double)run);
	cJSON_AddNumberToObject(o, "step", (double)s->step);
	cJSON_AddStringToObject(o, "what", what);
	cJSON_AddNumberToObject(o, "bytes", (double)s->total);
	cJSON_AddNumberToObject(o, "tensors", tensors);
	cJSON_AddStringToObject(o, "sha256", s->sha_hex);
	char *txt = cJSON_PrintUnformatted(o);
	if (txt)
		printf("%s\n", txt);
	free(txt);
	cJSON_Delete(o);
}

/* Sends the request and receives the stream into s. */
static int receive(rpc *r, const Byol__ExportRequest *q, sink *s)
{
	char err[BYOL_ERR_LEN];
	Byol__Envelope e = BYOL__ENVELOPE__INIT, *m;
	e.msg_case = BYOL__ENVELOPE__MSG_EXPORT_REQUEST;
	e.export_request = (Byol__ExportRequest *)q;
	int rc = rpc_send(r, &e, err);
	while (rc == 0 && !s->done) {
		if ((rc = rpc_recv(r, &m, 0, err)) < 0)
			break;
		if (m->msg_case == BYOL__ENVELOPE__MSG_ERROR) {
			fprintf(stderr, "byolctl: byold: %s\n", m->error->message);
			return EX_NO;
		}
		if (m->msg_case != BYOL__ENVELOPE__MSG_EXPORT_CHUNK) {
			fprintf(stderr, "byolctl: export: unexpected answer from byold at %s "
				"(message %d)\n", rpc_address(r), (int)m->msg_case);
			return EX_NO;
		}
		if ((rc = sink_add(s, m->export_chunk, err)) < 0) {
			fprintf(stderr, "byolctl: export of run %llu from %s: %s\n",
				(unsigned long long)q->run_id, rpc_address(r), err);
			return EX_NO;
		}
	}
	if (rc < 0) {
		if (s->chunks)
			fprintf(stderr, "byolctl: export of run %llu: %s (after %llu of %llu bytes)\n",
				(unsigned long long)q->run_id, err, (unsigned long long)s->offset,
				(unsigned long long)s->total);
		else
			fprintf(stderr, "byolctl: %s\n", err);
		return cli_unreachable_code(rc);
	}
	return EX_OK;
}

static int export_main(const target *t, int argc, char **argv)
{
	Byol__ExportRequest q = BYOL__EXPORT_REQUEST__INIT;
	const char *run = NULL, *out = NULL, *what = "encoder";
	char err[BYOL_ERR_LEN];
	int json = t->json;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		int more = i + 1 < argc;
		if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && more)
			out = argv[++i];
		else if (strcmp(a, "--what") == 0 && more)
			what = argv[++i];
		else if (strcmp(a, "--step") == 0 && more) {
			if (cli_parse_id(argv[++i], &q.step) < 0) {
				fprintf(stderr, "byolctl export: --step '%s' is not a positive step\n",
					argv[i]);
				return EX_USAGE;
			}
		} else if (strcmp(a, "--chunk-bytes") == 0 && more) {
			uint64_t v;
			if (cli_parse_id(argv[++i], &v) < 0 || v > UINT32_MAX) {
				fprintf(stderr, "byolctl export: --chunk-bytes '%s' is not a size\n",
					argv[i]);
				return EX_USAGE;
			}
			q.chunk_bytes = (uint32_t)v;
		} else if (strcmp(a, "--json") == 0)
			json = 1;
		else if (!run && a[0] != '-')
			run = a;
		else
			return cli_bad_usage(&cmd_export, a);
	}
	if (!run || cli_parse_id(run, &q.run_id) < 0) {
		fprintf(stderr, "byolctl export: expected a run id\n");
		return cli_bad_usage(&cmd_export, NULL);
	}
	if (!out || !out[0]) {
		fprintf(stderr, "byolctl export: -o FILE is required\n");
		return cli_bad_usage(&cmd_export, NULL);
	}
	if (strcmp(what, "encoder") != 0 && strcmp(what, "all") != 0) {
		fprintf(stderr, "byolctl export: --what '%s': expected encoder or all\n", what);
		return EX_USAGE;
	}
	q.what = (char *)what;
	sink s;
	if (sink_open(&s, out, err) < 0) {
		fprintf(stderr, "byolctl export: %s\n", err);
		return EX_USAGE;
	}
	rpc *r;
	int ex = cli_connect(t, &r);
	if (ex != EX_OK)
		return ex;
	ex = receive(r, &q, &s);
	rpc_close(r);
	if (ex != EX_OK) {
		sink_discard(&s);
		return ex;
	}
	int tensors = -1;
	if (sync_file(&s, err) < 0 || (tensors = check_safetensors(s.tmp, what, err)) < 0)
		goto fail;
	if (rename(s.tmp, out) < 0) {
		byol_err(err, -errno, "cannot rename %s to %s: %s", s.tmp, out, strerror(errno));
		goto fail;
	}
	keep_after_signals();
	sync_dir(out);
	print_result(json, &s, q.run_id, what, tensors);
	return EX_OK;
fail:
	fprintf(stderr, "byolctl export: %s\n", err);
	unlink(s.tmp);
	return EX_NO;
}

const cli_command cmd_export = {
	"export", export_main,
	"export RUN [--what encoder|all] [--step K] -o FILE.safetensors",
	"Download a run's checkpoint (or its encoder alone), hash-verified.",
	"  --what encoder   the online encoder's tensors (\"encoder.*\") with its BN\n"
	"                   statistics, loadable on its own (the default)\n"
	"  --what all       the checkpoint file exactly as byold stored it\n"
	"  --step K         the checkpoint at step K (default: the latest)\n"
	"  -o FILE          where to write it; FILE.tmp is used until every check passed\n"
	"  --chunk-bytes N  bytes per chunk asked of byold (4 KiB .. 4 MiB; default 1 MiB)\n"
	"  --json           print the result as one JSON object\n"
	"Exit status 1 when byold refuses (unknown run, no checkpoint) or the download\n"
	"does not verify (offsets, size, sha256, safetensors); FILE is then untouched.\n",
};

/*
 * byold — the coordinator daemon: options, start-up, the listeners, signals, the
 * cron timer and shutdown. The rest lives in workers.c, coord.c, ckpt.c,
 * evals.c and clients.c (see byold.h).
 */
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "byol/auth.h"
#include "byol/frame.h"
#include "byol/pool.h"
#include "byold.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: byold [--config FILE] [--state-dir DIR] [--listen HOST:PORT]\n"
		"             [--socket PATH] [--token-file FILE] [--log-level LEVEL]\n"
		"\n"
		"The byold coordinator: keeps experiments and runs in STATE_DIR/byold.db,\n"
		"hands shards to byol-worker processes, applies their gradients, checkpoints\n"
		"to STATE_DIR/runs/<id>/, and answers byolctl. Stops at a step boundary on\n"
		"SIGTERM or SIGINT. Listening sockets passed by systemd (socket activation,\n"
		"byold.socket) replace --socket (a Unix one) and --listen (a TCP one).\n"
		"\n"
		"  --config FILE      daemon configuration (INI, section [byold])\n"
		"  --state-dir DIR    state directory (key state_dir)\n"
		"  --listen H:P       TCP address (key listen); none = no TCP\n"
		"  --socket PATH      Unix socket (key socket); none = no socket\n"
		"  --token-file FILE  cluster token (key token_file); without one, the\n"
		"                     credential $CREDENTIALS_DIRECTORY/token when present\n"
		"  --log-level L      debug, info, warn or error (key log_level)\n"
		"  --help             this text and the configuration keys\n"
		"  --version          print the version\n"
		"\n"
		"Configuration keys (command line options win over the file):\n");
	dconf_print_help(f);
}

void send_error(conn *c, int code, const char *fmt, ...)
{
	char msg[BYOL_ERR_LEN], err[BYOL_ERR_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	Byol__Error er = BYOL__ERROR__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	er.code = code;
	er.message = msg;
	e.msg_case = BYOL__ENVELOPE__MSG_ERROR;
	e.error = &er;
	if (conn_send(c, &e, err) < 0)
		dlog(DLOG_DEBUG, "conn %llu: cannot send an Error: %s",
		     (unsigned long long)conn_id(c), err);
}

/* ---- conn callbacks: dispatch by role ---- */

static void on_open(conn *c)
{
	byold *d = conn_owner(c);
	if (d->shut) {
		conn_close(c, 0, NULL);
		return;
	}
	if (conn_role(c) == AUTH_ROLE_WORKER)
		worker_open(d, c);
	else
		dlog(DLOG_DEBUG, "conn %llu %s: client %s connected", (unsigned long long)conn_id(c),
		     conn_peer(c), conn_name(c));
}

static void on_message(conn *c, Byol__Envelope *e)
{
	byold *d = conn_owner(c);
	if (conn_role(c) == AUTH_ROLE_WORKER) {
		worker *w = conn_data(c);
		if (w)
			worker_message(d, w, e);
	} else {
		client_message(d, c, e);
	}
}

static void on_close(conn *c, int code, const char *reason)
{
	byold *d = conn_owner(c);
	if (conn_role(c) == AUTH_ROLE_WORKER) {
		worker *w = conn_data(c);
		if (w)
			worker_closed(d, w, code, reason);
	} else {
		client_closed(d, c, code, reason);
	}
}

static void on_high_water(conn *c)
{
	worker *w = conn_role(c) == AUTH_ROLE_WORKER ? conn_data(c) : NULL;
	if (w)
		w->congested = 1;
	else if (conn_role(c) == AUTH_ROLE_CLIENT)
		client_congested(conn_owner(c), c, 1);
}

static void on_drain(conn *c)
{
	worker *w = conn_role(c) == AUTH_ROLE_WORKER ? conn_data(c) : NULL;
	if (w) {
		w->congested = 0;
		coord_worker_free(conn_owner(c), w);
	} else if (conn_role(c) == AUTH_ROLE_CLIENT)
		client_congested(conn_owner(c), c, 0);
}

/* Why connections closed, and the like: capped over all connections, so that a
 * flood of bad connections cannot fill the log. */
#define CONN_LOG_BURST 200
#define CONN_LOG_WINDOW_S 10.0

static void conn_log(void *data, const char *line)
{
	static dlog_cap cap;
	(void)data;
	if (dlog_capped(&cap, CONN_LOG_BURST, CONN_LOG_WINDOW_S, "connections"))
		dlog(DLOG_WARN, "%s", line);
}

/* ---- timer and signals ---- */

static void on_cron(uv_timer_t *t)
{
	byold *d = t->data;
	workers_cron(d);
	coord_cron(d);
	watch_cron(d);
	run *r = d->run;
	if (r && r->phase != RUN_SETUP)
		sd_notifyf(0, "STATUS=run %lld %s: step %ld/%ld", (long long)r->id, r->name, r->k,
			   r->plan.total_steps);
	else if (!r)
		sd_notify(0, "STATUS=idle");
}

/* WatchdogSec= of the unit: the loop pings at a third of it, from a timer that
 * does not keep the loop alive, so a loop that stops turning is what systemd
 * sees. */
static uv_timer_t watchdog;

static void on_watchdog(uv_timer_t *t)
{
	sd_notify(0, "WATCHDOG=1");
}

static void watchdog_start(uv_loop_t *loop)
{
	uint64_t usec;
	if (sd_watchdog_enabled(0, &usec) <= 0)
		return;
	uint64_t ms = usec / 3000 ? usec / 3000 : 1;
	uv_timer_init(loop, &watchdog);
	uv_timer_start(&watchdog, on_watchdog, ms, ms);
	uv_unref((uv_handle_t *)&watchdog);
	dlog(DLOG_INFO, "systemd watchdog of %llu ms: pinged every %llu ms",
	     (unsigned long long)(usec / 1000), (unsigned long long)ms);
}

static void watchdog_close(uv_loop_t *loop)
{
	if (!uv_is_active((uv_handle_t *)&watchdog))
		return;
	uv_close((uv_handle_t *)&watchdog, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
}

static void on_signal(uv_signal_t *s, int signum)
{
	byold *d = s->data;
	if (d->stopping) {
		dlog(DLOG_WARN, "%s: already stopping", strsignal(signum));
		return;
	}
	dlog(DLOG_INFO, "%s: stopping at a step boundary", strsignal(signum));
	sd_notify(0, "STOPPING=1");
	coord_stop(d);
}

void byold_shutdown(byold *d)
{
	if (d->shut)
		return;
	d->shut = 1;
	dlog(DLOG_INFO, "closing connections");
	if (d->tcp)
		conn_server_close(d->tcp);
	if (d->unix_sock)
		conn_server_close(d->unix_sock);
	d->tcp = d->unix_sock = NULL;
	uv_close((uv_handle_t *)&d->cron, NULL);
	uv_close((uv_handle_t *)&d->sigterm, NULL);
	uv_close((uv_handle_t *)&d->sigint, NULL);
}

/* ---- start-up ---- */

/* Under systemd, LoadCredential=token:/etc/byold/token puts the token in
 * $CREDENTIALS_DIRECTORY/token: the daemon takes it when no token file is set. */
static void token_from_credentials(dconf *c)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	char path[DCONF_STR_LEN];
	if (c->token_file[0] || !dir || !dir[0])
		return;
	if (snprintf(path, sizeof(path), "%s/token", dir) >= (int)sizeof(path) ||
	    access(path, F_OK) < 0)
		return;
	memcpy(c->token_file, path, sizeof(path));
}

/* Socket activation: the listening sockets systemd passes (byold.socket) take
 * the place of the ones the config names — a Unix socket that of `socket`, a
 * TCP one that of `listen`. At most one of each. */
static int listen_from_systemd(byold *d, const conn_config *cc, char *err)
{
	int n = sd_listen_fds(1);
	if (n < 0)
		return byol_err(err, n, "the sockets from systemd: %s", strerror(-n));
	for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; fd++) {
		conn_server *s;
		int rc = conn_listen_fd(d->loop, fd, cc, &s, err);
		if (rc < 0)
			return rc;
		int is_unix = conn_server_port(s) < 0;
		conn_server **slot = is_unix ? &d->unix_sock : &d->tcp;
		if (*slot) {
			conn_server_close(s);
			return byol_err(err, -EINVAL, "systemd passed more than one %s socket "
					"(fd %d): byold takes one of each", is_unix ? "Unix" : "TCP",
					fd);
		}
		*slot = s;
		if (is_unix)
			dlog(DLOG_INFO, "listening on unix:%s (from systemd, fd %d)",
			     conn_server_address(s), fd);
		else
			dlog(DLOG_INFO, "listening on %s (from systemd, fd %d)%s",
			     conn_server_address(s), fd,
			     d->token ? ", token required" : ", no token");
	}
	return 0;
}

static int start(byold *d, char *err)
{
	char path[BYOLD_PATH_LEN];
	int rc;
	if (d->cfg.token_file[0]) {
		if ((rc = auth_token_load(d->cfg.token_file, &d->token, NULL, err)) < 0)
			return rc;
		dlog(DLOG_INFO, "cluster token from %s", d->cfg.token_file);
	} else if ((rc = auth_init(err)) < 0) {
		return rc;
	}
	if ((rc = make_dirs(d->cfg.state_dir, err)) < 0)
		return rc;
	snprintf(path, sizeof(path), "%s/runs", d->cfg.state_dir);
	if ((rc = make_dirs(path, err)) < 0)
		return rc;
	snprintf(path, sizeof(path), "%s/byold.db", d->cfg.state_dir);
	if ((rc = store_open(&d->db, path, err)) < 0)
		return rc;
	if (!(d->apply_pool = pool_new(d->cfg.apply_threads)))
		return byol_err(err, -ENOMEM, "cannot start %d apply threads", d->cfg.apply_threads);

	conn_config cc = {
		.token = d->token,
		.version = BYOLD_VERSION,
		.max_frame = (size_t)d->cfg.max_frame_mb << 20,
		.data = d,
		.shm = d->cfg.shared_memory,
		.on_open = on_open,
		.on_message = on_message,
		.on_close = on_close,
		.on_high_water = on_high_water,
		.on_drain = on_drain,
		.log = conn_log,
	};
	if ((rc = listen_from_systemd(d, &cc, err)) < 0)
		return rc;
	const char *listen = d->cfg.listen;
	if (!d->tcp && listen[0] && strcmp(listen, "none") != 0) {
		if ((rc = conn_listen_tcp(d->loop, listen, &cc, &d->tcp, err)) < 0)
			return rc;
		dlog(DLOG_INFO, "listening on %s (port %d)%s", listen, conn_server_port(d->tcp),
		     d->token ? ", token required" : ", no token");
	}
	dconf_socket_path(&d->cfg, path);
	if (!d->unix_sock && path[0]) {
		if ((rc = conn_listen_pipe(d->loop, path, &cc, &d->unix_sock, err)) < 0)
			return rc;
		dlog(DLOG_INFO, "listening on unix:%s", path);
	}
	if (!d->tcp && !d->unix_sock)
		return byol_err(err, -EINVAL, "neither a TCP address nor a socket to listen on");

	uv_timer_init(d->loop, &d->cron);
	d->cron.data = d;
	uv_timer_start(&d->cron, on_cron, (uint64_t)d->cfg.heartbeat_ms,
		       (uint64_t)d->cfg.heartbeat_ms);
	uv_signal_init(d->loop, &d->sigterm);
	uv_signal_init(d->loop, &d->sigint);
	d->sigterm.data = d->sigint.data = d;
	uv_signal_start(&d->sigterm, on_signal, SIGTERM);
	uv_signal_start(&d->sigint, on_signal, SIGINT);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, 0, 'c'},
		{"state-dir", required_argument, 0, 'd'},
		{"listen", required_argument, 0, 'l'},
		{"socket", required_argument, 0, 's'},
		{"token-file", required_argument, 0, 't'},
		{"log-level", required_argument, 0, 'L'},
		{"help", no_argument, 0, 'h'},
		{"version", no_argument, 0, 'V'},
		{0, 0, 0, 0},
	};
	static const char *const keys[] = {
		['d'] = "state_dir", ['l'] = "listen", ['s'] = "socket",
		['t'] = "token_file", ['L'] = "log_level",
	};
	const char *config_path = NULL;
	const char *sets[128][2];
	int nsets = 0, c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config_path = optarg; break;
		case 'd': case 'l': case 's': case 't': case 'L':
			if (nsets < 128) {
				sets[nsets][0] = keys[c];
				sets[nsets++][1] = optarg;
			}
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("%s\n", BYOLD_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	static byold d;
	char err[BYOL_ERR_LEN] = "";
	dconf_defaults(&d.cfg);
	if (config_path && dconf_parse_file(&d.cfg, config_path, err) < 0) {
		fprintf(stderr, "byold: %s\n", err);
		return 1;
	}
	for (int i = 0; i < nsets; i++)
		if (dconf_set(&d.cfg, sets[i][0], sets[i][1], err) < 0) {
			fprintf(stderr, "byold: command line: %s\n", err);
			return 1;
		}
	token_from_credentials(&d.cfg);
	dlog_set_level(d.cfg.log_level);
	d.loop = uv_default_loop();
	d.started_ms = wall_ms();
	d.next_job_id = 1;
	if (start(&d, err) < 0) {
		dlog(DLOG_ERROR, "%s", err);
		sd_notifyf(0, "STATUS=start-up failed: %s", err);
		if (d.tcp)
			conn_server_close(d.tcp);
		if (d.unix_sock)
			conn_server_close(d.unix_sock);
		uv_run(d.loop, UV_RUN_DEFAULT);
		store_close(d.db);
		pool_free(d.apply_pool);
		auth_token_free(d.token);
		return 1;
	}
	dlog(DLOG_INFO, "%s started: state in %s, pid %d", BYOLD_VERSION, d.cfg.state_dir,
	     (int)getpid());
	/* the listeners are up: clients and workers can connect from here on */
	sd_notify(0, "READY=1\nSTATUS=idle");
	watchdog_start(d.loop);
	coord_kick(&d);
	uv_run(d.loop, UV_RUN_DEFAULT);
	watchdog_close(d.loop);

	if (d.workers)
		dlog(DLOG_WARN, "workers left in the registry at exit");
	store_close(d.db);
	pool_free(d.apply_pool);
	auth_token_free(d.token);
	int rc = uv_loop_close(d.loop);
	if (rc < 0)
		dlog(DLOG_WARN, "loop closed with handles left: %s", uv_strerror(rc));
	dlog(DLOG_INFO, "stopped");
	return d.exit_code;
}

/*
 * conn_net.c — making conns: configs, servers (TCP and Unix sockets, accepting),
 * clients (connecting, resolving names) and addresses. See include/byol/conn.h
 * for the contract and conn.c for a conn's life once made.
 */
#include "byol/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "byol/auth.h"
#include "byol/frame.h"
#include "conn_internal.h"

static uint64_t next_id; /* conns may live on loops in several threads */

/* A write to a peer that has gone raises SIGPIPE, which would end the process:
 * ignore it, unless the program has chosen a handler of its own. */
static void ignore_sigpipe(void)
{
	struct sigaction sa;
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
		sa.sa_handler = SIG_IGN;
		sigaction(SIGPIPE, &sa, NULL);
	}
}

/* ---- config --------------------------------------------------------------- */

void conn_cfg_free(config_copy *k)
{
	if (k->token) {
		memset(k->token, 0, k->toklen);
		free(k->token);
	}
	free(k->name);
	free(k->version);
	memset(k, 0, sizeof(*k));
}

static int config_copy_in(config_copy *k, const conn_config *cfg, char *err)
{
	int has_token = cfg->token && cfg->token[0];
	int rc;
	memset(k, 0, sizeof(*k));
	if (has_token && (rc = auth_token_check(cfg->token, "conn config", err)) < 0)
		return rc;
	if (cfg->name && strlen(cfg->name) > CONN_NAME_MAX)
		return byol_err(err, -EINVAL, "name \"%.80s\" is longer than %d bytes",
				cfg->name, CONN_NAME_MAX);
	if ((rc = auth_init(err)) < 0)
		return rc;
	ignore_sigpipe();
	k->c = *cfg;
	if (!k->c.max_frame || k->c.max_frame > FRAME_MAX_LIMIT)
		k->c.max_frame = k->c.max_frame ? FRAME_MAX_LIMIT : FRAME_MAX_DEFAULT;
	if (!k->c.high_water)
		k->c.high_water = CONN_HIGH_WATER_DEFAULT;
	if (!k->c.handshake_ms)
		k->c.handshake_ms = CONN_HANDSHAKE_MS_DEFAULT;
	k->token = has_token ? strdup(cfg->token) : NULL;
	k->toklen = has_token ? strlen(cfg->token) : 0;
	k->name = strdup(cfg->name ? cfg->name : "");
	k->version = strdup(cfg->version ? cfg->version : "byold");
	if ((has_token && !k->token) || !k->name || !k->version) {
		conn_cfg_free(k);
		return byol_err(err, -ENOMEM, "out of memory");
	}
	k->c.token = k->token;
	k->c.name = k->name;
	k->c.version = k->version;
	return 0;
}

/* ---- creation --------------------------------------------------------------- */

static conn *conn_new(uv_loop_t *loop, int is_pipe, char *err)
{
	conn *c = calloc(1, sizeof(*c));
	if (!c) {
		byol_err(err, -ENOMEM, "out of memory for a connection");
		return NULL;
	}
	/* pipes in IPC mode: a shared-memory ring's descriptor comes along with
	 * its ShmRegion (conn_shm.c) */
	int rc = is_pipe ? uv_pipe_init(loop, &c->h.pipe, 1) : uv_tcp_init(loop, &c->h.tcp);
	if (rc < 0) {
		free(c);
		byol_err(err, rc, "cannot create a socket: %s", uv_strerror(rc));
		return NULL;
	}
	uv_timer_init(loop, &c->timer); /* cannot fail */
	c->h.handle.data = c;
	c->timer.data = c;
	c->handles = 2;
	c->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
	frame_reader_init(&c->rd, 0); /* given the config's limit once known */
	frame_arena_init(&c->arena);
	return c;
}

/* ---- servers ---------------------------------------------------------------- */

void conn_server_maybe_free(conn_server *s)
{
	if (s->listener_closed && !s->conns) {
		conn_cfg_free(&s->cfg);
		free(s);
	}
}

static void on_listener_closed(uv_handle_t *h)
{
	conn_server *s = h->data;
	s->listener_closed = 1;
	conn_server_maybe_free(s);
}

/* The peer of an accepted conn, for messages. */
static void describe_peer(conn *c)
{
	if (c->srv->is_pipe) {
		struct ucred cr;
		socklen_t len = sizeof(cr);
		uv_os_fd_t fd;
		if (uv_fileno(&c->h.handle, &fd) == 0 &&
		    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0)
			snprintf(c->peer, sizeof(c->peer), "unix:%.120s (pid %d)", c->srv->addr,
				 (int)cr.pid);
		else
			snprintf(c->peer, sizeof(c->peer), "unix:%.120s", c->srv->addr);
		return;
	}
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	char ip[64] = "?";
	int port = 0;
	if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) == 0) {
		uv_ip_name((struct sockaddr *)&ss, ip, sizeof(ip));
		port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						      : ((struct sockaddr_in *)&ss)->sin_port);
	}
	snprintf(c->peer, sizeof(c->peer), ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d",
		 ip, port);
}

static void on_connection(uv_stream_t *ls, int status)
{
	conn_server *s = ls->data;
	char err[BYOL_ERR_LEN];
	if (status < 0) {
		conn_logf(&s->cfg.c, "%s: accept failed: %s", s->addr, uv_strerror(status));
		return;
	}
	conn *c = conn_new(ls->loop, s->is_pipe, err);
	if (!c) {
		conn_logf(&s->cfg.c, "%s: %s", s->addr, err);
		return;
	}
	c->is_server = 1;
	c->srv = s;
	c->cfg = &s->cfg;
	frame_reader_init(&c->rd, conn_handshake_max(&s->cfg.c));
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	snprintf(c->peer, sizeof(c->peer), "%.120s", s->addr);
	int rc = uv_accept(ls, &c->h.stream);
	if (rc < 0) {
		snprintf(err, sizeof(err), "accept failed: %s", uv_strerror(rc));
		conn_close_now(c, rc, err, 1, 0);
		return;
	}
	describe_peer(c);
	if (!s->is_pipe)
		uv_tcp_nodelay(&c->h.tcp, 1);
	uv_timer_start(&c->timer, conn_timer_cb, s->cfg.c.handshake_ms, 0);
	if ((rc = conn_start_reading(c, err)) < 0) {
		conn_close_error(c, rc, err);
		return;
	}
	conn_send_hello(c);
}

static int parse_hostport(const char *s, char *host, size_t hostlen, int *port, char *err);
static int resolve_now(uv_loop_t *loop, const char *host, int port,
		       struct sockaddr_storage *ss, char *err);

/* Makes the server struct with its listener handle initialised. */
static conn_server *server_new(uv_loop_t *loop, int is_pipe, const char *addr,
			       const conn_config *cfg, int *rc, char *err)
{
	conn_server *s = calloc(1, sizeof(*s));
	if (!s) {
		*rc = byol_err(err, -ENOMEM, "out of memory");
		return NULL;
	}
	if ((*rc = config_copy_in(&s->cfg, cfg, err)) < 0) {
		free(s);
		return NULL;
	}
	s->is_pipe = is_pipe;
	snprintf(s->addr, sizeof(s->addr), "%s", addr);
	*rc = is_pipe ? uv_pipe_init(loop, &s->h.pipe, 0) : uv_tcp_init(loop, &s->h.tcp);
	if (*rc < 0) {
		byol_err(err, *rc, "%s: cannot create a socket: %s", addr, uv_strerror(*rc));
		conn_cfg_free(&s->cfg);
		free(s);
		return NULL;
	}
	s->h.handle.data = s;
	return s;
}

/* A listener that failed after its handle was made: close it (freeing s). */
static int server_fail(conn_server *s, int rc)
{
	s->closing = 1;
	uv_close(&s->h.handle, on_listener_closed);
	return rc;
}

static int is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return 0;
}

int conn_listen_tcp(uv_loop_t *loop, const char *hostport, const conn_config *cfg,
		    conn_server **out, char *err)
{
	char host[128];
	int port, rc;
	struct sockaddr_storage ss;
	*out = NULL;
	if ((rc = parse_hostport(hostport, host, sizeof(host), &port, err)) < 0 ||
	    (rc = resolve_now(loop, host, port, &ss, err)) < 0)
		return rc;
	if (!(cfg->token && cfg->token[0]) && !is_loopback((struct sockaddr *)&ss))
		return byol_err(err, -EPERM, "%s: refusing to listen beyond loopback "
				"without a token", hostport);
	conn_server *s = server_new(loop, 0, hostport, cfg, &rc, err);
	if (!s)
		return rc;
	if ((rc = uv_tcp_bind(&s->h.tcp, (struct sockaddr *)&ss, 0)) < 0 ||
	    (rc = uv_listen(&s->h.stream, 128, on_connection)) < 0) {
		byol_err(err, rc, "%s: cannot listen: %s", hostport, uv_strerror(rc));
		return server_fail(s, rc);
	}
	*out = s;
	return 0;
}

int conn_listen_pipe(uv_loop_t *loop, const char *path, const conn_config *cfg,
		     conn_server **out, char *err)
{
	struct sockaddr_un sun;
	struct stat st;
	int rc;
	*out = NULL;
	if (strlen(path) >= sizeof(sun.sun_path))
		return byol_err(err, -ENAMETOOLONG, "%s: socket path too long", path);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		/* someone accepting there? if not, it is stale: replace it */
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		memcpy(sun.sun_path, path, strlen(path));
		int live = fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
		if (fd >= 0)
			close(fd);
		if (live)
			return byol_err(err, -EADDRINUSE, "%s: another server is listening "
					"there", path);
		unlink(path);
	}
	conn_server *s = server_new(loop, 1, path, cfg, &rc, err);
	if (!s)
		return rc;
	if ((rc = uv_pipe_bind(&s->h.pipe, path)) < 0) {
		byol_err(err, rc, "%s: cannot bind: %s", path, uv_strerror(rc));
		return server_fail(s, rc);
	}
	/* owner only, before anyone can connect */
	if (chmod(path, 0600) < 0) {
		rc = byol_err(err, -errno, "%s: chmod: %s", path, strerror(errno));
		unlink(path);
		return server_fail(s, rc);
	}
	if ((rc = uv_listen(&s->h.stream, 128, on_connection)) < 0) {
		byol_err(err, rc, "%s: cannot listen: %s", path, uv_strerror(rc));
		unlink(path);
		return server_fail(s, rc);
	}
	*out = s;
	return 0;
}

/* The address fd is bound to, as text ("127.0.0.1:7070", "[::1]:7070", or the
 * socket's path) into out; its family, or -errno. */
static int fd_address(int fd, char *out, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	memset(&ss, 0, sizeof(ss));
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_UNIX) {
		const struct sockaddr_un *sun = (const struct sockaddr_un *)&ss;
		size_t plen = len > offsetof(struct sockaddr_un, sun_path)
				      ? len - offsetof(struct sockaddr_un, sun_path) : 0;
		snprintf(out, n, "%.*s", (int)strnlen(sun->sun_path, plen), sun->sun_path);
	} else if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(out, n, "%s:%d", host, ntohs(in->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(out, n, "[%s]:%d", host, ntohs(in6->sin6_port));
	}
	return ss.ss_family;
}

int conn_listen_fd(uv_loop_t *loop, int fd, const conn_config *cfg, conn_server **out,
		   char *err)
{
	char addr[160] = "";
	int type = 0, listening = 0, rc;
	socklen_t len = sizeof(type);
	*out = NULL;
	int family = fd_address(fd, addr, sizeof(addr));
	if (family < 0)
		return byol_err(err, family, "fd %d: not a socket: %s", fd, strerror(-family));
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM ||
	    (len = sizeof(listening),
	     getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0) || !listening)
		return byol_err(err, -EINVAL, "fd %d (%s): not a listening stream socket", fd,
				addr[0] ? addr : "no address");
	if (family != AF_UNIX && family != AF_INET && family != AF_INET6)
		return byol_err(err, -EAFNOSUPPORT, "fd %d: a socket of family %d, not Unix, "
				"IPv4 or IPv6", fd, family);
	if (family != AF_UNIX && !(cfg->token && cfg->token[0])) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
		    !is_loopback((struct sockaddr *)&ss))
			return byol_err(err, -EPERM, "%s: refusing to listen beyond loopback "
					"without a token", addr);
	}
	conn_server *s = server_new(loop, family == AF_UNIX, addr, cfg, &rc, err);
	if (!s)
		return rc;
	s->adopted = 1;
	rc = s->is_pipe ? uv_pipe_open(&s->h.pipe, fd) : uv_tcp_open(&s->h.tcp, fd);
	if (rc < 0 || (rc = uv_listen(&s->h.stream, 128, on_connection)) < 0) {
		byol_err(err, rc, "%s (fd %d): cannot listen: %s", addr, fd, uv_strerror(rc));
		return server_fail(s, rc);
	}
	*out = s;
	return 0;
}

const char *conn_server_address(const conn_server *s)
{
	return s->addr;
}

int conn_server_port(const conn_server *s)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	if (s->is_pipe || uv_tcp_getsockname(&s->h.tcp, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					      : ((struct sockaddr_in *)&ss)->sin_port);
}

void conn_server_close(conn_server *s)
{
	if (s->closing)
		return;
	s->closing = 1;
	if (s->is_pipe && !s->adopted)
		unlink(s->addr);
	/* the last conn to go may free s unless the listener is still open */
	uv_close(&s->h.handle, on_listener_closed);
	for (conn *c = s->conns, *next; c; c = next) {
		next = c->next;
		if (c->opened)
			conn_close_orderly(c, "server shutting down");
		else
			conn_close_now(c, -ECANCELED, "server shutting down", 0, 1);
	}
}

/* ---- clients ------------------------------------------------------------------ */

static void connect_done(uv_connect_t *req, int status)
{
	conn *c = req->handle->data;
	char r[BYOL_ERR_LEN];
	if (c->closing)
		return;
	if (status < 0) {
		snprintf(r, sizeof(r), "cannot connect: %s", uv_strerror(status));
		conn_close_now(c, status, r, 1, 0);
		return;
	}
	if (c->h.handle.type == UV_TCP)
		uv_tcp_nodelay(&c->h.tcp, 1);
	c->state = ST_AWAIT_HELLO;
	int rc = conn_start_reading(c, r);
	if (rc < 0)
		conn_close_error(c, rc, r);
}

static void resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
	resolve *res = req->data;
	conn *c = res->c;
	char r[BYOL_ERR_LEN];
	if (c && !c->closing) {
		c->res = NULL;
		if (status < 0 || !ai) {
			snprintf(r, sizeof(r), "cannot resolve %s: %s", res->host,
				 uv_strerror(status));
			conn_close_now(c, status < 0 ? status : -ENOENT, r, 1, 0);
		} else {
			int rc = uv_tcp_connect(&c->connect_req, &c->h.tcp, ai->ai_addr,
						connect_done);
			if (rc < 0) {
				snprintf(r, sizeof(r), "cannot connect: %s", uv_strerror(rc));
				conn_close_now(c, rc, r, 1, 0);
			}
		}
	} else if (c) {
		c->res = NULL;
	}
	uv_freeaddrinfo(ai);
	free(res);
}

/* The common start of a client conn. */
static conn *client_new(uv_loop_t *loop, int is_pipe, const char *peer,
			const conn_config *cfg, conn_connect_cb cb, int *rc, char *err)
{
	if (cfg->role != AUTH_ROLE_WORKER && cfg->role != AUTH_ROLE_CLIENT) {
		*rc = byol_err(err, -EINVAL, "%s: a connection's role must be worker or "
			       "client, not %d", peer, cfg->role);
		return NULL;
	}
	config_copy k;
	if ((*rc = config_copy_in(&k, cfg, err)) < 0)
		return NULL;
	conn *c = conn_new(loop, is_pipe, err);
	if (!c) {
		conn_cfg_free(&k);
		*rc = -ENOMEM;
		return NULL;
	}
	c->own = k;
	c->cfg = &c->own;
	frame_reader_init(&c->rd, conn_handshake_max(&k.c));
	c->state = ST_CONNECTING;
	snprintf(c->peer, sizeof(c->peer), "%s%.120s", is_pipe ? "unix:" : "", peer);
	uv_timer_start(&c->timer, conn_timer_cb, k.c.handshake_ms, 0);
	c->connect_cb = cb;
	return c;
}

int conn_connect_tcp(uv_loop_t *loop, const char *hostport, const conn_config *cfg,
		     conn_connect_cb cb, conn **out, char *err)
{
	char host[128];
	int port, rc;
	struct sockaddr_storage ss;
	if (out)
		*out = NULL;
	if ((rc = parse_hostport(hostport, host, sizeof(host), &port, err)) < 0)
		return rc;
	conn *c = client_new(loop, 0, hostport, cfg, cb, &rc, err);
	if (!c)
		return rc;
	memset(&ss, 0, sizeof(ss));
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0 ||
	    uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0) {
		rc = uv_tcp_connect(&c->connect_req, &c->h.tcp, (struct sockaddr *)&ss,
				    connect_done);
	} else {
		resolve *res = calloc(1, sizeof(*res));
		char portstr[16];
		struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
		snprintf(portstr, sizeof(portstr), "%d", port);
		rc = -ENOMEM;
		if (res) {
			res->c = c;
			res->req.data = res;
			snprintf(res->host, sizeof(res->host), "%s", host);
			rc = uv_getaddrinfo(loop, &res->req, resolved, host, portstr, &hints);
			if (rc < 0)
				free(res);
			else
				c->res = res;
		}
	}
	if (rc < 0) {
		c->connect_cb = NULL; /* a failed call never calls back */
		conn_close_handles(c);
		return byol_err(err, rc, "%s: cannot connect: %s", hostport, uv_strerror(rc));
	}
	if (out)
		*out = c;
	return 0;
}

int conn_connect_pipe(uv_loop_t *loop, const char *path, const conn_config *cfg,
		      conn_connect_cb cb, conn **out, char *err)
{
	struct sockaddr_un sun;
	int rc;
	if (out)
		*out = NULL;
	if (strlen(path) >= sizeof(sun.sun_path))
		return byol_err(err, -ENAMETOOLONG, "%s: socket path too long", path);
	conn *c = client_new(loop, 1, path, cfg, cb, &rc, err);
	if (!c)
		return rc;
	uv_pipe_connect(&c->connect_req, &c->h.pipe, path, connect_done);
	if (out)
		*out = c;
	return 0;
}

/* ---- addresses ---------------------------------------------------------------- */

/* "host:port" or "[v6]:port" into host and port (0..65535). */
static int parse_hostport(const char *s, char *host, size_t hostlen, int *port, char *err)
{
	const char *colon, *h = s;
	size_t n;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return byol_err(err, -EINVAL, "%s: expected [address]:port", s);
		h = s + 1;
		n = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || strchr(s, ':') != colon)
			return byol_err(err, -EINVAL, "%s: expected host:port", s);
		n = (size_t)(colon - s);
	}
	char *end;
	long p = strtol(colon + 1, &end, 10);
	if (n == 0 || n >= hostlen || !colon[1] || *end || p < 0 || p > 65535)
		return byol_err(err, -EINVAL, "%s: expected host:port with a port in "
				"0..65535", s);
	memcpy(host, h, n);
	host[n] = '\0';
	*port = (int)p;
	return 0;
}

/* A numeric address, or a name resolved synchronously (start-up only). */
static int resolve_now(uv_loop_t *loop, const char *host, int port,
		       struct sockaddr_storage *ss, char *err)
{
	memset(ss, 0, sizeof(*ss));
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0 ||
	    uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	uv_getaddrinfo_t req;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	int rc = uv_getaddrinfo(loop, &req, NULL, host, portstr, &hints);
	if (rc < 0)
		return byol_err(err, rc == UV_EAI_NONAME ? -ENOENT : rc,
				"cannot resolve %s: %s", host, uv_strerror(rc));
	memcpy(ss, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
	uv_freeaddrinfo(req.addrinfo);
	return 0;
}

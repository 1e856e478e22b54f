/*
 * conn_shm.c — tensors through shared memory between a conn's two ends when they
 * share a machine and a user: the ShmRegion / ShmAck exchange, the ring each
 * sender copies its tensors into, and the tensors a receiver holds in its
 * peer's ring (proto/byol.proto has the wire side, docs/protocol.md the story).
 *
 * Over a socket, a tensor costs a copy into the kernel and one out of it, in
 * pieces of at most the socket's buffer, each a system call and a wakeup. Here
 * it costs one memcpy into the sender's ring, and a frame of a few dozen bytes
 * says where it lies. The receiver's handler reads it where it lies, and may
 * keep it there (conn_take) until it gives it back (conn_tensor_free), from any
 * thread, even after the conn has gone: the mapping is counted (shm_map). The
 * receiver stores in the ring's header the position up to which the sender may
 * overwrite: the start of the oldest tensor still held, else the end of the
 * last one received; the sender reads that before it writes, and sends an
 * attachment frame when its ring has no room. Nothing but the tensors' bytes
 * passes through the ring: every decision is in frames.
 *
 * A ring is a memfd sealed against shrinking and growing, its pages reserved
 * when it is made (posix_fallocate), so neither a full machine nor the peer can
 * make a mapped page vanish (which would be a SIGBUS, not an error). Its
 * descriptor travels with its ShmRegion over the socket (SCM_RIGHTS: the conn's
 * pipe is in libuv's IPC mode), which works across systemd's private mount and
 * user namespaces and leaves no name anywhere; the peer takes only a sealed
 * memfd of its own user, of the size it was told. A descriptor that comes with
 * anything else is closed.
 *
 * Trust: both ends run as one user (checked with SO_PEERCRED before either
 * offers), which could signal or trace the other anyway. A peer that writes
 * into its ring while the receiver reads spoils only its own tensors; every
 * position read from a frame or the header is checked against the ring first.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn_internal.h"

#define SHM_HEADER ((size_t)4096)
#define SHM_MAGIC 0x31676e69726c6f62ull  /* "bolring1", little-endian */
#define SHM_CONSUMED_AT 64               /* its own cache line */
#define SHM_MIB ((size_t)1 << 20)
#define SHM_HELD_MAX 8                   /* tensors held at once from one ring */
#define SHM_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/* A mapping of a ring, counted: the conn's reference, and one per tensor
 * delivered and not yet given back (the peer's ring) or room reserved and not
 * yet released (this side's). In the process's list while mapped, so
 * conn_tensor_free and conn_shm_release find it from an address. */
typedef struct shm_map {
	struct shm_map *next;
	int refs;
	uint8_t *map;            /* SHM_HEADER + size bytes */
	size_t size;             /* ring bytes */
	uint64_t received;       /* ring position after the last tensor received */
	int n_held;
	struct {
		const uint8_t *p;
		uint64_t start;
	} held[SHM_HELD_MAX];
} shm_map;

static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;
static shm_map *maps;

static uint64_t *consumed_word(uint8_t *map)
{
	return (uint64_t *)(void *)(map + SHM_CONSUMED_AT);
}

/* ---- this side's ring ---------------------------------------------------------- */

static void map_drop(shm_map *m);
static shm_map *map_of(const void *p, int *held);

static void ring_free(shm_ring *s)
{
	map_drop(s->ref);       /* unmapped now, or when the last room goes */
	s->ref = NULL;
	s->room = NULL;
	s->head = 0;
	s->acked = 0;
}

/* ---- the peer's ring --------------------------------------------------------- */

/* Tells the sender how far it may overwrite. Under maps_lock. */
static void map_publish(shm_map *m)
{
	uint64_t free_to = m->received;
	for (int i = 0; i < m->n_held; i++)
		if (m->held[i].start < free_to)
			free_to = m->held[i].start;
	__atomic_store_n(consumed_word(m->map), free_to, __ATOMIC_RELEASE);
}

/* Drops one reference; the last unmaps. Under maps_lock. */
static void map_unref(shm_map *m)
{
	if (--m->refs > 0)
		return;
	for (shm_map **p = &maps; *p; p = &(*p)->next)
		if (*p == m) {
			*p = m->next;
			break;
		}
	munmap(m->map, SHM_HEADER + m->size);
	free(m);
}

/* map_unref, taking the lock. NULL is harmless. */
static void map_drop(shm_map *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&maps_lock);
	map_unref(m);
	pthread_mutex_unlock(&maps_lock);
}

/* A counted mapping of the ring at map (SHM_HEADER + size bytes), put in the
 * process's list with one reference; NULL when out of memory. */
static shm_map *map_register(uint8_t *map, size_t size)
{
	shm_map *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->refs = 1;
	m->map = map;
	m->size = size;
	pthread_mutex_lock(&maps_lock);
	m->next = maps;
	maps = m;
	pthread_mutex_unlock(&maps_lock);
	return m;
}

void conn_shm_free(conn *c)
{
	ring_free(&c->shm_out);
	map_drop(c->shm_in);
	c->shm_in = NULL;
}

int conn_shm_possible(conn *c)
{
	if (!c->cfg->c.shm || c->h.handle.type != UV_NAMED_PIPE)
		return 0;
	struct ucred cr;
	socklen_t len = sizeof(cr);
	uv_os_fd_t fd;
	return uv_fileno(&c->h.handle, &fd) == 0 &&
	       getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && cr.uid == geteuid();
}

/* Shared memory stops for c: tensors go over the socket both ways from here. */
static void give_up(conn *c, const char *why)
{
	conn_log_peer(c, "shared memory off, tensors go over the socket: %s", why);
	c->shm = 0;
	ring_free(&c->shm_out);
}

/* ---- sending ------------------------------------------------------------------ */

/* A sealed memfd of `bytes` bytes, its pages reserved, mapped at *map; the fd,
 * or -1 with why. */
static int make_ring(size_t bytes, uint8_t **map, char *why, size_t n)
{
	int fd = memfd_create("byol-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int rc = fd < 0 ? errno : 0;
	if (!rc && ftruncate(fd, (off_t)bytes) < 0)
		rc = errno;
	if (!rc)
		rc = posix_fallocate(fd, 0, (off_t)bytes);
	if (!rc && fcntl(fd, F_ADD_SEALS, SHM_SEALS) < 0)
		rc = errno;
	void *p = MAP_FAILED;
	if (!rc && (p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
			     0)) == MAP_FAILED)
		rc = errno;
	if (rc) {
		snprintf(why, n, "cannot make a ring of %zu MiB: %s", bytes >> 20, strerror(rc));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*map = p;
	return fd;
}

static void free_handle(uv_handle_t *h)
{
	free(h);
}

/* The ShmRegion's descriptor has been sent (or dropped): close this side's. */
static void fd_sent(void *data, int status)
{
	(void)status;
	uv_close(data, free_handle);
}

/* fd as a handle uv_write2 can send (it owns fd from here), or NULL (fd
 * closed). */
static uv_pipe_t *fd_handle(uv_loop_t *loop, int fd)
{
	uv_pipe_t *h = malloc(sizeof(*h));
	if (!h || uv_pipe_init(loop, h, 0) < 0) {
		free(h);
		close(fd);
		return NULL;
	}
	if (uv_pipe_open(h, fd) < 0) {
		close(fd);
		uv_close((uv_handle_t *)h, free_handle);
		return NULL;
	}
	return h;
}

/* A new ring for tensors of len bytes (two fit, rounded up to a MiB), sent to
 * the peer; used once the peer has answered. */
static void start_ring(conn *c, size_t len)
{
	shm_ring *o = &c->shm_out;
	char why[BYOL_ERR_LEN];
	ring_free(o);
	size_t size = (2 * len + SHM_MIB - 1) / SHM_MIB * SHM_MIB;
	uint8_t *map = NULL;
	int fd = make_ring(SHM_HEADER + size, &map, why, sizeof(why));
	if (fd >= 0 && !(o->ref = map_register(map, size))) {
		munmap(map, SHM_HEADER + size);
		close(fd);
		fd = -1;
		snprintf(why, sizeof(why), "out of memory");
	}
	if (fd < 0) {
		give_up(c, why);
		return;
	}
	uv_pipe_t *fh = fd_handle(c->h.handle.loop, fd);
	if (!fh) {
		give_up(c, "cannot hand the ring's descriptor to libuv");
		return;
	}
	o->id++;
	uint64_t hdr[2] = { SHM_MAGIC, size };
	memcpy(map, hdr, sizeof(hdr));
	Byol__ShmRegion m = BYOL__SHM_REGION__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	m.id = o->id;
	m.size = size;
	e.msg_case = BYOL__ENVELOPE__MSG_SHM_REGION;
	e.shm_region = &m;
	int rc = conn_send_frame_fd(c, &e, (uv_stream_t *)fh, fd_sent, fh, why);
	if (rc < 0) {
		uv_close((uv_handle_t *)fh, free_handle);
		conn_close_error(c, rc, why);
	}
}

void conn_shm_prepare(conn *c, size_t len)
{
	const shm_ring *o = &c->shm_out;
	if (c->shm && len && c->state == ST_OPEN && !c->closing &&
	    (!o->ref || len > o->ref->size / 2))
		start_ring(c, len);
}

/* The next len bytes of c's acknowledged ring, claimed (head moves past them),
 * or NULL when the peer still holds what they would overwrite. */
static uint8_t *ring_claim(shm_ring *o, size_t len)
{
	if (!o->acked || !len || len > o->ref->size)
		return NULL;
	size_t size = o->ref->size;
	uint64_t consumed = __atomic_load_n(consumed_word(o->ref->map), __ATOMIC_ACQUIRE);
	uint64_t pos = o->head;
	size_t off = (size_t)(pos % size);
	if (off + len > size) {
		pos += size - off;      /* a tensor never wraps: start again at 0 */
		off = 0;
	}
	if (consumed > o->head || pos + len - consumed > size)
		return NULL;
	o->head = pos + len;
	return o->ref->map + SHM_HEADER + off;
}

int conn_shm_room_ok(const conn *c, const void *room, size_t len)
{
	const shm_ring *o = &c->shm_out;
	return c->shm && o->acked && room && room == o->room && len == o->room_len &&
	       o->room_ring == o->id;
}

uint64_t conn_shm_put(conn *c, const void *data, size_t len)
{
	shm_ring *o = &c->shm_out;
	if (!c->shm || !len)
		return 0;
	if (conn_shm_room_ok(c, data, len)) {
		o->room = NULL;         /* sent as it lies */
		return o->room_end;
	}
	if (!o->ref || (o->acked && len > o->ref->size / 2)) {
		start_ring(c, len);
		return 0;
	}
	uint8_t *p = ring_claim(o, len);
	if (!p)
		return 0;
	memcpy(p, data, len);
	return o->head;
}

void *conn_shm_reserve(conn *c, size_t len)
{
	shm_ring *o = &c->shm_out;
	uint8_t *p = c->shm && !c->closing ? ring_claim(o, len) : NULL;
	if (!p)
		return NULL;
	o->room = p;
	o->room_len = len;
	o->room_end = o->head;
	o->room_ring = o->id;
	pthread_mutex_lock(&maps_lock);
	o->ref->refs++;
	pthread_mutex_unlock(&maps_lock);
	return p;
}

void conn_shm_release(void *room)
{
	if (!room)
		return;
	int i;
	pthread_mutex_lock(&maps_lock);
	shm_map *m = map_of(room, &i);
	if (m)
		map_unref(m);
	pthread_mutex_unlock(&maps_lock);
}

int conn_shm_on_ack(conn *c, const Byol__ShmAck *m)
{
	char r[BYOL_ERR_LEN], t[200];
	shm_ring *o = &c->shm_out;
	if (!o->id || m->id != o->id || o->acked) {
		snprintf(r, sizeof(r), "shm_ack %u, but no region of this side waits for one",
			 m->id);
		return conn_close_error(c, -EPROTO, r);
	}
	if (!o->ref)
		return 0;       /* given up on since (the peer's ring would not map) */
	if (m->error[0]) {
		snprintf(r, sizeof(r), "the peer says: %s", conn_clean(t, sizeof(t), m->error));
		give_up(c, r);
		return 0;
	}
	o->acked = 1;
	return 0;
}

/* ---- receiving ---------------------------------------------------------------- */

/* The descriptor that came with the frame being delivered (it is queued by
 * libuv's IPC read until taken), or -1. */
static int take_fd(conn *c)
{
	uv_pipe_t *p = &c->h.pipe;
	if (c->h.handle.type != UV_NAMED_PIPE || uv_pipe_pending_count(p) < 1)
		return -1;
	uv_pipe_t *h = malloc(sizeof(*h));
	uv_os_fd_t fd = -1;
	int dup = -1;
	if (h && uv_pipe_init(c->h.handle.loop, h, 0) == 0) {
		if (uv_accept((uv_stream_t *)p, (uv_stream_t *)h) == 0 && uv_fileno((uv_handle_t *)h, &fd) == 0)
			dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		uv_close((uv_handle_t *)h, free_handle);
	} else {
		free(h);
	}
	return dup;
}

int conn_shm_check_fds(conn *c)
{
	int n = c->h.handle.type == UV_NAMED_PIPE ? uv_pipe_pending_count(&c->h.pipe) : 0;
	if (!n)
		return 0;
	if (frame_reader_in_frame(&c->rd)) {
		/* the descriptor of a ShmRegion whose frame is still coming */
		if (n == 1)
			return 0;
		return conn_close_error(c, -EPROTO, "file descriptors that no shm_region carries");
	}
	for (int fd; (fd = take_fd(c)) >= 0;)
		close(fd);
	conn_log_peer(c, "%d file descriptor%s that no shm_region carries: closed", n,
		      n == 1 ? "" : "s");
	return 0;
}

/* Checks the peer's memfd fd and maps it as c's shm_in; 0, or an errno with
 * why. Closes fd either way. */
static int map_ring(conn *c, int fd, const Byol__ShmRegion *m, char *why, size_t n)
{
	struct stat st;
	size_t want = SHM_HEADER + (size_t)m->size;
	int seals = fcntl(fd, F_GET_SEALS);
	int rc = 0;
	void *map = MAP_FAILED;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || seals < 0 ||
	    (seals & SHM_SEALS) != SHM_SEALS) {
		rc = EPERM;
		snprintf(why, n, "the descriptor of shm_region %u is not a sealed memfd", m->id);
	} else if (st.st_uid != geteuid() || (size_t)st.st_size != want) {
		rc = EPERM;
		snprintf(why, n, "the memfd of shm_region %u is %lld bytes of uid %u; expected "
			 "%zu of uid %u", m->id, (long long)st.st_size, (unsigned)st.st_uid, want,
			 (unsigned)geteuid());
	} else if ((map = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			       fd, 0)) == MAP_FAILED) {
		rc = errno;
		snprintf(why, n, "cannot map the memfd of shm_region %u: %s", m->id, strerror(rc));
	}
	close(fd);
	if (rc)
		return rc;
	uint64_t hdr[2];
	memcpy(hdr, map, sizeof(hdr));
	if (hdr[0] != SHM_MAGIC || hdr[1] != m->size) {
		munmap(map, want);
		snprintf(why, n, "the memfd of shm_region %u has a bad header", m->id);
		return EINVAL;
	}
	shm_map *sm = map_register(map, (size_t)m->size);
	if (!sm) {
		munmap(map, want);
		snprintf(why, n, "out of memory");
		return ENOMEM;
	}
	map_drop(c->shm_in);
	c->shm_in = sm;
	return 0;
}

int conn_shm_on_region(conn *c, const Byol__ShmRegion *m)
{
	char r[BYOL_ERR_LEN], why[BYOL_ERR_LEN] = "";
	size_t most = 2 * c->rd.max_len + SHM_MIB; /* two tensors at the frame limit */
	if (!c->shm_agreed)
		snprintf(r, sizeof(r), "shm_region, but shared memory was not agreed");
	else if (!m->size || m->size > most || m->size % SHM_MIB)
		snprintf(r, sizeof(r), "shm_region of %llu bytes (a multiple of 1 MiB up to "
			 "%zu)", (unsigned long long)m->size, most);
	else if (m->id <= c->shm_in_id)
		snprintf(r, sizeof(r), "shm_region %u after region %u", m->id, c->shm_in_id);
	else
		r[0] = '\0';
	if (r[0])
		return conn_close_error(c, -EPROTO, r);
	c->shm_in_id = m->id;
	int fd = take_fd(c);
	if (!c->shm) {
		snprintf(why, sizeof(why), "shared memory is off here");
		if (fd >= 0)
			close(fd);
	} else if (fd < 0) {
		snprintf(why, sizeof(why), "no descriptor came with shm_region %u", m->id);
		give_up(c, why);
	} else if (map_ring(c, fd, m, why, sizeof(why)) != 0) {
		give_up(c, why);
	}
	Byol__ShmAck a = BYOL__SHM_ACK__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	a.id = m->id;
	a.error = why;
	e.msg_case = BYOL__ENVELOPE__MSG_SHM_ACK;
	e.shm_ack = &a;
	int rc = conn_send_frame(c, &e, r);
	return rc < 0 ? conn_close_error(c, rc, r) : 0;
}

/* Records a tensor of the ring as delivered: held (1) while the handler may
 * take it, or, when SHM_HELD_MAX are held already, not (0: copy it). */
static int map_deliver(shm_map *m, const uint8_t *p, uint64_t start, uint64_t end)
{
	int held = 0;
	pthread_mutex_lock(&maps_lock);
	m->received = end;
	if (m->n_held < SHM_HELD_MAX) {
		m->held[m->n_held].p = p;
		m->held[m->n_held].start = start;
		m->n_held++;
		m->refs++;
		held = 1;
	}
	map_publish(m);
	pthread_mutex_unlock(&maps_lock);
	return held;
}

int conn_shm_on_attachment(conn *c, Byol__Envelope *e)
{
	char r[BYOL_ERR_LEN];
	shm_map *in = c->shm_in;
	ProtobufCBinaryData *f = conn_attachment_field(e);
	uint64_t len = e->attachment, end = e->shm_end;
	if (!in)
		snprintf(r, sizeof(r), "%s says its tensor is in shared memory, and no ring "
			 "of the peer is mapped", frame_msg_name(e->msg_case));
	else if (len > in->size || end < len || (end - len) % in->size + len > in->size)
		snprintf(r, sizeof(r), "%s: a tensor of %llu bytes ending at %llu does not lie "
			 "in the %zu-byte ring", frame_msg_name(e->msg_case),
			 (unsigned long long)len, (unsigned long long)end, in->size);
	else
		r[0] = '\0';
	if (r[0])
		return conn_close_error(c, -EPROTO, r);
	uint8_t *p = in->map + SHM_HEADER + (end - len) % in->size;
	void *body = p;
	if (!map_deliver(in, p, end - len, end) &&
	    !(body = frame_arena_copy(&c->arena, p, (size_t)len)))
		return conn_close_error(c, -ENOMEM, "out of memory for an attachment");
	c->shm_received++;
	f->data = body;
	f->len = (size_t)len;
	c->shm_lent = body == p ? p : NULL;
	if (c->cfg->c.on_message)
		c->cfg->c.on_message(c, e);
	if (c->shm_lent)
		conn_tensor_free((void *)c->shm_lent);   /* not taken */
	c->shm_lent = NULL;
	return c->closing ? -EPIPE : 0;
}

/* ---- the receiver's tensors --------------------------------------------------- */

void *conn_take(conn *c, const void *p, size_t len)
{
	if (!len)
		return NULL;
	if (p == c->shm_lent) {
		c->shm_lent = NULL;
		return (void *)p;
	}
	void *q = conn_adopt(c, p);
	if (!q && (q = malloc(len)))
		memcpy(q, p, len);
	return q;
}

/* The map whose ring holds p; *held: p's index among its held tensors, or -1.
 * Under maps_lock. */
static shm_map *map_of(const void *p, int *held)
{
	*held = -1;
	for (shm_map *m = maps; m; m = m->next) {
		if ((const uint8_t *)p < m->map || (const uint8_t *)p >= m->map + SHM_HEADER + m->size)
			continue;
		for (int i = 0; i < m->n_held; i++)
			if (m->held[i].p == p)
				*held = i;
		return m;
	}
	return NULL;
}

int conn_tensor_lent(const void *p)
{
	int i;
	pthread_mutex_lock(&maps_lock);
	shm_map *m = p ? map_of(p, &i) : NULL;
	pthread_mutex_unlock(&maps_lock);
	return m && i >= 0;
}

void conn_tensor_free(void *p)
{
	int i;
	if (!p)
		return;
	pthread_mutex_lock(&maps_lock);
	shm_map *m = map_of(p, &i);
	if (m && i >= 0) {
		m->held[i] = m->held[--m->n_held];
		map_publish(m);
		map_unref(m);
	}
	pthread_mutex_unlock(&maps_lock);
	if (!m)
		free(p);
}

uint64_t conn_shm_received(const conn *c)
{
	return c->shm_received;
}

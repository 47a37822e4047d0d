/*
 * harness.h - integration test harness for tardyd.
 *
 * A test gets a private temporary directory, starts the real daemon (and
 * small upstream servers) there as child processes bound to port 0, reads
 * the addresses they bound back from the daemon's ready file, and talks to
 * them through client helpers that never block past a deadline.  What a
 * test asserts is therefore what a real client sees: bytes, errno and
 * elapsed time.
 *
 * Conventions:
 * - Everything a harness creates (files, child processes, sockets, the
 *   strings it returns) belongs to it and goes away in harness_free(),
 *   which is meant for a checked fixture's teardown.  Child processes are
 *   only ever signalled by the PID the harness recorded, and they also get
 *   PR_SET_PDEATHSIG: in check's fork mode a failed assertion _exit()s the
 *   test process without teardown, and a hung one is killed by check's
 *   watchdog, and neither leaves anything running.  The temporary
 *   directory (/tmp/tardy-test.XXXXXX: configs, daemon stdout/stderr,
 *   ready files) then stays behind for a post-mortem; HARNESS_KEEP=1 in
 *   the environment keeps it after passing tests too.
 * - Set-up steps that cannot reasonably fail (mkdtemp, fork, starting the
 *   daemon when the test expects it to start) abort the test with a
 *   message, daemon stderr included.  Steps whose outcome is what a test
 *   asserts return a status instead.
 * - Client I/O helpers return an int status: 0 on success, HARNESS_EOF if
 *   the peer ended the stream before the call was satisfied, ETIMEDOUT
 *   when the deadline passed, or the errno of the failing call (for
 *   instance ECONNRESET, ECONNREFUSED).  harness_strerror() names any of
 *   them.  They work on blocking and non-blocking descriptors alike and
 *   never raise SIGPIPE.
 * - Deadlines are in milliseconds, on the monotonic clock.
 */
#ifndef TARDY_TESTS_HARNESS_H
#define TARDY_TESTS_HARNESS_H

#include <sys/types.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Generous set-up bounds: the daemon may run under AddressSanitizer. */
#define HARNESS_START_TIMEOUT_MS 5000
#define HARNESS_RELOAD_TIMEOUT_MS 5000
#define HARNESS_IO_TIMEOUT_MS 5000

/* Returned by client helpers when the peer closed the stream early. */
#define HARNESS_EOF (-1)

#define HARNESS_ADDR_TEXT_MAX 160
#define HARNESS_NAME_MAX 64
#define HARNESS_MAX_PROXIES 64

struct harness;
struct harness_tardyd;

/* A socket address together with its spelling in tardyd's syntax. */
struct harness_addr {
	struct sockaddr_storage ss;
	socklen_t		len;
	/* "127.0.0.1:5", "[::1]:5" or "unix:/path" */
	char text[HARNESS_ADDR_TEXT_MAX];
};

/* The daemon's ready file, as last read. */
struct harness_ready {
	char api[HARNESS_ADDR_TEXT_MAX];
	int  nproxies;
	struct {
		char name[HARNESS_NAME_MAX];
		char addr[HARNESS_ADDR_TEXT_MAX];
	} proxies[HARNESS_MAX_PROXIES];
	long pid;
	long generation;
	char last_reload[16]; /* "none", "ok" or "failed" */
};

/* Outcome of running tardyd to completion (-V, -t, a bad config...). */
struct harness_run {
	int	    status;    /* waitpid() status; valid unless timed_out */
	bool	    timed_out; /* still running at the deadline: SIGKILLed */
	int64_t	    elapsed_ms;
	const char *out; /* everything it wrote on stdout */
	const char *err; /* everything it wrote on stderr */
};

enum harness_upstream_mode {
	/* Echo bytes as they arrive; close after the client's EOF. */
	HARNESS_UPSTREAM_ECHO,
	/* Collect everything until the client's EOF, then send it all back
	 * and close: an answer proves the EOF got through. */
	HARNESS_UPSTREAM_ECHO_AT_EOF,
	/* Send `data` on accept, shut down writing, discard input until the
	 * client's EOF, close. */
	HARNESS_UPSTREAM_GREET,
	/* Discard input until the client's EOF, then answer the decimal byte
	 * count and "\n", close. */
	HARNESS_UPSTREAM_SINK,
	/* Send `len` bytes of harness_pattern(HARNESS_SOURCE_SEED) from offset
	 * 0, shut down writing, discard input until EOF, close. */
	HARNESS_UPSTREAM_SOURCE,
};

#define HARNESS_SOURCE_SEED UINT64_C(0x5eed)

/* An upstream server: a forked child serving any number of connections. */
struct harness_upstream {
	pid_t		    pid;
	struct harness_addr addr;
};

/* --- lifetime, files, strings --------------------------------------- */

struct harness *harness_new(void);
void		harness_free(struct harness *h);
const char     *harness_dir(const struct harness *h);
/* "DIR/name"; the string belongs to the harness. */
const char *harness_path(struct harness *h, const char *name);
const char *harness_printf(struct harness *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Atomically (temp + rename) writes DIR/name; returns its path. */
const char *harness_write_file(struct harness *h, const char *name,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Whole file, NUL-terminated, owned by the harness; NULL and errno. */
const char *harness_read_file(struct harness *h, const char *path);
/* "exited 1", "killed by signal 9"; owned by the harness. */
const char *harness_status_str(struct harness *h, int status);
/* Last `max` bytes of s (for assertion messages, which check bounds). */
const char    *harness_tail(const char *s, size_t max);
struct json_t *harness_api_get(struct harness *h, struct harness_tardyd *t,
    const char *path);

/* --- the daemon -------------------------------------------------------- */

/*
 * Starts TARDYD_PATH with "-a 127.0.0.1:0 --ready-file DIR/ready-N.json"
 * followed by the NULL-terminated arguments (a later -a wins), its stdout
 * and stderr going to files in DIR, and waits up to
 * HARNESS_START_TIMEOUT_MS for the ready file.  Aborts the test if the
 * daemon exits or does not get ready.
 */
struct harness_tardyd *harness_tardyd_start(struct harness *h, ...)
    __attribute__((sentinel));
struct harness_tardyd *harness_tardyd_startv(struct harness *h,
    const char *const					    *args);
/* Runs TARDYD_PATH with exactly these arguments until it exits or
 * timeout_ms passes (then SIGKILL); result owned by the harness. */
const struct harness_run *harness_tardyd_run(struct harness *h, int timeout_ms,
    ...) __attribute__((sentinel));
const struct harness_run *harness_tardyd_runv(struct harness *h, int timeout_ms,
    const char *const *args);

pid_t	    harness_tardyd_pid(const struct harness_tardyd *t);
const char *harness_tardyd_ready_path(const struct harness_tardyd *t);
const struct harness_ready *
harness_tardyd_ready(const struct harness_tardyd *t);
/* Address of proxy `name` in the last ready file: 0, or ENOENT/EINVAL. */
int harness_tardyd_proxy(const struct harness_tardyd *t, const char *name,
    struct harness_addr *out);
/* Re-reads the ready file: 0, or errno (EINVAL if it does not parse). */
int harness_tardyd_refresh(struct harness_tardyd *t);
/* Everything the daemon wrote on stderr so far; owned by the harness. */
const char *harness_tardyd_stderr(struct harness_tardyd *t);
/* Still running?  Reaps it (and records its status) if not. */
bool harness_tardyd_alive(struct harness_tardyd *t);
/* Exit status once it has been reaped, else -1. */
int harness_tardyd_status(const struct harness_tardyd *t);
/*
 * SIGHUP, then waits for the ready file's generation to pass the current
 * one: 0 (look at last_reload), ETIMEDOUT, or ECHILD if the daemon died.
 */
int harness_tardyd_reload(struct harness_tardyd *t, int timeout_ms);
/*
 * Sends `sig` and waits up to timeout_ms for the exit: 0 and *status, or
 * ETIMEDOUT after which the daemon was SIGKILLed (and *status says so).
 * elapsed_ms (may be NULL) runs from the kill() to the reaping.
 */
int harness_tardyd_stop(struct harness_tardyd *t, int sig, int timeout_ms,
    int *status, int64_t *elapsed_ms);

/* --- upstream servers and special addresses ------------------------- */

/* listen: "127.0.0.1:0", "[::1]:0" or "unix:/path". data/len: see modes. */
struct harness_upstream *harness_upstream_start(struct harness *h,
    enum harness_upstream_mode mode, const char *listen, const void *data,
    size_t len);
/* SIGKILLs it by PID and reaps it: its listener is gone afterwards. */
void harness_upstream_stop(struct harness *h, struct harness_upstream *u);
/* A TCP port (AF_INET or AF_INET6 loopback) that is bound but not
 * listening, held for the harness' lifetime: connects are refused. */
const struct harness_addr *harness_closed_port(struct harness *h, int family);
/* A 127.0.0.1 listener whose accept queue is full: a connect to it is
 * neither accepted nor refused (the SYN is dropped). */
const struct harness_addr *harness_blackhole(struct harness *h);
bool			   harness_has_ipv6(void);

/* --- addresses ------------------------------------------------------- */

/* Parses tardyd's syntax (numeric hosts only): 0 or EINVAL. */
int harness_addr_parse(const char *text, struct harness_addr *out);
/* Port number, or -1 for a unix socket. */
int harness_addr_port(const struct harness_addr *a);

/* --- client side ----------------------------------------------------- */

int64_t	    harness_now_ms(void);
void	    harness_sleep_ms(int ms);
const char *harness_strerror(int status);
/* Connects within timeout_ms; *fd is a blocking, close-on-exec socket.
 * ECONNRESET means the peer accepted and reset the connection before
 * connect() was seen to complete (it happens with a prompt reset). */
int harness_connect(const struct harness_addr *a, int timeout_ms, int *fd);
int harness_send_all(int fd, const void *buf, size_t len, int timeout_ms);
/* Exactly len bytes; *got (may be NULL) says how many arrived. */
int harness_recv_all(int fd, void *buf, size_t len, int timeout_ms,
    size_t *got);
/* At least one byte (up to len). */
int harness_recv_some(int fd, void *buf, size_t len, int timeout_ms,
    size_t *got);
/*
 * Sends all of out while receiving exactly inlen bytes into in, both at
 * once with poll(), so neither side can deadlock on full buffers.
 */
int harness_exchange(int fd, const void *out, size_t outlen, void *in,
    size_t inlen, int timeout_ms, size_t *sent, size_t *got);
/* Sends buf and expects the same bytes back: 0, EBADMSG on a mismatch. */
int harness_echo(int fd, const void *buf, size_t len, int timeout_ms);
/* Reads until the peer closes: 0 on an orderly EOF, ECONNRESET on a
 * reset, ETIMEDOUT; *extra (may be NULL) counts the bytes discarded. */
int harness_wait_close(int fd, int timeout_ms, size_t *extra);

/* Deterministic pseudo-random bytes: byte i of the stream is a function
 * of (seed, offset + i) only, so any slice can be regenerated. */
void harness_pattern(void *buf, size_t len, uint64_t seed, uint64_t offset);

/* Assertion wrappers: fail the test with the reason. */
struct harness_addr harness_proxy_ok(struct harness_tardyd *, const char *);
int		    harness_connect_ok(const struct harness_addr *);
void		    harness_echo_ok(int, const char *, size_t, uint64_t);

#endif /* TARDY_TESTS_HARNESS_H */

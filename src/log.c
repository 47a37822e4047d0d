/*
 * Log to stderr. When stderr is connected to the journal (systemd sets
 * JOURNAL_STREAM to its device:inode), each line gets a <N> syslog
 * priority prefix so journald records the level; otherwise lines carry the
 * program name. libevent's own messages are routed here too.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "log.h"

static const char    *log_procname = "tardyd";
static enum log_level log_level = LOG_LEVEL_INFO;
static int	      log_journal;

static const char *const log_names[] = { "error", "warn", "info", "debug" };
/* syslog priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
static const int log_prio[] = { 3, 4, 6, 7 };

static int
log_stderr_is_journal(void)
{
	const char	  *js;
	struct stat	   st;
	unsigned long long dev, ino;

	if ((js = getenv("JOURNAL_STREAM")) == NULL)
		return (0);
	if (sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return (0);
	if (fstat(fileno(stderr), &st) == -1)
		return (0);
	return ((unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino);
}

static void
log_event_cb(int severity, const char *msg)
{
	switch (severity) {
	case EVENT_LOG_DEBUG:
		log_debug("libevent: %s", msg);
		break;
	case EVENT_LOG_MSG:
		log_info("libevent: %s", msg);
		break;
	default:
		log_warnx("libevent: %s", msg);
		break;
	}
}

void
log_init(const char *procname, enum log_level level)
{
	if (procname != NULL)
		log_procname = procname;
	__atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
	log_journal = log_stderr_is_journal();
	event_set_log_callback(log_event_cb);
}

void
log_set_level(enum log_level level)
{
	__atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
}

enum log_level
log_get_level(void)
{
	return (__atomic_load_n(&log_level, __ATOMIC_RELAXED));
}

int
log_level_parse(const char *s, enum log_level *level)
{
	size_t i;

	for (i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		if (strcasecmp(s, log_names[i]) == 0) {
			*level = (enum log_level)i;
			return (0);
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*level = LOG_LEVEL_WARN;
		return (0);
	}
	return (-1);
}

const char *
log_level_name(enum log_level level)
{
	return (log_names[level]);
}

static void
log_vemit(enum log_level level, const char *errstr, const char *fmt, va_list ap)
{
	char msg[1024];
	int  saved_errno = errno;

	if (level > __atomic_load_n(&log_level, __ATOMIC_RELAXED))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_journal) {
		if (errstr != NULL)
			fprintf(stderr, "<%d>%s: %s\n", log_prio[level], msg,
			    errstr);
		else
			fprintf(stderr, "<%d>%s\n", log_prio[level], msg);
	} else {
		if (errstr != NULL)
			fprintf(stderr, "%s: %s: %s\n", log_procname, msg,
			    errstr);
		else
			fprintf(stderr, "%s: %s\n", log_procname, msg);
	}
	errno = saved_errno;
}

#define LOG_FN(fn, level)					\
void								\
fn(const char *fmt, ...)					\
{								\
	va_list	ap;						\
								\
	va_start(ap, fmt);					\
	log_vemit(level, NULL, fmt, ap);			\
	va_end(ap);						\
}

LOG_FN(log_error, LOG_LEVEL_ERROR)
LOG_FN(log_warnx, LOG_LEVEL_WARN)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_debug, LOG_LEVEL_DEBUG)

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LEVEL_WARN, strerror(errno), fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LEVEL_ERROR, strerror(errno), fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LEVEL_ERROR, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}

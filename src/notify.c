/*
 * sd_notify without libsystemd: the protocol is a single datagram of
 * newline-separated assignments to the unix socket named by
 * $NOTIFY_SOCKET ('@' for the abstract namespace). Not worth a library.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "notify.h"

int
notify_enabled(void)
{
	const char *path = getenv("NOTIFY_SOCKET");

	return (path != NULL && (*path == '/' || *path == '@'));
}

int
notify_send(const char *fmt, ...)
{
	struct sockaddr_un sun;
	const char	  *path = getenv("NOTIFY_SOCKET");
	char		   msg[512];
	socklen_t	   len;
	va_list		   ap;
	size_t		   n;
	ssize_t		   rc;
	int		   fd;

	if (!notify_enabled())
		return (0);
	n = strlen(path);
	if (n >= sizeof(sun.sun_path))
		return (-1);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, n);
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return (-1);
	rc = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sun,
	    len);
	close(fd);
	return (rc == -1 ? -1 : 0);
}

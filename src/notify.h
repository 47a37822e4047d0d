/*
 * systemd's service notification protocol (sd_notify(3)), spoken
 * directly: one datagram to $NOTIFY_SOCKET. Without that variable every
 * call does nothing.
 */
#ifndef TARDY_NOTIFY_H
#define TARDY_NOTIFY_H

int notify_enabled(void);
int notify_send(const char *, ...) __attribute__((format(printf, 1, 2)));

#endif

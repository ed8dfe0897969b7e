/*
 * notify.h - telling the service manager how kappad is doing, with
 * systemd's sd_notify protocol (libsystemd): one datagram to the socket
 * that $NOTIFY_SOCKET names, as a unit of Type=notify gets
 * (packaging/kappad.service). Without that variable every call does
 * nothing, so kappad started by hand or by the tests is unaffected.
 *
 * Access pattern: the loop thread, a few times in a run: while opening,
 * once ready, once stopping. Each call formats a STATUS= line (the text
 * `systemctl status kappad` shows) and sends it with its state.
 */
#ifndef KP_NOTIFY_H
#define KP_NOTIFY_H

/* STATUS=<text>: what kappad is doing now (opening, recovering). */
void kp_notify_status(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/*
 * READY=1 and STATUS=<text>: recovery is done and the listeners accept.
 * Sent once, after the last listener is bound.
 */
void kp_notify_ready(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/* STOPPING=1 and STATUS=<text>: a graceful stop has begun. */
void kp_notify_stopping(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

#endif

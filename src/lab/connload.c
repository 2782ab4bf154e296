// SPDX-License-Identifier: Apache-2.0
/*
 * The lab's client load: paced TCP connects with a deadline each, as an application with a connect timeout makes
 * them. Written in C because the lab's kernels run under TCG on one host thread: Node's own connects cost as much
 * CPU there as vipguard does (measured on 6.12: 1.06 s of the test process's CPU against vipguard's 1.27 s in
 * 1.56 s of 20 connects/s), and a guest that busy delays vipguard's reaction by seconds.
 *
 *   connload --addr A --port P --rate R --timeout MS [--seconds S]
 *
 * Starts R connects per second (non-blocking, epoll), each closed as soon as it is established, refused or past its
 * deadline. Stops starting new ones at EOF on stdin, SIGTERM or after S seconds (default 900), waits for those in
 * flight (bounded by their deadline) and exits. One line per connect, as it ends:
 *   <start, CLOCK_MONOTONIC ns> <duration ns> <ok|refused|timeout|error> <local port> <errno, 0 if none>
 * and a last line: "end <started> <max lateness against the schedule, ns>".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PENDING 4096

struct conn {
	int fd; /* -1: free slot */
	int64_t start, deadline;
	uint16_t lport;
};

static struct conn conns[MAX_PENDING];
static volatile sig_atomic_t stopping;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static void usage(const char *why)
{
	fprintf(stderr, "connload: %s\nusage: connload --addr A --port P --rate R --timeout MS [--seconds S]\n", why);
	exit(2);
}

static const char *outcome_of(int err)
{
	return err == 0 ? "ok" : err == ECONNREFUSED ? "refused" : err == ETIMEDOUT ? "timeout" : "error";
}

/* err: 0 established, ETIMEDOUT past the deadline, else the socket's error */
static void finish(struct conn *c, int epfd, int err)
{
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	printf("%lld %lld %s %u %d\n", (long long)c->start, (long long)(now_ns() - c->start), outcome_of(err), c->lport, err);
}

int main(int argc, char **argv)
{
	struct sockaddr_storage target = { 0 };
	socklen_t tlen = 0;
	const char *addr = NULL;
	long port = -1;
	double rate = 0, timeout_ms = 0, seconds = 900;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage("every option takes a value");
		if (!strcmp(a, "--addr"))
			addr = v;
		else if (!strcmp(a, "--port"))
			port = strtol(v, NULL, 10);
		else if (!strcmp(a, "--rate"))
			rate = strtod(v, NULL);
		else if (!strcmp(a, "--timeout"))
			timeout_ms = strtod(v, NULL);
		else if (!strcmp(a, "--seconds"))
			seconds = strtod(v, NULL);
		else
			usage("unknown option");
		i++;
	}
	if (!addr || port < 1 || port > 65535)
		usage("--addr and --port (1..65535) are required");
	if (!(rate > 0 && rate <= 1000))
		usage("--rate must be within 0..1000 connects/s");
	if (!(timeout_ms > 0 && timeout_ms <= 600000))
		usage("--timeout must be within 0..600000 ms");
	if (!(seconds > 0 && seconds <= 3600))
		usage("--seconds must be within 0..3600");
	struct sockaddr_in *s4 = (struct sockaddr_in *)&target;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&target;
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		tlen = sizeof(*s4);
	} else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		tlen = sizeof(*s6);
	} else {
		usage("--addr must be an IPv4 or IPv6 address");
	}

	signal(SIGTERM, on_term);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0) {
		perror("connload: epoll_create1");
		return 1;
	}
	struct epoll_event in = { .events = EPOLLIN | EPOLLHUP, .data.u32 = UINT32_MAX };
	epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &in); /* a pipe from the harness; without one, SIGTERM or --seconds stop it */
	for (int i = 0; i < MAX_PENDING; i++)
		conns[i].fd = -1;

	const int64_t t0 = now_ns(), interval = (int64_t)(1e9 / rate), timeout = (int64_t)(timeout_ms * 1e6);
	const int64_t end = t0 + (int64_t)(seconds * 1e9);
	long started = 0, pending = 0;
	int64_t max_lag = 0;

	while (!stopping || pending > 0) {
		int64_t now = now_ns();
		if (now >= end)
			stopping = 1;
		/* start every connect that is due (catching up after a stall keeps the rate) */
		while (!stopping && t0 + started * interval <= now) {
			int64_t lag = now - (t0 + started * interval);
			if (lag > max_lag)
				max_lag = lag;
			started++;
			int slot = -1;
			for (int i = 0; i < MAX_PENDING && slot < 0; i++)
				if (conns[i].fd < 0)
					slot = i;
			struct conn *c = slot >= 0 ? &conns[slot] : NULL;
			int fd = c ? socket(target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP) : -1;
			if (fd < 0) {
				printf("%lld 0 error 0 %d\n", (long long)now, c ? errno : EMFILE);
				continue;
			}
			c->fd = fd;
			c->start = now;
			c->deadline = now + timeout;
			c->lport = 0;
			int r = connect(fd, (struct sockaddr *)&target, tlen);
			struct sockaddr_storage local;
			socklen_t llen = sizeof(local);
			if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0)
				c->lport = ntohs(local.ss_family == AF_INET ? ((struct sockaddr_in *)&local)->sin_port
									  : ((struct sockaddr_in6 *)&local)->sin6_port);
			struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = (uint32_t)slot };
			if (r == 0) {
				close(fd), c->fd = -1;
				printf("%lld %lld ok %u 0\n", (long long)now, (long long)(now_ns() - now), c->lport);
			} else if (errno != EINPROGRESS || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
				int err = errno;
				close(fd), c->fd = -1;
				printf("%lld 0 %s %u %d\n", (long long)now, outcome_of(err), c->lport, err);
			} else {
				pending++;
			}
		}
		/* wait for the next start, the nearest deadline or an event */
		int64_t wake = stopping ? end + timeout : t0 + started * interval;
		for (int i = 0; i < MAX_PENDING; i++)
			if (conns[i].fd >= 0 && conns[i].deadline < wake)
				wake = conns[i].deadline;
		int64_t wait_ms = (wake - now_ns()) / 1000000;
		struct epoll_event evs[64];
		int n = epoll_wait(epfd, evs, 64, wait_ms < 0 ? 0 : wait_ms > 1000 ? 1000 : (int)wait_ms);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u32 == UINT32_MAX) {
				char buf[256];
				if (read(0, buf, sizeof(buf)) <= 0) {
					stopping = 1;
					epoll_ctl(epfd, EPOLL_CTL_DEL, 0, NULL);
				}
				continue;
			}
			struct conn *c = &conns[evs[i].data.u32];
			if (c->fd < 0)
				continue;
			int err = 0;
			socklen_t elen = sizeof(err);
			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
			finish(c, epfd, err);
			pending--;
		}
		int64_t t = now_ns();
		for (int i = 0; i < MAX_PENDING; i++)
			if (conns[i].fd >= 0 && conns[i].deadline <= t) {
				finish(&conns[i], epfd, ETIMEDOUT);
				pending--;
			}
	}
	printf("end %ld %lld\n", started, (long long)max_lag);
	return 0;
}

// SPDX-License-Identifier: Apache-2.0
/*
 * Loopback connection churn for vipguard's host benchmarks (compiled at bench time by src/bench/churn.ts).
 *
 *   churn --port P [--addr 127.0.0.1] [--clients N] [--acceptors M] [--seconds S] [--rate R]
 *
 * Listens on ADDR:P (SO_REUSEADDR, so back-to-back runs can rebind over TIME_WAIT), M threads accept and close at
 * once, N client threads connect, wait for the server's FIN (read() == 0) and close. The server closes first, so
 * TIME_WAIT lands on the server side and client ports are free again at once: the client never runs out of
 * ephemeral ports however long it churns. A client socket goes CLOSE→SYN_SENT→ESTABLISHED→CLOSE_WAIT→LAST_ACK→CLOSE:
 * five sock:inet_sock_set_state events per connection, all to the traced service ADDR:P.
 *
 * --rate R paces the whole client side to R connections/s (0 = as fast as it goes). Every run is bounded by
 * --seconds. Prints one JSON line: {"connects":…,"errors":…,"seconds":…,"rate":…}.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in target;
static double seconds = 5, rate = 0;
static int clients = 2;
static atomic_long connects, errors, slow; /* slow: connect+close over 200 ms (a SYN retransmit) */
static atomic_int stop;
static struct timespec t0;

static double since(const struct timespec *a)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - a->tv_sec) + (double)(now.tv_nsec - a->tv_nsec) / 1e9;
}

static void sleep_until(double at)
{
	struct timespec ts = t0;
	long ns = (long)((at - (long)at) * 1e9) + ts.tv_nsec;
	ts.tv_sec += (long)at + ns / 1000000000L;
	ts.tv_nsec = ns % 1000000000L;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void *acceptor(void *arg)
{
	int lfd = *(int *)arg;
	while (!atomic_load(&stop)) {
		int fd = accept(lfd, NULL, NULL);
		if (fd >= 0)
			close(fd);
		else if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
			break;
	}
	return NULL;
}

static void *client(void *arg)
{
	long idx = (long)arg;
	/* Each client thread takes every clients-th slot of the global schedule: R/s in total, evenly spread. */
	double interval = rate > 0 ? (double)clients / rate : 0;
	double next = rate > 0 ? (double)idx / rate : 0;
	char buf[64];
	while (since(&t0) < seconds) {
		if (interval > 0) {
			if (next >= seconds)
				break;
			sleep_until(next);
			next += interval;
		}
		struct timespec c0;
		clock_gettime(CLOCK_MONOTONIC, &c0);
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			atomic_fetch_add(&errors, 1);
			continue;
		}
		if (connect(fd, (struct sockaddr *)&target, sizeof(target)) == 0) {
			while (read(fd, buf, sizeof(buf)) > 0)
				;
			atomic_fetch_add(&connects, 1);
		} else {
			atomic_fetch_add(&errors, 1);
		}
		close(fd);
		if (since(&c0) > 0.2)
			atomic_fetch_add(&slow, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1";
	int port = 0, acceptors = 1;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--addr"))
			addr = argv[i + 1];
		else if (!strcmp(argv[i], "--clients"))
			clients = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--acceptors"))
			acceptors = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--seconds"))
			seconds = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--rate"))
			rate = atof(argv[i + 1]);
		else {
			fprintf(stderr, "churn: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (port <= 0 || port > 65535 || clients < 1 || clients > 64 || acceptors < 1 || acceptors > 64 ||
	    !(seconds > 0 && seconds <= 600) || rate < 0) {
		fprintf(stderr, "usage: churn --port P [--addr A] [--clients 1..64] [--acceptors 1..64] [--seconds 0..600] [--rate R]\n");
		return 2;
	}
	memset(&target, 0, sizeof(target));
	target.sin_family = AF_INET;
	target.sin_port = htons(port);
	if (inet_pton(AF_INET, addr, &target.sin_addr) != 1 || (ntohl(target.sin_addr.s_addr) >> 24) != 127) {
		fprintf(stderr, "churn: --addr must be an IPv4 loopback address, got %s\n", addr);
		return 2;
	}

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&target, sizeof(target)) || listen(lfd, 4096)) {
		fprintf(stderr, "churn: listening on %s:%d: %s\n", addr, port, strerror(errno));
		return 1;
	}
	/* accept() wakes up every SO_RCVTIMEO so acceptors notice the end even when the clients stopped first. */
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
	setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_t at[64], ct[64];
	for (int i = 0; i < acceptors; i++)
		pthread_create(&at[i], NULL, acceptor, &lfd);
	for (long i = 0; i < clients; i++)
		pthread_create(&ct[i], NULL, client, (void *)i);
	for (int i = 0; i < clients; i++)
		pthread_join(ct[i], NULL);
	double elapsed = since(&t0);
	atomic_store(&stop, 1);
	for (int i = 0; i < acceptors; i++)
		pthread_join(at[i], NULL);
	close(lfd);
	long n = atomic_load(&connects);
	printf("{\"connects\":%ld,\"errors\":%ld,\"slow\":%ld,\"seconds\":%.3f,\"rate\":%.1f}\n", n, atomic_load(&errors),
	       atomic_load(&slow), elapsed, elapsed > 0 ? (double)n / elapsed : 0);
	return 0;
}

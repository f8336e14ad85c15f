// lookstorm: COUNT getaddrinfo(NAME) calls at RATE per second, spread over
// WORKERS processes, each paced to its share. Prints the lookups made, the
// seconds they took and the pid of every worker (to tell their records apart).
#define _GNU_SOURCE
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pace.h"

#define MAX_WORKERS 16

static long worker(const char *name, long count, double rate, long start)
{
	struct addrinfo hints, *res;
	long done = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	for (long i = 0; i < count; i++) {
		// pace: lookup i starts at start + i/rate, or at once if behind
		if (now_ns() < start + (long)(i * 1e9 / rate))
			sleep_until(start + (long)(i * 1e9 / rate));
		res = NULL;
		if (getaddrinfo(name, NULL, &hints, &res) == 0) {
			freeaddrinfo(res);
			done++;
		}
	}
	return done;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: lookstorm NAME COUNT RATE WORKERS\n");
		return 2;
	}
	const char *name = argv[1];
	long count = atol(argv[2]);
	double rate = atof(argv[3]);
	int workers = atoi(argv[4]);
	long *done = mmap(NULL, sizeof(long) * MAX_WORKERS, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t pids[MAX_WORKERS];

	if (workers < 1 || workers > MAX_WORKERS || count < workers || rate <= 0) {
		fprintf(stderr, "lookstorm: 1-%d workers, COUNT >= WORKERS, RATE > 0\n",
			MAX_WORKERS);
		return 2;
	}
	// every worker starts 50 ms from now, so forking does not eat the burst
	long start = now_ns() + 50000000L;
	for (int i = 0; i < workers; i++)
		if ((pids[i] = fork()) == 0) {
			done[i] = worker(name, count / workers, rate / workers, start);
			_exit(0);
		}
	long total = 0;
	for (int i = 0; i < workers; i++) {
		waitpid(pids[i], NULL, 0);
		total += done[i];
	}
	printf("%ld %.3f", total, (now_ns() - start) / 1e9);
	for (int i = 0; i < workers; i++)
		printf(" %d", pids[i]);
	printf("\n");
	return 0;
}

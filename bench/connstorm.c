// connstorm: RATE short TCP sessions per second for SECONDS over loopback.
// Server workers accept, send one byte and close (the server closes first, so
// TIME_WAIT stays on its side and client ports never run out); client workers
// connect, read to EOF and close, paced to the rate. Prints the sessions done.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pace.h"

#define SERVERS 2
#define CLIENTS 4

static void serve(int listener)
{
	for (;;) {
		int conn = accept(listener, NULL, NULL);

		if (conn < 0)
			continue;
		write(conn, "x", 1);
		close(conn);
	}
}

static long client(struct sockaddr_in *addr, double rate, int seconds)
{
	long start = now_ns(), done = 0, total = (long)(rate * seconds);
	char buf[16];

	for (long i = 0; i < total; i++) {
		// pace: session i starts at start + i/rate
		sleep_until(start + (long)(i * 1e9 / rate));
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)addr, sizeof(*addr)) == 0) {
			while (read(fd, buf, sizeof(buf)) > 0)
				;
			done++;
		}
		close(fd);
	}
	return done;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: connstorm RATE SECONDS\n");
		return 2;
	}
	double rate = atof(argv[1]);
	int seconds = atoi(argv[2]), one = 1;
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int listener = socket(AF_INET, SOCK_STREAM, 0);
	socklen_t len = sizeof(addr);
	long *done = mmap(NULL, sizeof(long) * CLIENTS, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t servers[SERVERS], clients[CLIENTS];

	setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	bind(listener, (struct sockaddr *)&addr, sizeof(addr));
	listen(listener, 4096);
	getsockname(listener, (struct sockaddr *)&addr, &len);
	for (int i = 0; i < SERVERS; i++)
		if ((servers[i] = fork()) == 0)
			serve(listener);
	for (int i = 0; i < CLIENTS; i++)
		if ((clients[i] = fork()) == 0) {
			done[i] = client(&addr, rate / CLIENTS, seconds);
			_exit(0);
		}
	long total = 0;
	for (int i = 0; i < CLIENTS; i++) {
		waitpid(clients[i], NULL, 0);
		total += done[i];
	}
	sleep(1);  // let the servers finish their last sessions
	for (int i = 0; i < SERVERS; i++)
		kill(servers[i], SIGKILL);
	printf("%ld %d\n", total, ntohs(addr.sin_port));
	return 0;
}

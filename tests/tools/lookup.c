/* Name lookups through whatever libc this is linked with (glibc, static
 * glibc, musl): getaddrinfo for each argument. With -w it first prints
 * "ready" and waits for a line on stdin. Prints one line per lookup. */
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static void lookup(const char *name)
{
	struct addrinfo hints, *res = NULL;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(name, NULL, &hints, &res);
	printf("%s %d\n", name, rc);
	fflush(stdout);
	if (!rc)
		freeaddrinfo(res);
}

int main(int argc, char **argv)
{
	char line[16];
	int first = 1;

	if (argc > 1 && !strcmp(argv[1], "-w")) {
		printf("ready\n");
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin))
			return 1;
		first = 2;
	}
	for (int i = first; i < argc; i++)
		lookup(argv[i]);
	return 0;
}

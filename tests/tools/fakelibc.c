/* A library that only looks like a libc to whoever scans process maps. */
int getaddrinfo(void)
{
	return 0;
}

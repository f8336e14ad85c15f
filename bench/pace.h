/* Pacing for the bench tools: the monotonic clock and sleeping until a time. */
#ifndef PACE_H
#define PACE_H
#include <time.h>

static long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void sleep_until(long due_ns)
{
	struct timespec ts = {.tv_sec = due_ns / 1000000000L, .tv_nsec = due_ns % 1000000000L};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL))
		;
}
#endif

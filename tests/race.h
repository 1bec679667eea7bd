/* Threads that start together, for the race tests. co_test_race runs fn on n
 * threads, the i-th with (char *)args + i * size (args is an array of n
 * structs), and returns when every one has returned. Inside fn,
 * co_test_race_wait() is the starting line: it returns once all n threads
 * have reached it, so a thread does its slow set-up (a connection, a uuid)
 * before it and the contended call right after. It is a barrier: a thread may
 * wait again, and each round of calls is one more meeting of all n (a
 * lockstep). One race at a time per process (each Check test is its own). */
#ifndef CO_TEST_RACE_H
#define CO_TEST_RACE_H

#include <stddef.h>

void co_test_race(int n, void *(*fn)(void *), void *args, size_t size);
void co_test_race_wait(void);

#endif

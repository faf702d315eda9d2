/* The trainer's test cases kept in files of their own, added to the
 * trainer suite by test_trainer.c. */
#ifndef RN_TEST_SUITES_H
#define RN_TEST_SUITES_H

#include <check.h>

/* The CPU backend's ops against naive references (test_ops.c). */
TCase *ops_tcase(void);
/* Data parallelism within one process (test_dist.c). */
TCase *dist_tcase(void);

#endif

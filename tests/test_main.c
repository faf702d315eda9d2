/* The libdiffstride test runner: every feature's suite; exits non-zero when
 * any check fails. */
#include <stdlib.h>

#include "util.h"

int main(void) {
  SRunner *sr = srunner_create(golden_suite());
  srunner_add_suite(sr, gradient_suite());
  srunner_add_suite(sr, error_suite());
  srunner_add_suite(sr, property_suite());
  srunner_add_suite(sr, threading_suite());
  srunner_add_suite(sr, elementwise_suite());
  srunner_add_suite(sr, penalty_suite());
  srunner_add_suite(sr, diffstride1d_suite());
  srunner_add_suite(sr, cuda_elements_suite());
  srunner_add_suite(sr, reserve_suite());
  srunner_add_suite(sr, own_transforms_suite());
  srunner_add_suite(sr, geometry_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Loader of the float64 golden cases (format: ../shared/golden/README.md). */
#ifndef DS_TEST_GOLDEN_H
#define DS_TEST_GOLDEN_H

typedef struct golden {
  char name[64];
  int diffstride; /* 1: op diffstride, 0: op spectral_pool */
  int n, c, h, w;
  double smoothness, lower, upper;
  int cropping, shared;
  double strides[2], effective[2];
  int out_h, out_w;
  double *x, *y, *dy, *dx; /* NCHW */
  double dstrides[2];
} golden;

/* Loads dir/name; returns 0 and fills g, or -1 (message in err). */
int golden_load(const char *dir, const char *name, golden *g, char *err, int errlen);
void golden_free(golden *g);
/* Names of the golden files in dir (sorted), NULL-terminated; free with golden_names_free. */
char **golden_names(const char *dir);
void golden_names_free(char **names);
/* The directory of the golden cases: $DS_GOLDEN_DIR or ../shared/golden. */
const char *golden_dir(void);

#endif

/* Loader of the test vectors: float64 cases of the three ops in the text
 * format of tests/vectors/README.md, from tests/vectors and any other
 * directory listed in $DS_VECTOR_DIRS. */
#ifndef DS_TEST_GOLDEN_H
#define DS_TEST_GOLDEN_H

typedef enum golden_op { GOLDEN_DIFFSTRIDE, GOLDEN_SPECTRAL_POOL, GOLDEN_DIFFSTRIDE1D } golden_op;

/* A 1-D case is held as the library computes it, a 1 x L image: h = 1,
 * w = L, out_h = 1, its stride, effective stride and stride gradient in
 * strides[1], effective[1] and dstrides[1] ([0]: 1, 1 and 0). */
typedef struct golden {
  char name[512]; /* the file's path */
  golden_op op;
  int n, c, h, w;
  double smoothness, lower, upper;
  int cropping, shared;
  double strides[2], effective[2];
  int out_h, out_w;
  double *x, *y, *dy, *dx; /* NCHW (1-D: NCL) */
  double dstrides[2];
} golden;

/* Loads the case file at path; returns 0 and fills g, or -1 (message in err). */
int golden_load(const char *path, golden *g, char *err, int errlen);
void golden_free(golden *g);
/* The directories of the cases: $DS_VECTOR_DIRS (separated by spaces), else
 * tests/vectors (relative to the repository root, where make runs). */
const char *golden_dirs(void);
/* The paths of the case files (<op>_<NN>.txt) of every directory, each
 * directory's sorted, NULL-terminated; NULL (reason in err) when a
 * directory cannot be read or holds no case. Free with golden_paths_free. */
char **golden_paths(char *err, int errlen);
void golden_paths_free(char **paths);

#endif

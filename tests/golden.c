/* Parser of the test-vector text format: `key value...` lines, then arrays
 * as `name count` followed by count numbers. */
#include "golden.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *golden_dirs(void) {
  const char *d = getenv("DS_VECTOR_DIRS");
  return d && *d ? d : "tests/vectors";
}

static double *read_array(FILE *f, long count) {
  double *a = malloc(sizeof(double) * (size_t)(count > 0 ? count : 1));
  for (long i = 0; a && i < count; i++)
    if (fscanf(f, "%lf", &a[i]) != 1) {
      free(a);
      return NULL;
    }
  return a;
}

static int read_op(FILE *f, golden *g) {
  char word[32];
  if (fscanf(f, "%31s", word) != 1) return -1;
  if (!strcmp(word, "diffstride")) g->op = GOLDEN_DIFFSTRIDE;
  else if (!strcmp(word, "spectral_pool")) g->op = GOLDEN_SPECTRAL_POOL;
  else if (!strcmp(word, "diffstride1d")) g->op = GOLDEN_DIFFSTRIDE1D;
  else return -1;
  return 0;
}

/* A pair of per-axis values: two numbers, or for a 1-D case one, kept in
 * [1] with [0] = one (see golden.h). */
static int read_pair(FILE *f, const golden *g, double v[2], double one) {
  if (g->op != GOLDEN_DIFFSTRIDE1D) return fscanf(f, "%lf %lf", &v[0], &v[1]) == 2 ? 0 : -1;
  v[0] = one;
  return fscanf(f, "%lf", &v[1]) == 1 ? 0 : -1;
}

static int read_shape(FILE *f, golden *g) {
  if (g->op != GOLDEN_DIFFSTRIDE1D) return fscanf(f, "%d %d %d %d", &g->n, &g->c, &g->h, &g->w) == 4 ? 0 : -1;
  g->h = 1;
  return fscanf(f, "%d %d %d", &g->n, &g->c, &g->w) == 3 ? 0 : -1;
}

static int read_out(FILE *f, golden *g) {
  if (g->op != GOLDEN_DIFFSTRIDE1D) return fscanf(f, "%d %d", &g->out_h, &g->out_w) == 2 ? 0 : -1;
  g->out_h = 1;
  return fscanf(f, "%d", &g->out_w) == 1 ? 0 : -1;
}

/* One array line: x, y, dy, dx or dstrides (2 values, 1 for a 1-D case). */
static int read_values(FILE *f, const char *key, golden *g) {
  long count;
  if (fscanf(f, "%ld", &count) != 1) return -1;
  if (!strcmp(key, "dstrides"))
    return count == (g->op == GOLDEN_DIFFSTRIDE1D ? 1 : 2) ? read_pair(f, g, g->dstrides, 0.0) : -1;
  int input = !strcmp(key, "x") || !strcmp(key, "dx");
  double **slot = !strcmp(key, "x") ? &g->x : !strcmp(key, "y") ? &g->y : !strcmp(key, "dy") ? &g->dy
                  : !strcmp(key, "dx") ? &g->dx : NULL;
  long want = (long)g->n * g->c * (input ? (long)g->h * g->w : (long)g->out_h * g->out_w);
  if (!slot || *slot || count < 1 || count != want) return -1; /* the shape and out lines come first */
  *slot = read_array(f, count);
  return *slot ? 0 : -1;
}

/* One `key ...` line or array; returns 0 on success. */
static int read_field(FILE *f, const char *key, golden *g) {
  char word[32];
  if (!strcmp(key, "op")) return read_op(f, g);
  if (!strcmp(key, "shape")) return read_shape(f, g);
  if (!strcmp(key, "smoothness")) return fscanf(f, "%lf", &g->smoothness) == 1 ? 0 : -1;
  if (!strcmp(key, "cropping")) return fscanf(f, "%d", &g->cropping) == 1 ? 0 : -1;
  if (!strcmp(key, "shared")) return fscanf(f, "%d", &g->shared) == 1 ? 0 : -1;
  if (!strcmp(key, "lower")) return fscanf(f, "%lf", &g->lower) == 1 ? 0 : -1;
  if (!strcmp(key, "upper")) {
    if (fscanf(f, "%31s", word) != 1) return -1;
    g->upper = !strcmp(word, "inf") ? INFINITY : atof(word);
    return 0;
  }
  if (!strcmp(key, "strides")) return read_pair(f, g, g->strides, 1.0);
  if (!strcmp(key, "effective")) return read_pair(f, g, g->effective, 1.0);
  if (!strcmp(key, "out")) return read_out(f, g);
  return read_values(f, key, g);
}

int golden_load(const char *path, golden *g, char *err, int errlen) {
  char key[32], version[32];
  memset(g, 0, sizeof *g);
  snprintf(g->name, sizeof g->name, "%s", path);
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, (size_t)errlen, "cannot open %s", path);
    return -1;
  }
  int ok = fscanf(f, "%31s %31s", key, version) == 2 && !strcmp(key, "diffstride-golden") && !strcmp(version, "1");
  if (!ok) snprintf(err, (size_t)errlen, "%s: not a diffstride-golden 1 file", path);
  while (ok && fscanf(f, "%31s", key) == 1)
    if (read_field(f, key, g) != 0) {
      snprintf(err, (size_t)errlen, "%s: bad field '%s'", path, key);
      ok = 0;
    }
  fclose(f);
  if (ok && (!g->x || !g->y || !g->dy || !g->dx)) {
    snprintf(err, (size_t)errlen, "%s: missing array", path);
    ok = 0;
  }
  if (!ok) golden_free(g);
  return ok ? 0 : -1;
}

void golden_free(golden *g) {
  free(g->x);
  free(g->y);
  free(g->dy);
  free(g->dx);
  g->x = g->y = g->dy = g->dx = NULL;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A case file: <op>_<NN>.txt. */
static int is_case(const char *name) {
  size_t len = strlen(name);
  return len > 4 && !strcmp(name + len - 4, ".txt") && strchr(name, '_') &&
         (!strncmp(name, "diffstride", 10) || !strncmp(name, "spectral_pool", 13));
}

/* Appends dir's case files, sorted, to paths[*count..]; -1 when dir cannot
 * be read or has none. */
static int add_dir(const char *dir, char ***paths, size_t *count) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  size_t first = *count;
  for (struct dirent *e; (e = readdir(d));) {
    if (!is_case(e->d_name)) continue;
    char **more = realloc(*paths, sizeof(char *) * (*count + 2));
    size_t len = strlen(dir) + strlen(e->d_name) + 2;
    char *path = malloc(len);
    if (!more || !path) {
      free(path);
      if (more) *paths = more;
      break;
    }
    *paths = more;
    snprintf(path, len, "%s/%s", dir, e->d_name);
    (*paths)[(*count)++] = path;
    (*paths)[*count] = NULL;
  }
  closedir(d);
  qsort(*paths + first, *count - first, sizeof(char *), cmp_names);
  return *count > first ? 0 : -1;
}

char **golden_paths(char *err, int errlen) {
  char *dirs = strdup(golden_dirs()), *save = NULL;
  char **paths = calloc(1, sizeof(char *));
  size_t count = 0;
  for (char *dir = strtok_r(dirs, " ", &save); dirs && paths && dir; dir = strtok_r(NULL, " ", &save))
    if (add_dir(dir, &paths, &count) != 0) {
      snprintf(err, (size_t)errlen, "%s: no case files (<op>_<NN>.txt) readable there", dir);
      golden_paths_free(paths);
      paths = NULL;
    }
  if (!dirs) golden_paths_free(paths), paths = NULL;
  free(dirs);
  return paths;
}

void golden_paths_free(char **paths) {
  for (size_t i = 0; paths && paths[i]; i++) free(paths[i]);
  free(paths);
}

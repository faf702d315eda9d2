/* Parser of the golden-case text format: `key value...` lines, then arrays
 * as `name count` followed by count numbers. */
#include "golden.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *golden_dir(void) {
  const char *d = getenv("DS_GOLDEN_DIR");
  return d && *d ? d : "../shared/golden";
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

/* One `key ...` line or array; returns 0 on success. */
static int read_field(FILE *f, const char *key, golden *g) {
  char word[32];
  if (!strcmp(key, "op")) {
    if (fscanf(f, "%31s", word) != 1) return -1;
    g->diffstride = !strcmp(word, "diffstride");
    return 0;
  }
  if (!strcmp(key, "shape")) return fscanf(f, "%d %d %d %d", &g->n, &g->c, &g->h, &g->w) == 4 ? 0 : -1;
  if (!strcmp(key, "smoothness")) return fscanf(f, "%lf", &g->smoothness) == 1 ? 0 : -1;
  if (!strcmp(key, "cropping")) return fscanf(f, "%d", &g->cropping) == 1 ? 0 : -1;
  if (!strcmp(key, "shared")) return fscanf(f, "%d", &g->shared) == 1 ? 0 : -1;
  if (!strcmp(key, "lower")) return fscanf(f, "%lf", &g->lower) == 1 ? 0 : -1;
  if (!strcmp(key, "upper")) {
    if (fscanf(f, "%31s", word) != 1) return -1;
    g->upper = !strcmp(word, "inf") ? INFINITY : atof(word);
    return 0;
  }
  if (!strcmp(key, "strides")) return fscanf(f, "%lf %lf", &g->strides[0], &g->strides[1]) == 2 ? 0 : -1;
  if (!strcmp(key, "effective"))
    return fscanf(f, "%lf %lf", &g->effective[0], &g->effective[1]) == 2 ? 0 : -1;
  if (!strcmp(key, "out")) return fscanf(f, "%d %d", &g->out_h, &g->out_w) == 2 ? 0 : -1;
  long count;
  if (fscanf(f, "%ld", &count) != 1) return -1;
  double **slot = !strcmp(key, "x") ? &g->x : !strcmp(key, "y") ? &g->y : !strcmp(key, "dy") ? &g->dy
                  : !strcmp(key, "dx") ? &g->dx : NULL;
  if (!strcmp(key, "dstrides")) return count == 2 && fscanf(f, "%lf %lf", &g->dstrides[0], &g->dstrides[1]) == 2 ? 0 : -1;
  if (!slot) return -1;
  *slot = read_array(f, count);
  return *slot ? 0 : -1;
}

int golden_load(const char *dir, const char *name, golden *g, char *err, int errlen) {
  char path[1024], key[32];
  memset(g, 0, sizeof *g);
  snprintf(g->name, sizeof g->name, "%s", name);
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, (size_t)errlen, "cannot open %s", path);
    return -1;
  }
  int ok = fscanf(f, "%31s %31s", key, key) == 2;
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

char **golden_names(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return NULL;
  char **names = calloc(1, sizeof(char *));
  size_t count = 0;
  for (struct dirent *e; names && (e = readdir(d));) {
    size_t len = strlen(e->d_name);
    if (len < 5 || strcmp(e->d_name + len - 4, ".txt")) continue;
    char **more = realloc(names, sizeof(char *) * (count + 2));
    if (!more) break;
    names = more;
    names[count++] = strdup(e->d_name);
    names[count] = NULL;
  }
  closedir(d);
  if (names) qsort(names, count, sizeof(char *), cmp_names);
  return names;
}

void golden_names_free(char **names) {
  for (size_t i = 0; names && names[i]; i++) free(names[i]);
  free(names);
}

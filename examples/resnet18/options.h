/* The trainer's command line (docs/trainer.md, "Flags"): every value is
 * parsed whole and checked against its range; a bad one is refused with one
 * line naming the flag, the value and what is expected. */
#ifndef RN_OPTIONS_H
#define RN_OPTIONS_H

#include <stdio.h>

#include "rn.h"

/* --out leaves room for the longest name the trainer puts in it
 * ("/checkpoint.bin.tmp") within RN_MAX_PATH. */
enum { RN_MAX_OUT = RN_MAX_PATH - 64 };

typedef struct rn_options {
  const char *data, *out, *resume, *eval, *device;
  rn_schedule schedule; /* --lr */
  rn_config cfg;        /* mode, width, strides, smoothness (the input comes from the data) */
  int epochs, batch, threads, train_subset, test_subset, benchmark, quiet;
  int sync_bn, check_every; /* several ranks (dist.h): --sync-bn, --check-every */
  rn_precision precision;
  uint64_t seed;
  rn_sgd opt;
  rn_augment aug;
  float lambda;
  float progress; /* seconds between plain progress lines (stderr not a terminal) */
} rn_options;

void rn_usage(FILE *f);
/* 0: parsed; 1: --help was asked for; -1: a bad flag, err says which. */
int rn_options_parse(rn_options *o, int argc, char **argv, rn_error *err);

#endif

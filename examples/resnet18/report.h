/* What the trainer shows: progress bar, per-epoch lines, the CSV log, the
 * closing summary and the gnuplot figure. */
#ifndef RN_REPORT_H
#define RN_REPORT_H

#include <stdio.h>

#include "rn.h"

/* One epoch's results with every pooling layer's strides and output size. */
typedef struct rn_record {
  int epoch, npools;
  long step;
  double lr, loss, accuracy, test_accuracy, test_loss, images_per_s, seconds, library_share;
  float strides[RN_MAX_POOLS][2];
  int sizes[RN_MAX_POOLS][2];
} rn_record;

void rn_record_fill(rn_record *r, const rn_trainer *t, const rn_epoch_stats *s, double test_acc,
                    double test_loss);

/* Per-step reporting: the bar (when enabled) and, every `every` optimizer
 * steps, a row of DIR/steps.csv (step, running loss, every stride). */
typedef struct rn_progress {
  int enabled, every;
  double last;
  const rn_trainer *trainer;
  FILE *steps;
} rn_progress;
/* Opens DIR/steps.csv for appending (header when new); NULL on failure. */
FILE *rn_steps_open(const char *dir, int npools);
/* An rn_progress_fn: a bar on stderr, redrawn at most 5 times a second. */
void rn_progress_bar(void *progress, int done, int total, double loss, double images_per_s);

void rn_print_record(FILE *f, const rn_record *r, int epochs, rn_mode mode);
/* The CSV log: a header when the file is new, one row per epoch. */
int rn_csv_append(const char *path, const rn_record *r, rn_error *err);
void rn_print_summary(FILE *f, const rn_record *r, int count, rn_mode mode);
/* Writes DIR/plot.gp and, when gnuplot is installed, DIR/training.png:
 * accuracy per epoch (DIR/log.csv) and the strides per step (DIR/steps.csv).
 * Returns 1 when the PNG was made, 0 when gnuplot is missing, -1 on error. */
int rn_plot(const char *dir, int npools, rn_error *err);

#endif

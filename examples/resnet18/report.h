/* What the trainer shows: progress bar, per-epoch lines, the CSV logs, the
 * closing summary (report.c) and the gnuplot figure (plot.c). */
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

/* Per-step reporting: rows of DIR/steps.csv (step, running loss, every
 * stride) at step 1, every `every` optimizer steps and at the end of each
 * epoch, so that every run has rows to plot; and on stderr a bar (a
 * terminal), or a plain line every `interval` seconds (a log, a pipe), or
 * nothing. */
typedef enum rn_progress_style { RN_PROGRESS_NONE, RN_PROGRESS_BAR, RN_PROGRESS_LINES } rn_progress_style;
typedef struct rn_progress {
  rn_progress_style style;
  int every;
  double last, interval; /* rn_seconds() of the last bar or line drawn */
  const rn_trainer *trainer;
  FILE *steps;
  char path[RN_MAX_PATH]; /* of steps.csv */
} rn_progress;
/* Opens DIR/steps.csv for appending into p->steps (a header when new). */
int rn_steps_open(rn_progress *p, const char *dir, int npools, rn_error *err);
/* Closes p->steps (when open); -1 when its last rows could not be written. */
int rn_steps_close(rn_progress *p, rn_error *err);
/* An rn_progress_fn: the step's row, then the bar, redrawn at most 5 times
 * a second, or a line "epoch E: DONE/TOTAL images, loss L, R img/s" when
 * interval has passed; -1 with "write PATH: reason" when a row cannot be
 * written (a full disk, a file size limit). */
int rn_progress_bar(void *progress, int done, int total, double loss, double images_per_s, rn_error *err);

void rn_print_record(FILE *f, const rn_record *r, int epochs, rn_mode mode);
/* The CSV log: a header when the file is new, one row per epoch. */
int rn_csv_append(const char *path, const rn_record *r, rn_error *err);
void rn_print_summary(FILE *f, const rn_record *r, int count, rn_mode mode);
/* Writes DIR/plot.gp and, when gnuplot is installed, DIR/training.png:
 * accuracy per epoch (DIR/log.csv) and the strides per step (DIR/steps.csv).
 * The script names these files relative to DIR and gnuplot runs in DIR,
 * spawned with an argument vector: no path reaches a shell or the script.
 * Returns 1 when the PNG was made, 0 when gnuplot is missing, -1 on error. */
int rn_plot(const char *dir, int npools, rn_error *err);

#endif

/* What the trainer shows while and after it trains: the progress bar and
 * DIR/steps.csv, the per-epoch lines, DIR/log.csv and the summary. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "report.h"

void rn_record_fill(rn_record *r, const rn_trainer *t, const rn_epoch_stats *s, double test_acc,
                    double test_loss) {
  const rn_model *m = &t->model;
  memset(r, 0, sizeof *r);
  *r = (rn_record){t->epoch, m->npools, t->step, rn_schedule_lr(&t->schedule, t->step - 1),
                   s->loss, s->accuracy, test_acc, test_loss, s->images_per_s, s->seconds,
                   s->seconds > 0 ? 100.0 * s->library_seconds / s->seconds : 0.0, {{0}}, {{0}}};
  for (int p = 0; p < m->npools; p++) {
    memcpy(r->strides[p], m->pools[p].stride, sizeof r->strides[p]);
    r->sizes[p][0] = m->pools[p].out_h;
    r->sizes[p][1] = m->pools[p].out_w;
  }
}

int rn_steps_open(rn_progress *p, const char *dir, int npools, rn_error *err) {
  if (rn_path(p->path, sizeof p->path, err, "%s/steps.csv", dir)) return -1;
  struct stat st;
  int fresh = stat(p->path, &st) != 0 || st.st_size == 0;
  p->steps = fopen(p->path, "a");
  if (!p->steps) return rn_fail(err, "%s: cannot open for appending: %s", p->path, strerror(errno));
  if (fresh) {
    fprintf(p->steps, "step,loss");
    for (int q = 0; q < npools; q++) fprintf(p->steps, ",stride%d_h,stride%d_w", q, q);
    fputc('\n', p->steps);
  }
  return 0;
}

int rn_steps_close(rn_progress *p, rn_error *err) {
  if (!p->steps) return 0;
  int failed = ferror(p->steps); /* errno still says why */
  failed = fclose(p->steps) != 0 || failed;
  p->steps = NULL;
  return failed ? rn_fail(err, "write %s: %s", p->path, strerror(errno)) : 0;
}

/* Flushed at once, for whoever watches the run; a failed write is reported
 * here, not at the end of the run. */
static int steps_row(rn_progress *p, double loss, rn_error *err) {
  const rn_model *m = &p->trainer->model;
  fprintf(p->steps, "%ld,%.5f", p->trainer->step, loss);
  for (int q = 0; q < m->npools; q++)
    fprintf(p->steps, ",%.5f,%.5f", (double)m->pools[q].stride[0], (double)m->pools[q].stride[1]);
  fputc('\n', p->steps);
  if (fflush(p->steps) == 0 && !ferror(p->steps)) return 0;
  return rn_fail(err, "write %s: %s", p->path, strerror(errno));
}

static void draw_bar(int done, int total, double loss, double images_per_s) {
  enum { WIDTH = 30 };
  int fill = (int)((long)WIDTH * done / total);
  char bar[WIDTH + 1];
  for (int i = 0; i < WIDTH; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
  bar[WIDTH] = 0;
  fprintf(stderr, "\r  [%s] %6d/%d  loss %.4f  %6.0f img/s%s", bar, done, total, loss, images_per_s,
          done == total ? "\n" : "");
}

int rn_progress_bar(void *progress, int done, int total, double loss, double images_per_s, rn_error *err) {
  rn_progress *p = progress;
  long step = p->trainer->step;
  if (p->steps && (step == 1 || step % p->every == 0 || done == total) && steps_row(p, loss, err)) return -1;
  double now = rn_seconds();
  if (p->style == RN_PROGRESS_BAR && (done == total || now - p->last >= 0.2)) {
    draw_bar(done, total, loss, images_per_s);
  } else if (p->style == RN_PROGRESS_LINES && done < total && now - p->last >= p->interval) {
    fprintf(stderr, "  epoch %d: %d/%d images, loss %.4f, %.0f img/s\n", p->trainer->epoch + 1, done, total, loss,
            images_per_s);
  } else {
    return 0;
  }
  p->last = now;
  fflush(stderr);
  return 0;
}

static void print_pools(FILE *f, const rn_record *r) {
  for (int p = 0; p < r->npools; p++)
    fprintf(f, " (%.3f,%.3f)->%dx%d", (double)r->strides[p][0], (double)r->strides[p][1],
            r->sizes[p][0], r->sizes[p][1]);
}

void rn_print_record(FILE *f, const rn_record *r, int epochs, rn_mode mode) {
  fprintf(f, "epoch %d/%d  train loss %.4f acc %.2f%%  test acc %.2f%%  lr %g  %.0f img/s  %.1f s  library %.1f%%\n",
          r->epoch, epochs, r->loss, 100 * r->accuracy, 100 * r->test_accuracy, r->lr,
          r->images_per_s, r->seconds, r->library_share);
  if (r->npools) {
    fprintf(f, "  %s strides -> sizes:", mode == RN_DIFFSTRIDE ? "learned" : "pooling");
    print_pools(f, r);
    fputc('\n', f);
  }
  fflush(f);
}

int rn_csv_append(const char *path, const rn_record *r, rn_error *err) {
  struct stat st;
  int fresh = stat(path, &st) != 0 || st.st_size == 0;
  FILE *f = fopen(path, "a");
  if (!f) return rn_fail(err, "%s: cannot open for appending: %s", path, strerror(errno));
  if (fresh) {
    fprintf(f, "epoch,step,lr,train_loss,train_acc,test_loss,test_acc,images_per_s,seconds,library_share");
    for (int p = 0; p < r->npools; p++) fprintf(f, ",stride%d_h,stride%d_w,size%d_h,size%d_w", p, p, p, p);
    fputc('\n', f);
  }
  fprintf(f, "%d,%ld,%g,%.6f,%.6f,%.6f,%.6f,%.1f,%.2f,%.2f", r->epoch, r->step, r->lr, r->loss,
          r->accuracy, r->test_loss, r->test_accuracy, r->images_per_s, r->seconds,
          r->library_share);
  for (int p = 0; p < r->npools; p++)
    fprintf(f, ",%.5f,%.5f,%d,%d", (double)r->strides[p][0], (double)r->strides[p][1],
            r->sizes[p][0], r->sizes[p][1]);
  fputc('\n', f);
  int failed = ferror(f); /* errno still says why */
  failed = fclose(f) != 0 || failed;
  return failed ? rn_fail(err, "write %s: %s", path, strerror(errno)) : 0;
}

void rn_print_summary(FILE *f, const rn_record *r, int count, rn_mode mode) {
  fprintf(f, "\nsummary (%s)\n%5s %10s %9s %9s %9s %8s  %s\n", rn_mode_name(mode), "epoch",
          "train loss", "train acc", "test acc", "img/s", "time s", "strides -> sizes");
  double total = 0.0;
  for (int i = 0; i < count; i++) {
    total += r[i].seconds;
    fprintf(f, "%5d %10.4f %8.2f%% %8.2f%% %9.0f %8.1f ", r[i].epoch, r[i].loss,
            100 * r[i].accuracy, 100 * r[i].test_accuracy, r[i].images_per_s, r[i].seconds);
    print_pools(f, &r[i]);
    fputc('\n', f);
  }
  if (count)
    fprintf(f, "final test accuracy %.2f%% after %d epochs, %.1f s of training\n",
            100 * r[count - 1].test_accuracy, r[count - 1].epoch, total);
}


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

FILE *rn_steps_open(const char *dir, int npools) {
  char path[4096];
  snprintf(path, sizeof path, "%s/steps.csv", dir);
  struct stat st;
  int fresh = stat(path, &st) != 0 || st.st_size == 0;
  FILE *f = fopen(path, "a");
  if (f && fresh) {
    fprintf(f, "step,loss");
    for (int p = 0; p < npools; p++) fprintf(f, ",stride%d_h,stride%d_w", p, p);
    fputc('\n', f);
  }
  return f;
}

static void steps_row(rn_progress *p, double loss) {
  const rn_model *m = &p->trainer->model;
  fprintf(p->steps, "%ld,%.5f", p->trainer->step, loss);
  for (int q = 0; q < m->npools; q++)
    fprintf(p->steps, ",%.5f,%.5f", (double)m->pools[q].stride[0], (double)m->pools[q].stride[1]);
  fputc('\n', p->steps);
  fflush(p->steps); /* for whoever watches the run */
}

void rn_progress_bar(void *progress, int done, int total, double loss, double images_per_s) {
  rn_progress *p = progress;
  if (p->steps && p->trainer->step % p->every == 0) steps_row(p, loss);
  double now = rn_seconds();
  if (!p->enabled || (done < total && now - p->last < 0.2)) return;
  p->last = now;
  enum { WIDTH = 30 };
  int fill = (int)((long)WIDTH * done / total);
  char bar[WIDTH + 1];
  for (int i = 0; i < WIDTH; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
  bar[WIDTH] = 0;
  fprintf(stderr, "\r  [%s] %6d/%d  loss %.4f  %6.0f img/s%s", bar, done, total, loss,
          images_per_s, done == total ? "\n" : "");
  fflush(stderr);
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
  if (!f) return rn_fail(err, "%s: cannot open for appending", path);
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
  return fclose(f) ? rn_fail(err, "%s: write failed", path) : 0;
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

static void plot_script(FILE *g, const char *dir, int npools) {
  fprintf(g, "set datafile separator ','\nset terminal png size 1100,440\n"
             "set output '%s/training.png'\nset multiplot layout 1,2\nset grid\n"
             "set key bottom right\nset xlabel 'epoch'\nset ylabel 'accuracy (%%)'\n"
             "plot '%s/log.csv' using 1:($7*100) with linespoints title 'test', "
             "'' using 1:($5*100) with linespoints title 'train'\n",
             dir, dir);
  fprintf(g, "set key outside right top\nset xlabel 'optimizer step'\nset ylabel 'stride'\n");
  for (int p = 0; p < npools; p++)
    fprintf(g, "%s '%s/steps.csv' using 1:%d with lines title 'layer %d h', '' using 1:%d with lines title 'layer %d w'%s",
            p ? "    " : "plot", dir, 3 + 2 * p, p, 4 + 2 * p, p, p + 1 < npools ? ", \\\n" : "\n");
  if (!npools) fprintf(g, "plot 0 title 'no pooling layers'\n");
  fprintf(g, "unset multiplot\n");
}

int rn_plot(const char *dir, int npools, rn_error *err) {
  char path[4096], cmd[4200];
  snprintf(path, sizeof path, "%s/plot.gp", dir);
  FILE *g = fopen(path, "w");
  if (!g) return rn_fail(err, "%s: cannot create", path);
  plot_script(g, dir, npools);
  if (fclose(g)) return rn_fail(err, "%s: write failed", path);
  if (system("command -v gnuplot >/dev/null 2>&1") != 0) return 0;
  snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>/dev/null", path);
  return system(cmd) == 0 ? 1 : rn_fail(err, "gnuplot %s failed", path);
}

/* The figure of a run: DIR/plot.gp, a gnuplot script that names its files
 * relative to DIR (no path inside it), and gnuplot spawned on it in DIR with
 * an argument vector, so no shell ever sees the directory's name. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "report.h"

/* Left: train/test accuracy per epoch (log.csv: columns 1, 5, 7); right:
 * every pooling layer's strides per step (steps.csv: columns 3 on). */
static void plot_script(FILE *g, int npools) {
  fprintf(g, "set datafile separator ','\nset terminal png size 1100,440\n"
             "set output 'training.png'\nset multiplot layout 1,2\nset grid\n"
             "set key bottom right\nset xlabel 'epoch'\nset ylabel 'accuracy (%%)'\n"
             "plot 'log.csv' using 1:($7*100) with linespoints title 'test', "
             "'' using 1:($5*100) with linespoints title 'train'\n");
  fprintf(g, "set key outside right top\nset xlabel 'optimizer step'\nset ylabel 'stride'\n");
  for (int p = 0; p < npools; p++)
    fprintf(g, "%s 'steps.csv' using 1:%d with lines title 'layer %d h', '' using 1:%d with lines title 'layer %d w'%s",
            p ? "    " : "plot", 3 + 2 * p, p, 4 + 2 * p, p, p + 1 < npools ? ", \\\n" : "\n");
  if (!npools) fprintf(g, "plot 0 title 'no pooling layers'\n");
  fprintf(g, "unset multiplot\n");
}

static int write_script(const char *dir, int npools, rn_error *err) {
  char path[RN_MAX_PATH];
  if (rn_path(path, sizeof path, err, "%s/plot.gp", dir)) return -1;
  FILE *g = fopen(path, "w");
  if (!g) return rn_fail(err, "%s: cannot create: %s", path, strerror(errno));
  plot_script(g, npools);
  int failed = ferror(g); /* errno still says why */
  failed = fclose(g) != 0 || failed;
  return failed ? rn_fail(err, "write %s: %s", path, strerror(errno)) : 0;
}

/* `gnuplot plot.gp` with DIR as its working directory, stdin and the
 * chatter on stdout and stderr on /dev/null; posix_spawnp's error number. */
static int spawn_gnuplot(const char *dir, pid_t *pid) {
  extern char **environ;
  char *argv[] = {"gnuplot", "plot.gp", NULL};
  posix_spawn_file_actions_t fa;
  int rc = posix_spawn_file_actions_init(&fa);
  if (rc) return rc;
  rc = posix_spawn_file_actions_addchdir_np(&fa, dir);
  if (!rc) rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (!rc) rc = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, 1, 2);
  if (!rc) rc = posix_spawnp(pid, "gnuplot", &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc;
}

int rn_plot(const char *dir, int npools, rn_error *err) {
  if (write_script(dir, npools, err)) return -1;
  pid_t pid;
  int rc = spawn_gnuplot(dir, &pid), status;
  if (rc == ENOENT) return 0; /* no gnuplot on the PATH */
  if (rc) return rn_fail(err, "cannot run gnuplot in %s: %s", dir, strerror(rc));
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return rn_fail(err, "waiting for gnuplot: %s", strerror(errno));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 1;
  if (WIFEXITED(status))
    return rn_fail(err, "gnuplot exited with status %d (run 'gnuplot plot.gp' in %s to see why)", WEXITSTATUS(status),
                   dir);
  return rn_fail(err, "gnuplot was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
}

/* Fuzz target `cli`: the trainer's command-line parsing
 * (examples/resnet18/options.c: rn_options_parse, with getopt_long), without
 * training, and the checks the trainer's setup makes next on what it parsed.
 *
 * Input: the arguments, separated by NUL or newline bytes (argv[0] is
 * "resnet18"). The parser returns 0 (parsed), 1 (--help) or -1 with a
 * message. After a parse every value lies in the range options.c and
 * docs/trainer.md give it (so nothing later converts an out-of-range float
 * to an int or allocates from an unchecked count); the config then goes
 * through rn_config_check (with a small input, as the data would give it),
 * which either accepts it or says why; and a synthetic data spec is loaded
 * (rn_data_load "synthetic:HxWxC[:CLASSES]") when its images are small
 * (2048 + 512 of them are generated per call) or when it does not parse
 * (it must then fail with a message). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "options.h"
#include "rn.h"

static FILE *g_sink;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  g_sink = fopen("/dev/null", "w");
  if (!g_sink) abort();
  return 0;
}

enum { MAX_ARGS = 64 };

/* The synthetic data spec, when its images are small or it does not parse. */
static void data_spec(const char *spec) {
  if (strncmp(spec, "synthetic:", 10) != 0) return; /* the others read files named in the input */
  int h, w, c;
  if (sscanf(spec + 10, "%dx%dx%d", &h, &w, &c) == 3 && h >= 2 && w >= 2 && c >= 1 && c <= 3 &&
      (long long)h * w * c > 64)
    return;
  rn_data d;
  rn_error err = {{0}};
  if (rn_data_load(&d, spec, &err) == 0) {
    const rn_dataset *s = &d.train;
    FUZZ_REQUIRE(s->count > 0 && d.test.count > 0 && s->h >= 2 && s->w >= 2 && s->c >= 1 && s->c <= 3 &&
                     s->classes >= 2 && s->classes <= RN_MAX_CLASSES,
                 "synthetic data %d images %dx%dx%d, %d classes", s->count, s->h, s->w, s->c, s->classes);
    for (int i = 0; i < s->count; i++) FUZZ_REQUIRE(s->labels[i] < s->classes, "synthetic label %d", s->labels[i]);
    rn_data_free(&d);
  } else {
    FUZZ_REQUIRE(err.msg[0], "rn_data_load(%s) failed without a message", spec);
  }
}

static int finite_in(float v, double lo, double hi) { return isfinite(v) && v >= lo && v <= hi; }

static void check_options(const rn_options *o) {
  FUZZ_REQUIRE(o->epochs >= 1 && o->epochs <= RN_MAX_EPOCHS && o->batch >= 1 && o->batch <= RN_MAX_BATCH &&
                   o->threads >= 1 && o->threads <= RN_MAX_THREADS && o->aug.pad >= 0 && o->aug.pad <= RN_MAX_SIDE &&
                   o->train_subset >= 0 && o->test_subset >= 0 && o->benchmark >= 0 && o->benchmark <= 1000000,
               "counts: epochs %d batch %d threads %d pad %d subsets %d %d benchmark %d", o->epochs, o->batch,
               o->threads, o->aug.pad, o->train_subset, o->test_subset, o->benchmark);
  FUZZ_REQUIRE(finite_in(o->cfg.width, 0, 8) && o->cfg.width > 0 && finite_in(o->cfg.smoothness, 0, INFINITY) &&
                   o->cfg.smoothness > 0,
               "width %g, smoothness %g", (double)o->cfg.width, (double)o->cfg.smoothness);
  FUZZ_REQUIRE(finite_in(o->opt.momentum, 0, 1) && o->opt.momentum < 1 && finite_in(o->opt.weight_decay, 0, INFINITY) &&
                   finite_in(o->lambda, 0, INFINITY),
               "momentum %g, weight decay %g, lambda %g", (double)o->opt.momentum, (double)o->opt.weight_decay,
               (double)o->lambda);
  FUZZ_REQUIRE(finite_in(o->aug.smoothing, 0, 1) && o->aug.smoothing < 1 && finite_in(o->aug.mixup, 0, INFINITY),
               "smoothing %g, mixup %g", (double)o->aug.smoothing, (double)o->aug.mixup);
  for (int i = 0; i < RN_STAGES; i++)
    FUZZ_REQUIRE(finite_in(o->cfg.strides[i], 1, RN_MAX_STRIDE), "stride %d = %g", i, (double)o->cfg.strides[i]);
  FUZZ_REQUIRE(o->cfg.mode >= RN_STRIDED && o->cfg.mode <= RN_DIFFSTRIDE && o->precision >= RN_FP32 &&
                   o->precision <= RN_BF16,
               "mode %d, precision %d", (int)o->cfg.mode, (int)o->precision);
  const rn_schedule *s = &o->schedule;
  FUZZ_REQUIRE(s->count >= 1 && s->count <= RN_MAX_LR_STEPS && s->step[0] == 0, "a schedule of %d pieces from step %ld",
               s->count, s->step[0]);
  for (int i = 0; i < s->count; i++)
    FUZZ_REQUIRE(finite_in(s->lr[i], 0, INFINITY) && (i == 0 || s->step[i] > s->step[i - 1]),
                 "schedule piece %d: step %ld, rate %g", i, s->step[i], (double)s->lr[i]);
  FUZZ_REQUIRE(o->data && o->data[0] && o->device, "a NULL or empty data spec or device");
  FUZZ_REQUIRE(!o->out || (o->out[0] && strlen(o->out) <= RN_MAX_OUT), "--out of %zu bytes", strlen(o->out));
  FUZZ_REQUIRE(!o->resume || o->resume[0], "an empty --resume");
  FUZZ_REQUIRE(!o->eval || o->eval[0], "an empty --eval");
  FUZZ_REQUIRE(strlen(rn_mode_name(o->cfg.mode)) > 0 && strlen(rn_precision_name(o->precision)) > 0, "names");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1), *argv[MAX_ARGS + 2];
  if (!text) abort();
  memcpy(text, data, size);
  text[size] = '\0';
  int argc = 0;
  argv[argc++] = "resnet18";
  for (char *p = text, *end = text + size; p < end && argc < MAX_ARGS + 1;) {
    char *q = p;
    while (q < end && *q != '\0' && *q != '\n') q++;
    *q = '\0';
    argv[argc++] = p;
    p = q + 1;
  }
  argv[argc] = NULL;
  snprintf(fuzz_note, sizeof fuzz_note, "%d arguments", argc - 1);

  rn_options o;
  rn_error err = {{0}};
  int rc = rn_options_parse(&o, argc, argv, &err);
  FUZZ_REQUIRE(rc == 0 || rc == 1 || rc == -1, "rn_options_parse returned %d", rc);
  if (rc == -1) FUZZ_REQUIRE(err.msg[0], "rn_options_parse failed without a message");
  if (rc == 1) rn_usage(g_sink);
  if (rc == 0) {
    check_options(&o);
    rn_config cfg = o.cfg;
    cfg.in_h = cfg.in_w = 8, cfg.in_c = 1, cfg.classes = 10; /* from the data */
    err.msg[0] = '\0';
    if (rn_config_check(&cfg, &err)) FUZZ_REQUIRE(err.msg[0], "rn_config_check failed without a message");
    (void)rn_schedule_lr(&o.schedule, (long)o.epochs * 1000);
    data_spec(o.data);
  }
  free(text);
  return 0;
}

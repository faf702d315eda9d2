/* SGD with momentum and weight decay, and the piecewise-constant schedule. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "backend.h"
#include "elements.h"

int rn_schedule_parse(rn_schedule *s, const char *text, rn_error *err) {
  const char *p = text;
  char *end;
  s->count = 0;
  while (*p) {
    if (s->count == RN_MAX_LR_STEPS)
      return rn_fail(err, "learning-rate schedule '%s': at most %d pieces", text, RN_MAX_LR_STEPS);
    long step = 0;
    if (s->count > 0) {
      errno = 0;
      step = strtol(p, &end, 10);
      if (end == p || *end != ':' || errno || step <= s->step[s->count - 1])
        return rn_fail(err, "learning-rate schedule '%s': expected STEP:LR with increasing steps after '%s'",
                       text, p);
      p = end + 1;
    }
    float lr = strtof(p, &end);
    if (end == p || !(lr >= 0.0f) || !isfinite(lr) || (*end && *end != ','))
      return rn_fail(err, "learning-rate schedule '%s': bad rate at '%s' (rates are finite and >= 0)", text, p);
    s->step[s->count] = step;
    s->lr[s->count++] = lr;
    p = *end ? end + 1 : end;
  }
  return s->count ? 0 : rn_fail(err, "learning-rate schedule is empty");
}

float rn_schedule_lr(const rn_schedule *s, long step) {
  int i = 0;
  while (i + 1 < s->count && step >= s->step[i + 1]) i++;
  return s->lr[i];
}

void rn_sgd_step(rn_model *m, const rn_sgd *opt, float lr) {
  for (int r = 0; r < m->nranges; r++) {
    const rn_range *q = &m->ranges[r];
    m->be->sgd(m, m->params + q->offset, m->grads + q->offset, m->mom + q->offset, q->count, lr,
               opt->momentum, q->decay ? opt->weight_decay : 0.0f);
  }
  if (m->cfg.mode != RN_DIFFSTRIDE) return;
  for (int p = 0; p < m->npools; p++) /* the strides live on the host */
    for (int a = 0; a < 2; a++)
      rn_sgd_element(&m->pools[p].stride[a], m->pools[p].grad[a], &m->pools[p].mom[a], lr, opt->momentum,
                     0.0f);
}

/* xoshiro256** (Blackman & Vigna), seeded by splitmix64. */
#include <math.h>

#include "rn.h"

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void rn_rng_seed(rn_rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++) {
    uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    r->s[i] = z ^ (z >> 31);
  }
}

uint64_t rn_rng_next(rn_rng *r) {
  uint64_t *s = r->s, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double rn_rng_uniform(rn_rng *r) { return (double)(rn_rng_next(r) >> 11) * 0x1.0p-53; }

/* Lemire's multiply-shift with rejection: exactly uniform. */
uint32_t rn_rng_below(rn_rng *r, uint32_t n) {
  uint64_t m = (uint64_t)(uint32_t)(rn_rng_next(r) >> 32) * n;
  if ((uint32_t)m < n) {
    uint32_t floor = (uint32_t)(-n) % n;
    while ((uint32_t)m < floor) m = (uint64_t)(uint32_t)(rn_rng_next(r) >> 32) * n;
  }
  return (uint32_t)(m >> 32);
}

/* Box-Muller; one value per call keeps the state simple to save. */
double rn_rng_normal(rn_rng *r) {
  double u = rn_rng_uniform(r), v = rn_rng_uniform(r);
  return sqrt(-2.0 * log1p(-u)) * cos(2.0 * M_PI * v);
}

/* Gamma(a, 1) by Marsaglia-Tsang (a < 1 through Gamma(a + 1) * U^(1/a)). */
static double gamma_draw(rn_rng *r, double a) {
  if (a < 1.0) return gamma_draw(r, a + 1.0) * pow(1.0 - rn_rng_uniform(r), 1.0 / a);
  double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
  for (;;) {
    double x = rn_rng_normal(r), v = 1.0 + c * x;
    if (v <= 0.0) continue;
    v = v * v * v;
    double u = rn_rng_uniform(r);
    if (log1p(-u) < 0.5 * x * x + d - d * v + d * log(v)) return d * v;
  }
}

double rn_rng_beta(rn_rng *r, double a) {
  double x = gamma_draw(r, a), y = gamma_draw(r, a);
  return x + y > 0.0 ? x / (x + y) : 0.5;
}

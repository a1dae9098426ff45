/* Fused distillation losses (host/nn/distill_loss.c, kernels/distill_loss.cl) against a plain-C
 * DOUBLE reference written straight from the definitions in host/nn/distill_loss.h:
 *   - values from the definitions (log-softmax in double, mixtures by log-add-exp);
 *   - the analytic reference gradient from dL/ds of each definition (unsimplified) pushed
 *     through the softmax Jacobian, itself checked against central differences of the double
 *     objective (h = 1e-5);
 *   - the kernel's values and gradients against both, with tolerances labelled where used.
 * Every loss x dense teacher x T in {0.5, 1, 4, 20} x alpha in {0, 0.3, 1} at [7 x 13], each
 * loss once at [7 x 1000]; logits of +-80 stay finite; top-k teachers (drop, uniform) at K = 3
 * of 10 and K == C (which must equal the dense teacher); refusals; loss ce against
 * kd_softmax_ce_forward_backward, bit for bit (to float rounding where a narrow-row kernel meets
 * a work-group kernel on CPUs: host/nn/loss.h). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/distill_loss.h"
#include "nn/loss.h"
#include "testutil.h"

#define OFF 5
#define GARBAGE 777.0f
#define NLOSS 7

static const double temps[] = {0.5, 1, 4, 20};
static const double alphas[] = {0, 0.3, 1};
#define NTEMPS (sizeof temps / sizeof temps[0])
#define NALPHAS (sizeof alphas / sizeof alphas[0])

static const kd_test_pad PAD = {OFF, 0, GARBAGE, GARBAGE};

/* A float buffer with OFF garbage floats before the data. */
static cl_mem padded(size_t n, const float *host) { return kd_test_padded(&PAD, n, host); }

/* int32 data at int offset OFF, -7 before it. */
static cl_mem int_buffer(size_t n, const int32_t *host) {
  return kd_test_int_buffer(OFF, n, host, -7);
}

/* ------------------------------------------------------------------------------------------ */
/* Double reference.                                                                           */

typedef struct ref_cfg {
  kd_distill_loss loss;
  double T, alpha, beta, skew;
} ref_cfg;

static ref_cfg ref_of(const kd_distill_config *c) {
  return (ref_cfg){c->loss, c->temperature, c->loss == KD_LOSS_CE ? 1.0 : c->alpha, c->beta,
                   c->skew};
}

/* out = log_softmax(x / T), n entries, max subtracted. */
static void log_softmax_T(const double *x, size_t n, double T, double *out) {
  double m = -INFINITY, s = 0;
  for (size_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
  for (size_t j = 0; j < n; j++) s += exp((x[j] - m) / T);
  for (size_t j = 0; j < n; j++) out[j] = (x[j] - m) / T - log(s);
}

/* log(a + b) from la = log a, lb = log b (either may be -inf, not both). */
static double log_add(double la, double lb) {
  double hi = la > lb ? la : lb, lo = la > lb ? lb : la;
  return hi + log1p(exp(lo - hi));
}

/* The teacher of one row as the reference sees it: lt[j] = log t_j at temperature T where
 * mask[j]; zt[j] the logits mse compares with. */
typedef struct ref_teacher {
  double *lt, *zt;
  unsigned char *mask;
} ref_teacher;

/* The distillation term of one row (T^2 included), straight from the definitions. */
static double ref_kd_value(const ref_cfg *c, const double *zs, const ref_teacher *t, size_t C) {
  double *ls = kd_test_doubles(C), V = 0, T = c->T;
  log_softmax_T(zs, C, T, ls);
  for (size_t j = 0; j < C; j++) {
    if (!t->mask[j]) continue;
    double s = exp(ls[j]), tj = exp(t->lt[j]), lt = t->lt[j];
    switch (c->loss) {
    case KD_LOSS_KD: V += tj == 0 ? 0 : tj * (lt - ls[j]); break;
    case KD_LOSS_RKL: V += s == 0 ? 0 : s * (ls[j] - lt); break;
    case KD_LOSS_JSD: {
      double lm = log_add(log(c->beta) + lt, log(1 - c->beta) + ls[j]); /* log m */
      V += c->beta * (tj == 0 ? 0 : tj * (lt - lm)) + (1 - c->beta) * (s == 0 ? 0 : s * (ls[j] - lm));
      break;
    }
    case KD_LOSS_SKL: {
      double lm = log_add(log(c->skew) + lt, log(1 - c->skew) + ls[j]);
      V += tj == 0 ? 0 : tj * (lt - lm);
      break;
    }
    case KD_LOSS_TVD: V += 0.5 * fabs(tj - s); break;
    case KD_LOSS_MSE: V += (zs[j] - t->zt[j]) * (zs[j] - t->zt[j]); break;
    case KD_LOSS_CE: break;
    }
  }
  free(ls);
  if (c->loss == KD_LOSS_CE) return 0;
  if (c->loss == KD_LOSS_MSE) return V / (double)C;
  return T * T * V;
}

static double ref_ce(const double *zs, size_t C, int y) {
  double *l = kd_test_doubles(C);
  log_softmax_T(zs, C, 1.0, l);
  double r = -l[y];
  free(l);
  return r;
}

/* alpha * ce + (1 - alpha) * kd of one row. */
static double ref_objective(const ref_cfg *c, const double *zs, int y, const ref_teacher *t,
                            size_t C) {
  return c->alpha * ref_ce(zs, C, y) + (1 - c->alpha) * ref_kd_value(c, zs, t, C);
}

/* d = scale * d(objective)/dz_s of one row: dL/ds_c from each definition, then the softmax
 * Jacobian (dL/du_j = s_j (g_j - sum_k s_k g_k), u = z/T) and dz = du / T, times T^2. */
static void ref_grad(const ref_cfg *c, const double *zs, int y, const ref_teacher *t, size_t C,
                     double scale, double *d) {
  double T = c->T, *ls = kd_test_doubles(C), *l1 = kd_test_doubles(C), *sg = kd_test_doubles(C),
         G = 0;
  log_softmax_T(zs, C, T, ls);
  log_softmax_T(zs, C, 1.0, l1);
  for (size_t j = 0; j < C; j++) {
    double s = exp(ls[j]), tj = exp(t->lt[j]), g = 0; /* s * dL/ds_j */
    if (!t->mask[j] || c->loss == KD_LOSS_MSE || c->loss == KD_LOSS_CE) {
      sg[j] = 0;
      continue;
    }
    switch (c->loss) {
    case KD_LOSS_KD: g = -tj; break; /* s * (-t/s) */
    case KD_LOSS_RKL: g = s * (ls[j] - t->lt[j] + 1); break;
    case KD_LOSS_JSD: {
      double b = c->beta, lm = log_add(log(b) + t->lt[j], log(1 - b) + ls[j]);
      double t_m = exp(t->lt[j] - lm), s_m = exp(ls[j] - lm);
      /* d/ds [b t log(t/m) + (1-b) s log(s/m)] = -b (1-b) t/m + (1-b)(log(s/m) + 1 - (1-b) s/m) */
      g = s * (-b * (1 - b) * t_m + (1 - b) * ((ls[j] - lm) + 1 - (1 - b) * s_m));
      break;
    }
    case KD_LOSS_SKL: {
      double l = c->skew, lm = log_add(log(l) + t->lt[j], log(1 - l) + ls[j]);
      g = -(1 - l) * tj * exp(ls[j] - lm); /* s * (-t (1-l) / m) */
      break;
    }
    case KD_LOSS_TVD: g = 0.5 * s * (s > tj ? 1 : (s < tj ? -1 : 0)); break;
    default: break;
    }
    sg[j] = g;
    G += g;
  }
  for (size_t j = 0; j < C; j++) {
    double kd;
    if (c->loss == KD_LOSS_MSE) kd = 2 * (zs[j] - t->zt[j]) / (double)C;
    else if (c->loss == KD_LOSS_CE) kd = 0;
    else kd = T * T * (sg[j] - exp(ls[j]) * G) / T;
    double ce = exp(l1[j]) - ((int)j == y);
    d[j] = scale * (c->alpha * ce + (1 - c->alpha) * kd);
  }
  free(ls), free(l1), free(sg);
}

/* Teacher kinds the kernels take. */
typedef enum { T_DENSE, T_TOPK } teacher_kind;

typedef struct teacher_in {
  teacher_kind kind;
  const float *zt;          /* dense [B, C] */
  const int32_t *idx;       /* top-k [B, K] */
  const float *logp;        /* top-k [B, K] */
  size_t K;
  kd_topk_missing missing;
} teacher_in;

/* The reference teacher of row r at temperature T (arrays of C, caller frees via ref_free). */
static ref_teacher ref_teacher_row(const teacher_in *ti, size_t r, size_t C, double T) {
  ref_teacher t = {kd_test_doubles(C), kd_test_doubles(C), calloc(C, 1)};
  assert_non_null(t.mask);
  if (ti->kind == T_DENSE) {
    for (size_t j = 0; j < C; j++) t.zt[j] = ti->zt[r * C + j], t.mask[j] = 1;
    log_softmax_T(t.zt, C, T, t.lt);
    return t;
  }
  size_t K = ti->K;
  const int32_t *idx = ti->idx + r * K;
  const float *lp = ti->logp + r * K;
  if (ti->missing == KD_TOPK_DROP) { /* t = softmax over the K entries of logp / T */
    double *x = kd_test_doubles(K), *l = kd_test_doubles(K);
    for (size_t k = 0; k < K; k++) x[k] = lp[k];
    log_softmax_T(x, K, T, l);
    for (size_t k = 0; k < K; k++) t.lt[idx[k]] = l[k], t.mask[idx[k]] = 1;
    free(x), free(l);
    return t;
  }
  /* uniform: p = exp(logp) on K, the missing mass spread over the others (floored at FLT_MIN) */
  /* 1 - sum exp(lp) as -expm1(logsumexp(lp)), so a missing mass far below double's 1e-16
   * resolution near 1 (a confident teacher, logits of +-80) is still exact */
  double m = -INFINITY, S = 0;
  for (size_t k = 0; k < K; k++) m = lp[k] > m ? lp[k] : m;
  for (size_t k = 0; k < K; k++) S += lp[k] == m ? 0 : exp(lp[k] - m);
  size_t ties = 0;
  for (size_t k = 0; k < K; k++) ties += lp[k] == m;
  double missing = -expm1(m + log1p((double)(ties - 1) + S));
  double pu = C > K ? (missing > 0 ? missing : 0) / (double)(C - K) : 0;
  if (pu < FLT_MIN) pu = FLT_MIN;
  for (size_t j = 0; j < C; j++) t.zt[j] = log(pu), t.mask[j] = 1;
  for (size_t k = 0; k < K; k++) t.zt[idx[k]] = lp[k];
  log_softmax_T(t.zt, C, T, t.lt);
  return t;
}

static void ref_free(ref_teacher *t) { free(t->lt), free(t->zt), free(t->mask); }

/* ------------------------------------------------------------------------------------------ */
/* Running the kernels.                                                                        */

typedef struct dev_case {
  cl_mem z, y, t, idx, logp, ce, kd, dl;
} dev_case;

static dev_case upload(const teacher_in *ti, const float *z, const int32_t *y, size_t B, size_t C) {
  dev_case d = {0};
  d.z = padded(B * C, z);
  d.y = int_buffer(B, y);
  if (ti->kind == T_DENSE) {
    d.t = padded(B * C, ti->zt);
  } else {
    d.idx = int_buffer(B * ti->K, ti->idx);
    d.logp = padded(B * ti->K, ti->logp);
  }
  d.ce = padded(B, NULL);
  d.kd = padded(B, NULL);
  d.dl = padded(B * C, NULL);
  return d;
}

static void release(dev_case *d) {
  cl_mem *m[] = {&d->z, &d->y, &d->t, &d->idx, &d->logp, &d->ce, &d->kd, &d->dl};
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
    if (*m[i]) clReleaseMemObject(*m[i]), *m[i] = NULL;
}

/* One launch; dl NULL: forward only. Returns the launcher's rc, err filled. */
static int launch(const kd_distill_config *cfg, const teacher_in *ti, const dev_case *d, cl_mem ce,
                  cl_mem kd, cl_mem dl, cl_mem z, size_t B, size_t C, float scale, kd_error *err) {
  kd_device *dev = kd_test_device();
  if (ti->kind == T_DENSE)
    return kd_distill_forward_backward(dev, cfg, kd_at(ce, OFF), kd_at(kd, OFF),
                                       kd_at(dl, dl ? OFF : 0), kd_at(z, OFF), kd_at(d->y, OFF),
                                       kd_at(d->t, OFF), B, C, scale, err);
  return kd_distill_topk_forward_backward(dev, cfg, kd_at(ce, OFF), kd_at(kd, OFF),
                                          kd_at(dl, dl ? OFF : 0), kd_at(z, OFF),
                                          kd_at(d->y, OFF), kd_at(d->idx, OFF),
                                          kd_at(d->logp, OFF), B, C, ti->K, scale, err);
}

static void launch_ok(const kd_distill_config *cfg, const teacher_in *ti, const dev_case *d,
                      cl_mem ce, cl_mem kd, cl_mem dl, cl_mem z, size_t B, size_t C, float scale) {
  kd_error err = {{0}};
  if (launch(cfg, ti, d, ce, kd, dl, z, B, C, scale, &err))
    fail_msg("launch (loss %s): %s", kd_distill_loss_name(cfg->loss), err.msg);
}

/* Kernel outputs of one case. */
typedef struct outputs {
  float *ce, *kd, *dl;
} outputs;

static outputs run_case(const kd_distill_config *cfg, const teacher_in *ti, const float *z,
                        const int32_t *y, size_t B, size_t C, float scale) {
  dev_case d = upload(ti, z, y, B, C);
  outputs o = {kd_test_floats(B), kd_test_floats(B), kd_test_floats(B * C)};
  launch_ok(cfg, ti, &d, d.ce, d.kd, d.dl, d.z, B, C, scale);
  kd_test_read(d.ce, OFF, B, o.ce);
  kd_test_read(d.kd, OFF, B, o.kd);
  kd_test_read(d.dl, OFF, B * C, o.dl);
  /* Forward only: the same row values, bit for bit (and nothing else touched). */
  float *ce2 = kd_test_floats(B), *kd2 = kd_test_floats(B);
  cl_mem ceb = padded(B, NULL), kdb = padded(B, NULL);
  launch_ok(cfg, ti, &d, ceb, kdb, NULL, d.z, B, C, scale);
  kd_test_read(ceb, OFF, B, ce2);
  kd_test_read(kdb, OFF, B, kd2);
  assert_memory_equal(o.ce, ce2, B * sizeof(float));
  assert_memory_equal(o.kd, kd2, B * sizeof(float));
  clReleaseMemObject(ceb), clReleaseMemObject(kdb);
  free(ce2), free(kd2);
  release(&d);
  return o;
}

static void outputs_free(outputs *o) { free(o->ce), free(o->kd), free(o->dl); }

/* Tolerances of one comparison, kernel (float) vs double reference. */
typedef struct tols {
  double ce_atol, ce_rtol, kd_atol, kd_rtol, g_atol, g_rtol;
} tols;

/* Float rounding of the kernels, measured against the definitions: ls, lt carry an absolute
 * error of ~1e-7 * (|z|/T + log C); the distillation value sums C such terms times T^2; a
 * gradient entry is grad_scale * T * (h - s H), ~1e-7 of its inputs' scale. Ten-fold margins
 * over what was observed at [7 x 13] and [7 x 1000] with logits in [-5, 5]. */
static tols moderate_tols(double T, float scale) {
  double T2 = T * T;
  return (tols){2e-6, 2e-6, 2e-6 * (T2 > 1 ? T2 : 1), 2e-5,
                2e-6 * scale * (T > 1 ? T : 1), 1e-4};
}

/* tvd's subgradient jumps where t_j == s_j. 2: some class of the row is within float resolution
 * of such a kink but not on it (the float kernel may see a tie, or the other side: both are
 * subgradients of the float-rounded loss, so its gradient row is not compared); 1: exact ties
 * only (the kernel must give the 0 subgradient there, but central differences straddle the
 * kink); 0: none. */
static int tvd_kink(const ref_cfg *c, const double *zs, const ref_teacher *t, size_t C) {
  if (c->loss != KD_LOSS_TVD) return 0;
  double *ls = kd_test_doubles(C);
  log_softmax_T(zs, C, c->T, ls);
  int k = 0;
  for (size_t j = 0; j < C; j++) {
    double s = exp(ls[j]), tj = exp(t->lt[j]), d = fabs(s - tj);
    if (!t->mask[j]) continue;
    if (d == 0 && k < 1) k = 1;
    if (d > 0 && d <= 1e-5 * (s > tj ? s : tj)) k = 2;
  }
  free(ls);
  return k;
}

/* Runs one case and checks it against the reference (and, fd != 0, the kernel gradient and the
 * reference gradient against central differences of the double objective). */
static void check_case(const char *name, const kd_distill_config *cfg, const teacher_in *ti,
                       const float *z, const int32_t *y, size_t B, size_t C, const tols *tl,
                       int fd) {
  float scale = 1.0f / (float)B;
  ref_cfg rc = ref_of(cfg);
  double *want_ce = kd_test_doubles(B), *want_kd = kd_test_doubles(B),
         *want_d = kd_test_doubles(B * C), *zd = kd_test_doubles(C);
  double *want_fd = kd_test_doubles(B * C);
  int *kink = calloc(B, sizeof(int));
  assert_non_null(kink);
  for (size_t r = 0; r < B; r++) {
    ref_teacher t = ref_teacher_row(ti, r, C, rc.T);
    for (size_t j = 0; j < C; j++) zd[j] = z[r * C + j];
    want_ce[r] = ref_ce(zd, C, y[r]);
    want_kd[r] = ref_kd_value(&rc, zd, &t, C);
    ref_grad(&rc, zd, y[r], &t, C, scale, want_d + r * C);
    kink[r] = tvd_kink(&rc, zd, &t, C);
    if (fd && !kink[r])
      for (size_t j = 0; j < C; j++) {
        const double h = 1e-5;
        double keep = zd[j];
        zd[j] = keep + h;
        double Lp = ref_objective(&rc, zd, y[r], &t, C);
        zd[j] = keep - h;
        double Lm = ref_objective(&rc, zd, y[r], &t, C);
        zd[j] = keep;
        double g = (Lp - Lm) / (2 * h) * scale;
        want_fd[r * C + j] = g;
        /* double FD: truncation h^2/6 |f'''| <~ 1e-10 (T = 0.5), rounding 1e-16 |f| / h */
        if (fabs(g - want_d[r * C + j]) > 1e-7 * scale * (1 + rc.T) + 1e-6 * fabs(g))
          fail_msg("%s: reference dlogits[%zu,%zu] %.10g vs double central difference %.10g",
                   name, r, j, want_d[r * C + j], g);
      }
    ref_free(&t);
  }
  outputs o = run_case(cfg, ti, z, y, B, C, scale);
  char what[160];
  snprintf(what, sizeof what, "%s ce_rows", name);
  kd_test_assert_finite(what, o.ce, B);
  kd_test_assert_close(what, o.ce, want_ce, B, tl->ce_atol, tl->ce_rtol);
  snprintf(what, sizeof what, "%s kd_rows", name);
  kd_test_assert_finite(what, o.kd, B);
  kd_test_assert_close(what, o.kd, want_kd, B, tl->kd_atol, tl->kd_rtol);
  snprintf(what, sizeof what, "%s dlogits", name);
  kd_test_assert_finite(what, o.dl, B * C);
  for (size_t r = 0; r < B; r++)
    if (kink[r] < 2) {
      snprintf(what, sizeof what, "%s dlogits row %zu", name, r);
      kd_test_assert_close(what, o.dl + r * C, want_d + r * C, C, tl->g_atol, tl->g_rtol);
      if (fd && !kink[r]) { /* directly against the central differences too */
        snprintf(what, sizeof what, "%s dlogits row %zu vs double central differences", name, r);
        kd_test_assert_close(what, o.dl + r * C, want_fd + r * C, C,
                             tl->g_atol + 1e-7 * scale * (1 + rc.T), tl->g_rtol + 1e-6);
      }
    }
  outputs_free(&o);
  free(want_ce), free(want_kd), free(want_d), free(zd), free(kink), free(want_fd);
}

static kd_distill_config make_cfg(kd_distill_loss loss, double T, double alpha,
                                  kd_topk_missing missing) {
  kd_distill_config c;
  kd_distill_config_defaults(&c);
  c.loss = loss;
  c.temperature = (float)T;
  c.alpha = (float)alpha;
  c.beta = 0.3f; /* not 0.5, so a swapped beta / 1-beta shows */
  c.skew = 0.1f;
  c.topk_missing = missing;
  return c;
}

/* ------------------------------------------------------------------------------------------ */
/* Dense teacher.                                                                              */

static void dense_matches_reference(void **state) {
  (void)state;
  enum { B = 7, C = 13 };
  float z[B * C], zt[B * C];
  int32_t y[B];
  kd_test_fill_uniform(z, B * C, -5, 5, 11);
  kd_test_fill_uniform(zt, B * C, -5, 5, 12);
  for (int j = 0; j < C; j++) zt[6 * C + j] = z[6 * C + j]; /* row 6: teacher == student */
  kd_test_random_labels(y, B, C, 13);
  teacher_in ti = {.kind = T_DENSE, .zt = zt};
  for (int l = 0; l < NLOSS; l++)
    for (size_t a = 0; a < NTEMPS; a++)
      for (size_t b = 0; b < NALPHAS; b++) {
        kd_distill_config cfg = make_cfg((kd_distill_loss)l, temps[a], alphas[b], KD_TOPK_DROP);
        char name[96];
        snprintf(name, sizeof name, "dense %s T=%g alpha=%g", kd_distill_loss_name(cfg.loss),
                 temps[a], alphas[b]);
        tols tl = moderate_tols(temps[a], 1.0f / B);
        check_case(name, &cfg, &ti, z, y, B, C, &tl, 1);
      }
}

static void dense_skew_zero_is_kd_and_edges(void **state) {
  (void)state;
  /* skew 0 is plain kd; jsd at other betas; shapes at and across the work-group width. */
  size_t shapes[][2] = {{1, 1}, {3, 64}, {2, 65}, {5, 2}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    size_t B = shapes[s][0], C = shapes[s][1];
    float *z = kd_test_floats(B * C), *zt = kd_test_floats(B * C);
    int32_t *y = kd_test_ints(B);
    kd_test_fill_uniform(z, B * C, -4, 4, 20 + s);
    kd_test_fill_uniform(zt, B * C, -4, 4, 30 + s);
    kd_test_random_labels(y, B, C, 40 + s);
    teacher_in ti = {.kind = T_DENSE, .zt = zt};
    for (int l = 0; l < NLOSS; l++) {
      kd_distill_config cfg = make_cfg((kd_distill_loss)l, 2, 0.3, KD_TOPK_DROP);
      cfg.skew = 0.0f;
      cfg.beta = 0.8f;
      char name[96];
      snprintf(name, sizeof name, "dense %s [%zu x %zu] beta=0.8 skew=0", kd_distill_loss_name(cfg.loss), B, C);
      tols tl = moderate_tols(2, 1.0f / B);
      check_case(name, &cfg, &ti, z, y, B, C, &tl, 1);
    }
    /* skl at skew 0 == kd, to float rounding */
    kd_distill_config ck = make_cfg(KD_LOSS_KD, 2, 0.3, KD_TOPK_DROP),
                      cs = make_cfg(KD_LOSS_SKL, 2, 0.3, KD_TOPK_DROP);
    cs.skew = 0.0f;
    outputs ok = run_case(&ck, &ti, z, y, B, C, 1.0f), os = run_case(&cs, &ti, z, y, B, C, 1.0f);
    double *w = kd_test_doubles(B * C);
    for (size_t i = 0; i < B; i++) w[i] = ok.kd[i];
    kd_test_assert_close("skl(skew=0) vs kd value", os.kd, w, B, 1e-6, 1e-5);
    for (size_t i = 0; i < B * C; i++) w[i] = ok.dl[i];
    kd_test_assert_close("skl(skew=0) vs kd dlogits", os.dl, w, B * C, 1e-7, 1e-5);
    free(w), outputs_free(&ok), outputs_free(&os);
    free(z), free(zt), free(y);
  }
}

static void dense_wide_rows(void **state) {
  (void)state;
  enum { B = 7, C = 1000 };
  float *z = kd_test_floats(B * C), *zt = kd_test_floats(B * C);
  int32_t y[B];
  kd_test_fill_uniform(z, B * C, -5, 5, 51);
  kd_test_fill_uniform(zt, B * C, -5, 5, 52);
  kd_test_random_labels(y, B, C, 53);
  teacher_in ti = {.kind = T_DENSE, .zt = zt};
  for (int l = 0; l < NLOSS; l++) {
    kd_distill_config cfg = make_cfg((kd_distill_loss)l, 4, 0.3, KD_TOPK_DROP);
    char name[96];
    snprintf(name, sizeof name, "dense %s [7 x 1000] T=4", kd_distill_loss_name(cfg.loss));
    tols tl = moderate_tols(4, 1.0f / B);
    check_case(name, &cfg, &ti, z, y, B, C, &tl, 0); /* analytic reference checked by FD above */
  }
  free(z), free(zt);
}

/* Rows with logits of +-80 (student and teacher): everything finite; values and gradients
 * against the reference with tolerances for |log s| up to 160/T = 320 (float ls carries
 * ~320 * 6e-8 = 2e-5 absolute). */
static void fill_extreme(float *z, float *zt, size_t B, size_t C) {
  assert_true(B >= 7);
  kd_test_fill_uniform(z, B * C, -80, 80, 61);
  kd_test_fill_uniform(zt, B * C, -80, 80, 62);
  for (size_t j = 0; j < C; j++) {
    z[0 * C + j] = (j % 2) ? 80.0f : -80.0f; /* opposite alternations */
    zt[0 * C + j] = (j % 2) ? -80.0f : 80.0f;
    z[1 * C + j] = 80.0f; /* all equal: s == t, every tvd class a tie */
    zt[1 * C + j] = -80.0f;
    z[2 * C + j] = j == 0 ? 80.0f : -80.0f; /* confident, disagreeing */
    zt[2 * C + j] = j == 1 ? 80.0f : -80.0f;
    z[3 * C + j] = -80.0f + (float)j; /* opposite ramps */
    zt[3 * C + j] = 80.0f - (float)j;
    zt[4 * C + j] = z[4 * C + j]; /* identical random rows */
    /* rows 5, 6: independent random in [-80, 80] */
  }
}

/* The top-k teacher of logits zt [B, C]: per row the K classes of largest log_softmax(zt),
 * sorted descending, with their log-probabilities (computed in double, stored as float). */
static void make_topk(const float *zt, size_t B, size_t C, size_t K, int32_t *idx, float *logp,
                      float *dense_logp) {
  double *x = kd_test_doubles(C), *l = kd_test_doubles(C);
  for (size_t r = 0; r < B; r++) {
    for (size_t j = 0; j < C; j++) x[j] = zt[r * C + j];
    log_softmax_T(x, C, 1.0, l);
    if (dense_logp)
      for (size_t j = 0; j < C; j++) dense_logp[r * C + j] = (float)l[j];
    unsigned char *used = calloc(C, 1);
    for (size_t k = 0; k < K; k++) { /* selection sort, ties to the lower class */
      size_t best = C;
      for (size_t j = 0; j < C; j++)
        if (!used[j] && (best == C || l[j] > l[best])) best = j;
      used[best] = 1;
      idx[r * K + k] = (int32_t)best;
      logp[r * K + k] = (float)l[best];
    }
    free(used);
  }
  free(x), free(l);
}

static void extreme_logits_stay_finite(void **state) {
  (void)state;
  enum { B = 7, C = 11, K = 3 };
  float z[B * C], zt[B * C], logp3[B * K], logpC[B * C];
  int32_t y[B] = {0, 3, 1, 10, 5, 7, 2}, idx3[B * K], idxC[B * C];
  fill_extreme(z, zt, B, C);
  make_topk(zt, B, C, K, idx3, logp3, NULL);
  make_topk(zt, B, C, C, idxC, logpC, NULL);
  teacher_in teachers[] = {
      {.kind = T_DENSE, .zt = zt},
      {.kind = T_TOPK, .idx = idx3, .logp = logp3, .K = K, .missing = KD_TOPK_DROP},
      {.kind = T_TOPK, .idx = idx3, .logp = logp3, .K = K, .missing = KD_TOPK_UNIFORM},
      {.kind = T_TOPK, .idx = idxC, .logp = logpC, .K = C, .missing = KD_TOPK_UNIFORM},
  };
  const char *tnames[] = {"dense", "top-3 drop", "top-3 uniform", "top-C uniform"};
  /* top-3 uniform is only checked for finiteness here: with these teachers the top 3 entries
   * hold all but ~1e-9 of the mass, split over several entries, so float log-probabilities
   * (rounded to ~1e-8) do not determine the missing mass at all, and p^(1/T) amplifies that
   * noise (1e-9 vs 0 changes kd at T = 4 by units). The K = 3 test covers uniform on data
   * that determine it, including a confident teacher. */
  const int compare[] = {1, 1, 0, 1};
  for (size_t k = 0; k < sizeof teachers / sizeof teachers[0]; k++)
    for (int l = 0; l < NLOSS; l++)
      for (size_t a = 0; a < NTEMPS; a++)
        for (size_t b = 0; b < NALPHAS; b++) {
          if (l == KD_LOSS_MSE && teachers[k].missing == KD_TOPK_DROP && teachers[k].kind == T_TOPK)
            continue; /* refused, tested below */
          kd_distill_config cfg =
              make_cfg((kd_distill_loss)l, temps[a], alphas[b], teachers[k].missing);
          char name[128];
          snprintf(name, sizeof name, "+-80 %s %s T=%g alpha=%g", tnames[k],
                   kd_distill_loss_name(cfg.loss), temps[a], alphas[b]);
          double T = temps[a], T2 = T * T;
          /* |ls|, |lt| <= 160/T + log C: ~6e-8 * 330 = 2e-5 absolute on each, but the value
           * weighs them by probabilities (sum 1) and gets T^2; the gradient is
           * grad_scale * T * O(1). mse compares logits of 80 with log-probabilities floored at
           * log(FLT_MIN) = -87: values to 3e4. Observed: value 0.08, gradient 0.24 of these. */
          tols tl = {2e-5, 2e-6, 1e-5 * (T2 > 1 ? T2 : 1), 2e-6, 2e-5 * (T > 1 ? T : 1) / B,
                     2e-4};
          if (compare[k]) {
            check_case(name, &cfg, &teachers[k], z, y, B, C, &tl, 0);
          } else {
            outputs o = run_case(&cfg, &teachers[k], z, y, B, C, 1.0f / B);
            kd_test_assert_finite(name, o.ce, B);
            kd_test_assert_finite(name, o.kd, B);
            kd_test_assert_finite(name, o.dl, B * C);
            outputs_free(&o);
          }
        }
}

/* ------------------------------------------------------------------------------------------ */
/* Top-k teacher.                                                                              */

/* K == C: drop and uniform both equal the dense kernel with teacher logits logp. */
static void topk_full_equals_dense(void **state) {
  (void)state;
  enum { B = 7, C = 13 };
  float z[B * C], zt[B * C], logp[B * C], dense_logp[B * C];
  int32_t y[B], idx[B * C];
  kd_test_fill_uniform(z, B * C, -5, 5, 71);
  kd_test_fill_uniform(zt, B * C, -5, 5, 72);
  kd_test_random_labels(y, B, C, 73);
  make_topk(zt, B, C, C, idx, logp, dense_logp);
  teacher_in dense = {.kind = T_DENSE, .zt = dense_logp};
  for (int m = 0; m < 2; m++) {
    teacher_in tk = {.kind = T_TOPK, .idx = idx, .logp = logp, .K = C, .missing = (kd_topk_missing)m};
    for (int l = 0; l < NLOSS; l++)
      for (size_t a = 0; a < NTEMPS; a++) {
        if (l == KD_LOSS_MSE && m == KD_TOPK_DROP) continue;
        kd_distill_config cfg = make_cfg((kd_distill_loss)l, temps[a], 0.3, (kd_topk_missing)m);
        outputs od = run_case(&cfg, &dense, z, y, B, C, 1.0f / B),
                ok = run_case(&cfg, &tk, z, y, B, C, 1.0f / B);
        char what[128];
        double w[B * C];
        tols tl = moderate_tols(temps[a], 1.0f / B);
        snprintf(what, sizeof what, "top-%d %s %s T=%g vs dense kd_rows", C, m ? "uniform" : "drop",
                 kd_distill_loss_name(cfg.loss), temps[a]);
        for (int i = 0; i < B; i++) w[i] = od.kd[i];
        kd_test_assert_close(what, ok.kd, w, B, tl.kd_atol, tl.kd_rtol);
        /* The same student side: bit for bit where both kernels are work-group kernels; on
         * CPUs the dense one runs narrow rows 16 per work-item (host/nn/loss.h), which agrees
         * to float rounding. */
        for (int i = 0; i < B; i++) w[i] = od.ce[i];
        if (kd_loss_rows_path(kd_test_device(), C))
          kd_test_assert_close(what, ok.ce, w, B, 1e-6, 1e-6);
        else
          assert_memory_equal(ok.ce, od.ce, B * sizeof(float));
        snprintf(what, sizeof what, "top-%d %s %s T=%g vs dense dlogits", C,
                 m ? "uniform" : "drop", kd_distill_loss_name(cfg.loss), temps[a]);
        for (int i = 0; i < B * C; i++) w[i] = od.dl[i];
        kd_test_assert_close(what, ok.dl, w, B * C, tl.g_atol, tl.g_rtol);
        outputs_free(&od), outputs_free(&ok);
        snprintf(what, sizeof what, "top-%d %s %s T=%g", C, m ? "uniform" : "drop",
                 kd_distill_loss_name(cfg.loss), temps[a]);
        check_case(what, &cfg, &tk, z, y, B, C, &tl, 0);
      }
  }
}

/* K = 3 of C = 10, drop and uniform, against the reference (with FD of the reference). Rows 0-3,
 * 5 have a vague teacher (missing mass 0.1-0.6), row 6 a sharper one, row 4 a confident one
 * whose top entry holds all but ~1e-7 of the mass: the kernel must not lose that missing mass
 * to cancellation in 1 - sum p. (Where the top mass ~1 is split over several entries, float
 * log-probabilities themselves fix the missing mass only to ~1e-7 absolute: not tested.) */
static void topk_k3_matches_reference(void **state) {
  (void)state;
  enum { B = 7, C = 10, K = 3 };
  float z[B * C], zt[B * C], logp[B * K];
  int32_t y[B], idx[B * K];
  kd_test_fill_uniform(z, B * C, -4, 4, 81);
  kd_test_fill_uniform(zt, B * C, -2, 2, 82);
  for (int j = 0; j < C; j++) zt[4 * C + j] = j == 3 ? 20.0f : 0.5f * (float)j; /* confident */
  for (int j = 0; j < C; j++) zt[5 * C + j] = j < 2 ? 3.0f - 0.5f * (float)j : -1.0f + 0.1f * (float)j;
  for (int j = 0; j < C; j++) zt[6 * C + j] *= 5.0f;
  kd_test_random_labels(y, B, C, 83);
  make_topk(zt, B, C, K, idx, logp, NULL);
  for (int m = 0; m < 2; m++) {
    teacher_in tk = {.kind = T_TOPK, .idx = idx, .logp = logp, .K = K, .missing = (kd_topk_missing)m};
    for (int l = 0; l < NLOSS; l++)
      for (size_t a = 0; a < NTEMPS; a++)
        for (size_t b = 0; b < NALPHAS; b++) {
          if (l == KD_LOSS_MSE && m == KD_TOPK_DROP) continue;
          kd_distill_config cfg = make_cfg((kd_distill_loss)l, temps[a], alphas[b], (kd_topk_missing)m);
          char name[128];
          snprintf(name, sizeof name, "top-3 %s %s T=%g alpha=%g", m ? "uniform" : "drop",
                   kd_distill_loss_name(cfg.loss), temps[a], alphas[b]);
          tols tl = moderate_tols(temps[a], 1.0f / B);
          check_case(name, &cfg, &tk, z, y, B, C, &tl, 1);
        }
  }
}

/* ------------------------------------------------------------------------------------------ */
/* ce, aliasing, bad inputs, refusals.                                                         */

static void ce_equals_softmax_ce(void **state) {
  (void)state;
  enum { B = 9, C = 70, K = 4 };
  float *z = kd_test_floats(B * C), *zt = kd_test_floats(B * C), logp[B * K];
  int32_t y[B], idx[B * K];
  kd_test_fill_uniform(z, B * C, -6, 6, 91);
  kd_test_fill_uniform(zt, B * C, -6, 6, 92);
  kd_test_random_labels(y, B, C, 93);
  make_topk(zt, B, C, K, idx, logp, NULL);
  float scale = 0.37f;
  cl_mem bz = padded(B * C, z), by = int_buffer(B, y), bl = padded(B, NULL),
         bd = padded(B * C, NULL);
  KD_OK(kd_softmax_ce_forward_backward(kd_test_device(), kd_at(bl, OFF), kd_at(bd, OFF),
                                       kd_at(bz, OFF), kd_at(by, OFF), B, C, scale, err));
  float want_l[B], *want_d = kd_test_floats(B * C);
  kd_test_read(bl, OFF, B, want_l);
  kd_test_read(bd, OFF, B * C, want_d);
  teacher_in teachers[] = {{.kind = T_DENSE, .zt = zt},
                           {.kind = T_TOPK, .idx = idx, .logp = logp, .K = K}};
  for (size_t k = 0; k < 2; k++) {
    kd_distill_config cfg = make_cfg(KD_LOSS_CE, 3, 0.2, KD_TOPK_DROP); /* T, alpha ignored */
    outputs o = run_case(&cfg, &teachers[k], z, y, B, C, scale);
    if (k == 1 && kd_loss_rows_path(kd_test_device(), C)) {
      /* On CPUs the top-k kernel (work-group per row) meets the narrow-row CE kernel (16 rows
       * per work-item, host/nn/loss.h): equal to float rounding. */
      double wl[B], *wd = kd_test_doubles(B * C);
      for (int i = 0; i < B; i++) wl[i] = want_l[i];
      for (int i = 0; i < B * C; i++) wd[i] = want_d[i];
      kd_test_assert_close("ce: top-k vs softmax CE loss", o.ce, wl, B, 1e-6, 1e-6);
      kd_test_assert_close("ce: top-k vs softmax CE gradient", o.dl, wd, B * C, 1e-8, 1e-6);
      free(wd);
    } else {
      assert_memory_equal(o.ce, want_l, B * sizeof(float));
      assert_memory_equal(o.dl, want_d, B * C * sizeof(float));
    }
    for (int i = 0; i < B; i++) assert_true(o.kd[i] == 0.0f);
    outputs_free(&o);
  }
  /* No teacher buffers at all for ce. */
  kd_distill_config cfg = make_cfg(KD_LOSS_CE, 1, 0.5, KD_TOPK_DROP);
  cl_mem bk = padded(B, NULL);
  float got[B];
  KD_OK(kd_distill_forward_backward(kd_test_device(), &cfg, kd_at(bl, OFF), kd_at(bk, OFF),
                                    kd_at(bd, OFF), kd_at(bz, OFF), kd_at(by, OFF),
                                    kd_at(NULL, 0), B, C, scale, err));
  KD_OK(kd_distill_topk_forward_backward(kd_test_device(), &cfg, kd_at(bl, OFF), kd_at(bk, OFF),
                                         kd_at(bd, OFF), kd_at(bz, OFF), kd_at(by, OFF),
                                         kd_at(NULL, 0), kd_at(NULL, 0), B, C, K, scale, err));
  kd_test_read(bl, OFF, B, got); /* the top-k kernel's, as above */
  if (kd_loss_rows_path(kd_test_device(), C)) {
    double wl[B];
    for (int i = 0; i < B; i++) wl[i] = want_l[i];
    kd_test_assert_close("ce without teacher buffers: top-k vs softmax CE", got, wl, B, 1e-6, 1e-6);
  } else {
    assert_memory_equal(got, want_l, B * sizeof(float));
  }
  clReleaseMemObject(bz), clReleaseMemObject(by), clReleaseMemObject(bl), clReleaseMemObject(bd),
      clReleaseMemObject(bk);
  free(z), free(zt), free(want_d);
}

/* dlogits aliasing logits gives the same bits in place; two runs give the same bits. */
static void in_place_and_deterministic(void **state) {
  (void)state;
  enum { B = 5, C = 150, K = 7 };
  float *z = kd_test_floats(B * C), *zt = kd_test_floats(B * C), logp[B * K];
  int32_t y[B], idx[B * K];
  kd_test_fill_uniform(z, B * C, -5, 5, 101);
  kd_test_fill_uniform(zt, B * C, -5, 5, 102);
  kd_test_random_labels(y, B, C, 103);
  make_topk(zt, B, C, K, idx, logp, NULL);
  teacher_in teachers[] = {
      {.kind = T_DENSE, .zt = zt},
      {.kind = T_TOPK, .idx = idx, .logp = logp, .K = K, .missing = KD_TOPK_DROP},
      {.kind = T_TOPK, .idx = idx, .logp = logp, .K = K, .missing = KD_TOPK_UNIFORM}};
  for (size_t k = 0; k < 3; k++)
    for (int l = 0; l < NLOSS; l++) {
      if (l == KD_LOSS_MSE && k == 1) continue;
      kd_distill_config cfg = make_cfg((kd_distill_loss)l, 2, 0.3, teachers[k].missing);
      outputs a = run_case(&cfg, &teachers[k], z, y, B, C, 0.2f),
              b = run_case(&cfg, &teachers[k], z, y, B, C, 0.2f);
      assert_memory_equal(a.dl, b.dl, B * C * sizeof(float));
      assert_memory_equal(a.kd, b.kd, B * sizeof(float));
      dev_case d = upload(&teachers[k], z, y, B, C);
      launch_ok(&cfg, &teachers[k], &d, d.ce, d.kd, d.z, d.z, B, C, 0.2f);
      float *dz = kd_test_floats(B * C), kd2[B];
      kd_test_read(d.z, OFF, B * C, dz);
      kd_test_read(d.kd, OFF, B, kd2);
      assert_memory_equal(a.dl, dz, B * C * sizeof(float));
      assert_memory_equal(a.kd, kd2, B * sizeof(float));
      float pad[OFF];
      kd_test_read(d.z, 0, OFF, pad); /* nothing written before the offset */
      for (int i = 0; i < OFF; i++) assert_true(pad[i] == GARBAGE);
      free(dz), release(&d), outputs_free(&a), outputs_free(&b);
    }
  free(z), free(zt);
}

/* A bad label: NaN ce row and gradient row; a top-k index out of range or repeated: NaN kd row
 * and gradient row; the other rows untouched. */
static void bad_inputs_give_nan_rows(void **state) {
  (void)state;
  enum { B = 4, C = 6, K = 3 };
  float z[B * C], zt[B * C], logp[B * K];
  int32_t y[B] = {1, -1, 6, 4}, idx[B * K];
  kd_test_fill_uniform(z, B * C, -2, 2, 111);
  kd_test_fill_uniform(zt, B * C, -2, 2, 112);
  make_topk(zt, B, C, K, idx, logp, NULL);
  teacher_in dense = {.kind = T_DENSE, .zt = zt};
  kd_distill_config cfg = make_cfg(KD_LOSS_JSD, 2, 0.3, KD_TOPK_UNIFORM);
  outputs o = run_case(&cfg, &dense, z, y, B, C, 1.0f);
  for (int r = 0; r < B; r++) {
    int bad = r == 1 || r == 2;
    assert_true(bad ? isnan(o.ce[r]) : isfinite(o.ce[r]));
    assert_true(isfinite(o.kd[r]));
    for (int j = 0; j < C; j++) assert_true(bad ? isnan(o.dl[r * C + j]) : isfinite(o.dl[r * C + j]));
  }
  outputs_free(&o);
  int32_t y2[B] = {0, 1, 2, 3};
  idx[1 * K + 2] = C;              /* row 1: out of range */
  idx[2 * K + 1] = -1;             /* row 2: negative */
  idx[3 * K + 2] = idx[3 * K + 0]; /* row 3: repeated */
  for (int m = 0; m < 2; m++) {
    teacher_in tk = {.kind = T_TOPK, .idx = idx, .logp = logp, .K = K, .missing = (kd_topk_missing)m};
    for (int l = 0; l < NLOSS; l++) {
      if (l == KD_LOSS_MSE && m == 0) continue;
      cfg = make_cfg((kd_distill_loss)l, 2, 1.0, (kd_topk_missing)m); /* even at alpha 1 */
      o = run_case(&cfg, &tk, z, y2, B, C, 1.0f);
      for (int r = 0; r < B; r++) {
        int bad = r > 0 && l != KD_LOSS_CE;
        assert_true(isfinite(o.ce[r]));
        if (bad != !!isnan(o.kd[r]))
          fail_msg("top-k %d loss %s row %d: kd %g", m, kd_distill_loss_name(cfg.loss), r, (double)o.kd[r]);
        for (int j = 0; j < C; j++)
          assert_true(bad ? isnan(o.dl[r * C + j]) : isfinite(o.dl[r * C + j]));
      }
      outputs_free(&o);
    }
  }
}

static void expect_refusal(int rc, const kd_error *err, const char *needle) {
  assert_int_equal(rc, -1);
  if (!strstr(err->msg, needle)) fail_msg("message '%s' lacks '%s'", err->msg, needle);
}

static void config_parse_and_check(void **state) {
  (void)state;
  kd_distill_config c;
  kd_distill_config_defaults(&c);
  assert_int_equal(c.loss, KD_LOSS_KD);
  assert_true(c.temperature == 4.0f && c.alpha == 0.5f && c.beta == 0.5f && c.skew == 0.1f);
  assert_int_equal(c.topk_missing, KD_TOPK_DROP);
  kd_error err = {{0}};
  assert_int_equal(kd_distill_config_check(&c, &err), 0);
  const char *names[] = {"kd", "rkl", "jsd", "skl", "tvd", "mse", "ce"};
  for (int i = 0; i < NLOSS; i++) {
    kd_distill_loss l = KD_LOSS_CE;
    assert_int_equal(kd_distill_loss_parse(names[i], &l), 0);
    assert_int_equal(l, i);
    assert_string_equal(kd_distill_loss_name(l), names[i]);
  }
  kd_distill_loss l = KD_LOSS_TVD;
  assert_int_equal(kd_distill_loss_parse("KD", &l), -1);
  assert_int_equal(kd_distill_loss_parse("", &l), -1);
  assert_int_equal(kd_distill_loss_parse(NULL, &l), -1);
  assert_int_equal(l, KD_LOSS_TVD);
  assert_string_equal(kd_distill_loss_name((kd_distill_loss)42), "?");
  kd_topk_missing m = KD_TOPK_DROP;
  assert_int_equal(kd_topk_missing_parse("uniform", &m), 0);
  assert_int_equal(m, KD_TOPK_UNIFORM);
  assert_int_equal(kd_topk_missing_parse("drop", &m), 0);
  assert_int_equal(m, KD_TOPK_DROP);
  assert_int_equal(kd_topk_missing_parse("zero", &m), -1);

  struct {
    int field; /* 0 T, 1 alpha, 2 beta, 3 skew */
    float v;
    int ok;
  } cases[] = {{0, 0, 0},      {0, -1, 0},    {0, INFINITY, 0}, {0, NAN, 0},   {0, 1e-3f, 1},
               {0, 100, 1},    {1, -0.1f, 0}, {1, 1.1f, 0},     {1, NAN, 0},   {1, 0, 1},
               {1, 1, 1},      {2, 0, 0},     {2, 1, 0},        {2, NAN, 0},   {2, 0.01f, 1},
               {2, 0.99f, 1},  {3, -0.1f, 0}, {3, 1, 0},        {3, NAN, 0},   {3, 0, 1},
               {3, 0.99f, 1}};
  const char *flags[] = {"--temperature", "--alpha", "--beta", "--skew"};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    kd_distill_config_defaults(&c);
    float *f[] = {&c.temperature, &c.alpha, &c.beta, &c.skew};
    *f[cases[i].field] = cases[i].v;
    err.msg[0] = 0;
    int rc = kd_distill_config_check(&c, &err);
    if (cases[i].ok) {
      if (rc) fail_msg("%s %g refused: %s", flags[cases[i].field], (double)cases[i].v, err.msg);
    } else {
      expect_refusal(rc, &err, flags[cases[i].field]);
    }
  }
  kd_distill_config_defaults(&c);
  c.loss = (kd_distill_loss)7;
  expect_refusal(kd_distill_config_check(&c, &err), &err, "--loss");
  kd_distill_config_defaults(&c);
  c.topk_missing = (kd_topk_missing)2;
  expect_refusal(kd_distill_config_check(&c, &err), &err, "--topk-missing");
}

static void launchers_refuse_bad_arguments(void **state) {
  (void)state;
  enum { B = 2, C = 5, K = 2 };
  float z[B * C] = {0}, logp[B * K] = {-1, -2, -1, -2};
  int32_t y[B] = {0, 1}, idx[B * K] = {0, 1, 2, 3};
  kd_device *dev = kd_test_device();
  cl_mem bz = padded(B * C, z), by = int_buffer(B, y), bi = int_buffer(B * K, idx),
         bp = padded(B * K, logp), bc = padded(B, NULL), bk = padded(B, NULL),
         bd = padded(B * C, NULL);
  kd_distill_config c = make_cfg(KD_LOSS_MSE, 1, 0.5, KD_TOPK_DROP);
  kd_error err = {{0}};
#define TOPK(cfg, Kv, Bv)                                                                  \
  kd_distill_topk_forward_backward(dev, &(cfg), kd_at(bc, 0), kd_at(bk, 0), kd_at(bd, 0), \
                                   kd_at(bz, 0), kd_at(by, 0), kd_at(bi, 0), kd_at(bp, 0), \
                                   Bv, C, Kv, 1.0f, &err)
#define DENSE(cfg, teacher, Bv, Cv)                                                   \
  kd_distill_forward_backward(dev, &(cfg), kd_at(bc, 0), kd_at(bk, 0), kd_at(bd, 0), \
                              kd_at(bz, 0), kd_at(by, 0), teacher, Bv, Cv, 1.0f, &err)
  expect_refusal(TOPK(c, K, B), &err, "--loss mse needs dense teacher logits");
  c.topk_missing = KD_TOPK_UNIFORM;
  assert_int_equal(TOPK(c, K, B), 0); /* mse with the full (uniform) teacher is defined */
  c.loss = KD_LOSS_KD;
  expect_refusal(TOPK(c, 0, B), &err, "top-k");
  expect_refusal(TOPK(c, C + 1, B), &err, "top-k");
  expect_refusal(TOPK(c, K, 0), &err, "empty");
  expect_refusal(DENSE(c, kd_at(NULL, 0), B, C), &err, "needs teacher logits");
  expect_refusal(DENSE(c, kd_at(bz, 0), B, 0), &err, "empty");
  c.temperature = 0;
  expect_refusal(DENSE(c, kd_at(bz, 0), B, C), &err, "--temperature");
  expect_refusal(TOPK(c, K, B), &err, "--temperature");
  c.temperature = 1;
  expect_refusal(kd_distill_forward_backward(dev, &c, kd_at(bc, 0), kd_at(NULL, 0), kd_at(bd, 0),
                                             kd_at(bz, 0), kd_at(by, 0), kd_at(bz, 0), B, C, 1,
                                             &err),
                 &err, "required");
  expect_refusal(kd_distill_topk_forward_backward(dev, &c, kd_at(bc, 0), kd_at(bk, 0),
                                                  kd_at(bd, 0), kd_at(bz, 0), kd_at(by, 0),
                                                  kd_at(bi, 0), kd_at(NULL, 0), B, C, K, 1,
                                                  &err),
                 &err, "top-k");
  assert_int_equal(kd_device_finish(dev, &err), 0);
#undef TOPK
#undef DENSE
  clReleaseMemObject(bz), clReleaseMemObject(by), clReleaseMemObject(bi), clReleaseMemObject(bp),
      clReleaseMemObject(bc), clReleaseMemObject(bk), clReleaseMemObject(bd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(config_parse_and_check),
      cmocka_unit_test(launchers_refuse_bad_arguments),
      cmocka_unit_test(dense_matches_reference),
      cmocka_unit_test(dense_skew_zero_is_kd_and_edges),
      cmocka_unit_test(dense_wide_rows),
      cmocka_unit_test(extreme_logits_stay_finite),
      cmocka_unit_test(topk_full_equals_dense),
      cmocka_unit_test(topk_k3_matches_reference),
      cmocka_unit_test(ce_equals_softmax_ce),
      cmocka_unit_test(in_place_and_deterministic),
      cmocka_unit_test(bad_inputs_give_nan_rows),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

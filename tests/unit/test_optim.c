/* Optimizers and the gradient norm (host/nn/optim.c, kernels/optim.cl) against a plain-C
 * double implementation of torch.optim.SGD / AdamW and torch.nn.utils.clip_grad_norm_, over
 * several steps with a changing learning rate, clipping on and off. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/optim.h"
#include "testutil.h"

#define OFF 7
#define GARBAGE -99.0f

/* OFF garbage floats, then host (or zeros), then OFF more garbage. */
static const kd_test_pad PAD = {OFF, OFF, GARBAGE, 0.0f};

static cl_mem padded(size_t n, const float *host) { return kd_test_padded(&PAD, n, host); }

static void assert_padding_intact(cl_mem b, size_t n) {
  kd_test_assert_margins("optim", b, &PAD, n);
}

/* ---- gradient norm ---- */

static void grad_norm_case(size_t n, uint64_t seed) {
  kd_device *dev = kd_test_device();
  float *g = kd_test_floats(n);
  kd_test_fill_uniform(g, n, -1, 1, seed);
  double ss = 0;
  for (size_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
  double want = sqrt(ss);
  size_t ws = kd_grad_norm_workspace_floats(n);
  cl_mem bg = padded(n, g), bw = padded(ws, NULL), bn = padded(1, NULL);
  float norm[2];
  KD_OK(kd_grad_norm(dev, kd_at(bn, OFF), kd_at(bg, OFF), n, kd_at(bw, OFF), err));
  kd_test_read(bn, OFF, 1, &norm[0]);
  KD_OK(kd_grad_norm(dev, kd_at(bn, OFF), kd_at(bg, OFF), n, kd_at(bw, OFF), err));
  kd_test_read(bn, OFF, 1, &norm[1]);
  char what[64];
  snprintf(what, sizeof what, "grad norm n=%zu", n);
  /* float partial sums of ~n/16384 squares each, then two trees: a few ulps */
  kd_test_assert_close(what, &norm[0], &want, 1, 1e-7, 2e-6);
  assert_memory_equal(&norm[0], &norm[1], sizeof(float)); /* deterministic */
  assert_padding_intact(bw, ws);
  assert_padding_intact(bn, 1);
  clReleaseMemObject(bg), clReleaseMemObject(bw), clReleaseMemObject(bn);
  free(g);
}

static void grad_norm_matches_double_sum(void **state) {
  (void)state;
  assert_int_equal(kd_grad_norm_workspace_floats(0), 1);
  assert_int_equal(kd_grad_norm_workspace_floats(1), 1);
  assert_true(kd_grad_norm_workspace_floats(100003) <= 256);
  grad_norm_case(100003, 1);
  grad_norm_case(1037, 2);
  grad_norm_case(1, 3);
  grad_norm_case(64 * 256 * 3 + 5, 4);
  /* n = 0: the norm of nothing is 0. */
  cl_mem bn = padded(1, NULL), bw = padded(1, NULL);
  float one = 5.0f;
  kd_test_write(bn, OFF, 1, &one);
  KD_OK(kd_grad_norm(kd_test_device(), kd_at(bn, OFF), kd_at(bw, OFF), 0, kd_at(bw, OFF), err));
  kd_test_read(bn, OFF, 1, &one);
  assert_true(one == 0.0f);
  clReleaseMemObject(bn), clReleaseMemObject(bw);
}

/* ---- optimizers: double reference of torch.optim ---- */

typedef struct ref_state {
  double *p, *s1, *s2;
} ref_state;

/* torch.nn.utils.clip_grad_norm_ coefficient (1 when clipping is off). */
static double ref_clip_coef(const float *g, size_t n, double clip) {
  if (clip <= 0) return 1.0;
  double ss = 0;
  for (size_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
  double c = clip / (sqrt(ss) + 1e-6);
  return c < 1 ? c : 1;
}

static void ref_sgd(ref_state *s, const float *grad, size_t n, const kd_optim_config *c, double lr,
                    int64_t step, double coef) {
  for (size_t i = 0; i < n; i++) {
    double g = coef * grad[i];
    if (c->weight_decay != 0) g += (double)c->weight_decay * s->p[i];
    if (c->momentum != 0) {
      double b = step == 1 ? g : c->momentum * s->s1[i] + (1 - (double)c->dampening) * g;
      s->s1[i] = b;
      g = c->nesterov ? g + c->momentum * b : b;
    }
    s->p[i] -= lr * g;
  }
}

static void ref_adamw(ref_state *s, const float *grad, size_t n, const kd_optim_config *c,
                      double lr, int64_t step, double coef) {
  double b1 = c->beta1, b2 = c->beta2;
  double bc1 = 1 - pow(b1, (double)step), bc2 = 1 - pow(b2, (double)step);
  for (size_t i = 0; i < n; i++) {
    double g = coef * grad[i];
    s->p[i] *= 1 - lr * c->weight_decay;
    s->s1[i] = b1 * s->s1[i] + (1 - b1) * g;
    s->s2[i] = b2 * s->s2[i] + (1 - b2) * g * g;
    s->p[i] -= (lr / bc1) * s->s1[i] / (sqrt(s->s2[i]) / sqrt(bc2) + c->eps);
  }
}

#define OPT_N 1037
#define OPT_STEPS 6

/* clip_mode: 0 off; 1 clip below the norm (active); 2 clip far above it (coef 1);
 * 3 clip set but no norm buffer passed (so off). */
static void optim_case(const char *name, const kd_optim_config *cfg, int clip_mode) {
  kd_device *dev = kd_test_device();
  const size_t n = OPT_N;
  float *p0 = kd_test_floats(n), *g = kd_test_floats(n), *got = kd_test_floats(n);
  kd_test_fill_uniform(p0, n, -1, 1, 70);
  ref_state rs = {kd_test_doubles(n), kd_test_doubles(n), kd_test_doubles(n)};
  for (size_t i = 0; i < n; i++) rs.p[i] = p0[i];
  size_t ws = kd_grad_norm_workspace_floats(n);
  cl_mem bp = padded(n, p0), bg = padded(n, NULL), b1 = padded(n, NULL), b2 = padded(n, NULL),
         bw = padded(ws, NULL), bn = padded(1, NULL);
  int adam = cfg->type == KD_OPT_ADAMW;
  for (int64_t step = 1; step <= OPT_STEPS; step++) {
    kd_test_fill_uniform(g, n, -1, 1, 80 + (uint64_t)step);
    for (size_t i = 0; i < n; i += 97) g[i] *= 1e-6f; /* small gradients: eps matters */
    KD_OK(kd_write_floats(dev, bg, OFF, n, g, err));
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
    double gnorm = sqrt(ss);
    kd_optim_config c = *cfg;
    c.clip_grad_norm = clip_mode == 0 ? 0.0f
                       : clip_mode == 2 ? (float)(10 * gnorm)
                                        : (float)(0.5 * gnorm);
    kd_ref norm = kd_at(NULL, 0);
    if (clip_mode == 1 || clip_mode == 2) {
      norm = kd_at(bn, OFF);
      KD_OK(kd_grad_norm(dev, norm, kd_at(bg, OFF), n, kd_at(bw, OFF), err));
    }
    double coef = (clip_mode == 1 || clip_mode == 2) ? ref_clip_coef(g, n, c.clip_grad_norm) : 1;
    if (clip_mode == 1) assert_true(coef < 0.6);
    /* A schedule: the lr argument, not cfg->lr, is the step's rate. */
    float lr = cfg->lr * (float)(1.0 - 0.1 * (double)(step - 1));
    c.lr = 12345.0f;
    int need1 = adam || c.momentum != 0;
    KD_OK(kd_optimizer_step(dev, &c, kd_at(bp, OFF), kd_at(bg, OFF),
                            kd_at(need1 ? b1 : NULL, OFF), kd_at(adam ? b2 : NULL, OFF), n, lr,
                            step, norm, err));
    if (adam) ref_adamw(&rs, g, n, cfg, lr, step, coef);
    else ref_sgd(&rs, g, n, cfg, lr, step, coef);

    char what[128];
    kd_test_read(bp, OFF, n, got);
    snprintf(what, sizeof what, "%s clip %d step %lld params", name, clip_mode, (long long)step);
    kd_test_assert_close(what, got, rs.p, n, 2e-6, 1e-5);
    if (need1) {
      kd_test_read(b1, OFF, n, got);
      snprintf(what, sizeof what, "%s clip %d step %lld %s", name, clip_mode, (long long)step,
               adam ? "exp_avg" : "momentum_buffer");
      kd_test_assert_close(what, got, rs.s1, n, 1e-6, 1e-5);
    }
    if (adam) {
      kd_test_read(b2, OFF, n, got);
      snprintf(what, sizeof what, "%s clip %d step %lld exp_avg_sq", name, clip_mode,
               (long long)step);
      kd_test_assert_close(what, got, rs.s2, n, 1e-9, 1e-5);
    }
  }
  /* Gradients are read, not scaled in place; nothing outside the ranges is touched. */
  kd_test_read(bg, OFF, n, got);
  assert_memory_equal(got, g, n * sizeof(float));
  assert_padding_intact(bp, n), assert_padding_intact(bg, n), assert_padding_intact(b1, n),
      assert_padding_intact(b2, n);
  clReleaseMemObject(bp), clReleaseMemObject(bg), clReleaseMemObject(b1), clReleaseMemObject(b2),
      clReleaseMemObject(bw), clReleaseMemObject(bn);
  free(p0), free(g), free(got), free(rs.p), free(rs.s1), free(rs.s2);
}

static void sgd_matches_torch_reference(void **state) {
  (void)state;
  struct {
    const char *name;
    float lr, momentum, dampening, wd;
    int nesterov;
  } cases[] = {
      {"sgd plain", 0.1f, 0, 0, 0, 0},
      {"sgd momentum", 0.05f, 0.9f, 0, 0, 0},
      {"sgd momentum+dampening", 0.05f, 0.9f, 0.3f, 0, 0},
      {"sgd nesterov", 0.05f, 0.9f, 0, 0, 1},
      {"sgd weight decay", 0.1f, 0, 0, 0.01f, 0},
      {"sgd all", 0.05f, 0.8f, 0.1f, 0.05f, 0},
      {"sgd nesterov+wd", 0.05f, 0.9f, 0, 0.05f, 1},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    kd_optim_config c;
    kd_optim_config_defaults(&c, KD_OPT_SGD);
    c.lr = cases[k].lr, c.momentum = cases[k].momentum, c.dampening = cases[k].dampening;
    c.weight_decay = cases[k].wd, c.nesterov = cases[k].nesterov;
    for (int clip = 0; clip < 4; clip++)
      if (clip == 0 || clip == 1 || k == 1) optim_case(cases[k].name, &c, clip);
  }
}

static void adamw_matches_torch_reference(void **state) {
  (void)state;
  kd_optim_config c;
  kd_optim_config_defaults(&c, KD_OPT_ADAMW);
  c.lr = 1e-2f;
  for (int clip = 0; clip < 4; clip++) optim_case("adamw", &c, clip);
  c.beta1 = 0.5f, c.beta2 = 0.9f, c.eps = 1e-6f, c.weight_decay = 0.1f;
  optim_case("adamw custom", &c, 0);
  optim_case("adamw custom", &c, 1);
  c.weight_decay = 0;
  optim_case("adamw no decay", &c, 0);
}

static void optim_defaults_and_errors(void **state) {
  (void)state;
  kd_optim_config c;
  kd_optim_config_defaults(&c, KD_OPT_SGD);
  assert_true(c.type == KD_OPT_SGD && c.lr == 0.01f && c.momentum == 0 && c.dampening == 0 &&
              c.weight_decay == 0 && c.nesterov == 0 && c.clip_grad_norm == 0);
  kd_optim_config_defaults(&c, KD_OPT_ADAMW);
  assert_true(c.type == KD_OPT_ADAMW && c.lr == 1e-3f && c.beta1 == 0.9f && c.beta2 == 0.999f &&
              c.eps == 1e-8f && c.weight_decay == 1e-2f && c.clip_grad_norm == 0);
  kd_optimizer_type t;
  assert_int_equal(kd_optimizer_parse("adamw", &t), 0);
  assert_int_equal((int)t, KD_OPT_ADAMW);
  assert_int_equal(kd_optimizer_parse("sgd", &t), 0);
  assert_int_equal((int)t, KD_OPT_SGD);
  assert_int_equal(kd_optimizer_parse("adam", &t), -1);
  assert_string_equal(kd_optimizer_name(KD_OPT_ADAMW), "adamw");

  kd_device *dev = kd_test_device();
  cl_mem b = kd_test_buffer(16, NULL);
  kd_error err = {{0}};
  kd_optim_config_defaults(&c, KD_OPT_SGD);
  /* step is 1-based */
  assert_int_equal(kd_optimizer_step(dev, &c, kd_at(b, 0), kd_at(b, 4), kd_at(NULL, 0),
                                     kd_at(NULL, 0), 4, 0.1f, 0, kd_at(NULL, 0), &err), -1);
  assert_non_null(strstr(err.msg, "step"));
  /* nesterov needs momentum (torch's rule) */
  c.nesterov = 1;
  assert_int_equal(kd_optimizer_step(dev, &c, kd_at(b, 0), kd_at(b, 4), kd_at(b, 8),
                                     kd_at(NULL, 0), 4, 0.1f, 1, kd_at(NULL, 0), &err), -1);
  assert_non_null(strstr(err.msg, "nesterov"));
  /* momentum needs its buffer */
  c.nesterov = 0, c.momentum = 0.9f;
  assert_int_equal(kd_optimizer_step(dev, &c, kd_at(b, 0), kd_at(b, 4), kd_at(NULL, 0),
                                     kd_at(NULL, 0), 4, 0.1f, 1, kd_at(NULL, 0), &err), -1);
  assert_non_null(strstr(err.msg, "momentum"));
  /* AdamW needs both state buffers; betas in [0, 1); negative lr refused */
  kd_optim_config_defaults(&c, KD_OPT_ADAMW);
  assert_int_equal(kd_optimizer_step(dev, &c, kd_at(b, 0), kd_at(b, 4), kd_at(b, 8),
                                     kd_at(NULL, 0), 4, 0.1f, 1, kd_at(NULL, 0), &err), -1);
  assert_non_null(strstr(err.msg, "exp_avg_sq"));
  assert_int_equal(kd_optimizer_step(dev, &c, kd_at(b, 0), kd_at(b, 4), kd_at(b, 8),
                                     kd_at(b, 12), 4, -0.1f, 1, kd_at(NULL, 0), &err), -1);
  assert_non_null(strstr(err.msg, "lr"));
  c.beta2 = 1.0f;
  assert_int_equal(kd_optim_config_check(&c, &err), -1);
  assert_non_null(strstr(err.msg, "beta2"));
  clReleaseMemObject(b);
}

/* A NaN gradient norm must not be clipped into a finite-looking step (torch's clamp keeps NaN). */
static void nan_norm_poisons_the_step(void **state) {
  (void)state;
  kd_device *dev = kd_test_device();
  float p[4] = {1, 2, 3, 4}, g[4] = {0.1f, NAN, 0.3f, 0.4f}, out[4];
  cl_mem bp = kd_test_buffer(4, p), bg = kd_test_buffer(4, g), bw = kd_test_buffer(1, NULL),
         bn = kd_test_buffer(1, NULL);
  kd_optim_config c;
  kd_optim_config_defaults(&c, KD_OPT_SGD);
  c.clip_grad_norm = 1.0f;
  KD_OK(kd_grad_norm(dev, kd_at(bn, 0), kd_at(bg, 0), 4, kd_at(bw, 0), err));
  KD_OK(kd_optimizer_step(dev, &c, kd_at(bp, 0), kd_at(bg, 0), kd_at(NULL, 0), kd_at(NULL, 0),
                          4, 0.1f, 1, kd_at(bn, 0), err));
  kd_test_read(bp, 0, 4, out);
  for (int i = 0; i < 4; i++) assert_true(isnan(out[i]));
  clReleaseMemObject(bp), clReleaseMemObject(bg), clReleaseMemObject(bw), clReleaseMemObject(bn);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(grad_norm_matches_double_sum),
      cmocka_unit_test(sgd_matches_torch_reference),
      cmocka_unit_test(adamw_matches_torch_reference),
      cmocka_unit_test(optim_defaults_and_errors),
      cmocka_unit_test(nan_norm_poisons_the_step),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The GEMM dispatcher's per-device cache (host/nn/gemm_cache.c, KD_GEMM_AUTO in host/nn/gemm.c):
 * keys, choice files read back, damaged or foreign files ignored with a warning, tuned CLBlast
 * parameter files; on the device, a shape measured once and then followed from the file, and a
 * dense layer whose shapes the file gives to CLBlast running the same bits as --gemm clblast. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/gemm_cache.h"
#include "nn/layers.h"
#include "testutil.h"

static char test_dir[2048];

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
  assert_int_equal(fclose(f), 0);
}

static kd_device_info fake_info(const char *driver) {
  kd_device_info info;
  memset(&info, 0, sizeof info);
  snprintf(info.platform_name, sizeof info.platform_name, "Test Platform");
  snprintf(info.name, sizeof info.name, "test-device");
  snprintf(info.version, sizeof info.version, "OpenCL 1.2 test");
  snprintf(info.driver_version, sizeof info.driver_version, "%s", driver);
  return info;
}

/* A private cache dir for this process (set before anything reads it). */
static int setup_dir(void **state) {
  (void)state;
  const char *base = getenv("KDCL_CACHE_DIR");
  if (base && strlen(base) > 1800) base = NULL;
  snprintf(test_dir, sizeof test_dir, "%s/test_gemm_cache.%ld", base && *base ? base : "/tmp",
           (long)getpid());
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", test_dir, test_dir);
  return system(cmd);
}

static int teardown_dir(void **state) {
  (void)state;
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_dir);
  return system(cmd);
}

/* ---- keys and paths ---- */

static void test_keys(void **state) {
  (void)state;
  kd_device_info a = fake_info("1.0"), b = fake_info("1.0"), c = fake_info("1.1");
  assert_true(kd_gemm_device_key(&a) == kd_gemm_device_key(&b));
  assert_true(kd_gemm_device_key(&a) != kd_gemm_device_key(&c)); /* a driver update: new key */
  snprintf(b.name, sizeof b.name, "test-device2");
  assert_true(kd_gemm_device_key(&a) != kd_gemm_device_key(&b));
  /* Pinned: scripts/tune_clblast.cpp hashes the same four strings the same way (FNV-1a 64 over
   * each with its NUL), so a change here must change it too. */
  assert_true(kd_gemm_device_key(&a) == 0x8c01e8b9b89e738aull ||
              (print_message("key is %016llx\n", (unsigned long long)kd_gemm_device_key(&a)), 0));

  char saved[4096] = "";
  const char *env = getenv("KDCL_CACHE_DIR");
  if (env) snprintf(saved, sizeof saved, "%s", env);
  setenv("KDCL_CACHE_DIR", "/some/dir", 1);
  char path[256];
  assert_int_equal(kd_gemm_cache_path(path, sizeof path, "gemm-choice", 0x0123456789abcdefull), 0);
  assert_string_equal(path, "/some/dir/gemm-choice-0123456789abcdef.json");
  assert_int_equal(kd_gemm_cache_path(path, 20, "gemm-choice", 1), -1); /* does not fit */
  unsetenv("KDCL_CACHE_DIR");
  setenv("XDG_CACHE_HOME", "/xdg", 1);
  assert_int_equal(kd_gemm_cache_path(path, sizeof path, "clblast-params", 1), 0);
  assert_string_equal(path, "/xdg/kdcl/clblast-params-0000000000000001.json");
  unsetenv("XDG_CACHE_HOME");
  if (saved[0]) setenv("KDCL_CACHE_DIR", saved, 1);
}

/* ---- choice files ---- */

static kd_gemm_choice shape(int ta, int tb, uint64_t m, uint64_t n, uint64_t k,
                            kd_gemm_backend be) {
  kd_gemm_choice c = {ta, tb, m, n, k, be, 1.5, be == KD_GEMM_CLBLAST ? 0.5 : 3.25};
  return c;
}

static void test_choices_round_trip(void **state) {
  (void)state;
  kd_device_info info = fake_info("1.0");
  char path[4200], warn[4400];
  snprintf(path, sizeof path, "%s/choices.json", test_dir);
  kd_gemm_choices c = {0}, back = {0};
  assert_int_equal(kd_gemm_choices_load(path, info.name, &back, warn, sizeof warn), 0); /* none */
  kd_gemm_choice s1 = shape(0, 1, 128, 256, 784, KD_GEMM_BUILTIN);
  kd_gemm_choice s2 = shape(1, 0, 256, 784, 128, KD_GEMM_CLBLAST);
  kd_gemm_choice s3 = shape(1, 1, 3, 5, 7, KD_GEMM_BUILTIN);
  kd_gemm_choice again = shape(0, 1, 128, 256, 784, KD_GEMM_CLBLAST);
  assert_int_equal(kd_gemm_choices_add(&c, &s1), 0);
  assert_int_equal(kd_gemm_choices_add(&c, &s2), 0);
  assert_int_equal(kd_gemm_choices_add(&c, &s3), 0);
  assert_int_equal(kd_gemm_choices_add(&c, &again), 0); /* the first decision stands */
  assert_int_equal(c.count, 3);
  assert_int_equal(kd_gemm_choices_save(path, &info, &c), 0);

  assert_int_equal(kd_gemm_choices_load(path, info.name, &back, warn, sizeof warn), 1);
  assert_int_equal(back.count, 3);
  for (size_t i = 0; i < c.count; i++) {
    const kd_gemm_choice *w = &c.items[i];
    const kd_gemm_choice *g = kd_gemm_choices_find(&back, w->trans_a, w->trans_b, w->m, w->n, w->k);
    assert_non_null(g);
    assert_int_equal(g->backend, w->backend);
    assert_true(g->builtin_ms == w->builtin_ms && g->clblast_ms == w->clblast_ms);
  }
  assert_null(kd_gemm_choices_find(&back, 0, 0, 128, 256, 784)); /* the transposes are the key */
  assert_int_equal(kd_gemm_choices_find(&back, 0, 1, 128, 256, 784)->backend, KD_GEMM_BUILTIN);

  /* Another device's file is not this device's. */
  kd_gemm_choices other = {0};
  warn[0] = '\0';
  assert_int_equal(kd_gemm_choices_load(path, "another-device", &other, warn, sizeof warn), -1);
  assert_int_equal(other.count, 0);
  assert_non_null(strstr(warn, "another-device"));
  assert_non_null(strstr(warn, "ignored"));
  kd_gemm_choices_free(&c);
  kd_gemm_choices_free(&back);
}

static void test_choices_damaged(void **state) {
  (void)state;
  char path[4200], warn[4400];
  snprintf(path, sizeof path, "%s/bad.json", test_dir);
  const char *const bad[] = {
      "",
      "{\"format\": \"kdcl-gemm-choice\", \"format_version\": [1, 0], \"device\": \"test-de",
      "\x89HDF\r\n\x1a\n",
      "[1, 2, 3]",
      "{\"format\": \"kdcl-dataset\", \"format_version\": [1, 0]}",
      "{\"format\": \"kdcl-gemm-choice\", \"format_version\": [2, 0], \"device\": \"test-device\","
      " \"shapes\": []}",
      "{\"format\": \"kdcl-gemm-choice\", \"format_version\": [1, 0], \"device\": \"test-device\"}",
      "{\"format\": \"kdcl-gemm-choice\", \"format_version\": [1, 0], \"device\": \"test-device\","
      " \"shapes\": [{\"op\": \"XN\", \"m\": 1, \"n\": 1, \"k\": 1, \"backend\": \"builtin\"}]}",
      "{\"format\": \"kdcl-gemm-choice\", \"format_version\": [1, 0], \"device\": \"test-device\","
      " \"shapes\": [{\"op\": \"NN\", \"m\": -4, \"n\": 1, \"k\": 1, \"backend\": \"builtin\"}]}",
      "{\"format\": \"kdcl-gemm-choice\", \"format_version\": [1, 0], \"device\": \"test-device\","
      " \"shapes\": [{\"op\": \"NN\", \"m\": 2.5, \"n\": 1, \"k\": 1, \"backend\": \"builtin\"}]}",
      "{\"format\": \"kdcl-gemm-choice\", \"format_version\": [1, 0], \"device\": \"test-device\","
      " \"shapes\": [{\"op\": \"NN\", \"m\": 1, \"n\": 1, \"k\": 1, \"backend\": \"mkl\"}]}",
      "{\"format\": \"kdcl-gemm-choice\", \"format_version\": [1, 0], \"device\": \"test-device\","
      " \"shapes\": [{\"op\": \"NN\", \"m\": 1, \"n\": 1, \"k\": 1, \"backend\": \"builtin\"}, 7]}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    write_text(path, bad[i]);
    kd_gemm_choices c = {0};
    kd_gemm_choice keep = shape(0, 0, 9, 9, 9, KD_GEMM_CLBLAST);
    assert_int_equal(kd_gemm_choices_add(&c, &keep), 0);
    warn[0] = '\0';
    int rc = kd_gemm_choices_load(path, "test-device", &c, warn, sizeof warn);
    if (rc != -1) fail_msg("damaged file %zu: load returned %d", i, rc);
    assert_non_null(strstr(warn, path));
    assert_non_null(strstr(warn, "ignored"));
    assert_int_equal(c.count, 1); /* what it held stays, nothing half read is added */
    kd_gemm_choices_free(&c);
  }
}

/* ---- tuned CLBlast parameters ---- */

static void test_params_file(void **state) {
  (void)state;
  kd_device_info info = fake_info("1.0");
  char path[4200], warn[4400], text[2048];
  snprintf(path, sizeof path, "%s/params.json", test_dir);
  const char *fmt =
      "{\"format\": \"kdcl-clblast-params\", \"format_version\": [1, 0],\n"
      " \"platform\": \"Test Platform\", \"device\": \"test-device\",\n"
      " \"device_version\": \"OpenCL 1.2 test\", \"driver_version\": \"%s\",\n"
      " \"kernels\": {\"Xgemm\": {\"tuned_at\": [512, 512, 512], \"parameters\": {\"GEMMK\": 0,"
      " \"MWG\": %d, \"NWG\": 64}},\n"
      "             \"XgemmDirect\": {\"parameters\": {\"WGD\": 16, \"MDIMCD\": 8}}}}\n";
  kd_clblast_params p, q;
  assert_int_equal(kd_clblast_params_load(path, &info, &p, warn, sizeof warn), 0); /* none */
  snprintf(text, sizeof text, fmt, "1.0", 64);
  write_text(path, text);
  assert_int_equal(kd_clblast_params_load(path, &info, &p, warn, sizeof warn), 1);
  assert_int_equal(p.count, 2);
  assert_string_equal(p.kernels[0].kernel, "Xgemm");
  assert_int_equal(p.kernels[0].count, 3);
  assert_string_equal(p.kernels[0].names[1], "MWG");
  assert_int_equal(p.kernels[0].values[1], 64);
  assert_string_equal(p.kernels[1].kernel, "XgemmDirect");
  assert_int_equal(p.kernels[1].values[0], 16);
  assert_true(p.fingerprint != 0);
  snprintf(text, sizeof text, fmt, "1.0", 128); /* other parameters: another fingerprint */
  write_text(path, text);
  assert_int_equal(kd_clblast_params_load(path, &info, &q, warn, sizeof warn), 1);
  assert_true(q.fingerprint != p.fingerprint);

  /* Tuned under another driver: ignored, saying so. */
  snprintf(text, sizeof text, fmt, "0.9", 64);
  write_text(path, text);
  warn[0] = '\0';
  assert_int_equal(kd_clblast_params_load(path, &info, &p, warn, sizeof warn), -1);
  assert_non_null(strstr(warn, "driver_version"));
  assert_int_equal(p.count, 0);
  /* Damaged: cut short, a negative or fractional value, parameters not an object. */
  snprintf(text, sizeof text, fmt, "1.0", 64);
  text[strlen(text) / 2] = '\0';
  const char *const bad[] = {
      text,
      "{\"format\": \"kdcl-clblast-params\", \"format_version\": [1, 0], \"platform\": \"Test "
      "Platform\", \"device\": \"test-device\", \"device_version\": \"OpenCL 1.2 test\", "
      "\"driver_version\": \"1.0\", \"kernels\": {\"Xgemm\": {\"parameters\": {\"MWG\": -1}}}}",
      "{\"format\": \"kdcl-clblast-params\", \"format_version\": [1, 0], \"platform\": \"Test "
      "Platform\", \"device\": \"test-device\", \"device_version\": \"OpenCL 1.2 test\", "
      "\"driver_version\": \"1.0\", \"kernels\": {\"Xgemm\": {\"parameters\": {\"MWG\": 0.5}}}}",
      "{\"format\": \"kdcl-clblast-params\", \"format_version\": [1, 0], \"platform\": \"Test "
      "Platform\", \"device\": \"test-device\", \"device_version\": \"OpenCL 1.2 test\", "
      "\"driver_version\": \"1.0\", \"kernels\": {\"Xgemm\": {\"parameters\": [64]}}}",
      "{\"format\": \"kdcl-clblast-params\", \"format_version\": [1, 0], \"platform\": \"Test "
      "Platform\", \"device\": \"test-device\", \"device_version\": \"OpenCL 1.2 test\", "
      "\"driver_version\": \"1.0\", \"kernels\": {}}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char copy[2048];
    snprintf(copy, sizeof copy, "%s", bad[i]);
    write_text(path, copy);
    warn[0] = '\0';
    if (kd_clblast_params_load(path, &info, &p, warn, sizeof warn) != -1)
      fail_msg("damaged parameter file %zu was accepted", i);
    assert_non_null(strstr(warn, "ignored"));
  }
}

/* ---- on the device ---- */

/* Drops the device's dispatcher state, as a new process would start. */
static void forget(kd_device *dev) {
  if (dev->gemm_state) dev->gemm_state_free(dev->gemm_state);
  dev->gemm_state = NULL;
}

/* Runs fn with stderr going to a file; returns what was written (malloc'd). */
static char *capture_stderr(void (*fn)(void *), void *arg) {
  char path[4200];
  snprintf(path, sizeof path, "%s/stderr.txt", test_dir);
  fflush(stderr);
  int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true(saved >= 0 && fd >= 0);
  dup2(fd, 2);
  close(fd);
  fn(arg);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  char *text = calloc(1, 8192);
  assert_non_null(text);
  size_t n = fread(text, 1, 8191, f);
  text[n] = '\0';
  fclose(f);
  return text;
}

typedef struct choose_args {
  int ta, tb;
  size_t m, n, k;
  kd_gemm_backend got;
} choose_args;

static void choose(void *p) {
  choose_args *a = p;
  KD_OK(kd_gemm_choose(kd_test_device(), a->ta, a->tb, a->m, a->n, a->k, &a->got, err));
}

static void test_measure_once(void **state) {
  (void)state;
  kd_device *dev = kd_test_device(); /* its program comes from the suite's cache dir */
  char saved[4096] = "";
  const char *env = getenv("KDCL_CACHE_DIR");
  if (env) snprintf(saved, sizeof saved, "%s", env);
  setenv("KDCL_CACHE_DIR", test_dir, 1);
  setenv("KDCL_CLBLAST_PARAMS", "none", 1); /* whatever is tuned for the real device aside */
  forget(dev);
  kd_gemm_backend backend = dev->gemm_backend;
  dev->gemm_backend = KD_GEMM_AUTO;
  char path[4200], warn[4400];
  assert_int_equal(kd_gemm_choice_path(dev, path, sizeof path), 0);
  assert_int_equal(strncmp(path, test_dir, strlen(test_dir)), 0);

  /* Small shapes are not measured: the built-in kernel. */
  kd_gemm_backend got;
  KD_OK(kd_gemm_choose(dev, 0, 1, 64, 64, 64, &got, err));
  assert_int_equal(got, KD_GEMM_BUILTIN);
  assert_int_equal(access(path, F_OK), -1);

  /* A new shape is measured and written down; a new process follows the file. */
  choose_args a = {0, 0, 160, 160, 96, KD_GEMM_AUTO};
  choose(&a);
  assert_true(a.got == KD_GEMM_BUILTIN || a.got == KD_GEMM_CLBLAST);
  kd_gemm_choices c = {0};
  assert_int_equal(kd_gemm_choices_load(path, dev->info.name, &c, warn, sizeof warn), 1);
  const kd_gemm_choice *e = kd_gemm_choices_find(&c, 0, 0, 160, 160, 96);
  assert_non_null(e);
  assert_int_equal(e->backend, a.got);
  assert_true(e->builtin_ms > 0);
  print_message("NN 160x160x96: built-in %.3f ms, CLBlast %.3f ms -> %s\n", e->builtin_ms,
                e->clblast_ms, kd_gemm_backend_name(e->backend));
  kd_gemm_choices_free(&c);
  /* The file says CLBlast for another shape: a new process believes it without measuring. */
  kd_gemm_choices mine = {0};
  assert_int_equal(kd_gemm_choices_load(path, dev->info.name, &mine, warn, sizeof warn), 1);
  kd_gemm_choice planted = shape(1, 1, 2048, 4096, 2048, KD_GEMM_CLBLAST);
  assert_int_equal(kd_gemm_choices_add(&mine, &planted), 0);
  assert_int_equal(kd_gemm_choices_save(path, &dev->info, &mine), 0);
  kd_gemm_choices_free(&mine);
  forget(dev);
  KD_OK(kd_gemm_choose(dev, 1, 1, 2048, 4096, 2048, &got, err));
  assert_int_equal(got, KD_GEMM_CLBLAST);
  KD_OK(kd_gemm_choose(dev, 0, 0, 160, 160, 96, &got, err));
  assert_int_equal(got, a.got);

  /* A damaged file: a warning, the shape measured again, the file rewritten whole. */
  write_text(path, "{\"format\": \"kdcl-gemm-choice\", \"format_ver");
  forget(dev);
  choose_args b = {0, 1, 128, 200, 100, KD_GEMM_AUTO};
  char *out = capture_stderr(choose, &b);
  if (!strstr(out, "kdcl: warning:") || !strstr(out, path)) fail_msg("no warning: '%s'", out);
  free(out);
  assert_int_equal(kd_gemm_choices_load(path, dev->info.name, &c, warn, sizeof warn), 1);
  assert_non_null(kd_gemm_choices_find(&c, 0, 1, 128, 200, 100));
  kd_gemm_choices_free(&c);

  forget(dev);
  dev->gemm_backend = backend;
  unsetenv("KDCL_CLBLAST_PARAMS");
  if (saved[0]) setenv("KDCL_CACHE_DIR", saved, 1);
}

/* Dense forward and backward (bias, relu before, relu after) with every GEMM shape given to
 * CLBlast by the choice file: the epilogue functions run CLBlast and then the separate kernels,
 * so the result is bit for bit --gemm clblast's, and within float rounding of the built-in's. */
static void test_auto_dense_as_clblast(void **state) {
  (void)state;
  kd_device *dev = kd_test_device();
  kd_error cerr = {{0}};
  if (!kd_gemm_clblast_usable(dev, &cerr)) {
    print_message("CLBlast not usable here (%s); skipped\n", cerr.msg);
    return;
  }
  char saved[4096] = "";
  const char *env = getenv("KDCL_CACHE_DIR");
  if (env) snprintf(saved, sizeof saved, "%s", env);
  setenv("KDCL_CACHE_DIR", test_dir, 1);
  setenv("KDCL_CLBLAST_PARAMS", "none", 1);
  forget(dev);
  kd_gemm_backend backend = dev->gemm_backend;
  const size_t B = 128, in = 300, out = 70; /* each GEMM 2.7M multiply-adds: measured size */
  char path[4200];
  assert_int_equal(kd_gemm_choice_path(dev, path, sizeof path), 0);
  kd_gemm_choices c = {0};
  kd_gemm_choice fwd = shape(0, 1, B, out, in, KD_GEMM_CLBLAST);
  kd_gemm_choice dx = shape(0, 0, B, in, out, KD_GEMM_CLBLAST);
  kd_gemm_choice dw = shape(1, 0, out, in, B, KD_GEMM_CLBLAST);
  assert_int_equal(kd_gemm_choices_add(&c, &fwd), 0);
  assert_int_equal(kd_gemm_choices_add(&c, &dx), 0);
  assert_int_equal(kd_gemm_choices_add(&c, &dw), 0);
  assert_int_equal(kd_gemm_choices_save(path, &dev->info, &c), 0);
  kd_gemm_choices_free(&c);
  forget(dev);

  float *x = kd_test_floats(B * in), *w = kd_test_floats(out * in), *b = kd_test_floats(out);
  float *dy = kd_test_floats(B * out);
  kd_test_fill_uniform(x, B * in, 0, 1, 11); /* x >= 0: the output of a relu */
  kd_test_fill_uniform(w, out * in, -1, 1, 12);
  kd_test_fill_uniform(b, out, -1, 1, 13);
  kd_test_fill_uniform(dy, B * out, -1, 1, 14);
  cl_mem bx = kd_test_buffer(B * in, x), bw = kd_test_buffer(out * in, w);
  cl_mem bb = kd_test_buffer(out, b), bdy = kd_test_buffer(B * out, dy);
  const kd_gemm_backend order[3] = {KD_GEMM_CLBLAST, KD_GEMM_AUTO, KD_GEMM_BUILTIN};
  float *res[3][4];
  size_t sizes[4] = {B * out, B * in, out * in, out};
  for (int r = 0; r < 3; r++) {
    dev->gemm_backend = order[r];
    cl_mem y = kd_test_buffer(B * out, NULL), ddx = kd_test_buffer(B * in, NULL);
    cl_mem ddw = kd_test_buffer(out * in, NULL), ddb = kd_test_buffer(out, NULL);
    KD_OK(kd_dense_forward_act(dev, kd_at(y, 0), kd_at(NULL, 0), kd_at(bx, 0), kd_at(bw, 0),
                               kd_at(bb, 0), B, in, out, KD_ACT_RELU, err));
    KD_OK(kd_dense_backward_act(dev, kd_at(ddx, 0), KD_ACT_RELU, kd_at(NULL, 0), kd_at(bx, 0),
                                kd_at(ddw, 0), kd_at(ddb, 0), kd_at(bdy, 0), kd_at(bx, 0),
                                kd_at(bw, 0), B, in, out, err));
    cl_mem bufs[4] = {y, ddx, ddw, ddb};
    for (int t = 0; t < 4; t++) {
      res[r][t] = kd_test_floats(sizes[t]);
      kd_test_read(bufs[t], 0, sizes[t], res[r][t]);
      clReleaseMemObject(bufs[t]);
    }
  }
  kd_gemm_backend got;
  dev->gemm_backend = KD_GEMM_AUTO;
  KD_OK(kd_gemm_choose(dev, 0, 1, B, out, in, &got, err));
  assert_int_equal(got, KD_GEMM_CLBLAST); /* from the file */
  const char *names[4] = {"y", "dx", "dw", "db"};
  for (int t = 0; t < 4; t++) {
    if (memcmp(res[0][t], res[1][t], sizes[t] * sizeof(float)))
      fail_msg("%s: auto (CLBlast by the file) differs from --gemm clblast", names[t]);
    double worst = 0;
    for (size_t i = 0; i < sizes[t]; i++) {
      double d = fabs((double)res[1][t][i] - (double)res[2][t][i]);
      if (!(d <= worst)) worst = d;
    }
    if (!(worst < 1e-5 * (double)in)) fail_msg("%s: auto vs built-in differ by %g", names[t], worst);
  }
  for (int r = 0; r < 3; r++)
    for (int t = 0; t < 4; t++) free(res[r][t]);
  clReleaseMemObject(bx), clReleaseMemObject(bw), clReleaseMemObject(bb), clReleaseMemObject(bdy);
  free(x), free(w), free(b), free(dy);
  forget(dev);
  dev->gemm_backend = backend;
  unsetenv("KDCL_CLBLAST_PARAMS");
  if (saved[0]) setenv("KDCL_CACHE_DIR", saved, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_keys),
      cmocka_unit_test(test_choices_round_trip),
      cmocka_unit_test(test_choices_damaged),
      cmocka_unit_test(test_params_file),
      cmocka_unit_test(test_measure_once),
      cmocka_unit_test(test_auto_dense_as_clblast),
  };
  return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}

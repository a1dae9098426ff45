/* GEMM dispatch: CLBlast or the project's own kernel (kernels/gemm.cl), forced (--gemm) or per
 * shape, the faster of the two on this device as measured once and cached (KD_GEMM_AUTO); and
 * CLBlast's tuned kernel parameters for the device, applied before its first call. */
#include "nn/gemm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <clblast_c.h>

#include "nn/gemm_cache.h"
#include "runtime/program.h"

extern const char kd_kernel_source[];
extern const size_t kd_kernel_source_len;

/* Below this many multiply-adds KD_GEMM_AUTO takes the built-in kernel without measuring: launch
 * overhead decides there, and the built-in kernel also carries the layers' epilogues. */
#define KD_GEMM_AUTO_MIN_MACS (1u << 21)
/* CLBlast is chosen only when it is this much faster, since the built-in kernel fuses the dense
 * layers' bias and activation (one launch fewer) and timings on a shared machine wobble. */
#define KD_GEMM_AUTO_MARGIN 0.9
/* Bump when the measurement changes meaning: it is part of the choice file's key. */
#define KD_GEMM_AUTO_VERSION "auto-1"

typedef struct gemm_state {
  int params_done;             /* tuned CLBlast parameters looked for (and applied if found) */
  uint64_t params_fingerprint; /* of the parameters applied; 0: CLBlast's defaults */
  int choices_loaded;          /* the choice file has been read (or there is none) */
  char choice_path[4200];      /* "" without a cache dir: choices kept in memory only */
  kd_gemm_choices choices;
  int warned;
} gemm_state;

static void gemm_state_free(void *p) {
  gemm_state *s = p;
  kd_gemm_choices_free(&s->choices);
  free(s);
}

static gemm_state *state_of(kd_device *dev) {
  if (!dev->gemm_state) {
    dev->gemm_state = calloc(1, sizeof(gemm_state));
    dev->gemm_state_free = gemm_state_free;
  }
  return dev->gemm_state;
}

/* The library prints nothing else: these are cache problems a user may want to know about, met
 * deep inside a step where no error can be returned for them. */
static void gemm_warn(const char *msg) { fprintf(stderr, "kdcl: warning: %s\n", msg); }

/* Applies the device's tuned CLBlast parameters once per device: $KDCL_CLBLAST_PARAMS names the
 * file ("none": CLBlast's own defaults), else clblast-params-<device key>.json in the cache
 * dir. CLBlastOverrideParameters lasts for the process and recompiles the affected kernels. */
static void clblast_prepare(kd_device *dev) {
  gemm_state *s = state_of(dev);
  if (!s || s->params_done) return;
  s->params_done = 1;
  const char *env = getenv("KDCL_CLBLAST_PARAMS");
  char path[4200], warn[4400];
  if (env && !strcmp(env, "none")) return;
  if (env && *env)
    snprintf(path, sizeof path, "%s", env);
  else if (kd_gemm_cache_path(path, sizeof path, "clblast-params", kd_gemm_device_key(&dev->info)))
    return;
  kd_clblast_params p;
  int rc = kd_clblast_params_load(path, &dev->info, &p, warn, sizeof warn);
  if (rc < 0) gemm_warn(warn);
  if (rc == 0 && env && *env) {
    snprintf(warn, sizeof warn, "KDCL_CLBLAST_PARAMS=%s: no such file; CLBlast's defaults used",
             env);
    gemm_warn(warn);
  }
  if (rc != 1) return;
  int applied = 0;
  for (size_t i = 0; i < p.count; i++) {
    const kd_clblast_kernel_params *kp = &p.kernels[i];
    const char *names[KD_CLBLAST_MAX_PARAMS];
    for (size_t j = 0; j < kp->count; j++) names[j] = kp->names[j];
    CLBlastStatusCode st = CLBlastOverrideParameters(dev->info.device, kp->kernel,
                                                     CLBlastPrecisionSingle, kp->count, names,
                                                     kp->values);
    if (st == CLBlastSuccess) {
      applied++;
    } else {
      snprintf(warn, sizeof warn,
               "%s: CLBlast refused the %s parameters (status %d); its defaults stay for that "
               "kernel",
               path, kp->kernel, (int)st);
      gemm_warn(warn);
    }
  }
  if (applied) s->params_fingerprint = p.fingerprint ^ (uint64_t)applied;
}

static int gemm_clblast(kd_device *dev, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                        float alpha, cl_mem A, size_t a_off, size_t lda, cl_mem B, size_t b_off,
                        size_t ldb, float beta, cl_mem C, size_t c_off, size_t ldc,
                        kd_error *err) {
  clblast_prepare(dev);
  CLBlastStatusCode st = CLBlastSgemm(
      CLBlastLayoutRowMajor, trans_a ? CLBlastTransposeYes : CLBlastTransposeNo,
      trans_b ? CLBlastTransposeYes : CLBlastTransposeNo, M, N, K, alpha, A, a_off, lda, B,
      b_off, ldb, beta, C, c_off, ldc, &dev->queue, NULL);
  if (st != CLBlastSuccess)
    return kd_fail(err, "CLBlastSgemm (M=%zu N=%zu K=%zu) failed with CLBlast status %d", M, N,
                   K, (int)st);
  dev->launches++;
  return 0;
}

/* Tile and work-group shape of kernels/gemm.cl; the defaults there must match these. */
#ifndef KD_GEMM_TM
#define KD_GEMM_TM 8
#endif
#ifndef KD_GEMM_TN
#define KD_GEMM_TN 32
#endif
#ifndef KD_GEMM_DOT_TM
#define KD_GEMM_DOT_TM 4
#endif
#ifndef KD_GEMM_DOT_TN
#define KD_GEMM_DOT_TN 6
#endif
#ifndef KD_GEMM_WG_X
#define KD_GEMM_WG_X 8
#endif
#ifndef KD_GEMM_WG_Y
#define KD_GEMM_WG_Y 2
#endif
#ifndef KD_GEMM_BLK_WG_Y
#define KD_GEMM_BLK_WG_Y 16
#endif
/* When kd_gemm takes the blocked kernels (NN, TN, TT): k and the output rows at least these. */
#define KD_GEMM_BLK_MIN_K 1024
#define KD_GEMM_BLK_MIN_ROWS (KD_GEMM_BLK_WG_Y * KD_GEMM_TM)

/* The kernels index with 32-bit unsigned arithmetic and read without bounds checks, so every
 * element an operand's rows x cols view touches must lie inside its buffer and below 2^32. */
static int gemm_check_operand(const char *name, cl_mem buf, size_t off, size_t ld, size_t rows,
                              size_t cols, kd_error *err) {
  if (rows == 0 || cols == 0) return 0;
  if (ld < cols)
    return kd_fail(err, "GEMM: leading dimension of %s is %zu, less than its %zu columns", name,
                   ld, cols);
  if (off > SIZE_MAX - cols || rows - 1 > (SIZE_MAX - off - cols) / ld)
    return kd_fail(err, "GEMM: %s (%zu x %zu, ld %zu, offset %zu) overflows size_t", name, rows,
                   cols, ld, off);
  size_t end = off + (rows - 1) * ld + cols; /* one past the last element read or written */
  if (end > UINT_MAX)
    return kd_fail(err, "GEMM: %s spans %zu floats; the built-in GEMM indexes at most 2^32",
                   name, end);
  size_t bytes = 0;
  cl_int rc = clGetMemObjectInfo(buf, CL_MEM_SIZE, sizeof bytes, &bytes, NULL);
  if (rc != CL_SUCCESS) return kd_fail(err, "GEMM: %s: %s", name, kd_cl_errstr(rc));
  if (end > bytes / sizeof(float))
    return kd_fail(err,
                   "GEMM: %s (%zu x %zu, ld %zu, offset %zu) needs %zu floats; its buffer "
                   "holds %zu",
                   name, rows, cols, ld, off, end, bytes / sizeof(float));
  return 0;
}

/* Epilogue of the outer-product kernels (NN, TN): an activation gradient applied on the way out
 * (act >= 0, s laid out like C) and the row sums of op(A) (rowsum.buf). */
typedef struct gemm_ep {
  int act;
  kd_ref s;
  int s_is_output;
  kd_ref rowsum;
} gemm_ep;

static int gemm_builtin(kd_device *dev, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                        float alpha, cl_mem A, size_t a_off, size_t lda, cl_mem B, size_t b_off,
                        size_t ldb, float beta, cl_mem C, size_t c_off, size_t ldc,
                        const gemm_ep *ep, kd_error *err) {
  if (M > UINT_MAX || N > UINT_MAX || K > UINT_MAX)
    return kd_fail(err, "GEMM: M=%zu N=%zu K=%zu exceeds the built-in GEMM's 32-bit sizes", M,
                   N, K);
  if (gemm_check_operand("A", A, a_off, lda, trans_a ? K : M, trans_a ? M : K, err) ||
      gemm_check_operand("B", B, b_off, ldb, trans_b ? N : K, trans_b ? K : N, err) ||
      gemm_check_operand("C", C, c_off, ldc, M, N, err))
    return -1;
  if (ep && (trans_b || (ep->act >= 0 && gemm_check_operand("S", ep->s.buf, ep->s.off, ldc, M,
                                                            N, err)) ||
             (ep->rowsum.buf &&
              gemm_check_operand("rowsum", ep->rowsum.buf, ep->rowsum.off, M, 1, M, err))))
    return trans_b ? kd_fail(err, "GEMM: epilogues are for NN and TN only") : -1;
  /* Global size in work-items, one per output tile; TT computes C^T, so rows and columns swap. */
  static const char *const names[2][2] = {{"kd_gemm_nn", "kd_gemm_nt"},
                                          {"kd_gemm_tn", "kd_gemm_tt"}};
  size_t global[2];
  if (!trans_a && trans_b) {
    global[0] = (N + KD_GEMM_DOT_TN - 1) / KD_GEMM_DOT_TN;
    global[1] = (M + KD_GEMM_DOT_TM - 1) / KD_GEMM_DOT_TM;
  } else if (trans_a && trans_b) {
    global[0] = (M + KD_GEMM_TN - 1) / KD_GEMM_TN;
    global[1] = (N + KD_GEMM_TM - 1) / KD_GEMM_TM;
  } else {
    global[0] = (N + KD_GEMM_TN - 1) / KD_GEMM_TN;
    global[1] = (M + KD_GEMM_TM - 1) / KD_GEMM_TM;
  }
  size_t local[2] = {KD_GEMM_WG_X, KD_GEMM_WG_Y};
  const char *name = names[!!trans_a][!!trans_b];
  if (ep) name = trans_a ? "kd_gemm_tn_ep" : "kd_gemm_nn_ep";
  /* Long k with enough rows for a group of row tiles: the blocked kernels, which share each
   * block of B's column panel through local memory (kernels/gemm.cl). Measured on 2 cores
   * under PoCL: 2048^3 NN 146 -> 323 GFLOP/s, 128x1024x1024 325 -> 390; worse below these
   * sizes (the copies and barriers do not pay off). */
  size_t rows = trans_a && trans_b ? N : M, cols = trans_a && trans_b ? M : N;
  if ((trans_a || !trans_b) && K >= KD_GEMM_BLK_MIN_K && rows >= KD_GEMM_BLK_MIN_ROWS &&
      cols >= KD_GEMM_TN) {
    static const char *const blk[2][2] = {{"kd_gemm_nn_blk", NULL},
                                          {"kd_gemm_tn_blk", "kd_gemm_tt_blk"}};
    name = blk[!!trans_a][!!trans_b];
    if (ep) name = trans_a ? "kd_gemm_tn_blk_ep" : "kd_gemm_nn_blk_ep";
    local[0] = 1;
    local[1] = KD_GEMM_BLK_WG_Y;
  }
  kd_arg args[21] = {KD_UINT(M),     KD_UINT(N),   KD_UINT(K),   KD_FLOAT(alpha), KD_MEM(A),
                     KD_UINT(a_off), KD_UINT(lda), KD_MEM(B),    KD_UINT(b_off),  KD_UINT(ldb),
                     KD_FLOAT(beta), KD_MEM(C),    KD_UINT(c_off), KD_UINT(ldc)};
  int nargs = 14;
  cl_mem s_buf = ep && ep->act >= 0 ? ep->s.buf : C;
  cl_mem rs_buf = ep && ep->rowsum.buf ? ep->rowsum.buf : C;
  cl_uint s_off = ep && ep->act >= 0 ? (cl_uint)ep->s.off : 0;
  cl_uint rs_off = ep && ep->rowsum.buf ? (cl_uint)ep->rowsum.off : 0;
  cl_int act = ep ? ep->act : -1, s_is_output = ep ? ep->s_is_output : 0;
  cl_int has_rowsum = ep && ep->rowsum.buf;
  if (ep) {
    /* Unused buffer arguments still need a valid cl_mem; act < 0 and has_rowsum = 0 keep them
     * unread. */
    const kd_arg more[7] = {{sizeof act, &act},         {sizeof s_buf, &s_buf},
                            {sizeof s_off, &s_off},     {sizeof s_is_output, &s_is_output},
                            {sizeof rs_buf, &rs_buf},   {sizeof rs_off, &rs_off},
                            {sizeof has_rowsum, &has_rowsum}};
    memcpy(args + nargs, more, sizeof more);
    nargs += 7;
  }
  return kd_run(dev, name, 2, global, local, nargs, args, err);
}

/* ---- KD_GEMM_AUTO: the faster back end per shape ---- */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* Best wall time of one call (queue drained around it) after a warm-up call that also compiles
 * (CLBlast builds its kernels on first use): at least 3 timed calls, more while under ~30 ms in
 * all, at most 10. Returns -1 when the back end fails (its message in err). */
static double time_backend(kd_device *dev, kd_gemm_backend be, int ta, int tb, size_t M, size_t N,
                           size_t K, cl_mem a, cl_mem b, cl_mem c, kd_error *err) {
  size_t lda = ta ? M : K, ldb = tb ? K : N;
  double best = -1, total = 0;
  for (int rep = 0; rep <= 10; rep++) {
    double t0 = now_ms();
    int rc = be == KD_GEMM_CLBLAST
                 ? gemm_clblast(dev, ta, tb, M, N, K, 1.0f, a, 0, lda, b, 0, ldb, 0.0f, c, 0, N, err)
                 : gemm_builtin(dev, ta, tb, M, N, K, 1.0f, a, 0, lda, b, 0, ldb, 0.0f, c, 0, N,
                                NULL, err);
    cl_int fin = clFinish(dev->queue);
    double ms = now_ms() - t0;
    if (rc) return -1;
    if (fin != CL_SUCCESS) return kd_fail(err, "clFinish: %s", kd_cl_errstr(fin)), -1;
    if (rep == 0) continue; /* the warm-up */
    total += ms;
    if (best < 0 || ms < best) best = ms;
    if (rep >= 3 && total > 30.0) break;
  }
  return best;
}

/* Times both back ends on scratch operands of the shape and fills *out. CLBlast failing, or
 * disagreeing with the built-in kernel beyond float rounding, means the built-in kernel. The
 * launch counters and profiled times are put back as they were: the measurement is no part of
 * the work being counted. */
static int measure_shape(kd_device *dev, int ta, int tb, size_t M, size_t N, size_t K,
                         kd_gemm_choice *out, kd_error *err) {
  memset(out, 0, sizeof *out);
  out->trans_a = !!ta, out->trans_b = !!tb;
  out->m = M, out->n = N, out->k = K;
  out->backend = KD_GEMM_BUILTIN;
  out->clblast_ms = -1;
  size_t na = M * K, nb = K * N, nc = M * N;
  cl_ulong cap = dev->info.max_alloc_bytes / sizeof(float);
  if (na > cap || nb > cap || nc > cap || na > UINT_MAX || nb > UINT_MAX || nc > UINT_MAX)
    return 0; /* too big to try on the side: the built-in kernel, unmeasured */
  KD_CL_CHECK(err, clFinish(dev->queue)); /* the work already queued is not timed */
  uint64_t launches = dev->launches;
  uint64_t *klaunch = malloc(((size_t)dev->num_kernels + 1) * sizeof *klaunch);
  double *kms = malloc(((size_t)dev->num_kernels + 1) * sizeof *kms);
  float *host = malloc((na > nb ? (na > 2 * nc ? na : 2 * nc) : (nb > 2 * nc ? nb : 2 * nc)) *
                       sizeof *host);
  cl_mem a = NULL, b = NULL, c[2] = {NULL, NULL};
  int rc = -1;
  if (!klaunch || !kms || !host) {
    kd_fail(err, "out of host memory timing GEMM back ends");
    goto done;
  }
  for (int i = 0; i < dev->num_kernels; i++)
    klaunch[i] = dev->kernels[i].launches, kms[i] = dev->kernels[i].profiled_ms;
  cl_int cl;
  a = clCreateBuffer(dev->context, CL_MEM_READ_WRITE, na * sizeof(float), NULL, &cl);
  if (cl == CL_SUCCESS)
    b = clCreateBuffer(dev->context, CL_MEM_READ_WRITE, nb * sizeof(float), NULL, &cl);
  for (int i = 0; i < 2 && cl == CL_SUCCESS; i++)
    c[i] = clCreateBuffer(dev->context, CL_MEM_READ_WRITE, nc * sizeof(float), NULL, &cl);
  if (cl != CL_SUCCESS) {
    rc = 0; /* no room on the side: the built-in kernel, unmeasured */
    goto done;
  }
  /* Operands in [-1, 1) from a fixed LCG: the same figures every time. */
  uint32_t x = 2463534242u;
  size_t most = na > nb ? na : nb;
  for (size_t i = 0; i < most; i++)
    host[i] = (float)((x = x * 1664525u + 1013904223u) >> 8) * (2.0f / 16777216.0f) - 1.0f;
  if (clEnqueueWriteBuffer(dev->queue, a, CL_TRUE, 0, na * sizeof(float), host, 0, NULL, NULL) !=
          CL_SUCCESS ||
      clEnqueueWriteBuffer(dev->queue, b, CL_TRUE, 0, nb * sizeof(float), host, 0, NULL, NULL) !=
          CL_SUCCESS) {
    kd_fail(err, "writing GEMM timing operands failed");
    goto done;
  }
  out->builtin_ms = time_backend(dev, KD_GEMM_BUILTIN, ta, tb, M, N, K, a, b, c[0], err);
  if (out->builtin_ms < 0) goto done;
  kd_error cerr = {{0}};
  out->clblast_ms = time_backend(dev, KD_GEMM_CLBLAST, ta, tb, M, N, K, a, b, c[1], &cerr);
  char warn[1400];
  if (out->clblast_ms < 0) {
    snprintf(warn, sizeof warn, "GEMM %c%c %zux%zux%zu: CLBlast failed (%s); the built-in kernel "
             "takes this shape", ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, cerr.msg);
    gemm_warn(warn);
  } else {
    /* Both results must agree within float rounding of a K-term sum of values below 1. */
    float *r0 = host, *r1 = host + nc;
    if (clEnqueueReadBuffer(dev->queue, c[0], CL_TRUE, 0, nc * sizeof(float), r0, 0, NULL,
                            NULL) != CL_SUCCESS ||
        clEnqueueReadBuffer(dev->queue, c[1], CL_TRUE, 0, nc * sizeof(float), r1, 0, NULL,
                            NULL) != CL_SUCCESS) {
      kd_fail(err, "reading GEMM timing results failed");
      goto done;
    }
    double worst = 0, tol = 1e-5 * (double)K + 1e-5;
    for (size_t i = 0; i < nc; i++) {
      double d = fabs((double)r0[i] - (double)r1[i]);
      if (!(d <= worst)) worst = d; /* NaN counts as the worst */
    }
    if (!(worst <= tol)) {
      snprintf(warn, sizeof warn,
               "GEMM %c%c %zux%zux%zu: CLBlast's result differs from the built-in kernel's by "
               "%g; the built-in kernel takes this shape",
               ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, worst);
      gemm_warn(warn);
    } else if (out->clblast_ms < KD_GEMM_AUTO_MARGIN * out->builtin_ms) {
      out->backend = KD_GEMM_CLBLAST;
    }
  }
  rc = 0;
done:
  if (klaunch && kms) {
    dev->launches = launches;
    for (int i = 0; i < dev->num_kernels; i++)
      dev->kernels[i].launches = klaunch[i], dev->kernels[i].profiled_ms = kms[i];
  }
  free(klaunch), free(kms), free(host);
  if (a) clReleaseMemObject(a);
  if (b) clReleaseMemObject(b);
  for (int i = 0; i < 2; i++)
    if (c[i]) clReleaseMemObject(c[i]);
  return rc;
}

/* The choice file's key: the device, and everything the timings depend on. */
static uint64_t choice_key(const kd_device *dev, const gemm_state *s) {
  uint64_t h = kd_gemm_device_key(&dev->info);
  h = kd_fnv1a64(h, &h, sizeof h); /* a new hash chain, distinct from the device key's */
  h = kd_fnv1a64(h, kd_kernel_source, kd_kernel_source_len);
  h = kd_fnv1a64(h, KD_PROGRAM_OPTIONS, sizeof KD_PROGRAM_OPTIONS);
  h = kd_fnv1a64(h, KD_GEMM_AUTO_VERSION, sizeof KD_GEMM_AUTO_VERSION);
#ifdef KDCL_CLBLAST_VERSION
  h = kd_fnv1a64(h, KDCL_CLBLAST_VERSION, sizeof KDCL_CLBLAST_VERSION);
#endif
  return kd_fnv1a64(h, &s->params_fingerprint, sizeof s->params_fingerprint);
}

static void load_choices(gemm_state *s, const kd_device *dev) {
  char warn[4400];
  if (kd_gemm_choices_load(s->choice_path, dev->info.name, &s->choices, warn, sizeof warn) < 0 &&
      !s->warned) {
    s->warned = 1; /* once per process; the file is rewritten with the next measurement */
    gemm_warn(warn);
  }
}

/* The back end kd_gemm uses for this shape. KD_GEMM_AUTO: a shape seen before keeps its choice;
 * a new one is looked up in the device's choice file, and measured (then added to the file)
 * when absent. The file is read and written under an exclusive lock on FILE.lock, so processes
 * sharing a cache dir measure each shape once and all follow the first decision: the same
 * shapes always run the same code, hence the same bits, across runs and resumes. */
static int gemm_pick(kd_device *dev, int ta, int tb, size_t M, size_t N, size_t K,
                     kd_gemm_backend *out, kd_error *err) {
  *out = dev->gemm_backend == KD_GEMM_CLBLAST && K > 0 ? KD_GEMM_CLBLAST : KD_GEMM_BUILTIN;
  if (dev->gemm_backend != KD_GEMM_AUTO || K == 0 ||
      (double)M * (double)N * (double)K < (double)KD_GEMM_AUTO_MIN_MACS)
    return 0;
  gemm_state *s = state_of(dev);
  if (!s) return 0;
  const kd_gemm_choice *c = kd_gemm_choices_find(&s->choices, ta, tb, M, N, K);
  if (!c && !s->choices_loaded) {
    s->choices_loaded = 1;
    clblast_prepare(dev); /* the parameters in force are part of the key */
    if (kd_gemm_cache_path(s->choice_path, sizeof s->choice_path, "gemm-choice",
                           choice_key(dev, s)))
      s->choice_path[0] = '\0';
    if (s->choice_path[0]) load_choices(s, dev);
    c = kd_gemm_choices_find(&s->choices, ta, tb, M, N, K);
  }
  if (c) {
    *out = c->backend;
    return 0;
  }
  int lock = -1;
  if (s->choice_path[0]) {
    char dir[4096], lock_path[4300];
    kd_cache_dir(dir, sizeof dir);
    for (char *p = dir + 1; *p; p++) /* mkdir -p */
      if (*p == '/') *p = '\0', mkdir(dir, 0755), *p = '/';
    mkdir(dir, 0755);
    snprintf(lock_path, sizeof lock_path, "%s.lock", s->choice_path);
    lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock >= 0 && flock(lock, LOCK_EX) != 0) close(lock), lock = -1;
    if (lock >= 0) load_choices(s, dev); /* another process may have measured it meanwhile */
    c = kd_gemm_choices_find(&s->choices, ta, tb, M, N, K);
  }
  int rc = 0;
  if (c) {
    *out = c->backend;
  } else {
    kd_gemm_choice ch;
    rc = measure_shape(dev, ta, tb, M, N, K, &ch, err);
    if (rc == 0) {
      *out = ch.backend;
      if (kd_gemm_choices_add(&s->choices, &ch) == 0 && lock >= 0 &&
          kd_gemm_choices_save(s->choice_path, &dev->info, &s->choices) && !s->warned) {
        char warn[4400];
        snprintf(warn, sizeof warn, "%s: cannot write the GEMM choices (%s); they are measured "
                 "again next run", s->choice_path, strerror(errno));
        s->warned = 1;
        gemm_warn(warn);
      }
    }
  }
  if (lock >= 0) close(lock); /* closing releases the lock */
  return rc;
}

int kd_gemm_choose(kd_device *dev, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                   kd_gemm_backend *out, kd_error *err) {
  return gemm_pick(dev, trans_a, trans_b, M, N, K, out, err);
}

int kd_gemm_choice_path(kd_device *dev, char *buf, size_t len) {
  gemm_state *s = state_of(dev);
  if (!s) return -1;
  clblast_prepare(dev);
  return kd_gemm_cache_path(buf, len, "gemm-choice", choice_key(dev, s));
}

int kd_gemm_fuses_epilogue(const kd_device *dev) { return dev->gemm_backend != KD_GEMM_CLBLAST; }

int kd_gemm_nt_epilogue(kd_device *dev, size_t M, size_t N, size_t K, cl_mem A, size_t a_off,
                        size_t lda, cl_mem B, size_t b_off, size_t ldb, cl_mem C, size_t c_off,
                        size_t ldc, kd_ref bias, int act, kd_ref pre, kd_error *err) {
  if (M == 0 || N == 0) return 0;
  if (!kd_gemm_fuses_epilogue(dev))
    return kd_fail(err, "GEMM: the %s back end has no fused epilogue",
                   kd_gemm_backend_name(dev->gemm_backend));
  if (M > UINT_MAX || N > UINT_MAX || K > UINT_MAX)
    return kd_fail(err, "GEMM: M=%zu N=%zu K=%zu exceeds the built-in GEMM's 32-bit sizes", M,
                   N, K);
  if (gemm_check_operand("A", A, a_off, lda, M, K, err) ||
      gemm_check_operand("B", B, b_off, ldb, N, K, err) ||
      gemm_check_operand("C", C, c_off, ldc, M, N, err) ||
      (pre.buf && gemm_check_operand("P", pre.buf, pre.off, ldc, M, N, err)) ||
      (bias.buf && gemm_check_operand("bias", bias.buf, bias.off, N, 1, N, err)))
    return -1;
  kd_gemm_backend be;
  if (gemm_pick(dev, 0, 1, M, N, K, &be, err)) return -1;
  if (be == KD_GEMM_CLBLAST && ldc == N && (act >= 0 || !pre.buf)) {
    /* CLBlast took the shape: the GEMM into P (or C), then the one bias+activation kernel a
     * layer runs after an unfused GEMM; the same bits as that path. */
    kd_ref v = pre.buf ? pre : kd_at(C, c_off);
    if (gemm_clblast(dev, 0, 1, M, N, K, 1.0f, A, a_off, lda, B, b_off, ldb, 0.0f, v.buf, v.off,
                     ldc, err))
      return -1;
    size_t g = M * N, l = KD_WG;
    if (act < 0 && !bias.buf) return 0;
    if (act < 0)
      return KD_RUN(dev, "kd_dense_bias_forward", 1, &g, &l, err, KD_MEM(C), KD_UINT(c_off),
                    KD_MEM(bias.buf), KD_UINT(bias.off), KD_UINT(M), KD_UINT(N));
    return KD_RUN(dev, "kd_dense_bias_act_forward", 1, &g, &l, err, KD_MEM(C), KD_UINT(c_off),
                  KD_MEM(pre.buf ? pre.buf : C), KD_UINT(pre.buf ? pre.off : 0),
                  KD_INT(pre.buf != NULL), KD_MEM(bias.buf ? bias.buf : C),
                  KD_UINT(bias.buf ? bias.off : 0), KD_INT(bias.buf != NULL), KD_UINT(M),
                  KD_UINT(N), KD_INT(act));
  }
  size_t global[2] = {(N + KD_GEMM_DOT_TN - 1) / KD_GEMM_DOT_TN,
                      (M + KD_GEMM_DOT_TM - 1) / KD_GEMM_DOT_TM};
  const size_t local[2] = {KD_GEMM_WG_X, KD_GEMM_WG_Y};
  /* Unused buffer arguments still need a valid cl_mem; the flags keep them unread. */
  return KD_RUN(dev, "kd_gemm_nt_bias_act", 2, global, local, err, KD_UINT(M), KD_UINT(N),
                KD_UINT(K), KD_FLOAT(1.0f), KD_MEM(A), KD_UINT(a_off), KD_UINT(lda), KD_MEM(B),
                KD_UINT(b_off), KD_UINT(ldb), KD_FLOAT(0.0f), KD_MEM(C), KD_UINT(c_off),
                KD_UINT(ldc), KD_MEM(bias.buf ? bias.buf : C), KD_UINT(bias.buf ? bias.off : 0),
                KD_INT(bias.buf != NULL), KD_INT(act), KD_MEM(pre.buf ? pre.buf : C),
                KD_UINT(pre.buf ? pre.off : 0), KD_INT(pre.buf != NULL));
}

int kd_gemm_outer_epilogue(kd_device *dev, int trans_a, size_t M, size_t N, size_t K,
                           cl_mem A, size_t a_off, size_t lda, cl_mem B, size_t b_off, size_t ldb,
                           cl_mem C, size_t c_off, size_t ldc, int act, kd_ref s, int s_is_output,
                           kd_ref rowsum, kd_error *err) {
  if (M == 0 || N == 0) return 0;
  if (!kd_gemm_fuses_epilogue(dev))
    return kd_fail(err, "GEMM: the %s back end has no fused epilogue",
                   kd_gemm_backend_name(dev->gemm_backend));
  if (act >= 0 && !s.buf)
    return kd_fail(err, "GEMM: the activation epilogue needs its saved tensor");
  kd_gemm_backend be;
  if (gemm_pick(dev, trans_a, 0, M, N, K, &be, err)) return -1;
  if (be == KD_GEMM_CLBLAST && ldc == N && (!rowsum.buf || (trans_a && lda == M)) &&
      (act < 0 || gemm_check_operand("S", s.buf, s.off, ldc, M, N, err) == 0) &&
      (!rowsum.buf || gemm_check_operand("rowsum", rowsum.buf, rowsum.off, M, 1, M, err) == 0) &&
      gemm_check_operand("C", C, c_off, ldc, M, N, err) == 0) {
    /* CLBlast took the shape: the GEMM, then the kernels a layer runs after an unfused GEMM
     * (activation gradient in place; bias gradient as column sums of A = dy, rows in order);
     * the same bits as that path. */
    if (gemm_clblast(dev, trans_a, 0, M, N, K, 1.0f, A, a_off, lda, B, b_off, ldb, 0.0f, C, c_off,
                     ldc, err))
      return -1;
    size_t l = KD_WG;
    if (act >= 0) {
      size_t g = M * N;
      if (KD_RUN(dev, "kd_activation_backward", 1, &g, &l, err, KD_MEM(C), KD_UINT(c_off),
                 KD_MEM(C), KD_UINT(c_off), KD_MEM(s.buf), KD_UINT(s.off), KD_INT(s_is_output),
                 KD_UINT(g), KD_INT(act)))
        return -1;
    }
    if (!rowsum.buf) return 0;
    if (gemm_check_operand("A", A, a_off, lda, K, M, err)) return -1;
    size_t g = M;
    return KD_RUN(dev, "kd_dense_bias_backward", 1, &g, &l, err, KD_MEM(rowsum.buf),
                  KD_UINT(rowsum.off), KD_MEM(A), KD_UINT(a_off), KD_UINT(K), KD_UINT(M));
  }
  gemm_ep ep = {act, s, s_is_output, rowsum};
  return gemm_builtin(dev, trans_a, 0, M, N, K, 1.0f, A, a_off, lda, B, b_off, ldb, 0.0f, C, c_off,
                      ldc, &ep, err);
}

int kd_gemm(kd_device *dev, int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
            cl_mem A, size_t a_off, size_t lda, cl_mem B, size_t b_off, size_t ldb, float beta,
            cl_mem C, size_t c_off, size_t ldc, kd_error *err) {
  if (M == 0 || N == 0) return 0;
  /* CLBlast refuses K = 0 (kInvalidDimension); the built-in kernel scales C by beta. */
  kd_gemm_backend be;
  if (gemm_pick(dev, trans_a, trans_b, M, N, K, &be, err)) return -1;
  if (be == KD_GEMM_CLBLAST)
    return gemm_clblast(dev, trans_a, trans_b, M, N, K, alpha, A, a_off, lda, B, b_off, ldb,
                        beta, C, c_off, ldc, err);
  return gemm_builtin(dev, trans_a, trans_b, M, N, K, alpha, A, a_off, lda, B, b_off, ldb, beta,
                      C, c_off, ldc, NULL, err);
}

int kd_gemm_clblast_usable(kd_device *dev, kd_error *err) {
  /* [2x3] * [3x2]: small enough to check by hand, odd enough to catch layout mistakes. */
  const float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {7, 8, 9, 10, 11, 12};
  const float want[4] = {58, 64, 139, 154};
  float c[4] = {0};
  cl_int rc;
  cl_mem buf = clCreateBuffer(dev->context, CL_MEM_READ_WRITE, 16 * sizeof(float), NULL, &rc);
  if (rc != CL_SUCCESS) return kd_fail(err, "clCreateBuffer: %s", kd_cl_errstr(rc)), 0;
  int ok = 0;
  if (clEnqueueWriteBuffer(dev->queue, buf, CL_TRUE, 0, sizeof a, a, 0, NULL, NULL) == CL_SUCCESS &&
      clEnqueueWriteBuffer(dev->queue, buf, CL_TRUE, sizeof a, sizeof b, b, 0, NULL, NULL) ==
          CL_SUCCESS &&
      gemm_clblast(dev, 0, 0, 2, 2, 3, 1.0f, buf, 0, 3, buf, 6, 2, 0.0f, buf, 12, 2, err) == 0 &&
      clEnqueueReadBuffer(dev->queue, buf, CL_TRUE, 12 * sizeof(float), sizeof c, c, 0, NULL,
                          NULL) == CL_SUCCESS) {
    ok = 1;
    for (int i = 0; i < 4; i++)
      if (fabsf(c[i] - want[i]) > 1e-3f) ok = 0;
    if (!ok) kd_fail(err, "CLBlast returned a wrong result on this device");
  }
  clReleaseMemObject(buf);
  return ok;
}

int kd_gemm_backend_parse(const char *name, kd_gemm_backend *out) {
  if (!strcmp(name, "clblast")) *out = KD_GEMM_CLBLAST;
  else if (!strcmp(name, "builtin")) *out = KD_GEMM_BUILTIN;
  else if (!strcmp(name, "auto")) *out = KD_GEMM_AUTO;
  else return -1;
  return 0;
}

const char *kd_gemm_backend_name(kd_gemm_backend backend) {
  return backend == KD_GEMM_CLBLAST ? "clblast" : backend == KD_GEMM_AUTO ? "auto" : "builtin";
}

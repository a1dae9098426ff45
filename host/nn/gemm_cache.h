/* What the GEMM dispatcher keeps on disk per device, in the kdcl cache dir ($KDCL_CACHE_DIR, else
 * $XDG_CACHE_HOME/kdcl or ~/.cache/kdcl, as the kernel binary cache):
 *   clblast-params-<device key>.json   tuned CLBlast kernel parameters (scripts/tune_clblast.sh),
 *                                      applied with CLBlastOverrideParameters;
 *   gemm-choice-<choice key>.json      which back end is faster for each GEMM shape, measured
 *                                      once (kd_gemm with KD_GEMM_AUTO).
 * The device key hashes the platform name, device name, device version and driver version; the
 * choice key adds what the timings depend on (the kernel sources, the CLBlast version and the
 * tuned parameters applied), so a change there measures afresh instead of trusting old figures.
 * Files are written through a temporary file and rename; a file that does not parse, or that
 * names another device, is ignored with a warning. */
#ifndef KD_GEMM_CACHE_H
#define KD_GEMM_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/device.h"
#include "runtime/env.h"

/* FNV-1a 64 of the device's platform name, name, version and driver version (each with its
 * terminating NUL). scripts/tune_clblast.cpp computes the same. */
uint64_t kd_gemm_device_key(const kd_device_info *info);

/* buf = "<cache dir>/<prefix>-<key as 16 hex digits>.json"; -1 when there is no cache dir or the
 * path does not fit. */
int kd_gemm_cache_path(char *buf, size_t len, const char *prefix, uint64_t key);

/* ---- per-shape back-end choices ---- */

typedef struct kd_gemm_choice {
  int trans_a, trans_b;
  uint64_t m, n, k;
  kd_gemm_backend backend; /* KD_GEMM_BUILTIN or KD_GEMM_CLBLAST */
  double builtin_ms, clblast_ms; /* best of the timed calls; clblast_ms < 0: CLBlast failed */
} kd_gemm_choice;

typedef struct kd_gemm_choices {
  kd_gemm_choice *items;
  size_t count, cap;
} kd_gemm_choices;

const kd_gemm_choice *kd_gemm_choices_find(const kd_gemm_choices *c, int trans_a, int trans_b,
                                           uint64_t m, uint64_t n, uint64_t k);
/* Adds c unless its shape is there already (the first decision stands); -1 out of memory. */
int kd_gemm_choices_add(kd_gemm_choices *c, const kd_gemm_choice *choice);
void kd_gemm_choices_free(kd_gemm_choices *c);

/* Reads a choice file into *out (entries added to what it holds). Returns 1 when read, 0 when
 * there is no file, -1 when the file was ignored: unreadable, not JSON, another format, another
 * device (device_name does not match; NULL skips the check) or a malformed entry; then warn holds
 * one line saying which and why, and *out is unchanged. */
int kd_gemm_choices_load(const char *path, const char *device_name, kd_gemm_choices *out,
                         char *warn, size_t warn_len);

/* Writes the choices for the device to path, atomically; -1 with errno on failure. */
int kd_gemm_choices_save(const char *path, const kd_device_info *info, const kd_gemm_choices *c);

/* ---- tuned CLBlast parameters ---- */

#define KD_CLBLAST_MAX_KERNELS 4
#define KD_CLBLAST_MAX_PARAMS 32

typedef struct kd_clblast_kernel_params {
  char kernel[32]; /* "Xgemm", "XgemmDirect" */
  size_t count;
  char names[KD_CLBLAST_MAX_PARAMS][24];
  size_t values[KD_CLBLAST_MAX_PARAMS];
} kd_clblast_kernel_params;

typedef struct kd_clblast_params {
  size_t count;
  kd_clblast_kernel_params kernels[KD_CLBLAST_MAX_KERNELS];
  uint64_t fingerprint; /* hash of the file's bytes: part of the choice key */
} kd_clblast_params;

/* Reads a parameter file written by scripts/tune_clblast.sh. Returns 1 when read, 0 when there
 * is no file, -1 when ignored (not JSON, another format, written for another device or driver
 * than info, or a malformed kernel entry) with one line in warn. */
int kd_clblast_params_load(const char *path, const kd_device_info *info, kd_clblast_params *out,
                           char *warn, size_t warn_len);

#endif

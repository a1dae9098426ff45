/* Recording and replaying kernel launches (bench step's GEMM-only timing). */
#include "runtime/launch_log.h"

#include <stdlib.h>
#include <string.h>

void kd_launch_log_add(kd_launch_log *log, int kernel, int dims, const size_t *global,
                       const size_t *local, int nargs, const kd_arg *args) {
  if (log->failed) return;
  if (log->count == log->cap) {
    int cap = log->cap ? 2 * log->cap : 16;
    kd_launch *grown = realloc(log->launches, (size_t)cap * sizeof *grown);
    if (!grown) {
      log->failed = 1;
      return;
    }
    log->launches = grown;
    log->cap = cap;
  }
  kd_launch *l = &log->launches[log->count];
  memset(l, 0, sizeof *l);
  l->kernel = kernel;
  l->dims = dims;
  memcpy(l->global, global, (size_t)dims * sizeof *global);
  memcpy(l->local, local, (size_t)dims * sizeof *local);
  l->nargs = nargs;
  l->args = calloc((size_t)nargs + 1, sizeof *l->args);
  int ok = l->args != NULL;
  for (int i = 0; ok && i < nargs; i++) {
    l->args[i].size = args[i].size;
    if (!args[i].value) continue; /* local memory */
    void *copy = malloc(args[i].size);
    if (copy) memcpy(copy, args[i].value, args[i].size);
    l->args[i].value = copy;
    ok = copy != NULL;
  }
  log->count++;
  if (!ok) log->failed = 1;
}

int kd_launch_log_replay(kd_device *dev, const kd_launch_log *log, const char *prefix,
                         int *replayed, kd_error *err) {
  if (log->failed) return kd_fail(err, "the launch log is incomplete (out of host memory)");
  size_t len = strlen(prefix);
  int n = 0;
  for (int i = 0; i < log->count; i++) {
    const kd_launch *l = &log->launches[i];
    const char *name = dev->kernels[l->kernel].name;
    if (strncmp(name, prefix, len)) continue;
    if (kd_run(dev, name, l->dims, l->global, l->local, l->nargs, l->args, err)) return -1;
    n++;
  }
  if (replayed) *replayed = n;
  return 0;
}

void kd_launch_log_free(kd_launch_log *log) {
  for (int i = 0; i < log->count; i++) {
    for (int a = 0; log->launches[i].args && a < log->launches[i].nargs; a++)
      free((void *)log->launches[i].args[a].value);
    free(log->launches[i].args);
  }
  free(log->launches);
  memset(log, 0, sizeof *log);
}

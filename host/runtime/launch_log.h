/* A record of kernel launches, to enqueue again later: `kdcl bench step` records one training
 * step and replays its GEMM launches alone, so the step's time can be set against its GEMMs'
 * with both timed the same way (unprofiled, back to back). */
#ifndef KD_LAUNCH_LOG_H
#define KD_LAUNCH_LOG_H

#include "runtime/device.h"

typedef struct kd_launch {
  int kernel; /* index into dev->kernels */
  int dims;
  size_t global[3], local[3];
  int nargs;
  kd_arg *args; /* sizes and copies of the values (NULL for local memory) */
} kd_launch;

typedef struct kd_launch_log {
  kd_launch *launches;
  int count, cap;
  int failed; /* a copy could not be allocated: the log is incomplete */
} kd_launch_log;

/* Appends a launch (kd_run calls it while dev->launch_log is set); argument values are
 * copied. */
void kd_launch_log_add(kd_launch_log *log, int kernel, int dims, const size_t *global,
                       const size_t *local, int nargs, const kd_arg *args);

/* Enqueues again, in order, the recorded launches whose kernel name starts with prefix;
 * *replayed (may be NULL) gets how many. The buffers they name must still exist. */
int kd_launch_log_replay(kd_device *dev, const kd_launch_log *log, const char *prefix,
                         int *replayed, kd_error *err);

void kd_launch_log_free(kd_launch_log *log);

#endif

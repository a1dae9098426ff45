/* The kernel program: built once per device per process from the embedded kernels/ sources,
 * through an on-disk binary cache, or loaded from a prebuilt binary (FPGA flow). */
#ifndef KD_PROGRAM_H
#define KD_PROGRAM_H

#include "runtime/device.h"

/* Options every build uses; part of the cache key. */
#define KD_PROGRAM_OPTIONS "-cl-std=CL1.2"

/* Builds dev->program and creates every kernel in it. With kernels_binary non-NULL the program
 * comes from that file (written by kd_device_save_binary); otherwise from source, reusing a
 * cached binary under $KDCL_CACHE_DIR (default $XDG_CACHE_HOME/kdcl or ~/.cache/kdcl) keyed by
 * hash(source, options, device, driver). A failed build returns the build log in err. */
int kd_program_build(kd_device *dev, const char *kernels_binary, kd_error *err);

/* 64-bit FNV-1a, used for cache keys. */
uint64_t kd_fnv1a64(uint64_t h, const void *data, size_t len);

#endif

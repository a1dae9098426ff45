/* Program build with an on-disk binary cache, prebuilt-binary loading, the kernel table and
 * the launch helper. */
#include "runtime/program.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/env.h"
#include "runtime/file_io.h"
#include "runtime/launch_log.h"

/* Program binaries of every device seen are tens of MiB at most. */
#define KD_MAX_BINARY_BYTES ((size_t)1 << 30)

extern const char kd_kernel_source[];
extern const size_t kd_kernel_source_len;

uint64_t kd_fnv1a64(uint64_t h, const void *data, size_t len) {
  const unsigned char *p = data;
  if (h == 0) h = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

static void mkdir_parents(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s", dir);
  for (char *p = path + 1; *p; p++) {
    if (*p == '/') {
      *p = '\0';
      mkdir(path, 0755);
      *p = '/';
    }
  }
  mkdir(path, 0755);
}

static uint64_t cache_key(const kd_device_info *info) {
  uint64_t h = kd_fnv1a64(0, kd_kernel_source, kd_kernel_source_len);
  h = kd_fnv1a64(h, KD_PROGRAM_OPTIONS, sizeof KD_PROGRAM_OPTIONS);
  h = kd_fnv1a64(h, info->platform_name, strlen(info->platform_name) + 1);
  h = kd_fnv1a64(h, info->name, strlen(info->name) + 1);
  h = kd_fnv1a64(h, info->version, strlen(info->version) + 1);
  return kd_fnv1a64(h, info->driver_version, strlen(info->driver_version) + 1);
}

static int build_log_fail(kd_device *dev, const char *what, cl_int rc, kd_error *err) {
  size_t log_len = 0;
  clGetProgramBuildInfo(dev->program, dev->info.device, CL_PROGRAM_BUILD_LOG, 0, NULL, &log_len);
  char *log = malloc(log_len + 1);
  if (log) {
    log[0] = '\0';
    clGetProgramBuildInfo(dev->program, dev->info.device, CL_PROGRAM_BUILD_LOG, log_len, log,
                          NULL);
    log[log_len] = '\0';
    /* The whole log goes to stderr: it is the one thing a kernel author needs. */
    fprintf(stderr, "%s", log);
  }
  free(log);
  return kd_fail(err, "building the OpenCL program %s failed with %s (build log above)", what,
                 kd_cl_errstr(rc));
}

static int create_kernels(kd_device *dev, kd_error *err) {
  cl_uint n = 0;
  KD_CL_CHECK(err, clCreateKernelsInProgram(dev->program, 0, NULL, &n));
  cl_kernel *ks = calloc(n ? n : 1, sizeof *ks);
  dev->kernels = calloc(n ? n : 1, sizeof *dev->kernels);
  if (!ks || !dev->kernels) {
    free(ks);
    return kd_fail(err, "out of host memory creating kernels");
  }
  cl_int rc = clCreateKernelsInProgram(dev->program, n, ks, NULL);
  if (rc != CL_SUCCESS) {
    free(ks);
    return kd_cl_fail(err, "clCreateKernelsInProgram", rc, __FILE__, __LINE__);
  }
  for (cl_uint i = 0; i < n; i++) {
    dev->kernels[i].kernel = ks[i];
    clGetKernelInfo(ks[i], CL_KERNEL_FUNCTION_NAME, sizeof dev->kernels[i].name,
                    dev->kernels[i].name, NULL);
  }
  dev->num_kernels = (int)n;
  free(ks);
  return 0;
}

static int build_from_binary(kd_device *dev, const unsigned char *bin, size_t len,
                             const char *what, kd_error *err) {
  cl_int rc, bin_status;
  dev->program = clCreateProgramWithBinary(dev->context, 1, &dev->info.device, &len, &bin,
                                           &bin_status, &rc);
  if (rc != CL_SUCCESS || bin_status != CL_SUCCESS) {
    if (dev->program) clReleaseProgram(dev->program);
    dev->program = NULL;
    return kd_fail(err, "%s is not a program binary for device '%s' (%s)", what, dev->info.name,
                   kd_cl_errstr(rc != CL_SUCCESS ? rc : bin_status));
  }
  rc = clBuildProgram(dev->program, 1, &dev->info.device, KD_PROGRAM_OPTIONS, NULL, NULL);
  if (rc != CL_SUCCESS) return build_log_fail(dev, what, rc, err);
  return 0;
}

int kd_program_build(kd_device *dev, const char *kernels_binary, kd_error *err) {
  if (kernels_binary) {
    char *bin = NULL, what[4200];
    size_t len = 0;
    snprintf(what, sizeof what, "--kernels-binary %s", kernels_binary);
    if (kd_read_file(what, kernels_binary, KD_MAX_BINARY_BYTES, 0, &bin, &len, err)) return -1;
    int rc = build_from_binary(dev, (const unsigned char *)bin, len, what, err);
    free(bin);
    return rc ? rc : create_kernels(dev, err);
  }

  char dir[4096], path[4200] = "";
  kd_cache_dir(dir, sizeof dir);
  if (dir[0])
    snprintf(path, sizeof path, "%s/%016llx.bin", dir,
             (unsigned long long)cache_key(&dev->info));
  char *bin = NULL;
  size_t len = 0;
  kd_error ignored;
  if (path[0] && kd_read_file("cache", path, KD_MAX_BINARY_BYTES, 0, &bin, &len, &ignored) == 0) {
    int rc = build_from_binary(dev, (const unsigned char *)bin, len, "from the cache", &ignored);
    free(bin);
    if (rc == 0) return create_kernels(dev, err);
    /* A stale or corrupt cache entry is rebuilt from source below. */
  }

  cl_int rc;
  const char *src = kd_kernel_source;
  dev->program = clCreateProgramWithSource(dev->context, 1, &src, &kd_kernel_source_len, &rc);
  KD_CL_CHECK(err, rc);
  rc = clBuildProgram(dev->program, 1, &dev->info.device, KD_PROGRAM_OPTIONS, NULL, NULL);
  if (rc != CL_SUCCESS) return build_log_fail(dev, "from source", rc, err);
  if (path[0]) {
    size_t bin_len = 0;
    if (clGetProgramInfo(dev->program, CL_PROGRAM_BINARY_SIZES, sizeof bin_len, &bin_len,
                         NULL) == CL_SUCCESS &&
        bin_len > 0) {
      unsigned char *out = malloc(bin_len);
      if (out && clGetProgramInfo(dev->program, CL_PROGRAM_BINARIES, sizeof out, &out, NULL) ==
                     CL_SUCCESS) {
        mkdir_parents(dir);
        kd_write_file_atomic(path, out, bin_len); /* a cache that cannot be written is skipped */
      }
      free(out);
    }
  }
  return create_kernels(dev, err);
}

int kd_device_save_binary(const kd_device *dev, const char *path, kd_error *err) {
  size_t bin_len = 0;
  KD_CL_CHECK(err, clGetProgramInfo(dev->program, CL_PROGRAM_BINARY_SIZES, sizeof bin_len,
                                    &bin_len, NULL));
  if (bin_len == 0) return kd_fail(err, "the OpenCL driver returned an empty program binary");
  unsigned char *out = malloc(bin_len);
  if (!out) return kd_fail(err, "out of host memory");
  cl_int rc = clGetProgramInfo(dev->program, CL_PROGRAM_BINARIES, sizeof out, &out, NULL);
  if (rc != CL_SUCCESS) {
    free(out);
    return kd_cl_fail(err, "clGetProgramInfo", rc, __FILE__, __LINE__);
  }
  int w = kd_write_file_atomic(path, out, bin_len);
  free(out);
  if (w) return kd_fail(err, "%s: cannot write the program binary (%s)", path, strerror(errno));
  return 0;
}

int kd_run(kd_device *dev, const char *name, int dims, const size_t *global,
           const size_t *local, int nargs, const kd_arg *args, kd_error *err) {
  kd_kernel_entry *entry = NULL;
  for (int i = 0; i < dev->num_kernels; i++)
    if (!strcmp(dev->kernels[i].name, name)) entry = &dev->kernels[i];
  if (!entry) return kd_fail(err, "kernel '%s' is not in the program", name);
  size_t rounded[3];
  for (int d = 0; d < dims; d++) {
    if (global[d] == 0) return 0; /* nothing to do */
    rounded[d] = (global[d] + local[d] - 1) / local[d] * local[d];
  }
  for (int i = 0; i < nargs; i++) {
    cl_int rc = clSetKernelArg(entry->kernel, (cl_uint)i, args[i].size, args[i].value);
    if (rc != CL_SUCCESS)
      return kd_fail(err, "kernel %s argument %d: %s", name, i, kd_cl_errstr(rc));
  }
  cl_event ev = NULL;
  cl_int rc = clEnqueueNDRangeKernel(dev->queue, entry->kernel, (cl_uint)dims, NULL, rounded,
                                     local, 0, NULL, dev->profiling ? &ev : NULL);
  if (rc != CL_SUCCESS)
    return kd_fail(err, "launching kernel %s failed with %s", name, kd_cl_errstr(rc));
  entry->launches++;
  dev->launches++;
  if (dev->launch_log)
    kd_launch_log_add(dev->launch_log, (int)(entry - dev->kernels), dims, rounded, local, nargs,
                      args);
  if (ev) {
    cl_ulong t0 = 0, t1 = 0;
    clWaitForEvents(1, &ev);
    clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL);
    clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);
    entry->profiled_ms += (double)(t1 - t0) * 1e-6;
    clReleaseEvent(ev);
  }
  return 0;
}

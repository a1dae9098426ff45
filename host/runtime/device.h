/* The OpenCL device a run uses: platform/device choice, context, in-order queue, the kernel
 * program built for it, and the launch helper every op goes through. */
#ifndef KD_DEVICE_H
#define KD_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"

/* What `kdcl devices` shows of one device. */
typedef struct kd_device_info {
  int index; /* position in the flat list over all platforms */
  cl_platform_id platform;
  cl_device_id device;
  char platform_name[128];
  char name[256];
  char vendor[128];
  char version[128];        /* CL_DEVICE_VERSION */
  char driver_version[128]; /* CL_DRIVER_VERSION */
  cl_device_type type;
  cl_uint compute_units;
  cl_ulong global_mem_bytes;
  cl_ulong max_alloc_bytes;
  size_t max_work_group_size;
} kd_device_info;

typedef struct kd_kernel_entry {
  char name[64];
  cl_kernel kernel;
  uint64_t launches;
  double profiled_ms; /* summed from profiling events when the queue profiles */
} kd_kernel_entry;

/* Which GEMM implementation kd_gemm uses on this device (--gemm). KD_GEMM_AUTO: per shape, the
 * faster of the two, measured once per device and cached (nn/gemm.c). */
typedef enum kd_gemm_backend {
  KD_GEMM_BUILTIN = 0,
  KD_GEMM_CLBLAST = 1,
  KD_GEMM_AUTO = 2
} kd_gemm_backend;

/* Local size of 1-D element-wise kernels; kernels/common.h has the same default. */
#define KD_WG 64

typedef struct kd_device {
  kd_device_info info;
  /* default: KD_GEMM_AUTO, or the built-in kernel when the program came from a prebuilt binary
   * (FPGA runtimes cannot compile CLBlast's kernels) */
  kd_gemm_backend gemm_backend;
  /* The GEMM dispatcher's per-device state (tuned CLBlast parameters applied, shape choices),
   * made on first use by nn/gemm.c and released by kd_device_close through gemm_state_free. */
  void *gemm_state;
  void (*gemm_state_free)(void *state);
  cl_context context;
  cl_command_queue queue;
  cl_program program;
  kd_kernel_entry *kernels;
  int num_kernels;
  int profiling;     /* queue created with CL_QUEUE_PROFILING_ENABLE */
  uint64_t launches; /* kernel launches enqueued through kd_run since open */
  /* while set, kd_run also appends each launch here (runtime/launch_log.h) */
  struct kd_launch_log *launch_log;
} kd_device;

/* Lists every device of every platform into a malloc'd array (*out, *count). */
int kd_device_list(kd_device_info **out, int *count, kd_error *err);

const char *kd_device_type_name(cl_device_type type);

/* Picks a device by selector: a decimal index into kd_device_list, "cpu", "gpu" or
 * "accelerator" (first of that type), or a case-insensitive substring of the device or
 * platform name. NULL or "" falls back to $KDCL_DEVICE, then to device 0. */
int kd_device_select(const char *selector, kd_device_info *out, kd_error *err);

/* Creates the context and queue for the device selected by `selector`, then builds the kernel
 * program: from the embedded sources (with the on-disk binary cache) or, when kernels_binary
 * is non-NULL, from that program binary (the FPGA flow). */
int kd_device_open(kd_device *dev, const char *selector, const char *kernels_binary,
                   int profiling, kd_error *err);
void kd_device_close(kd_device *dev);

/* Writes the built program binary for the open device to path (for --kernels-binary). */
int kd_device_save_binary(const kd_device *dev, const char *path, kd_error *err);

/* One kernel argument: its size and a pointer to its value. */
typedef struct kd_arg {
  size_t size;
  const void *value;
} kd_arg;

#define KD_MEM(m) ((kd_arg){sizeof(cl_mem), &(cl_mem){(m)}})
#define KD_INT(v) ((kd_arg){sizeof(cl_int), &(cl_int){(cl_int)(v)}})
#define KD_UINT(v) ((kd_arg){sizeof(cl_uint), &(cl_uint){(cl_uint)(v)}})
#define KD_FLOAT(v) ((kd_arg){sizeof(cl_float), &(cl_float){(cl_float)(v)}})
#define KD_LOCAL(bytes) ((kd_arg){(bytes), NULL})

/* Enqueues kernel `name` with the given arguments. global[i] is rounded up to a multiple of
 * local[i] (kernels guard their own bounds); local is always explicit. No host sync. */
int kd_run(kd_device *dev, const char *name, int dims, const size_t *global,
           const size_t *local, int nargs, const kd_arg *args, kd_error *err);

#define KD_RUN(dev, name, dims, global, local, err, ...)                                    \
  kd_run((dev), (name), (dims), (global), (local),                                           \
         (int)(sizeof((kd_arg[]){__VA_ARGS__}) / sizeof(kd_arg)), (kd_arg[]){__VA_ARGS__}, \
         (err))

/* Waits for the queue to drain; errors from earlier enqueued work surface here. */
int kd_device_finish(kd_device *dev, kd_error *err);

#endif

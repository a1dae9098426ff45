/* Arena planning and creation, and blocking float copies. */
#include "nn/arena.h"

size_t kd_arena_reserve(kd_arena *a, size_t n) {
  size_t off = a->used;
  a->used += (n + KD_ARENA_ALIGN - 1) / KD_ARENA_ALIGN * KD_ARENA_ALIGN;
  return off;
}

int kd_arena_create(kd_device *dev, kd_arena *a, kd_error *err) {
  size_t bytes = (a->used ? a->used : KD_ARENA_ALIGN) * sizeof(float);
  if (a->used > UINT32_MAX)
    return kd_fail(err, "the %s arena needs %zu floats but kernels index arenas with 32 bits "
                   "(try a smaller --batch or model)", a->name, a->used);
  if (bytes > dev->info.max_alloc_bytes)
    return kd_fail(err,
                   "the %s arena needs %.1f MiB but device '%s' allows buffers of at most "
                   "%.1f MiB (try a smaller --batch)",
                   a->name, bytes / 1048576.0, dev->info.name,
                   dev->info.max_alloc_bytes / 1048576.0);
  cl_int rc;
  a->buf = clCreateBuffer(dev->context, CL_MEM_READ_WRITE, bytes, NULL, &rc);
  if (rc != CL_SUCCESS)
    return kd_fail(err, "allocating the %s arena (%.1f MiB) on '%s' failed: %s", a->name,
                   bytes / 1048576.0, dev->info.name, kd_cl_errstr(rc));
  float zero = 0.0f;
  KD_CL_CHECK(err, clEnqueueFillBuffer(dev->queue, a->buf, &zero, sizeof zero, 0, bytes, 0, NULL,
                                       NULL));
  return 0;
}

void kd_arena_release(kd_arena *a) {
  if (a->buf) clReleaseMemObject(a->buf);
  a->buf = NULL;
}

int64_t kd_tensor_numel(const kd_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

int kd_read_floats(kd_device *dev, cl_mem buf, size_t off, size_t n, float *host, kd_error *err) {
  if (n == 0) return 0;
  KD_CL_CHECK(err, clEnqueueReadBuffer(dev->queue, buf, CL_TRUE, off * sizeof(float),
                                       n * sizeof(float), host, 0, NULL, NULL));
  return 0;
}

int kd_write_floats(kd_device *dev, cl_mem buf, size_t off, size_t n, const float *host,
                    kd_error *err) {
  if (n == 0) return 0;
  KD_CL_CHECK(err, clEnqueueWriteBuffer(dev->queue, buf, CL_TRUE, off * sizeof(float),
                                        n * sizeof(float), host, 0, NULL, NULL));
  return 0;
}

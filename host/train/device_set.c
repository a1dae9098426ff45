/* The training set held in device memory, and the gather that feeds a step from
 * it (kernels/normalize.cl: kd_gather_batch). */
#include "train/device_set.h"

#include <stdlib.h>
#include <string.h>

#include "nn/layers.h"

/* The buffers a set needs, and their host mappings while it is read. */
enum { SET_X, SET_Y, SET_TEACHER, SET_TEACHER_IDX, SET_BUFFERS };

static cl_mem *set_buffer(kd_device_set *s, int which) {
  cl_mem *bufs[SET_BUFFERS] = {&s->x, &s->y, &s->teacher, &s->teacher_idx};
  return bufs[which];
}

void kd_device_set_release(kd_device_set *s) {
  if (s->order_written) {
    clWaitForEvents(1, &s->order_written);
    clReleaseEvent(s->order_written);
  }
  for (int i = 0; i < SET_BUFFERS; i++)
    if (*set_buffer(s, i)) clReleaseMemObject(*set_buffer(s, i));
  if (s->order) clReleaseMemObject(s->order);
  free(s->order_host);
  memset(s, 0, sizeof *s);
}

int kd_device_set_load(kd_device_set *s, kd_device *dev, kd_dataset *ds, int with_teacher,
                       kd_error *err) {
  memset(s, 0, sizeof *s);
  s->dev = dev;
  s->rows = ds->num_rows;
  s->sample_size = ds->sample_size;
  s->x_is_u8 = ds->x_is_u8;
  if (with_teacher && ds->teacher_kind != KD_TEACHER_NONE) {
    s->topk = ds->teacher_kind == KD_TEACHER_TOPK;
    s->teacher_cols = (size_t)(s->topk ? ds->teacher_k : ds->teacher_classes);
  }
  size_t N = (size_t)s->rows;
  /* The kernel indexes positions in 32 bits (rows and row offsets in 64). */
  if (s->rows <= 0 || s->rows > INT32_MAX) return 0;
  size_t bytes[SET_BUFFERS] = {N * s->sample_size * (s->x_is_u8 ? 1 : sizeof(float)),
                               N * sizeof(int32_t), N * s->teacher_cols * sizeof(float),
                               s->topk ? N * s->teacher_cols * sizeof(int32_t) : 0};
  for (int i = 0; i < SET_BUFFERS; i++)
    if (bytes[i] > dev->info.max_alloc_bytes) return 0;
  s->order_host = malloc(N * sizeof *s->order_host);
  if (!s->order_host) return 0;
  cl_int rc = CL_SUCCESS;
  s->order = clCreateBuffer(dev->context, CL_MEM_READ_ONLY, N * sizeof(int32_t), NULL, &rc);
  void *mapped[SET_BUFFERS] = {NULL};
  for (int i = 0; i < SET_BUFFERS && rc == CL_SUCCESS; i++) {
    if (!bytes[i]) continue;
    *set_buffer(s, i) = clCreateBuffer(dev->context, CL_MEM_READ_ONLY, bytes[i], NULL, &rc);
    if (rc == CL_SUCCESS)
      mapped[i] =
          clEnqueueMapBuffer(dev->queue, *set_buffer(s, i), CL_TRUE, CL_MAP_WRITE_INVALIDATE_REGION,
                             0, bytes[i], 0, NULL, NULL, &rc);
  }
  int got = rc == CL_SUCCESS ? 1 : 0;
  float *teacher = mapped[SET_TEACHER];
  if (got && kd_dataset_read_all(ds, mapped[SET_X], mapped[SET_Y], s->topk ? NULL : teacher,
                                 mapped[SET_TEACHER_IDX], s->topk ? teacher : NULL, err))
    got = -1;
  for (int i = 0; i < SET_BUFFERS; i++)
    if (mapped[i]) clEnqueueUnmapMemObject(dev->queue, *set_buffer(s, i), mapped[i], 0, NULL, NULL);
  if (clFinish(dev->queue) != CL_SUCCESS && got == 1) got = 0;
  if (got != 1) kd_device_set_release(s);
  return got;
}

int kd_device_set_order(kd_device_set *s, const int64_t *order, int64_t len, kd_error *err) {
  if (len < 0 || len > s->rows)
    return kd_fail(err, "epoch order of %lld positions for a set of %lld rows", (long long)len,
                   (long long)s->rows);
  /* The previous order's write reads order_host until it completes. */
  if (s->order_written) {
    clWaitForEvents(1, &s->order_written);
    clReleaseEvent(s->order_written);
    s->order_written = NULL;
  }
  for (int64_t i = 0; i < len; i++) {
    if (order[i] < 0 || order[i] >= s->rows)
      return kd_fail(err, "row %lld of the epoch order is outside the set's %lld rows",
                     (long long)order[i], (long long)s->rows);
    s->order_host[i] = (int32_t)order[i];
  }
  if (len == 0) return 0;
  KD_CL_CHECK(
      err, clEnqueueWriteBuffer(s->dev->queue, s->order, CL_FALSE, 0, (size_t)len * sizeof(int32_t),
                                s->order_host, 0, NULL, &s->order_written));
  return 0;
}

int kd_device_set_gather(const kd_device_set *s, int64_t first, size_t n, kd_ref x_out, float scale,
                         float mean, float std, kd_ref y_out, kd_ref teacher_out,
                         kd_ref teacher_idx_out, kd_error *err) {
  if (first < 0 || (uint64_t)n > (uint64_t)(s->rows - first))
    return kd_fail(err, "gathering positions %lld..%lld of an order of %lld rows", (long long)first,
                   (long long)first + (long long)n, (long long)s->rows);
  float a, b;
  if (kd_normalize_coefficients(scale, mean, std, &a, &b, err)) return -1;
  size_t tc = teacher_out.buf ? s->teacher_cols : 0;
  if (tc && s->topk && !teacher_idx_out.buf)
    return kd_fail(err, "gathering top-k teacher rows needs somewhere for their classes");
  size_t global[2] = {KD_WG, n}, local[2] = {KD_WG, 1};
  /* Outputs not wanted and inputs not held are bound to the order buffer: the
   * kernel does not touch them (with_labels, teacher_cols and topk say so). */
  cl_mem unused = s->order;
  return KD_RUN(s->dev, "kd_gather_batch", 2, global, local, err, KD_MEM(x_out.buf),
                KD_UINT(x_out.off), KD_MEM(s->x), KD_UINT(s->x_is_u8), KD_MEM(s->order),
                KD_UINT(first), KD_UINT(s->sample_size), KD_FLOAT(a), KD_FLOAT(b),
                KD_UINT(y_out.buf != NULL), KD_MEM(y_out.buf ? y_out.buf : unused),
                KD_UINT(y_out.off), KD_MEM(s->y), KD_UINT(tc), KD_UINT(s->topk),
                KD_MEM(teacher_out.buf ? teacher_out.buf : unused), KD_UINT(teacher_out.off),
                KD_MEM(s->teacher ? s->teacher : unused),
                KD_MEM(teacher_idx_out.buf ? teacher_idx_out.buf : unused),
                KD_UINT(teacher_idx_out.off), KD_MEM(s->teacher_idx ? s->teacher_idx : unused));
}

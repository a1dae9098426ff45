/* Profile report: kernels sorted by the device time their launches took. */
#include "runtime/profile.h"

#include <stdlib.h>

static int by_time(const void *a, const void *b) {
  double ta = (*(const kd_kernel_entry *const *)a)->profiled_ms;
  double tb = (*(const kd_kernel_entry *const *)b)->profiled_ms;
  return ta < tb ? 1 : ta > tb ? -1 : 0;
}

void kd_profile_print(const kd_device *dev, FILE *out) {
  const kd_kernel_entry **order = malloc((size_t)(dev->num_kernels ? dev->num_kernels : 1) *
                                         sizeof *order);
  if (!order) return;
  int n = 0;
  double total = 0;
  for (int i = 0; i < dev->num_kernels; i++)
    if (dev->kernels[i].launches) {
      order[n++] = &dev->kernels[i];
      total += dev->kernels[i].profiled_ms;
    }
  qsort(order, (size_t)n, sizeof *order, by_time);
  fprintf(out, "kdcl: profile (device time of kdcl's kernels; CLBlast calls not included)\n");
  fprintf(out, "  %-34s %10s %12s %8s\n", "kernel", "launches", "total ms", "share");
  for (int i = 0; i < n; i++)
    fprintf(out, "  %-34s %10llu %12.1f %7.1f%%\n", order[i]->name,
            (unsigned long long)order[i]->launches, order[i]->profiled_ms,
            total > 0 ? 100 * order[i]->profiled_ms / total : 0);
  fprintf(out, "  %-34s %10llu %12.1f\n", "all", (unsigned long long)dev->launches, total);
  free(order);
}
